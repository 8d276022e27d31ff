"""One inference session: a clip setting a checkpoint carries reaches every path that runs its model
(`fpar predict`, `fpar.Stream`, `fpar eval` and the ONNX runtime), and they agree on the logits."""

import numpy as np
import pytest
import torch
from PIL import Image

from fpar.checkpoint import load_model, save_checkpoint
from fpar.data import ClipSettings, load_index, sampling
from fpar.engine.evaluate import evaluate
from fpar.engine.inference import InferenceSession
from fpar.engine.predict import predict_video
from fpar.engine.stream import Stream
from fpar.errors import FparError
from fpar.models import build_model
from helpers.tiny import CLASSES, FRAMES, SIZE

TRAINED_FRAMES, CARRIED_FRAMES = 2, 5  # the setting changed: num_frames
VIDEO = ("S2", "close_red", "1")  # a validation instance of the tiny dataset, read as a folder of frames


@pytest.fixture(scope="module")
def checkpoint(module_tmp):
    """A tiny RGB checkpoint whose contract carries ``num_frames`` 5, where its model was built with
    clips of 2 (as a checkpoint trained on 5-frame clips would carry it): nothing else differs."""
    torch.manual_seed(0)
    model = build_model("rgb_attention", num_classes=len(CLASSES), backbone="resnet18", pretrained=None,
                        mem_size=8, input_size=SIZE)
    path = module_tmp("session") / "model.ckpt"
    clip = ClipSettings(modalities=["frames"], num_frames=TRAINED_FRAMES, resize=SIZE, crop=SIZE)
    save_checkpoint(path, model_state=model.state_dict(), model=model.build_spec, clip=clip, classes=list(CLASSES))
    ckpt = torch.load(path, weights_only=True)
    ckpt["fpar"]["clip"]["num_frames"] = CARRIED_FRAMES
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def predicted(checkpoint, tiny_data):
    folder = tiny_data.joinpath("processed_frames", *VIDEO, "rgb")
    return folder, predict_video(checkpoint, folder, precision="32")


def test_the_session_reads_the_contracts_setting(checkpoint):
    session = InferenceSession.load(checkpoint)
    assert session.clip().num_frames == CARRIED_FRAMES
    assert session.classes == list(CLASSES) and session.label_classes == {}


def test_predict_stream_and_evaluate_read_clips_of_the_carried_setting(checkpoint, tiny_data, predicted, one_thread):
    folder, prediction = predicted
    assert prediction.clip["frames"].shape == (CARRIED_FRAMES, 3, SIZE, SIZE)
    logits = prediction.outputs["logits"][0]

    # the stream's window is the carried T: pushing the frames predict sampled answers as predict does
    stream = Stream(checkpoint, precision="32")
    assert stream.window == CARRIED_FRAMES
    frames = sorted(folder.iterdir())
    for number in sampling.rgb_indices(FRAMES, CARRIED_FRAMES):
        result = stream.push(np.asarray(Image.open(frames[number - 1]).convert("RGB")))
    assert result.ready and result.window == CARRIED_FRAMES
    torch.testing.assert_close(result.logits, logits, atol=1e-4, rtol=1e-4)

    # evaluation reads the same clip of that instance from the dataset
    ids = [inst.instance_id for inst in load_index(tiny_data).instances if inst.subject == "S2"]
    result = evaluate(checkpoint, tiny_data, split="S2", explain=ids, precision="32")
    row = next(row for row in result["clips"] if row.id.endswith("/".join(VIDEO[1:])))
    assert row.explanation["clip"]["frames"].shape == (CARRIED_FRAMES, 3, SIZE, SIZE)
    torch.testing.assert_close(row.explanation["clip"]["frames"], prediction.clip["frames"])
    np.testing.assert_allclose(row.scores, logits.softmax(dim=0).numpy(), atol=1e-5)


def test_the_onnx_runtime_reads_clips_of_the_carried_setting(checkpoint, predicted, module_tmp, one_thread):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from fpar.engine.video_clip import clip_arrays
    from fpar.interop.onnx_export import export_onnx
    from fpar.interop.onnx_runtime import OnnxModel

    folder, prediction = predicted
    out = module_tmp("onnx") / "export"
    export_onnx(checkpoint, out)
    onnx_model = OnnxModel(out)
    assert onnx_model.clip.num_frames == CARRIED_FRAMES
    assert onnx_model.classes == load_model(checkpoint)[1].classes
    clip = clip_arrays(folder, onnx_model.clip)
    assert clip["frames"].shape == (CARRIED_FRAMES, 3, SIZE, SIZE)
    np.testing.assert_array_equal(clip["frames"], prediction.clip["frames"].numpy())
    logits = onnx_model({"frames": clip["frames"][None]})["logits"][0]
    np.testing.assert_allclose(logits, prediction.outputs["logits"][0].numpy(), atol=1e-4, rtol=1e-4)


def test_the_inference_paths_leave_precision_preparation_and_context_to_the_session():
    """predict, the stream and evaluation run their model through `InferenceSession` only: a path
    that resolved the precision or prepared the model itself would drift from the others."""
    import ast
    from pathlib import Path

    import fpar.engine

    owned = {"resolve_precision", "autocast_dtype", "prepare_for_inference", "inference_mode", "autocast",
             "load_model", "model_reads_its_clip"}
    engine = Path(fpar.engine.__file__).parent
    for module in ("predict.py", "stream/core.py", "evaluate.py", "scoring.py", "distributed_eval.py"):
        tree = ast.parse((engine / module).read_text())
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        names |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
        assert not owned & names, f"engine/{module} uses {sorted(owned & names)}: the session owns them"


def test_a_precision_fpar_does_not_know_is_refused_not_run_in_full_precision(checkpoint):
    """`precision="bf16"` (Lightning says `bf16-mixed`) used to prepare the model in fp32 without a
    word: a user timing or scoring "bf16" measured fp32."""
    with pytest.raises(FparError, match=r"precision 'bf16' is not one of auto, 32, .*bf16-mixed"):
        Stream(checkpoint, precision="bf16")
    assert InferenceSession.load(checkpoint).prepare(precision="bf16-mixed").dtype == torch.bfloat16

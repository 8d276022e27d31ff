"""ONNX exports of every model kind: onnxruntime reproduces fpar's outputs, the graph is named and
shaped as the model's batch, and the export is bound to its contract like a safetensors export."""

import json
import shutil

import numpy as np
import pytest
import torch

from fpar.checkpoint import EXPORT_ONNX, load_model, save_checkpoint
from fpar.cli import main
from fpar.data import ClipSettings
from fpar.errors import FparError
from fpar.interop.onnx_export import export_onnx, relative_error
from fpar.interop.onnx_runtime import OnnxModel
from fpar.models import build_model
from fpar.models.registry import MODELS

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

CROP = 32
FRAMES = 3
# each kind's tiny build arguments and the modalities its clip reads
KINDS = {
    "rgb_convlstm": ({"mem_size": 8, "input_size": CROP}, ["frames"]),
    "rgb_attention": ({"mem_size": 8, "input_size": CROP}, ["frames"]),
    "flow_resnet": ({"stack_size": 2, "input_size": CROP}, ["flow"]),
    "two_stream": ({"mem_size": 8, "stack_size": 2, "input_size": CROP}, ["frames", "flow"]),
    "rgb_ms": ({"mem_size": 8, "input_size": CROP}, ["frames", "mmaps"]),
    "two_in_one": ({"mem_size": 8, "input_size": CROP}, ["frames", "flow"]),
}
# the model outputs each kind's graph must give (ARCHITECTURE.md, "Model")
OUTPUTS = {"rgb_convlstm": {"logits", "features"}, "rgb_attention": {"logits", "features", "attention"},
           "flow_resnet": {"logits", "features"}, "two_stream": {"logits", "features", "attention"},
           "rgb_ms": {"logits", "features", "attention", "ms"}, "two_in_one": {"logits", "features", "attention"}}


def test_every_registry_model_is_covered():
    assert set(KINDS) == set(MODELS)


def tiny_checkpoint(path, kind, classes=("a", "b", "c")):
    arguments, modalities = KINDS[kind]
    torch.manual_seed(0)
    model = build_model(kind, num_classes=3, backbone="resnet18", pretrained=None, **arguments)
    clip = ClipSettings(modalities=modalities, num_frames=FRAMES, stack_size=2, resize=36, crop=CROP,
                        flow_mode="pairs" if kind == "two_in_one" else "stack")
    save_checkpoint(path, model_state=model.state_dict(), model=model.build_spec, clip=clip, classes=list(classes))
    return path


def batch_for(shapes, size, seed):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal((size, *shape[1:])).astype(np.float32) for name, shape in shapes.items()}


@pytest.fixture(scope="module")
def exports(module_tmp):
    """kind -> (checkpoint, its ONNX export), made on first use."""
    folder = module_tmp("onnx")
    made = {}

    def export(kind):
        if kind not in made:
            ckpt = tiny_checkpoint(folder / f"{kind}.ckpt", kind)
            # one kind through the CLI, with a clip length other than the checkpoint's
            if kind == "rgb_convlstm":
                assert main(["export", str(ckpt), str(folder / kind), "--format", "onnx", "--frames", "4"]) == 0
            else:
                export_onnx(ckpt, folder / kind)
            made[kind] = ckpt, folder / kind
        return made[kind]

    return export


@pytest.mark.parametrize("kind", list(KINDS))
def test_onnxruntime_reproduces_the_model_on_any_batch_size(exports, kind, one_thread):
    ckpt, out = exports(kind)
    onnx_model = OnnxModel(out)
    model, contract = load_model(ckpt)
    frames = 4 if kind == "rgb_convlstm" else FRAMES
    assert onnx_model.contract.clip.num_frames == frames  # the export's clip is the graph's
    assert onnx_model.inputs == tuple(m for m in contract.clip.modalities if m != "mmaps")
    assert set(onnx_model.outputs) == OUTPUTS[kind] and onnx_model.outputs[0] == "logits"
    shapes = json.loads((out / "fpar.json").read_text())["onnx"]["inputs"]
    if "frames" in shapes:
        assert shapes["frames"] == ["batch", frames, 3, CROP, CROP]
    if "flow" in shapes:
        assert shapes["flow"] == (["batch", frames, 2, CROP, CROP] if kind == "two_in_one" else ["batch", 4, CROP, CROP])
    batch = batch_for(shapes, 3, seed=1)  # not the export's batch of two: the batch axis is dynamic
    got = onnx_model(batch)
    with torch.no_grad():
        expected = model({name: torch.from_numpy(value) for name, value in batch.items()})
    for name in onnx_model.outputs:
        assert got[name].shape == tuple(expected[name].shape)
        assert relative_error(got[name], expected[name].numpy()) < 1e-4, name
    assert onnx_model.classes == ["a", "b", "c"]


def test_a_tampered_graph_or_a_wrong_input_is_one_line_naming_it(exports, tmp_path, capsys):
    import shutil

    _, out = exports("rgb_attention")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    onnx_model = OnnxModel(copy)
    with pytest.raises(FparError, match="input 'frames' must be \\(B, 3, 3, 32, 32\\)"):
        onnx_model({"frames": np.zeros((1, 2, 3, CROP, CROP), np.float32)})
    data = bytearray((copy / EXPORT_ONNX).read_bytes())
    data[-1] ^= 1
    (copy / EXPORT_ONNX).write_bytes(bytes(data))
    with pytest.raises(FparError, match="model.onnx is not the model file") as error:
        OnnxModel(copy)
    assert "\n" not in str(error.value)
    # PyTorch commands name an ONNX export as such
    with pytest.raises(FparError, match="is an ONNX export"):
        load_model(out)
    assert main(["eval", str(out), "--data", str(tmp_path)]) == 1
    assert "is an ONNX export" in capsys.readouterr().err
    with pytest.raises(FparError, match="not an ONNX export"):
        OnnxModel(tmp_path)


def test_int8_quantisation_shrinks_the_graph_and_records_its_error(exports, tmp_path):
    ckpt, out = exports("rgb_attention")
    export_onnx(ckpt, tmp_path / "int8", quantize="int8")
    entry = json.loads((tmp_path / "int8" / "fpar.json").read_text())["onnx"]
    assert entry["quantize"] == "int8" and 0 < entry["max_relative_error"] < 0.5
    assert (tmp_path / "int8" / EXPORT_ONNX).stat().st_size < 0.5 * (out / EXPORT_ONNX).stat().st_size
    assert sorted(p.name for p in (tmp_path / "int8").iterdir()) == ["fpar.json", "model.onnx"]


@pytest.fixture(scope="module")
def video(module_tmp):
    """A textured square sliding right over a still background, as lossless frames: real motion for the flow."""
    from PIL import Image

    folder = module_tmp("video") / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    background = (rng.random((40, 48, 3)) * 120).astype(np.uint8)
    patch = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
    for k in range(7):
        frame = background.copy()
        frame[14:26, 4 + 4 * k:16 + 4 * k] = patch
        Image.fromarray(frame).save(folder / f"img_{k + 1:03d}.png")
    return folder


def predicted(capsys, argv):
    assert main(["predict", *argv, "--json", "--top", "3", "--flow", "dis"]) == 0
    return {row["class"]: row["probability"] for row in json.loads(capsys.readouterr().out)["top"]}


@pytest.mark.parametrize("kind", ["rgb_ms", "two_stream"])  # a clip with motion maps; a flow stack beside frames
def test_predict_with_the_onnx_runtime_gives_pytorchs_answer(exports, kind, video, capsys):
    ckpt, out = exports(kind)
    expected = predicted(capsys, [str(ckpt), str(video), "--precision", "32-true"])
    got = predicted(capsys, [str(out), str(video), "--runtime", "onnx"])
    assert got.keys() == expected.keys()
    assert all(abs(got[name] - expected[name]) < 1e-4 for name in got)


def test_predict_with_the_onnx_runtime_imports_no_torch(exports, video):
    """The model runs in onnxruntime and the clip is read with numpy and OpenCV (DIS flow)."""
    import subprocess
    import sys

    from helpers.tiny import subprocess_env

    _, out = exports("two_in_one")  # frames and a flow pair per frame
    script = ("import sys; from fpar.cli import main; "
              f"code = main(['predict', {str(out)!r}, {str(video)!r}, '--runtime', 'onnx', '--flow', 'dis']); "
              "assert code == 0, code; assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=subprocess_env(),
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1. ")


def test_predict_refuses_a_checkpoint_for_the_onnx_runtime(exports, video, capsys):
    ckpt, _ = exports("rgb_attention")
    assert main(["predict", str(ckpt), str(video), "--runtime", "onnx"]) == 1
    assert "is not an ONNX export" in capsys.readouterr().err


def test_onnx_options_without_the_onnx_format_are_refused(exports, tmp_path, capsys):
    ckpt, _ = exports("rgb_attention")
    assert main(["export", str(ckpt), str(tmp_path / "out"), "--frames", "4"]) == 1
    assert "--format onnx" in capsys.readouterr().err and not (tmp_path / "out").exists()


CONTRACT_EDITS = {
    "one class more": (lambda c: c.update(classes=["a", "b", "c", "d"]), "names 4 classes but the model's action output has 3"),
    "one class fewer": (lambda c: c.update(classes=["a", "b"]), "names 2 classes but the model's action output has 3"),
    "a name twice": (lambda c: c.update(classes=["a", "b", "a"]), "names 'a' more than once"),
    "a name not a string": (lambda c: c.update(classes=["a", "b", 3]), "fpar.classes must be a list of class names"),
}


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
@pytest.mark.parametrize("edit", list(CONTRACT_EDITS))
def test_predict_refuses_an_export_whose_fpar_json_does_not_fit_its_model(exports, video, tmp_path, capsys, runtime,
                                                                          edit):
    from fpar.checkpoint import EXPORT_CONTRACT, export_model

    ckpt, onnx = exports("rgb_attention")
    folder = tmp_path / "export"
    if runtime == "onnx":
        shutil.copytree(onnx, folder)
    else:
        export_model(ckpt, folder)
    contract = json.loads((folder / EXPORT_CONTRACT).read_text())
    change, message = CONTRACT_EDITS[edit]
    change(contract)
    (folder / EXPORT_CONTRACT).write_text(json.dumps(contract))
    assert main(["predict", str(folder), str(video), "--runtime", runtime]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_the_onnx_runtime_refuses_an_export_labelled_with_other_modalities(exports, video, tmp_path, capsys):
    from fpar.checkpoint import EXPORT_CONTRACT

    _, onnx = exports("rgb_attention")
    folder = tmp_path / "export"
    shutil.copytree(onnx, folder)
    contract = json.loads((folder / EXPORT_CONTRACT).read_text())
    contract["clip"]["modalities"] = ["flow"]
    contract["model"]["name"] = "flow_resnet"
    (folder / EXPORT_CONTRACT).write_text(json.dumps(contract))
    assert main(["predict", str(folder), str(video), "--runtime", "onnx", "--flow", "dis"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the graph reads ['frames'] but fpar.json's clip gives ['flow']" in err, err

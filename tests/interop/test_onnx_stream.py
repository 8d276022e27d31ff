"""The per-frame ONNX graph (``fpar export --format onnx --stream``) streams as ``fpar.Stream`` does,
in onnxruntime, in a process where torch cannot be imported (docs/deployment.md)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fpar.cli import main
from fpar.engine.stream import Stream
from fpar.errors import FparError
from fpar.interop.onnx_export import ACCURACY_ENTRY, export_onnx
from fpar.interop.onnx_stream import OnnxStream
from helpers.videos import moving_square

from .test_onnx_export import KINDS, tiny_checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# a process in which `import torch` fails, running fpar's CLI: what a machine without torch sees
NO_TORCH = """
import sys
sys.modules["torch"] = None  # any import of torch now raises ImportError
from fpar.cli import main
code = main(sys.argv[1:])
assert not any(name.split(".")[0] == "torch" for name, module in sys.modules.items() if module is not None)
sys.exit(code)
"""


@pytest.mark.parametrize("kind", ["rgb_attention", "two_stream", "two_in_one", "flow_resnet"])
def test_the_onnx_stream_answers_as_the_pytorch_stream(tmp_path, kind, one_thread):
    checkpoint = tiny_checkpoint(tmp_path / f"{kind}.ckpt", kind)
    export = export_onnx(checkpoint, tmp_path / "export", stream=True)
    info = json.loads((export / "fpar.json").read_text())
    assert info["onnx"]["graph"] == "stream" and info["onnx"]["window"] == 3
    assert info["normalisation"]["frames"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    if kind != "flow_resnet":  # the windows in flight: T - 1 of them
        assert info["onnx"]["inputs"]["hidden"][0] == 2 and "cell_out" in info["onnx"]["outputs"]
    torch_stream, onnx_stream = Stream(checkpoint, flow="dis", precision="32"), OnnxStream(export, flow="dis")
    answered = 0
    for frame in moving_square(7):
        a, b = torch_stream.push(frame, attention=True), onnx_stream.push(frame, attention=True)
        assert (a.frames_seen, a.ready, a.updated, a.window) == (b.frames_seen, b.ready, b.updated, b.window)
        if a.logits is not None:
            answered += 1
            np.testing.assert_allclose(b.logits, a.logits.numpy(), rtol=1e-4, atol=1e-4)
            if a.attention is not None:
                np.testing.assert_allclose(b.attention, a.attention.numpy(), rtol=1e-4, atol=1e-4)
    assert answered >= 3 and b.ready


def test_fpar_stream_runs_an_onnx_export_without_torch(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "rgb.ckpt", "rgb_attention")
    assert main(["export", str(checkpoint), str(tmp_path / "export"), "--format", "onnx", "--stream"]) == 0
    video = tmp_path / "video"
    video.mkdir()
    for k, frame in enumerate(moving_square(5), 1):
        Image.fromarray(frame).save(video / f"{k:03d}.png")
    run = subprocess.run([sys.executable, "-c", NO_TORCH, "stream", str(tmp_path / "export"), str(video),
                          "--runtime", "onnx", "--json", "--top", "3"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    expected = list(Stream(checkpoint, precision="32").run(moving_square(5)))
    for line, answer in zip(lines, expected):
        assert (line["frames_seen"], line["ready"]) == (answer.frames_seen, answer.ready)
        got = {entry["class"]: entry["probability"] for entry in line["top"]}
        assert got == pytest.approx(dict(answer.top(3)), abs=1e-4)
    assert [line["ready"] for line in lines[:5]] == [False, False, True, True, True]
    assert lines[-1]["summary"]["frames"] == 5


def test_a_clip_graph_or_another_window_is_refused_by_the_onnx_stream(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "rgb.ckpt", "rgb_attention")
    clip_graph = export_onnx(checkpoint, tmp_path / "clip")
    with pytest.raises(FparError, match="is a clip graph: export the checkpoint with .*--stream"):
        OnnxStream(clip_graph)
    stream_graph = export_onnx(checkpoint, tmp_path / "stream", stream=True)
    with pytest.raises(FparError, match="reads a window of 3 frames"):
        OnnxStream(stream_graph, window=5)
    assert set(KINDS) >= {"rgb_attention", "two_stream", "two_in_one", "flow_resnet"}


def test_the_documented_onnxruntime_loop_runs_without_torch_and_answers_as_the_stream(tmp_path):
    """docs/deployment.md's loop, run as written (onnxruntime, numpy, OpenCV) where torch cannot load."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "deployment.md").read_text()
    loop = doc.split("The whole loop for an RGB model", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "loop.py").write_text('import sys\nsys.modules["torch"] = None\n' + loop)
    checkpoint = tiny_checkpoint(tmp_path / "rgb.ckpt", "rgb_attention")
    export = export_onnx(checkpoint, tmp_path / "live", stream=True)
    video = tmp_path / "video"
    video.mkdir()
    for k, frame in enumerate(moving_square(5), 1):
        Image.fromarray(frame).save(video / f"{k:03d}.png")
    run = subprocess.run([sys.executable, str(tmp_path / "loop.py"), str(export), str(video / "%03d.png")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    expected = list(Stream(checkpoint, precision="32").run(moving_square(5)))
    assert len(lines) == 5
    for line, answer in zip(lines, expected):
        np.testing.assert_allclose(line["logits"], answer.logits.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stream", [False, True], ids=["clip graph", "streaming graph"])
def test_static_int8_is_calibrated_on_clips_and_prints_the_accuracy_change(tmp_path, tiny_data, capsys, stream):
    """``--quantize int8 --calibrate DATA``: int8 activations too (QuantizeLinear nodes in the graph),
    scales from clips ``fpar eval`` does not score, and the top-1 of the fp32 and int8 graphs on the
    clips it does score (S2, as ``fpar eval`` counts them: the fp32 accuracy is its accuracy) printed
    on one line and recorded in fpar.json; each long step one line in a log."""
    import onnx

    from fpar.data import load_index
    from fpar.engine.evaluate import evaluate

    checkpoint = tiny_checkpoint(tmp_path / "rgb.ckpt", "rgb_attention", load_index(tiny_data).classes)
    out = tmp_path / "int8"
    command = ["export", str(checkpoint), str(out), "--format", "onnx", "--quantize", "int8",
               "--calibrate", str(tiny_data), "--calibrate-clips", "3", *(["--stream"] if stream else [])]
    assert main(command) == 0
    printed = capsys.readouterr()
    info = json.loads((out / "fpar.json").read_text())["onnx"]
    assert info["calibration"] == {"data": str(tiny_data), "clips": 3}
    accuracy = info[ACCURACY_ENTRY]
    scored = evaluate(checkpoint, tiny_data, precision="32", progress=False)
    assert (accuracy["split"], accuracy["clips"]) == ("S2", scored["n"]) == ("S2", 7)  # 3 classes x 2 videos + 1
    assert accuracy["fp32_top1"] == pytest.approx(scored["accuracy"])
    assert accuracy["change_points"] == pytest.approx(100 * (accuracy["int8_top1"] - accuracy["fp32_top1"]))
    assert (f"int8: accuracy {100 * accuracy['fp32_top1']:.1f}% -> {100 * accuracy['int8_top1']:.1f}% "
            f"({accuracy['change_points']:+.1f} points) on 7 clips of {tiny_data} split S2, onnxruntime CPU"
            in printed.out.splitlines())
    steps = [line.split(":")[0] for line in printed.err.splitlines()]
    assert steps == ["ONNX tracing", "int8 calibration", "fp32 accuracy on S2", "int8 accuracy on S2",
                     "onnxruntime check"]
    graph = onnx.load(str(out / "model.onnx")).graph
    assert any(node.op_type == "QuantizeLinear" for node in graph.node)
    with pytest.raises(FparError, match="--calibrate is for --quantize int8"):
        export_onnx(checkpoint, tmp_path / "other", calibrate=tiny_data)

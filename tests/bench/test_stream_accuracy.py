"""``fpar bench --rows stream --data DATA --checkpoint CKPT``: each runtime x precision's accuracy
on the clips ``fpar eval`` scores, its change against PyTorch fp32 in the rows' check column."""

import pytest

from fpar.bench.runtime_accuracy import accuracy_text, runtime_accuracies, stream_way
from fpar.cli import main
from fpar.data import load_index
from fpar.data.frames import read_frame
from fpar.engine.evaluate import evaluate
from fpar.engine.stream import Stream

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def test_each_runtime_and_precision_is_scored_on_the_clips_fpar_eval_scores(trained_run, tiny_data):
    checkpoint = trained_run["best_ckpt"]
    measured = runtime_accuracies(checkpoint, tiny_data, ("32-true",), stream_ways=((2, 2),))
    scored = evaluate(checkpoint, tiny_data, precision="32")
    assert (measured["clips"], measured["split"]) == (scored["n"], "S2")
    top1 = measured["top1"]
    assert set(top1) == {"torch fp32", "onnx fp32", "onnx int8", "onnx int8 static", stream_way(2, 2)}
    # the fp32 graph is the PyTorch model to 1e-4: the same answers on the same clips
    assert top1["torch fp32"] == pytest.approx(scored["accuracy"]) and top1["torch fp32"] == top1["onnx fp32"]
    assert accuracy_text(measured, "onnx fp32")[1] == 0.0
    text, change = accuracy_text(measured, "onnx int8 static")
    assert change == pytest.approx(100 * (top1["onnx int8 static"] - top1["torch fp32"]))
    assert text.startswith(f"accuracy {100 * top1['onnx int8 static']:.1f}% ({change:+.1f} points vs torch fp32; ")
    assert text.endswith(f"on 7 clips of {tiny_data} split S2)")
    assert accuracy_text(None, "onnx int8") == ("accuracy: not measured (no --data)", None)

    # a stream that samples or answers less often is scored by what a viewer sees when each video
    # fpar eval scores ends: fpar.Stream's last answer after its frames
    hits = []
    for instance in [i for i in load_index(tiny_data).instances if i.subject == "S2"]:
        stream = Stream(checkpoint, precision="32", every=2, answer_every=2)
        last = [stream.push(read_frame(path, color=True)) for path in instance.rgb][-1]
        hits.append(last.top(1)[0][0] == instance.class_name)
    assert len(hits) == scored["n"] and top1[stream_way(2, 2)] == pytest.approx(sum(hits) / len(hits))
    assert "the last answer after each video" in accuracy_text(measured, stream_way(2, 2))[0]


def test_bench_data_needs_a_checkpoint_and_the_stream_rows(capsys, tiny_data):
    assert main(["bench", "--rows", "stream", "--data", str(tiny_data)]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["bench", "--rows", "eval", "--data", str(tiny_data), "--checkpoint", "x.ckpt"]) == 1
    assert "are for the stream rows" in capsys.readouterr().err

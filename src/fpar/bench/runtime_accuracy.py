"""The accuracy each stream runtime x precision gives a trained checkpoint, for ``fpar bench --rows
stream --data DATA --checkpoint CKPT`` (docs/streaming.md).

The stream rows time models of the paper's size with random weights (speed does not depend on
the weights); what a precision costs in accuracy needs trained weights and data, so it is measured
on ``CKPT`` over the clips ``fpar eval`` scores it on by default in DATA (its validation subjects,
centre view): PyTorch by :func:`fpar.engine.evaluate.evaluate` in each precision, onnxruntime on
the checkpoint's per-frame graph (the answer after each clip's last frame) in fp32, with int8
weights, and static int8 calibrated on DATA (:mod:`fpar.interop.onnx_quantize`). Each change is
in points against PyTorch fp32.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fpar.checkpoint import EXPORT_CONTRACT
from fpar.engine.evaluate import evaluate
from fpar.engine.metric_registry import ACCURACY, METRICS
from fpar.interop.onnx_export import ACCURACY_ENTRY, ONNX_ENTRY, export_onnx
from fpar.interop.onnx_quantize import RUNTIME, accuracy, dataset_clips
from fpar.interop.onnx_runtime import OnnxModel

TOP1 = METRICS[ACCURACY].short  # the accuracies' key, as a protocol names top-1
TORCH_PRECISIONS = {"32-true": "fp32", "bf16-mixed": "bf16"}  # fpar's precision -> the rows' name for it
ONNX_INT8 = ("int8", "int8 static")  # int8 weights (dynamic); weights and activations (calibrated)


def stream_way(every: int, answer_every: int) -> str:
    """The accuracies' key of a PyTorch fp32 stream sampling one frame in ``every`` and answering
    every ``answer_every``-th sampled frame."""
    return f"torch fp32 stream, every {every}, answer every {answer_every}"


def stream_accuracy(checkpoint: str | os.PathLike, data: str | os.PathLike, every: int, answer_every: int) -> float:
    """Top-1 of the answer a PyTorch fp32 :class:`fpar.Stream` holds after the last frame of each
    video ``fpar eval`` scores by default, its frames pushed one by one with ``every`` and
    ``answer_every`` (at most the checkpoint's T): what a live viewer sees when the action ends.
    Its windows cover the video's last frames, not the clip ``fpar eval`` spreads over the video,
    so against ``fpar eval`` it measures the sampling as well as the stream."""
    from fpar.data import load_index
    from fpar.data.frames import read_frame
    from fpar.data.splits import default_evaluation
    from fpar.engine.inference import InferenceSession
    from fpar.engine.stream import Stream

    contract = InferenceSession.load(checkpoint).contract
    _, scored, _ = default_evaluation(load_index(data), contract.config)
    stream = Stream(checkpoint, precision="32", every=every,
                    answer_every=min(answer_every, contract.clip.num_frames))  # the window: the clip's T
    hits = 0
    for instance in scored:
        stream.reset()
        for path in instance.rgb:
            result = stream.push(read_frame(path, color=True))
        hits += result.top(1)[0][0] == instance.class_name
    return hits / len(scored)


def runtime_accuracies(checkpoint: str | os.PathLike, data: str | os.PathLike,
                       torch_precisions: tuple[str, ...], stream_ways: tuple[tuple[int, int], ...] = ()) -> dict[str, Any]:
    """``{"top1" (:data:`TOP1`): {"torch fp32": ..., "torch bf16": ..., "onnx fp32": ..., "onnx int8": ...,
    "onnx int8 static": ..., stream_way(e, k): ...}, "clips", "split", "data", "checkpoint"}`` (torch
    rows for each of ``torch_precisions``, fpar's names; a stream's last answers for each
    ``(every, answer_every)`` of ``stream_ways``, :func:`stream_accuracy`)."""
    top1: dict[str, float] = {}
    for precision in ("32-true", *[p for p in torch_precisions if p != "32-true"]):
        scored = evaluate(checkpoint, data, precision=precision)
        # fpar eval's accuracy is a float32: as hits over clips, as onnxruntime's are counted
        top1[f"torch {TORCH_PRECISIONS[precision]}"] = round(scored[ACCURACY] * scored["n"]) / scored["n"]
    with tempfile.TemporaryDirectory(prefix="fpar-bench-accuracy-") as tmp:
        static = export_onnx(checkpoint, Path(tmp) / "static", stream=True, quantize="int8", calibrate=data)
        record = json.loads((static / EXPORT_CONTRACT).read_text())[ONNX_ENTRY][ACCURACY_ENTRY]
        weights = OnnxModel(export_onnx(checkpoint, Path(tmp) / "int8", stream=True, quantize="int8"))
        _, clips = dataset_clips(weights.contract, data, evaluated=True)
        top1.update({"onnx fp32": record["fp32_top1"], "onnx int8": accuracy(weights, clips, stream=True),
                     "onnx int8 static": record["int8_top1"]})
    top1.update({stream_way(every, answer_every): stream_accuracy(checkpoint, data, every, answer_every)
                 for every, answer_every in stream_ways})
    return {TOP1: top1, "clips": scored["n"], "split": ",".join(scored["split"]), "data": str(data),
            "checkpoint": str(checkpoint), "onnx_runtime": RUNTIME}


def accuracy_text(accuracies: dict[str, Any] | None, name: str) -> tuple[str, float | None]:
    """The check column's accuracy part for the row of runtime x precision ``name`` (``onnx int8``)
    and its change in points against torch fp32 (None where not measured)."""
    if accuracies is None:
        return "accuracy: not measured (no --data)", None
    top1 = accuracies[TOP1]
    if name not in top1:
        return f"accuracy: not measured for {name}", None
    change = 100 * (top1[name] - top1["torch fp32"])
    how = "; the last answer after each video" if "stream" in name else ""
    return (f"accuracy {100 * top1[name]:.1f}% ({change:+.1f} points vs torch fp32{how}; {accuracies['checkpoint']} "
            f"on {accuracies['clips']} clips of {accuracies['data']} split {accuracies['split']})"), change

"""``fpar bench``'s streaming rows per runtime and precision beyond PyTorch's: the per-frame ONNX
graph (``fpar export --format onnx --stream``) in onnxruntime, in fp32 and with int8 weights
(``--quantize int8``), pushed frame by frame as :class:`fpar.interop.onnx_stream.OnnxStream`
does, on the same model (random weights of the paper's size) and frames as the PyTorch rows.

The weights are random, so no accuracy is measured here: the check column gives the answers'
relative difference from the PyTorch stream's fp32 ones over the timed frames (the int8 graph's
accuracy change on real data is ``fpar eval``'s to measure, docs/deployment.md).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fpar.checkpoint import save_checkpoint
from fpar.engine.stream import Stream, latency_summary
from fpar.interop.onnx_export import export_onnx
from fpar.interop.onnx_stream import OnnxStream

ONNX_PRECISIONS = (None, "int8")  # fp32, then int8 weights


def measure_onnx_streams(model: Any, contract: Any, video: list[np.ndarray], window: int) -> list[dict[str, Any]]:
    """Per precision of :data:`ONNX_PRECISIONS`: the ONNX stream's latency summary over ``video``
    after its first ``window + 2`` frames and its answers' largest relative difference from the
    PyTorch fp32 stream's (``relative_difference``), for ``model`` with ``contract``."""
    results = []
    with tempfile.TemporaryDirectory(prefix="fpar-bench-onnx-") as tmp:
        checkpoint = Path(tmp) / "model.ckpt"
        save_checkpoint(checkpoint, model_state=model.state_dict(), model=model.build_spec, clip=contract.clip)
        expected = [result.logits.numpy() for result in Stream(checkpoint, precision="32").run(video)]
        for quantize in ONNX_PRECISIONS:
            export = export_onnx(checkpoint, Path(tmp) / f"export-{quantize or 'fp32'}", stream=True, quantize=quantize)
            stream = OnnxStream(export)
            latencies, worst = [], 0.0
            for index, frame in enumerate(video):
                began = time.perf_counter()
                result = stream.push(frame)
                if index >= window + 2:  # the window full, onnxruntime's kernels built
                    latencies.append(time.perf_counter() - began)
                scale = float(np.abs(expected[index]).max()) or 1.0
                worst = max(worst, float(np.abs(result.logits - expected[index]).max()) / scale)
            results.append({"precision": quantize or "fp32", "relative_difference": worst,
                            **latency_summary(latencies)})
    return results


def onnx_stream_rows(quick: bool, crop: int, window: int, made: tuple[Any, Any, list[np.ndarray]], batched: float,
                     flops_per_frame: float, target_fps: float, target_p95: float, row: Any) -> list[dict[str, Any]]:
    """The rows, made by ``row(name, seconds per frame, check, **extra)``; ``made``: the model, its
    contract and the frames; ``batched``: a frame's seconds in the PyTorch batched evaluation
    forward measured in the same run."""
    rows = []
    for measured in measure_onnx_streams(*made, window):
        push = 1 / measured["frames_per_second"]
        met = measured["frames_per_second"] >= target_fps and measured["p95_latency_ms"] < target_p95
        stated = not quick and window == 16 and crop == 224
        rows.append(row(
            f"stream rgb_attention, onnx {measured['precision']}", push,
            f"p95 {measured['p95_latency_ms']:.0f} ms, {push / batched:.2f}x a batched torch frame; answers "
            f"{measured['relative_difference']:.1e} rel. from torch fp32 (random weights: accuracy not measured); "
            f"target >= {target_fps:.0f}/s, p95 < {target_p95:.0f} ms" + ((": met" if met else ": not met") if stated
                                                                          else " (at 224 px, T = 16)"),
            runtime="onnx", onnx_precision=measured["precision"], median_latency_ms=measured["median_latency_ms"],
            p95_latency_ms=measured["p95_latency_ms"], per_frame_vs_batched=push / batched,
            relative_difference=measured["relative_difference"], accuracy_change=None,
            target_met=met if stated else None, flops_per_unit=flops_per_frame, reference_flops_per_unit=None))
    return rows

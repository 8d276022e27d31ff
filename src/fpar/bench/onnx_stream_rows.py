"""``fpar bench``'s streaming rows per runtime and precision beyond PyTorch's: the per-frame ONNX
graph (``fpar export --format onnx --stream``) in onnxruntime, in fp32, with int8 weights
(``--quantize int8``) and, given ``--data``, static int8 (weights and activations, calibrated on
clips of that dataset: ``--calibrate``), pushed frame by frame as
:class:`fpar.interop.onnx_stream.OnnxStream` does, on the same model (random weights of the
paper's size) and frames as the PyTorch rows.

The weights are random, so the timed graphs' answers say nothing of accuracy: the check column
gives their relative difference from the PyTorch stream's fp32 ones over the timed frames, and the
accuracy change measured on a trained checkpoint where ``--data`` is given
(:mod:`fpar.bench.runtime_accuracy`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fpar.bench.measure import target_scope
from fpar.bench.runtime_accuracy import accuracy_text
from fpar.checkpoint import save_checkpoint
from fpar.engine.hardware import isa_cap
from fpar.engine.stream import Stream, latency_summary
from fpar.interop.onnx_export import export_onnx
from fpar.interop.onnx_stream import OnnxStream

CALIBRATION_CLIPS = 2  # the timed static graph's calibration: its scales do not change its speed


def measure_onnx_streams(model: Any, contract: Any, video: list[np.ndarray], window: int,
                         data: str | None = None) -> list[dict[str, Any]]:
    """Per precision (``fp32``, ``int8`` weights and, with ``data``, ``int8 static`` calibrated on
    clips of ``data``): the ONNX stream's latency summary over ``video`` after its first
    ``window + 2`` frames and its answers' largest relative difference from the PyTorch fp32
    stream's (``relative_difference``), for ``model`` with ``contract``."""
    precisions = {"fp32": {}, "int8": {"quantize": "int8"}}
    if data is not None:
        precisions["int8 static"] = {"quantize": "int8", "calibrate": data, "calibrate_clips": CALIBRATION_CLIPS,
                                     "measure_accuracy": False}
    results = []
    with tempfile.TemporaryDirectory(prefix="fpar-bench-onnx-") as tmp:
        checkpoint = Path(tmp) / "model.ckpt"
        save_checkpoint(checkpoint, model_state=model.state_dict(), model=model.build_spec, clip=contract.clip)
        expected = [result.logits.numpy() for result in Stream(checkpoint, precision="32").run(video)]
        for precision, options in precisions.items():
            export = export_onnx(checkpoint, Path(tmp) / f"export-{precision.replace(' ', '-')}", stream=True,
                                 **options)
            stream = OnnxStream(export)
            latencies, worst = [], 0.0
            for index, frame in enumerate(video):
                began = time.perf_counter()
                result = stream.push(frame)
                if index >= window + 2:  # the window full, onnxruntime's kernels built
                    latencies.append(time.perf_counter() - began)
                scale = float(np.abs(expected[index]).max()) or 1.0
                worst = max(worst, float(np.abs(result.logits - expected[index]).max()) / scale)
            results.append({"precision": precision, "relative_difference": worst, **latency_summary(latencies)})
    return results


def onnx_stream_rows(quick: bool, crop: int, window: int, made: tuple[Any, Any, list[np.ndarray]], batched: float,
                     flops_per_frame: float, target_fps: float, target_p95: float,
                     accuracies: dict[str, Any] | None, fp32_peak: float | None, row: Any) -> list[dict[str, Any]]:
    """The rows, made by ``row(name, seconds per frame, check, **extra)``; ``made``: the model, its
    contract and the frames; ``batched``: a frame's seconds in the PyTorch batched evaluation
    forward measured in the same run; ``accuracies``: as
    :func:`fpar.bench.runtime_accuracy.runtime_accuracies` (its data calibrates the static row),
    or None; ``fp32_peak``: the measured fp32 matmul peak (FLOP/s) the target's limit comes from."""
    # onnxruntime picks its kernels from the CPU's own instructions (AVX-512, VNNI, AMX where there):
    # a cap set for oneDNN does not make these rows an AVX2 CPU's
    uncapped = f"; onnxruntime not capped by ONEDNN_MAX_CPU_ISA={isa_cap()}" if isa_cap() else ""
    rows = []
    data = accuracies["data"] if accuracies else None
    limit = fp32_peak / flops_per_frame if fp32_peak else None
    for measured in measure_onnx_streams(*made, window, data):
        push = 1 / measured["frames_per_second"]
        met = measured["frames_per_second"] >= target_fps and measured["p95_latency_ms"] < target_p95
        stated = not quick and window == 16 and crop == 224
        runtime = f"onnx {measured['precision']}"
        accuracy, change = accuracy_text(accuracies, runtime)
        rows.append(row(
            f"stream rgb_attention {runtime}, every 1", push,
            f"p95 {measured['p95_latency_ms']:.0f} ms, {push / batched:.2f}x a batched torch frame; answers "
            f"{measured['relative_difference']:.1e} rel. from torch fp32 on random weights; {accuracy}; "
            f"target >= {target_fps:.0f}/s, p95 < {target_p95:.0f} ms"
            + target_scope(quick, window, 16, crop, met, limit, target_fps, "fp32") + uncapped,
            runtime="onnx", onnx_precision=measured["precision"], median_latency_ms=measured["median_latency_ms"],
            p95_latency_ms=measured["p95_latency_ms"], per_frame_vs_batched=push / batched,
            relative_difference=measured["relative_difference"], accuracy_change_points=change,
            target_met=met if stated else None, flops_per_unit=flops_per_frame, reference_flops_per_unit=None,
            limit_frames_per_second=limit, target_frames_per_second=target_fps))
    return rows

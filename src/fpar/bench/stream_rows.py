"""``fpar bench``'s streaming rows (frames/s): :class:`fpar.Stream` pushing one camera frame at a
time against what live demos do without it, recomputing the whole window for every frame.

Both ways run the same model (random weights of the paper's size: speed does not depend on the
weights) in the precision ``fpar bench`` uses, one frame at a time. The recomputing way costs one
forward over the last T frames per frame, plus, for a flow model, the flow of every pair its clip
reads (the stream computes one new pair per frame and keeps the others). The check column holds
the stream's 95th-percentile latency against the target of docs/streaming.md.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from fpar.bench.data_rows import data_row
from fpar.bench.measure import Setting
from fpar.data.transforms import resize_short
from fpar.engine.stream import measure_stream, synthetic_video
from fpar.models import build_model
from fpar.models.base import example_batch

# (model, flow method, window T, every, target frames/s, target p95 latency ms or None)
STREAM_ROWS = (("rgb_attention", None, 16, 1, 25.0, 80.0), ("rgb_attention", None, 16, 2, 25.0, 80.0),
               ("two_stream", "dis", 16, 1, 10.0, None))
STACK_SIZE = 5  # L: the flow stack the two-stream model reads


def recompute_seconds(model_name: str, flow: str | None, backbone: str, crop: int, window: int,
                      setting: Setting, repeats: int) -> float:
    """Seconds per frame when every frame recomputes the window: the model's forward over one clip
    of ``window`` frames (in ``setting``'s precision) plus the flow of the L pairs a flow stack reads."""
    from fpar.prepare.flow import flow_estimator

    torch.manual_seed(0)
    options = {"stack_size": STACK_SIZE} if flow else {"input_size": crop}
    model = build_model(model_name, backbone=backbone, **options).eval()
    batch = example_batch(model, 1, window, torch.Generator().manual_seed(0))
    flow_pairs = 0.0
    if flow:
        first, second = (resize_short(frame, crop * 8 // 7) for frame in synthetic_video(2))  # as the stream
        estimate = flow_estimator(flow)
        estimate(first, second)  # builds the method's state once, as a stream's first frame does
        began = time.perf_counter()
        for _ in range(repeats):
            estimate(first, second)
        flow_pairs = STACK_SIZE * (time.perf_counter() - began) / repeats
    with torch.inference_mode(), setting.autocast():
        model(batch)  # oneDNN builds its kernels
        began = time.perf_counter()
        for _ in range(repeats):
            model(batch)
        forward = (time.perf_counter() - began) / repeats
    return forward + flow_pairs


def bench_stream(quick: bool, repeats: int, setting: Setting, *, crop: int | None = None,
                 window: int | None = None) -> list[dict[str, Any]]:
    """One row per :data:`STREAM_ROWS` entry: ResNet-34 at 224 px as the targets are stated (quick:
    ResNet-18 at 112 px, T = 8 and fewer frames); ``crop`` and ``window`` override the size and T."""
    backbone, default_crop, frames = ("resnet18", 112, 16) if quick else ("resnet34", 224, 60)
    crop = crop or default_crop
    rows = []
    for model_name, flow, stated_window, every, target_fps, target_p95 in STREAM_ROWS:
        window = window or (8 if quick else stated_window)
        measured = measure_stream(model_name, backbone=backbone, crop=crop, window=window, stack_size=STACK_SIZE,
                                  every=every, flow=flow or "dis", precision=setting.precision, frames=frames,
                                  device=setting.device)
        reference = recompute_seconds(model_name, flow, backbone, crop, window, setting, repeats)
        met = measured["frames_per_second"] >= target_fps and (
            target_p95 is None or measured["p95_latency_ms"] < target_p95)
        target = f"target >= {target_fps:.0f}/s" + (f", p95 < {target_p95:.0f} ms" if target_p95 else "")
        stated = not quick and window == stated_window and crop == 224  # the targets' own setting
        scope = (": met" if met else ": not met") if stated else " (at 224 px, T = 16)"
        rows.append(data_row(
            f"stream {model_name}{f' {flow} flow' if flow else ''}, every {every}", "stream", "frames/s",
            reference, 1 / measured["frames_per_second"],
            f"p95 {measured['p95_latency_ms']:.0f} ms; {target}{scope}", frames=window, batch=1,
            median_latency_ms=measured["median_latency_ms"], p95_latency_ms=measured["p95_latency_ms"],
            target_met=met if stated else None))
    return rows

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

import numpy as np
import torch

from fpar.bench.data_rows import data_row
from fpar.bench.measure import Setting
from fpar.checkpoint import ModelContract
from fpar.data.settings import ClipSettings
from fpar.data.transforms import resize_short
from fpar.engine.hardware import detect, resolve_precision
from fpar.engine.stream import Stream, latency_summary
from fpar.models import build_model
from fpar.models.base import example_batch

# (model, flow method, window T, every, target frames/s, target p95 latency ms or None)
STREAM_ROWS = (("rgb_attention", None, 16, 1, 25.0, 80.0), ("rgb_attention", None, 16, 2, 25.0, 80.0),
               ("two_stream", "dis", 16, 1, 10.0, None))
STACK_SIZE = 5  # L: the flow stack the two-stream model reads


def synthetic_video(count: int, height: int = 480, width: int = 640, seed: int = 0) -> list[np.ndarray]:
    """``count`` camera-sized RGB frames: a textured patch moving over a textured background, so
    flow methods do real work (a still or blank video would be faster than any real one)."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 160, size=(height, width, 3), dtype=np.uint8)
    patch = rng.integers(0, 256, size=(height // 4, width // 4, 3), dtype=np.uint8)
    frames = []
    for k in range(count):
        frame = background.copy()
        y, x = height // 3 + (k * 3) % (height // 3), (k * 7) % (width - patch.shape[1])
        frame[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
        frames.append(frame)
    return frames


def measure_stream(model_name: str = "rgb_attention", *, backbone: str = "resnet34", crop: int = 224,
                   window: int = 16, stack_size: int = 5, every: int = 1, flow: str = "dis",
                   precision: str = "auto", frames: int = 60, warmup: int = 8, device: str = "cpu") -> dict[str, Any]:
    """Streaming throughput and latency of a ``model_name`` of the paper's size with random weights
    (speed does not depend on the weights) on :func:`synthetic_video` frames (640x480, resized and
    cropped as a checkpoint with ``resize = crop * 8 / 7`` reads them): ``warmup`` pushes untimed
    (the window fills, oneDNN builds its kernels), then ``frames`` pushes timed one by one. Returns
    :func:`latency_summary`, the median CPU time per push, the settings, the precision and the CPU."""
    torch.manual_seed(0)
    options: dict[str, Any] = {"stack_size": stack_size} if model_name in ("flow_resnet", "two_stream") \
        else {"input_size": crop}
    model = build_model(model_name, backbone=backbone, **options).eval()
    modalities = {"flow_resnet": ["flow"], "two_stream": ["frames", "flow"], "two_in_one": ["frames", "flow"]}
    clip = ClipSettings(modalities=modalities.get(model_name, ["frames"]), num_frames=window, stack_size=stack_size,
                        flow_mode="pairs" if model_name == "two_in_one" else "stack", resize=crop * 8 // 7, crop=crop)
    contract = ModelContract(model=model.build_spec, classes=None, clip=clip, config=None)
    accelerator = "cpu" if torch.device(device).type == "cpu" else "cuda"
    used = resolve_precision(precision, accelerator, announce=False)
    stream = Stream.from_model(model, contract, window=window, every=every, flow=flow, precision=used, device=device)
    video = synthetic_video(warmup + frames)
    for frame in video[:warmup]:
        stream.push(frame)
    latencies, cpu_times = [], []
    for frame in video[warmup:]:
        began, began_cpu = time.perf_counter(), time.process_time()
        stream.push(frame)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        latencies.append(time.perf_counter() - began)
        cpu_times.append(time.process_time() - began_cpu)
    hardware = detect(accelerator if accelerator == "cpu" else "cuda")
    return {"model": model_name, "backbone": backbone, "crop": crop, "window": window, "every": every,
            "flow": flow if "flow" in clip.modalities else None, "precision": used, "device": hardware.name,
            "isa": hardware.isa, "threads": torch.get_num_threads(), **latency_summary(latencies),
            # the CPU time the process spent per push: on a machine others share, what a push costs
            # whatever the waiting (with one thread, the latency an idle core would give)
            **{f"cpu_{key}": value for key, value in latency_summary(cpu_times).items() if key != "frames"}}


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

"""``fpar bench``'s streaming rows (frames/s): :class:`fpar.Stream` pushing one camera frame at a
time against what live demos do without it, recomputing the whole window for every frame.

Both ways run the same model (random weights of the paper's size: speed does not depend on the
weights) in the precision ``fpar bench`` uses, one frame at a time. The recomputing way costs one
forward over the last T frames per frame, plus, for a flow model, the flow of every pair its clip
reads (the stream computes one new pair per frame and keeps the others).

Each row also carries ``per_frame_vs_batched``: a pushed frame's mean time over a frame's share of
the batched evaluation forward (B clips of T frames, as ``fpar eval`` runs it), measured in the
same run around the stream, and ``flops_vs_batched``, the same ratio in arithmetic: an answer every
frame over an exact sliding window of T frames runs T recurrent steps per frame where the clip
forward runs one (docs/streaming.md), so that ratio is the floor; ``answer every K`` rows advance
only the windows that are answered, and ``frames batched`` ones encode the frames between two
answers as one batch (``fpar.Stream(batch_frames=True)``: the same arithmetic). ``busy CPU`` rows run beside a process that keeps one core
busy: with the threads the stream chooses, and with as many as the machine has. The check column
holds the 95th-percentile latency against the target of docs/streaming.md and, where the target
is beyond the machine, by how much (from the FLOPs per frame and the measured matmul peak).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from typing import Any, Iterator

import numpy as np
import torch

from fpar.bench.data_rows import data_row
from fpar.bench.measure import Setting, count_flops, setting_for, target_scope
from fpar.bench.runtime_accuracy import TORCH_PRECISIONS, accuracy_text, stream_way
from fpar.checkpoint import ModelContract
from fpar.data.settings import ClipSettings
from fpar.data.transforms import resize_short
from fpar.engine.compute import channels_last_batch, prepare_for_inference
from fpar.engine.hardware import detect, resolve_precision
from fpar.engine.stream import Stream, latency_summary
from fpar.models import build_model
from fpar.models.base import example_batch

# (model, flow method, window T, every, answer every, frames batched between answers, busy CPU,
#  threads (None: the stream's choice), target frames/s, target p95 latency ms or None)
STREAM_ROWS = (("rgb_attention", None, 16, 1, 1, False, False, None, 25.0, 80.0),
               ("rgb_attention", None, 16, 2, 1, False, False, None, 25.0, 80.0),
               ("rgb_attention", None, 16, 1, 4, False, False, None, 25.0, 80.0),
               # windows overlapping by half: 1.1x a batched frame's arithmetic, the answer every
               # 8th frame the nearest to what a batched frame costs (docs/streaming.md)
               ("rgb_attention", None, 16, 1, 8, False, False, None, 25.0, 80.0),
               # the same with the 8 frames between answers encoded as one batch (--batch-frames)
               ("rgb_attention", None, 16, 1, 8, True, False, None, 25.0, 80.0),
               # the target's own way round the fp32 limit: the backbone every 2nd frame, an exact
               # answer every 4th sampled one, held in between (docs/streaming.md)
               ("rgb_attention", None, 16, 2, 4, False, False, None, 25.0, 80.0),
               ("rgb_attention", None, 16, 1, 1, False, True, None, 25.0, 80.0),
               ("rgb_attention", None, 16, 1, 1, False, True, os.cpu_count() or 1, 25.0, 80.0),
               ("two_stream", "dis", 16, 1, 1, False, False, None, 10.0, None))
STACK_SIZE = 5  # L: the flow stack the two-stream model reads
# (every, answer every) of the RGB attention rows that sample or answer less than every frame:
# their accuracy is their own stream's (fpar.bench.runtime_accuracy.stream_accuracy)
SAMPLING_WAYS = tuple(dict.fromkeys((every, answer_every) for model, _, _, every, answer_every, _, busy, *_ in STREAM_ROWS
                                    if model == "rgb_attention" and not busy and (every, answer_every) != (1, 1)))


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


def stream_model(model_name: str, backbone: str, crop: int, window: int,
                 stack_size: int) -> tuple[torch.nn.Module, ModelContract]:
    """A ``model_name`` with random weights and the contract of a checkpoint that reads ``crop``
    px crops of frames resized to ``crop * 8 / 7``."""
    torch.manual_seed(0)
    options: dict[str, Any] = {"stack_size": stack_size} if model_name in ("flow_resnet", "two_stream") \
        else {"input_size": crop}
    model = build_model(model_name, backbone=backbone, **options).eval()
    modalities = {"flow_resnet": ["flow"], "two_stream": ["frames", "flow"], "two_in_one": ["frames", "flow"]}
    clip = ClipSettings(modalities=modalities.get(model_name, ["frames"]), num_frames=window, stack_size=stack_size,
                        flow_mode="pairs" if model_name == "two_in_one" else "stack", resize=crop * 8 // 7, crop=crop)
    return model, ModelContract(model=model.build_spec, classes=None, clip=clip, config=None)


def measure_stream(model_name: str = "rgb_attention", *, backbone: str = "resnet34", crop: int = 224,
                   window: int = 16, stack_size: int = 5, every: int = 1, flow: str = "dis",
                   precision: str = "auto", frames: int = 60, warmup: int | None = None, device: str = "cpu",
                   answer_every: int = 1, threads: int | str = "auto", flops: bool = False,
                   batch_frames: bool = False) -> dict[str, Any]:
    """Streaming throughput and latency of a ``model_name`` of the paper's size with random weights
    (speed does not depend on the weights) on :func:`synthetic_video` frames (640x480, resized and
    cropped as a checkpoint with ``resize = crop * 8 / 7`` reads them): ``warmup`` pushes untimed
    (default: the window fills, oneDNN builds its kernels), then ``frames`` pushes timed one by one.
    Returns :func:`latency_summary`, the median CPU time per push, the settings, the precision,
    the CPU and the threads the stream chose; with ``flops``, the FLOPs of one push (``flops_per_push``).
    ``batch_frames``: the stream's (``fpar.Stream``)."""
    model, contract = stream_model(model_name, backbone, crop, window, stack_size)
    accelerator = "cpu" if torch.device(device).type == "cpu" else "cuda"
    used = resolve_precision(precision, accelerator, announce=False)
    stream = Stream.from_model(model, contract, window=window, every=every, flow=flow, precision=used, device=device,
                               answer_every=answer_every, threads=threads, batch_frames=batch_frames)
    warmup = window * every + 2 if warmup is None else warmup
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
    pushes_flops = {}
    if flops:  # the mean over answer_every pushes (every frame sampled): each advances the windows in flight
        counted = [count_flops(lambda frame=frame: stream.push(frame)) for frame in video[-answer_every * every:]]
        pushes_flops = {"flops_per_push": sum(counted) / len(counted)}
    hardware = detect(accelerator if accelerator == "cpu" else "cuda")
    return {"model": model_name, "backbone": backbone, "crop": crop, "window": window, "every": every,
            "answer_every": answer_every, "batch_frames": batch_frames,
            "flow": flow if "flow" in contract.clip.modalities else None, "precision": used, "device": hardware.name,
            "isa": hardware.isa, "threads": stream.threads, **latency_summary(latencies), **pushes_flops,
            # the CPU time the process spent per push: on a machine others share, what a push costs
            # whatever the waiting (with one thread, the latency an idle core would give)
            **{f"cpu_{key}": value for key, value in latency_summary(cpu_times).items() if key != "frames"}}


def batched_frame(model_name: str, backbone: str, crop: int, window: int, clips: int, setting: Setting,
                  repeats: int) -> tuple[float, float]:
    """``(seconds, FLOPs)`` of one frame's share of the evaluation forward over ``clips`` clips of
    ``window`` frames, the model prepared as ``fpar eval`` prepares it (median of ``repeats``)."""
    model, _ = stream_model(model_name, backbone, crop, window, STACK_SIZE)
    prepare_for_inference(model, channels_last=True, dtype=setting.dtype)
    batch = channels_last_batch(example_batch(model, clips, window, torch.Generator().manual_seed(0)))
    times = []
    with torch.inference_mode(), setting.autocast():
        model(batch)  # oneDNN builds its kernels
        for _ in range(repeats):
            began = time.perf_counter()
            model(batch)
            times.append(time.perf_counter() - began)
        flops = count_flops(lambda: model(batch))
    return float(np.median(times)) / (clips * window), flops / (clips * window)


@contextlib.contextmanager
def busy_core(busy: bool) -> Iterator[None]:
    """A process keeping one core busy (as a browser or a compile would) while inside, if ``busy``."""
    if not busy:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # scheduled and spinning before the stream starts
        yield
    finally:
        spinner.kill()
        spinner.wait()


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


def stream_settings(setting: Setting) -> list[Setting]:
    """The precisions the first stream row runs in, ``setting``'s first: fp32 and, where the CPU has
    bf16 instructions, bf16 (a row per runtime x precision); others as ``setting``."""
    if setting.device != "cpu" or not setting.hardware.fast_bf16:
        return [setting]
    others = []
    for precision in ("32-true", "bf16-mixed"):
        if precision != setting.precision:
            other = setting_for(setting.device, precision)
            other.peaks = setting.peaks
            others.append(other)
    return [setting, *others]


def precision_name(precision: str) -> str:
    """``32-true`` -> ``fp32`` as the rows name it."""
    return TORCH_PRECISIONS.get(precision, precision)


def bench_stream(quick: bool, repeats: int, setting: Setting, *, crop: int | None = None,
                 window: int | None = None, accuracies: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per :data:`STREAM_ROWS` entry, the first also in each other precision the CPU runs
    fast (:func:`stream_settings`): ResNet-34 at 224 px as the targets are stated (quick:
    ResNet-18 at 112 px, T = 8 and fewer frames); ``crop`` and ``window`` override the size and T.
    The target's limit comes from ``setting.peaks`` (the matmul peak in the precision used).
    ``accuracies``: :func:`fpar.bench.runtime_accuracy.runtime_accuracies` of a trained checkpoint,
    or None (the rows say the accuracy was not measured)."""
    backbone, default_crop, frames, clips = ("resnet18", 112, 16, 2) if quick else ("resnet34", 224, 40, 4)
    crop = crop or default_crop
    rows: list[dict[str, Any]] = []
    idle_push: dict[str, float] = {}
    runs = [(spec, used) for k, spec in enumerate(STREAM_ROWS) for used in (stream_settings(setting) if k == 0
                                                                            else [setting])]
    for (model_name, flow, stated_window, every, stated_answer_every, batch_frames, busy, threads, target_fps,
         target_p95), used in runs:
        size = window or (8 if quick else stated_window)
        answer_every = min(stated_answer_every, size)
        runtime = f"torch {precision_name(used.precision)}"
        name = (f"stream {model_name}{f' {flow} flow' if flow else ''} {runtime}, every {every}"
                + (f", answer every {answer_every}" if answer_every > 1 else "")
                + (", frames batched" if batch_frames and answer_every > 1 else "")
                + (f", busy CPU, {'threads auto' if threads is None else f'{threads} threads'}" if busy else ""))
        if any(row["name"] == name for row in rows):  # a short window made two rows' answer_every the same
            continue
        before, batched_flops = batched_frame(model_name, backbone, crop, size, clips, used, repeats)
        with busy_core(busy):
            measured = measure_stream(model_name, backbone=backbone, crop=crop, window=size, stack_size=STACK_SIZE,
                                      every=every, flow=flow or "dis", precision=used.precision, frames=frames,
                                      device=used.device, answer_every=answer_every,
                                      threads=threads or "auto", flops=True,
                                      batch_frames=batch_frames and answer_every > 1)
        after, _ = batched_frame(model_name, backbone, crop, size, clips, used, repeats)
        batched = (before + after) / 2
        reference = recompute_seconds(model_name, flow, backbone, crop, size, used, repeats)
        push = 1 / measured["frames_per_second"]
        # a pushed frame against a sampled one: with every > 1, a push encodes a frame every few pushes
        versus = push * every / batched
        flops_ratio = measured["flops_per_push"] * every / batched_flops
        met = measured["frames_per_second"] >= target_fps and (
            target_p95 is None or measured["p95_latency_ms"] < target_p95)
        target = f"target >= {target_fps:.0f}/s" + (f", p95 < {target_p95:.0f} ms" if target_p95 else "")
        peak = used.peaks.get(used.precision)
        limit = peak / measured["flops_per_push"] if peak else None  # frames/s at 100% of the matmul peak
        stated = not quick and size == stated_window and crop == 224
        scope = target_scope(quick, size, stated_window, crop, met, limit, target_fps, precision_name(used.precision))
        key = f"{model_name} {flow} {every} {answer_every} {batch_frames} {used.precision}"
        if not busy:
            idle_push[key] = push
        slowdown = push / idle_push[key] if busy and key in idle_push else None
        # the answer after a clip's last frame is the clip's answer only when every frame is
        # sampled and answered (docs/streaming.md): other ways are scored by their own last answers
        # (SAMPLING_WAYS); rgb_attention is the model the accuracy is of
        sampling = (every, stated_answer_every) != (1, 1)
        accuracy, change = (accuracy_text(accuracies, stream_way(every, stated_answer_every) if sampling else runtime)
                            if model_name == "rgb_attention" else ("accuracy: not measured (rgb_attention only)", None))
        rows.append(data_row(
            name, "stream", "frames/s", reference, push,
            f"p95 {measured['p95_latency_ms']:.0f} ms, {versus:.2f}x a batched frame "
            f"({flops_ratio:.2f}x its FLOPs), {measured['threads']} thr"
            + (f", {slowdown:.1f}x idle" if slowdown else "") + f"; {accuracy}; {target}{scope}",
            frames=size, batch=1, median_latency_ms=measured["median_latency_ms"],
            p95_latency_ms=measured["p95_latency_ms"], target_met=met if stated else None,
            per_frame_vs_batched=versus, flops_vs_batched=flops_ratio, batched_frame_s=batched,
            threads=measured["threads"], answer_every=answer_every, batch_frames=measured["batch_frames"],
            busy_cpu=busy, slowdown_vs_idle=slowdown,
            runtime="torch", precision=used.precision, accuracy_change_points=change,
            flops_per_unit=measured["flops_per_push"], reference_flops_per_unit=None,
            limit_frames_per_second=limit, target_frames_per_second=target_fps))
    rows += _runtime_rows(quick, crop, window or (8 if quick else 16), rows[0], reference_seconds=rows[0]["reference_s"],
                          accuracies=accuracies, fp32_peak=setting.peaks.get("32-true"))
    return rows


def _runtime_rows(quick: bool, crop: int, window: int, torch_row: dict[str, Any],
                  reference_seconds: float, accuracies: dict[str, Any] | None,
                  fp32_peak: float | None) -> list[dict[str, Any]]:
    """The ONNX runtime's rows (:mod:`fpar.bench.onnx_stream_rows`), where onnxruntime is installed."""
    import importlib.util

    if not all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime")):
        return []
    from fpar.bench.onnx_stream_rows import onnx_stream_rows

    *_, target_fps, target_p95 = STREAM_ROWS[0]
    model, contract = stream_model("rgb_attention", "resnet18" if quick else "resnet34", crop, window, STACK_SIZE)
    made = model, contract, synthetic_video(window + 2 + (16 if quick else 40))
    return onnx_stream_rows(
        quick, crop, window, made, torch_row["batched_frame_s"], torch_row["flops_per_unit"], target_fps, target_p95,
        accuracies, fp32_peak,
        lambda name, seconds, check, **extra: data_row(name, "stream", "frames/s", reference_seconds, seconds, check,
                                                       frames=window, batch=1, **extra))

"""Dense optical flow between consecutive frames, and its 8-bit storage (docs/method.md §2, docs/prepare.md).

``tvl1`` is the faithful choice for real datasets: the reference's flow is TV-L1 as computed by
dense_flow. It is :mod:`fpar.prepare.tvl1`, OpenCV's algorithm in PyTorch: batched, on CPU or GPU.
``tvl1-opencv`` is OpenCV's own (opencv-contrib). ``dis`` is much faster and good enough for tests,
demos and quick looks; ``farneback`` is there for OpenCV builds without the contrib module.
:func:`pair_flows` is the streaming entry point for whole videos, optionally with the camera's
motion removed first (``warp``, :mod:`fpar.prepare.warp`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
from PIL import Image

# the coding is the data layer's; named here too for this module's callers (the flow and its storage)
from fpar.data.frames import FLOW_BOUND, dequantize_flow, quantize_flow  # noqa: F401
from fpar.errors import FparError
from fpar.io import atomic_path, refuse_overwriting_inputs
from fpar.progress import bar as progress_bar

if TYPE_CHECKING:
    import torch

# The flow methods: the CLI offers exactly these. torch, cv2 and the modules built on them are
# imported inside the functions, so building the CLI does not load them.
FLOW_METHODS = ("tvl1", "tvl1-opencv", "dis", "farneback")
DEFAULT_FLOW_METHOD = FLOW_METHODS[0]  # the reference's (dense_flow's TV-L1): what models are trained on
# the bound and its coding are the data layer's (fpar.data.frames); this name stays for callers of
# this module's flow functions
DEFAULT_BOUND = FLOW_BOUND
# Numbers that mean something (docs/reliability.md): frame rates outside 0.1..1000 per second are
# typos (and overflow when turned into frame durations).
FRAME_RATE_RANGE = (0.1, 1000.0)

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def flow_estimator(method: str = DEFAULT_FLOW_METHOD) -> FlowFn:
    """A function ``(prev, next) -> float32 (H, W, 2)`` flow. Build one per video, not per frame:
    the OpenCV objects allocate their pyramids once. For many pairs, :func:`pair_flows` batches."""
    import cv2

    if method == "tvl1":
        from fpar.prepare.tvl1 import tvl1_flow  # torch: only for the method that runs on it

        return lambda prev, nxt: tvl1_flow(_gray(prev), _gray(nxt)).numpy()
    if method == "tvl1-opencv":
        if not hasattr(cv2, "optflow"):
            raise FparError("flow method tvl1-opencv needs opencv-contrib (cv2.optflow); use flow method tvl1, dis or farneback")
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()  # defaults: tau, lambda, theta, scales, warps as dense_flow
        return lambda prev, nxt: tvl1.calc(_gray(prev), _gray(nxt), None)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return lambda prev, nxt: dis.calc(_gray(prev), _gray(nxt), None)
    if method == "farneback":
        return lambda prev, nxt: cv2.calcOpticalFlowFarneback(_gray(prev), _gray(nxt), None, 0.5, 3, 15, 3, 5, 1.2, 0)
    raise FparError(f"unknown flow method {method!r} (choose {', '.join(FLOW_METHODS)})")


def pair_flows(
    frames: Iterable[np.ndarray],
    *,
    method: str = DEFAULT_FLOW_METHOD,
    warp: bool = False,
    device: str = "cpu",
    batch_size: int = 8,
) -> Iterator[np.ndarray]:
    """Flow from each frame to the next, float32 ``(H, W, 2)``, in order (one fewer than the frames).

    ``frames`` (RGB or grey uint8, all one size) is consumed lazily: at most ``batch_size + 1`` of
    them are held at a time, so memory does not grow with the video. ``tvl1`` solves
    ``batch_size`` pairs at once on ``device`` ("cpu", "cuda", "cuda:1", ...); the other methods run
    pair by pair on the CPU. ``warp`` first removes the camera's motion (the second frame of each
    pair is stabilised onto the first), so the flow holds what moved in the scene.
    """
    if method not in FLOW_METHODS:
        raise FparError(f"unknown flow method {method!r} (choose {', '.join(FLOW_METHODS)})")
    if batch_size < 1:
        raise FparError(f"flow batch size must be at least 1, got {batch_size}")
    if method == "tvl1":
        target = _torch_device(device)
        _check_available(target)
        return _batched_tvl1_flows(frames, warp, target, batch_size)
    # the OpenCV methods on the CPU need no torch (an ONNX runtime's flow, docs/deployment.md)
    if device != "cpu" and _torch_device(device).type != "cpu":
        raise FparError(f"flow method {method} runs on the CPU only; device {device!r} needs method tvl1")
    return _paired_flows(frames, flow_estimator(method), warp)


def _batched_tvl1_flows(
    frames: Iterable[np.ndarray], warp: bool, device: "torch.device", batch_size: int
) -> Iterator[np.ndarray]:
    from fpar.prepare.warp import stabilise

    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    prev = None
    for frame in frames:
        grey = _same_size(_gray(frame), prev)
        if prev is not None:
            firsts.append(prev)
            seconds.append(stabilise(prev, grey) if warp else grey)
        prev = grey
        if len(firsts) == batch_size:
            yield from _tvl1_batch(firsts, seconds, device)
            firsts, seconds = [], []
    if firsts:
        yield from _tvl1_batch(firsts, seconds, device)


def _tvl1_batch(firsts: list[np.ndarray], seconds: list[np.ndarray], device: "torch.device") -> Iterator[np.ndarray]:
    import torch

    from fpar.prepare.tvl1 import tvl1_flow

    flows = tvl1_flow(torch.from_numpy(np.stack(firsts)), torch.from_numpy(np.stack(seconds)), device=device)
    yield from flows.cpu().numpy()


def _paired_flows(frames: Iterable[np.ndarray], estimate: FlowFn, warp: bool) -> Iterator[np.ndarray]:
    from fpar.prepare.warp import stabilise

    prev = None
    for frame in frames:
        grey = _same_size(_gray(frame), prev)
        if prev is not None:
            yield estimate(prev, stabilise(prev, grey) if warp else grey)
        prev = grey


def _same_size(grey: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
    if prev is not None and grey.shape != prev.shape:
        (h, w), (prev_h, prev_w) = grey.shape, prev.shape
        raise FparError(f"flow needs frames of one size: a {w}x{h} frame follows a {prev_w}x{prev_h} one")
    return grey


def _torch_device(device: str) -> "torch.device":
    import torch

    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise FparError(f"unknown device {device!r} (e.g. cpu, cuda, cuda:1)") from error


def _check_available(device: "torch.device") -> None:
    import torch

    if device.type == "cuda" and not torch.cuda.is_available():
        raise FparError(f"device {str(device)!r}: no CUDA GPU is available here; use device cpu")


def compute_flow(prev_rgb_or_gray: np.ndarray, next_rgb_or_gray: np.ndarray,
                 method: str = DEFAULT_FLOW_METHOD) -> np.ndarray:
    """Flow from one frame to the next, float32 ``(H, W, 2)`` in pixels (x right, y down).

    For a whole video use :func:`flow_estimator` once and call it per frame pair.
    """
    return flow_estimator(method)(prev_rgb_or_gray, next_rgb_or_gray)


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code flow for viewing: hue = direction, value = magnitude (``max_magnitude`` -> full
    brightness; default the frame's 99th percentile, so one outlier does not darken the rest)."""
    import cv2

    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    top = max_magnitude or float(np.percentile(magnitude, 99)) or 1.0
    hsv = np.zeros(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)  # OpenCV hue is 0..179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / top * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def colour_wheel(diameter: int) -> np.ndarray:
    """The key to :func:`flow_to_rgb`: ``uint8 (d, d, 3)``, each point coloured as flow pointing from
    the centre to it (hue = direction, brightness = speed up to the full scale at the rim)."""
    radius = diameter / 2
    y, x = np.mgrid[0:diameter, 0:diameter].astype(np.float32) + 0.5 - radius
    wheel = flow_to_rgb(np.stack([x, y], axis=-1), radius)
    wheel[np.hypot(x, y) > radius] = 255  # outside the disc: white
    return wheel


def write_flow_gif(
    video_path: str | Path,
    out_path: str | Path,
    *,
    method: str = "dis",
    size: int | None = None,
    max_frames: int | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> int:
    """Write a GIF of each frame beside its colour-coded flow to the next; returns the frames written.

    One brightness scale for the whole clip (the median over frames of each frame's 99th
    percentile magnitude): a still moment stays dark instead of amplifying its noise, and one
    burst of fast motion does not darken the rest. ``device``: as :func:`pair_flows`' (tvl1 only
    off the CPU). The bar is drawn on a terminal only (no carriage returns in a redirected log).
    """
    from fpar.prepare.video import read_video, resize_short_side

    refuse_overwriting_inputs(out_path, video_path, option="--out")
    video = read_video(video_path, max_frames)
    frames = [resize_short_side(f, size) for f in video.frames]
    if len(frames) < 2:
        raise FparError(f"{video_path}: {len(frames)} frame(s); flow needs at least 2")
    if device == "cpu":
        estimate = flow_estimator(method)
        pairs = progress_bar(range(len(frames) - 1), desc="flow", unit="frame", progress=None if progress else False)
        flows = [estimate(frames[k], frames[k + 1]) for k in pairs]
    else:
        flows = list(pair_flows(frames, method=method, device=device))
    top = float(np.median([np.percentile(np.linalg.norm(f, axis=-1), 99) for f in flows])) or 1.0
    # the colour wheel in the flow panel's corner says which colour is which direction
    key = colour_wheel(max(16, min(frames[0].shape[:2]) // 4))
    panels = [Image.fromarray(np.hstack([f, _with_key(flow_to_rgb(fl, top), key)])) for f, fl in zip(frames, flows)]
    duration = round(1000 / video.fps) if video.fps else 100
    with atomic_path(out_path) as tmp:
        panels[0].save(tmp, format="GIF", save_all=True, append_images=panels[1:], duration=duration, loop=0)
    return len(panels)


def _with_key(panel: np.ndarray, key: np.ndarray) -> np.ndarray:
    panel = panel.copy()
    d = key.shape[0]
    panel[-2 - d:-2, -2 - d:-2] = key  # bottom right
    return panel


def _gray(image: np.ndarray) -> np.ndarray:
    import cv2

    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return np.ascontiguousarray(gray, dtype=np.uint8)  # DIS refuses strided views (crops)

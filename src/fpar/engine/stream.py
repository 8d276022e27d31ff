"""A streaming recogniser: frames pushed one at a time as they arrive, the current action read after
each (docs/streaming.md).

:class:`Stream` keeps what the model has already computed: a model with streaming hooks
(``encode_frames`` and ``decode_window``, see ``fpar.models.assembled``) encodes each new frame once
(the backbone, the attention, the ConvLSTM input's gates) and keeps the encodings of the last T
sampled frames; each new sampled frame then costs one encoding plus the recurrent pass over the
window (``decode_window``). A model without the hooks still streams: its ``forward`` runs again over
the kept window of inputs (work per frame grows with T), so a new model needs no streaming code.

Frames go through the same transform as ``fpar predict``'s clip (docs/prepare.md): the short side
resized to the clip's ``resize`` (frames of another size first brought to the first frame's size),
the centre ``crop``, ImageNet normalisation. Flow is computed between consecutive pushed frames at
that resolution, coded to 8 bits and cropped, as a prepared dataset holds it:

* a flow stack (``flow_mode: stack``, flow network, two-stream) is the last L flows, the newest
  ending at the newest frame; the flow network runs once per sampled frame on that stack;
* a two-in-one model (``flow_mode: pairs``) modulates each frame with the flow from it to the
  next frame, so a frame is encoded when its successor arrives: its answers lag one frame.

Pushing the frames ``fpar predict`` reads for a clip gives the logits it computes (the tests check
this per model kind, within 1e-4 in fp32).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from fpar.checkpoint import ModelContract, load_model, model_reads_its_clip
from fpar.data import transforms
from fpar.engine.compute import frames_channels_last, prepare_for_inference
from fpar.engine.hardware import autocast_dtype, resolve_precision
from fpar.errors import FparError
from fpar.prepare.flow import DEFAULT_BOUND, flow_estimator, quantize_flow

log = logging.getLogger(__name__)


@dataclass
class StreamResult:
    """The answer after one pushed frame.

    ``frame``: how many frames were pushed (this one is frame ``frame``, counted from 1).
    ``probabilities``/``logits``: (classes,) float32 over the current window, None until the
    window holds its first frame (flow models: until a flow stack is full). ``updated``: whether
    this frame changed them (one frame in ``every`` does). ``window``: sampled frames the answer
    covers (up to T; 0 for a flow network, which reads only the flow stack). ``attention``: the
    newest window frame's attention map (h, w), when asked for and the model has one."""

    frame: int
    probabilities: torch.Tensor | None
    logits: torch.Tensor | None
    updated: bool
    window: int
    classes: list[str]
    attention: torch.Tensor | None = None

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable classes with their probabilities, best first; empty before the first answer."""
        if self.probabilities is None:
            return []
        values, indices = self.probabilities.topk(min(k, self.probabilities.numel()))
        return [(self.classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]


@dataclass
class _Shared:
    """What every copy of a stream shares: the prepared model and how its inputs are made."""

    model: torch.nn.Module
    contract: ModelContract
    source: str  # the checkpoint, for error lines
    classes: list[str]
    window: int
    every: int
    flow_method: str
    device: torch.device
    dtype: torch.dtype | None
    hooks: bool  # the model has encode_frames/decode_window
    per_frame: tuple[str, ...]  # inputs with a time axis (frames; two-in-one flow pairs)
    flow_stack: int  # L, or 0 when the model reads no flow stack
    pairs: bool  # two-in-one: each frame's flow to the next frame
    estimator: Any = field(default=None, repr=False)  # (prev, next) -> flow; built on first use


class Stream:
    """A model fed one RGB frame at a time (``push``); see the module docstring.

    ``checkpoint``: a checkpoint file or an export folder (``fpar export``). ``window``: T, the
    sampled frames the recurrent part reads (default the checkpoint's ``num_frames``); ``every``:
    sample one frame in ``every`` (the others only feed the flow); ``flow``: the flow method the
    model was trained with (``fpar.prepare.flow.FLOW_METHODS``); ``precision``: as ``fpar predict``'s
    (default the checkpoint's training precision; ``auto``: the machine's fastest).

    ``announce``: log which precision ``auto`` picked, and why.

    ``reset()`` forgets the frames seen; ``copy.copy(stream)`` is a second stream on the same
    model (the weights are shared, the kept frames copied).
    """

    def __init__(self, checkpoint: str | os.PathLike, *, window: int | None = None, every: int = 1,
                 flow: str = "tvl1", precision: str | None = None, device: str = "cpu",
                 announce: bool = False) -> None:
        model, contract = load_model(checkpoint, mmap=False)  # read, not mapped: see predict_video
        self._start(model, contract, str(checkpoint), window=window, every=every, flow=flow,
                    precision=precision or contract.trained_precision, device=device, announce=announce)

    @classmethod
    def from_model(cls, model: torch.nn.Module, contract: ModelContract, *, window: int | None = None,
                   every: int = 1, flow: str = "tvl1", precision: str = "32", device: str = "cpu") -> "Stream":
        """A stream on a model already built (benchmarks, random weights). The model is prepared for
        inference in place (batch norms folded, ...): do not train or save it afterwards."""
        stream = cls.__new__(cls)
        stream._start(model, contract, model.__class__.__name__, window=window, every=every, flow=flow,
                      precision=precision, device=device, announce=False)
        return stream

    def _start(self, model: torch.nn.Module, contract: ModelContract, source: str, *, window: int | None,
               every: int, flow: str, precision: str, device: str, announce: bool) -> None:
        from fpar.prepare.flow import FLOW_METHODS

        window = contract.clip.num_frames if window is None else window
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise FparError(f"stream window must be a positive number of frames, got {window!r}")
        if not isinstance(every, int) or every < 1:
            raise FparError(f"stream --every must be a positive number of frames, got {every!r}")
        if flow not in FLOW_METHODS:
            raise FparError(f"unknown flow method {flow!r} (choose {', '.join(FLOW_METHODS)})")
        target = torch.device(device)
        accelerator = "cpu" if target.type == "cpu" else "cuda"
        # the line saying which precision ``auto`` picked, and why: shown with --verbose
        dtype = autocast_dtype(resolve_precision(precision, accelerator, announce=log.info if announce else False))
        # batch norms folded, weights in the autocast dtype and channels-last (engine/compute.py):
        # measured on a ResNet-34 at 224 px, one frame in bf16, 2.4x faster than contiguous weights
        prepare_for_inference(model, channels_last=True, dtype=dtype)
        model.to(target)
        clip = contract.clip
        reads_flow = "flow" in clip.modalities
        pairs = reads_flow and clip.flow_mode == "pairs"
        per_frame = tuple(name for name, wanted in (("frames", "frames" in clip.modalities), ("flow", pairs)) if wanted)
        names = contract.classes or []
        self._shared = _Shared(
            model=model, contract=contract, source=source,
            classes=[names[i] if i < len(names) else f"class {i}" for i in range(_num_classes(contract))],
            window=window, every=every, flow_method=flow, device=target, dtype=dtype,
            hooks=model.streams_per_frame(),
            per_frame=per_frame, flow_stack=clip.stack_size if reads_flow and not pairs else 0, pairs=pairs)
        self.reset()

    # --- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every frame pushed: the next push starts a new stream."""
        shared = self._shared
        self.frames_seen = 0
        self._shape: tuple[int, int] | None = None  # the first frame's size after resizing
        self._previous: np.ndarray | None = None  # the last frame, resized: the flow's first image
        self._waiting: dict[str, torch.Tensor] | None = None  # two-in-one: a sampled frame awaiting its flow
        self._window: deque[dict[str, torch.Tensor]] = deque(maxlen=shared.window)  # encodings (or inputs)
        self._flows: deque[torch.Tensor] = deque(maxlen=max(shared.flow_stack, 1))  # (2, h, w) each
        # the latest answer: logits (classes,), sampled frames it covers, the newest frame's attention map
        self._answer: tuple[torch.Tensor, int, torch.Tensor | None] | None = None

    def __copy__(self) -> "Stream":
        twin = self.__class__.__new__(self.__class__)
        twin.__dict__.update(self.__dict__)  # the shared model and settings, the immutable tensors
        twin._window = deque(self._window, maxlen=self._window.maxlen)
        twin._flows = deque(self._flows, maxlen=self._flows.maxlen)
        return twin

    @property
    def classes(self) -> list[str]:
        return self._shared.classes

    @property
    def window(self) -> int:
        return self._shared.window

    @property
    def every(self) -> int:
        return self._shared.every

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Where the model looks in a ``height x width`` frame: ``(y, x, h, w)`` of the centre crop
        (the part the attention map covers), in that frame's pixels."""
        clip = self._shared.contract.clip
        scale = min(height, width) / clip.resize
        resized_h, resized_w = (round(height / scale), round(width / scale))
        y, x = transforms.crop_origin(resized_h, resized_w, clip.crop, "c")
        side = round(clip.crop * scale)
        return round(y * scale), round(x * scale), side, side

    @property
    def uses_window_forward(self) -> bool:
        """True when the model has no streaming hooks and its forward runs over the whole window
        at each sampled frame (work per frame grows with T)."""
        return not self._shared.hooks

    # --- frames in, answers out ----------------------------------------------------------------

    def push(self, frame: np.ndarray, *, attention: bool = False) -> StreamResult:
        """Feed one RGB uint8 frame ``(H, W, 3)``; returns the current answer (:class:`StreamResult`)."""
        shared = self._shared
        resized = self._resized(frame)
        index = self.frames_seen  # 0-based number of this frame
        self.frames_seen += 1
        sampled = index % shared.every == 0
        flow = self._flow_to(resized) if self._needs_flow(index) else None
        self._previous = resized
        new_entry: dict[str, torch.Tensor] | None = None
        if shared.pairs:
            # the waiting frame's flow is the one to this frame: it is encoded now
            if self._waiting is not None and flow is not None:
                new_entry = {**self._waiting, "flow": frames_channels_last(flow[None, None])}
            self._waiting = {"frames": self._frame_input(resized)} if sampled else None
        elif sampled and shared.per_frame:
            new_entry = {"frames": self._frame_input(resized)}
        if flow is not None and shared.flow_stack:
            self._flows.append(flow)
        if new_entry is not None:
            self._window.append(self._encode(new_entry) if shared.hooks else new_entry)
        updated = (new_entry is not None or (sampled and not shared.per_frame)) and self._ready()
        if updated:
            self._answer = self._decode()
        if self._answer is None:
            return StreamResult(self.frames_seen, None, None, False, 0, shared.classes)
        logits, window, maps = self._answer
        return StreamResult(self.frames_seen, logits.softmax(dim=0), logits, updated, window, shared.classes,
                            maps if attention else None)

    def run(self, frames: Iterable[np.ndarray], *, attention: bool = False) -> Iterator[StreamResult]:
        """:meth:`push` each frame in turn, yielding each answer."""
        for frame in frames:
            yield self.push(frame, attention=attention)

    # --- the parts of a push -------------------------------------------------------------------

    def _resized(self, frame: np.ndarray) -> np.ndarray:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise FparError(f"stream: a frame must be an RGB uint8 array (H, W, 3), got {got}")
        if min(frame.shape[:2]) < 1:
            raise FparError(f"stream: frame {self.frames_seen + 1} is empty ({frame.shape[1]}x{frame.shape[0]})")
        resized = transforms.resize_short(frame, self._shared.contract.clip.resize)
        if self._shape is None:
            self._shape = resized.shape[:2]
        elif resized.shape[:2] != self._shape:  # as fpar predict: every frame at the first frame's size
            import cv2

            height, width = self._shape
            resized = cv2.resize(resized, (width, height), interpolation=cv2.INTER_LINEAR)
        return resized

    def _frame_input(self, resized: np.ndarray) -> torch.Tensor:
        """The centre crop, normalised as the evaluation clip's frames: (1, 1, 3, crop, crop)
        float32, channels-last."""
        crop = transforms.eval_views_clip(resized[None], self._shared.contract.clip.crop, "center")[0]
        return frames_channels_last(torch.from_numpy(transforms.normalize_rgb(crop)).to(self._shared.device)[None])

    def _needs_flow(self, index: int) -> bool:
        """Whether the flow from the previous frame to frame ``index`` (0-based) will be read: by
        the waiting two-in-one frame, or by a flow stack at the next sampled frame."""
        shared = self._shared
        if index == 0 or not (shared.pairs or shared.flow_stack):
            return False
        if shared.pairs:
            return (index - 1) % shared.every == 0
        next_sampled = math.ceil(index / shared.every) * shared.every
        return next_sampled - index < shared.flow_stack

    def _flow_to(self, resized: np.ndarray) -> torch.Tensor:
        """The flow from the previous frame to ``resized``, coded to 8 bits as a prepared dataset
        stores it, centre-cropped and normalised: (2, crop, crop) float32."""
        shared = self._shared
        if shared.estimator is None:
            shared.estimator = flow_estimator(shared.flow_method)
        field_ = shared.estimator(self._previous, resized)
        crop = shared.contract.clip.crop
        planes = [transforms.eval_views_clip(plane[None], crop, "center", is_flow_x=axis == 0)[0, 0]
                  for axis, plane in enumerate(quantize_flow(field_, DEFAULT_BOUND))]
        return torch.from_numpy(transforms.normalize_flow(np.stack(planes))).to(shared.device)

    def _ready(self) -> bool:
        shared = self._shared
        if shared.flow_stack and len(self._flows) < shared.flow_stack:
            return False
        return bool(self._window) or not shared.per_frame

    @contextlib.contextmanager
    def _computing(self) -> Iterator[None]:
        """No autograd, the autocast dtype, modality errors as one line naming the checkpoint, and
        denormal floats flushed to zero while the model runs: a saturated ConvLSTM gate
        (``sigmoid(-90)``) is a denormal, and fp32 arithmetic on denormals is many times slower
        (measured: the window's recurrence 4x slower on a random-weight ResNet-34 model); a value
        below 1.2e-38 changes no answer."""
        shared = self._shared
        autocast = torch.autocast(shared.device.type, shared.dtype or torch.float32, enabled=shared.dtype is not None)
        flushing = torch.set_flush_denormal(True)
        try:
            with torch.inference_mode(), autocast, model_reads_its_clip(shared.source, shared.contract):
                yield
        finally:
            if flushing:  # False where the CPU cannot flush: nothing to restore
                torch.set_flush_denormal(False)

    def _encode(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with self._computing():
            return self._shared.model.encode_frames(inputs)

    def _decode(self) -> tuple[torch.Tensor, int, torch.Tensor | None]:
        shared = self._shared
        window = {key: torch.cat([entry[key] for entry in self._window], dim=1) for key in self._window[0]} \
            if self._window else {}
        stack = {"flow": frames_channels_last(torch.cat(list(self._flows))[None])} if shared.flow_stack else {}
        with self._computing():
            out = shared.model.decode_window(window, stack) if shared.hooks else shared.model({**window, **stack})
        maps = out.get("attention")
        return out["logits"][0].float().cpu(), len(self._window), None if maps is None else maps[0, -1].float().cpu()


def _num_classes(contract: ModelContract) -> int:
    count = contract.model.get("num_classes")
    if isinstance(count, int) and count > 0:
        return count
    return len(contract.classes or []) or 1


# --- sources and timing -------------------------------------------------------------------------


@dataclass
class FrameSource:
    """Frames from a video file, a folder of frames, a camera or a stream URL: ``frames`` yields
    RGB uint8 ``(H, W, 3)`` arrays; ``fps`` when the source says; ``live`` for cameras and URLs
    (frames arrive in real time: nothing to pace)."""

    name: str
    frames: Iterator[np.ndarray]
    fps: float | None
    live: bool


def open_source(source: str, max_frames: int | None = None) -> FrameSource:
    """``source``: a camera index (``0``), a stream URL (``rtsp://...``, ``http://...``: whatever
    OpenCV opens), or a video file, animated GIF or folder of frames."""
    from fpar.prepare.video import iter_frames, video_fps

    if source.isdigit() and int(source) > 2**31 - 1 and not Path(source).exists():  # OpenCV takes a C int
        raise FparError(f"{source}: not a camera index (too large) nor a video file or folder")
    if source.isdigit() or "://" in source:
        return FrameSource(source, _captured(int(source) if source.isdigit() else source, source, max_frames),
                           None, True)
    path = Path(source)
    if not path.exists():
        raise FparError(f"{source}: no such video file or folder (nor a camera index or stream URL)")
    return FrameSource(source, iter_frames(path, max_frames=max_frames), video_fps(path), False)


def _captured(device: int | str, name: str, max_frames: int | None) -> Iterator[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(device)
    try:
        if not capture.isOpened():
            kind = "camera" if isinstance(device, int) else "stream"
            raise FparError(f"{name}: OpenCV cannot open this {kind}")
        count = 0
        while max_frames is None or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                if not count:
                    raise FparError(f"{name}: no frame could be read")
                return
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


@dataclass
class StreamStep:
    """One frame of a source through a stream: its position in the source (from 1), the frame,
    the answer, and how long ``push`` took."""

    position: int
    frame: np.ndarray
    result: StreamResult
    latency: float  # seconds


class SourceRun:
    """Iterating pushes every frame of ``source`` into ``stream``, yielding a :class:`StreamStep`
    each. ``realtime`` (files with a frame rate): frame k is due ``k / fps`` seconds after the
    start; a frame not due yet is waited for, and one whose successor is already due is dropped
    (skipped), as a live camera would drop it; ``dropped`` counts them."""

    def __init__(self, stream: Stream, source: FrameSource, *, realtime: bool = False, attention: bool = False):
        self.check(source, realtime)
        self.stream, self.source, self.attention = stream, source, attention
        self.pace = realtime and not source.live
        self.dropped = 0

    @staticmethod
    def check(source: FrameSource, realtime: bool) -> None:
        """Refuse to pace a source that has no frame rate (before a model is loaded for it)."""
        if realtime and not source.live and not source.fps:
            raise FparError(f"{source.name}: --realtime needs the source's frame rate (a folder of frames has none)")

    def __iter__(self) -> Iterator[StreamStep]:
        fps = self.source.fps
        start = time.perf_counter()
        for position, frame in enumerate(self.source.frames):
            if self.pace:
                lateness = time.perf_counter() - (start + position / fps)
                if lateness < 0:
                    time.sleep(-lateness)
                elif lateness >= 1 / fps:  # the next frame is due already: this one is dropped
                    self.dropped += 1
                    continue
            began = time.perf_counter()
            result = self.stream.push(frame, attention=self.attention)
            yield StreamStep(position + 1, frame, result, time.perf_counter() - began)


def latency_summary(latencies: list[float]) -> dict[str, float]:
    """Median and 95th-percentile push latency (ms) and pushes per second of push time."""
    if not latencies:
        return {"frames": 0, "median_latency_ms": math.nan, "p95_latency_ms": math.nan, "frames_per_second": math.nan}
    values = np.asarray(latencies, dtype=np.float64)
    return {"frames": len(latencies), "median_latency_ms": float(np.median(values) * 1000),
            "p95_latency_ms": float(np.percentile(values, 95) * 1000),
            "frames_per_second": float(len(values) / values.sum())}


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
    from fpar.checkpoint import ModelContract
    from fpar.data.settings import ClipSettings
    from fpar.engine.hardware import detect
    from fpar.models import build_model

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
        if stream._shared.device.type == "cuda":
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

"""Where a stream's frames come from, and how its pushes are paced and timed (``fpar stream``,
docs/streaming.md): video files, folders of frames, cameras and stream URLs. Imports no torch, so
the ONNX runtime's stream (``--runtime onnx``) runs with these too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from fpar.errors import FparError
from fpar.prepare.live import LiveInputs, StreamResult


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
    # a file whose frames end before its container says: a warning line when its frames run out,
    # as `fpar predict` gives (the answers already printed stand)
    return FrameSource(source, iter_frames(path, max_frames=max_frames, strict=False), video_fps(path), False)


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

    def __init__(self, stream: LiveInputs, source: FrameSource, *, realtime: bool = False, attention: bool = False):
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

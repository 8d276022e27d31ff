"""Frames of a video file read in place: only the frames a clip samples are decoded, frame-accurately
(docs/data.md, "In place and video sources").

Frame ``k`` of a video is its ``k``-th frame in presentation order, the first being 1: the frame a
decode from the start returns ``k``-th. Decoding is PyAV's (FFmpeg). A video's frame table (the
presentation time of every frame and which are key frames) is read once per process from the
packets alone, without decoding, and kept: with it frame ``k`` is found by its own timestamp,
which stays exact in variable-frame-rate videos, where a frame rate times a position does not
(OpenCV's ``CAP_PROP_POS_FRAMES`` lands on the wrong frame there; docs/data.md has the comparison).

To read sorted frame numbers the reader seeks to the key frame before the first one and decodes
forward, seeking again only when a key frame lies between the frame decoded last and the next one
wanted (decoding on would cost more than starting from that key frame).
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fpar.data.frames import check_pixels
from fpar.errors import FparError

# Open videos a process keeps (their containers and frame tables): a worker reads clips of a few
# videos over and over, and opening one costs its frame table.
OPEN_VIDEOS = 8


@dataclass
class _FrameTable:
    pts: list[int]  # presentation timestamps in order: frame k is pts[k - 1]
    keys: list[int]  # presentation timestamps of the key frames, sorted


class VideoReader:
    """One open video: :meth:`read` decodes given frame numbers."""

    def __init__(self, path: str | Path) -> None:
        import av  # noqa: PLC0415 (only readers of videos need it)

        self.path = Path(path)
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise FparError(f"{self.path}: cannot open video ({_reason(exc)})") from None
        context = self._stream.codec_context
        check_pixels(context.width, context.height, self.path)
        self._table = self._frame_table()
        self._frames = None  # the decode generator in use, and the last timestamp it returned
        self._last_pts: int | None = None

    def __len__(self) -> int:
        return len(self._table.pts)

    def close(self) -> None:
        self._container.close()

    def _frame_table(self) -> _FrameTable:
        import av  # noqa: PLC0415

        pts, keys = [], []
        try:
            for packet in self._container.demux(self._stream):
                if packet.pts is None:  # the flushing packet at the end
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except av.FFmpegError as exc:
            raise FparError(f"{self.path}: unreadable video ({_reason(exc)})") from None
        if not pts:
            raise FparError(f"{self.path}: a video without frames")
        pts.sort()
        keys.sort()
        return _FrameTable(pts, keys)

    def read(self, numbers: Sequence[int]) -> list[np.ndarray]:
        """uint8 RGB ``(H, W, 3)`` frames ``numbers`` (1-based, any order, repeats allowed)."""
        for number in numbers:
            if not 1 <= number <= len(self):
                raise FparError(f"{self.path}: frame {number} requested but the video has {len(self)}")
        wanted = sorted(set(numbers))
        decoded = {number: self._decode(self._table.pts[number - 1]) for number in wanted}
        return [decoded[number] for number in numbers]

    def _decode(self, target: int) -> np.ndarray:
        import av  # noqa: PLC0415

        if self._frames is None or self._last_pts is None or target <= self._last_pts or self._key_between(target):
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
            self._frames = self._container.decode(self._stream)
            self._last_pts = None
        try:
            for frame in self._frames:
                if frame.pts is None:
                    continue
                self._last_pts = frame.pts
                if frame.pts == target:
                    return frame.to_ndarray(format="rgb24")
                if frame.pts > target:
                    break
        except av.FFmpegError as exc:
            self._frames = None
            raise FparError(f"{self.path}: cannot decode the frame at {target} ({_reason(exc)})") from None
        self._frames = None
        raise FparError(f"{self.path}: no frame with timestamp {target} where the frame table puts one "
                        "(a damaged video?)")

    def decode_all(self) -> int:
        """Decode every frame from the start (``fpar data check --deep``): how many decoded."""
        import av  # noqa: PLC0415

        self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        self._frames, self._last_pts = None, None
        try:
            return sum(1 for frame in self._container.decode(self._stream) if frame.pts is not None)
        except av.FFmpegError as exc:
            raise FparError(f"{self.path}: cannot decode ({_reason(exc)})") from None

    def _key_between(self, target: int) -> bool:
        """Whether a key frame lies after the frame decoded last and at or before ``target``."""
        at = bisect.bisect_right(self._table.keys, self._last_pts)
        return at < len(self._table.keys) and self._table.keys[at] <= target


_OPEN: OrderedDict[tuple[Path, int], VideoReader] = OrderedDict()
_LOCK = threading.Lock()
_OWNER = {"pid": os.getpid()}  # the process whose readers _OPEN holds


def open_video(path: str | Path) -> VideoReader:
    """The process's reader of ``path`` (kept open for the next clip, up to :data:`OPEN_VIDEOS`).

    Readers are per process and per thread: DataLoader workers each open their own. A forked
    worker forgets the readers it inherited (their file position is shared with its parent's)."""
    key = (Path(path), threading.get_ident())
    with _LOCK:
        if _OWNER["pid"] != os.getpid():
            _OPEN.clear()  # the parent's: not closed here, the parent still uses them
            _OWNER["pid"] = os.getpid()
        reader = _OPEN.pop(key, None)
    if reader is None:
        reader = VideoReader(path)
    with _LOCK:
        _OPEN[key] = reader
        while len(_OPEN) > OPEN_VIDEOS:
            _OPEN.popitem(last=False)[1].close()
    return reader


def read_video_frames(path: str | Path, numbers: Sequence[int]) -> list[np.ndarray]:
    """uint8 RGB frames ``numbers`` (1-based) of the video at ``path``."""
    return open_video(path).read(numbers)


def frame_count(path: str | Path) -> int:
    """The number of frames of the video at ``path`` (from its frame table, nothing decoded)."""
    return len(open_video(path))


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__

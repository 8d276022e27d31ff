"""Reading a video into RGB frames: a video file, an animated GIF, or a folder of images.

The frames feed :mod:`fpar.prepare.dataset`, which writes the processed layout of
docs/method.md §2 (``rgb/rgb0001.png`` ...).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np
from PIL import Image, ImageSequence

from fpar.data.frames import MAX_PIXELS_VARIABLE, check_pixels, max_pixels, read_frame
from fpar.errors import FparError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass
class VideoFrames:
    """Decoded frames, uint8 RGB ``(H, W, 3)``, and frames per second when the source says."""

    frames: list[np.ndarray]
    fps: float | None


@dataclass(frozen=True)
class Segment:
    """Part of a video: frames ``start``..``end`` (inclusive) or seconds ``start``..``end``.

    Frame numbers count from 1 in a video file or GIF (the first decoded frame is frame 1); in a
    folder they are the numbers in the file names. Seconds select the frames whose time
    ``(position - 1) / fps`` lies in ``[start, end]``. Either end may be None (open).
    """

    start: float | None = None
    end: float | None = None
    unit: str = "frame"  # or "sec"

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "unit": self.unit}


def read_video(path: str | Path, max_frames: int | None = None) -> VideoFrames:
    """Read ``path`` (video file, GIF or image folder); :class:`FparError` naming it if unreadable or empty.

    Holds every frame in memory; :func:`iter_frames` streams them instead.
    """
    frames = list(iter_frames(path, max_frames=max_frames))
    return VideoFrames(frames, fps=video_fps(path))


def iter_frames(
    path: str | Path, segment: Segment | None = None, *, fps: float | None = None, max_frames: int | None = None,
    strict: bool | None = None,
) -> Iterator[np.ndarray]:
    """Decode ``path`` (video file, GIF or image folder) one frame at a time: memory does not grow
    with the video's length. ``segment`` picks part of it; ``fps`` is needed for a segment in
    seconds of a folder of frames (a video file or GIF says its own). ``strict``: a video file
    whose frames end before its container says (read to its end) is a warning line (False) or an
    :class:`FparError` (True), as :func:`count_frames` says; None: not checked (the caller
    counted the frames first).

    :class:`FparError` naming the path when it is unreadable, empty, or ends before the segment does.
    """
    path = Path(path)
    if not path.exists():
        raise FparError(f"{path}: no such video file or folder")
    segment = segment or Segment()
    if segment.unit == "sec":
        fps = video_fps(path) or fps
        if not fps:
            raise FparError(f"{path}: a segment in seconds needs the frame rate (give an fps for a folder of frames)")
    if path.is_dir():
        numbered = ((frame_number(p), p) for p in image_files(path))
        frames = ((number, read_frame(p, color=True)) for number, p in numbered)
    else:
        # OpenCV builds differ on GIF support; PIL always has it
        skip = _frames_before(segment, fps)
        decoded = _gif_frames(path) if path.suffix.lower() == ".gif" else _capture_frames(path, skip, strict)
        frames = enumerate(decoded, 1 if path.suffix.lower() == ".gif" else skip + 1)
    count, last = 0, None
    for position, (number, frame) in enumerate(frames, 1):
        if not path.is_dir():
            position = number  # a video's frames are numbered by position, skipped ones included
        where = (position - 1) / fps if segment.unit == "sec" else number
        if segment.start is not None and where < segment.start - _EPS:
            continue
        if segment.end is not None and where > segment.end + _EPS:
            break
        if path.is_dir() and segment.unit == "frame" and segment.start is not None and number != segment.start + count:
            raise FparError(f"{path}: frame {segment.start + count:g} of the segment is missing")
        if max_frames is not None and count >= max_frames:
            return
        count, last = count + 1, number
        yield frame
    if not count:
        raise FparError(f"{path}: no frames could be decoded{_in(segment)} (empty, not a video, or segment past its end)")
    if segment.unit == "frame" and segment.end is not None and last < segment.end and max_frames is None:
        raise FparError(f"{path}: ends at frame {last}, before the segment's end {segment.end:g}")


_EPS = 1e-6  # seconds: (k - 1) / fps is not exact in floating point


def _in(segment: Segment) -> str:
    if segment.start is None and segment.end is None:
        return ""
    return f" in {segment.unit} {segment.start if segment.start is not None else ''}..{segment.end if segment.end is not None else ''}"


def video_fps(path: str | Path) -> float | None:
    """Frames per second of a video file or GIF as the file says; None for a folder or when unknown."""
    path = Path(path)
    if path.is_dir() or not path.exists():
        return None
    if path.suffix.lower() == ".gif":
        with _open_gif(path) as gif:
            duration_ms = gif.info.get("duration") or 0
        return 1000.0 / duration_ms if duration_ms else None
    capture = cv2.VideoCapture(str(path))
    try:
        return capture.get(cv2.CAP_PROP_FPS) or None if capture.isOpened() else None
    finally:
        capture.release()


def frame_number(path: Path) -> int | None:
    """The last run of digits in a file name (``img_0012.png`` -> 12), or None."""
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else None


def image_files(folder: Path) -> list[Path]:
    """Image files of ``folder`` ordered by the number in their names (``2.png`` before ``10.png``)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and frame_number(p) is not None]
    return sorted(files, key=lambda p: (frame_number(p), p.name))


def resize_short_side(frame: np.ndarray, size: int | None) -> np.ndarray:
    """Resize so the short side is ``size`` (aspect kept); ``None`` keeps the frame as it is."""
    if size is None:
        return frame
    h, w = frame.shape[:2]
    scale = size / min(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    if new == (w, h):
        return frame
    # INTER_AREA when shrinking avoids aliasing that would show up as spurious flow.
    return cv2.resize(frame, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


@contextlib.contextmanager
def _open_gif(path: Path) -> Iterator[Image.Image]:
    """A GIF opened by PIL, its logical screen checked against the pixel limit before any frame is
    decoded; a broken or truncated file is one line naming it."""
    try:
        with Image.open(path) as gif:
            check_pixels(*gif.size, path)
            yield gif
    except Image.DecompressionBombError:
        raise FparError(f"{path}: a GIF whose screen is more than the {max_pixels()} pixels fpar decodes "
                        f"(set {MAX_PIXELS_VARIABLE} to allow more)") from None
    except (OSError, ValueError, EOFError, SyntaxError) as exc:  # PIL's errors for broken image data
        raise FparError(f"{path}: cannot read GIF ({exc})") from None


def _gif_frames(path: Path) -> Iterator[np.ndarray]:
    with _open_gif(path) as gif:
        for frame in ImageSequence.Iterator(gif):
            yield np.asarray(frame.convert("RGB"))


def _frames_before(segment: Segment, fps: float | None) -> int:
    """How many leading frames of a video file the segment leaves out."""
    if segment.start is None:
        return 0
    first = segment.start if segment.unit == "frame" else math.ceil(segment.start * fps - _EPS) + 1
    return max(0, int(first) - 1)


def _capture_frames(path: Path, skip: int = 0, strict: bool | None = None) -> Iterator[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise FparError(f"{path}: cannot open video (unknown format or corrupt file)")
        check_pixels(int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), path)
        declared = int(max(capture.get(cv2.CAP_PROP_FRAME_COUNT), 0))
        # grab() without retrieve() skips the colour conversion; frame-exact, unlike seeking by
        # CAP_PROP_POS_FRAMES, which lands on keyframes in some codecs
        decoded = 0
        for _ in range(skip):
            if not capture.grab():
                break
            decoded += 1
        while decoded >= skip:
            ok, bgr = capture.read()
            if not ok:
                break
            decoded += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    if strict is not None:
        _check_decoded(path, decoded, declared, strict)


def _check_decoded(path: Path, decoded: int, declared: int, strict: bool) -> None:
    """A video file read to its end with more than one frame fewer than its container declares
    (a truncated download or copy): a warning line, with ``strict`` an :class:`FparError`; a count
    off by one is the declared estimate's error, not a damaged file."""
    if decoded < declared - 1:
        line = f"{path}: only {decoded} of the {declared} frames its container declares could be decoded (the file ends early)"
        if strict:
            raise FparError(f"{line}; refused (--strict)")
        log.warning("%s; using those %d", line, decoded)


def count_frames(path: str | Path, max_frames: int | None = None, *, strict: bool = False) -> int:
    """How many frames ``path`` (video file, GIF or image folder) has, at most ``max_frames``, without
    decoding their pictures: a video file is walked with ``grab()`` (no colour conversion, nothing
    kept), because the frame count a container declares is an estimate in some formats.

    A video whose frames end early (more than one frame fewer than its container declares: a
    truncated download or copy) is a warning line, and with ``strict`` an :class:`FparError`; a
    count off by one is the estimate's error, not a damaged file.

    :class:`FparError` naming the path when it is missing, unreadable or has no frames.
    """
    path = Path(path)
    if not path.exists():
        raise FparError(f"{path}: no such video file or folder")
    limit = max_frames if max_frames is not None else float("inf")
    if path.is_dir():
        n = len(image_files(path))
    elif path.suffix.lower() == ".gif":
        with _open_gif(path) as gif:
            n = getattr(gif, "n_frames", 1)
    else:
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise FparError(f"{path}: cannot open video (unknown format or corrupt file)")
            declared = int(max(capture.get(cv2.CAP_PROP_FRAME_COUNT), 0))
            n = 0
            while n < limit and capture.grab():
                n += 1
        finally:
            capture.release()
        if n < limit:  # read to its end
            _check_decoded(path, n, declared, strict)
    n = int(min(n, limit))
    if not n:
        raise FparError(f"{path}: no frames could be decoded (empty or not a video)")
    return n


def iter_frames_at(path: str | Path, numbers: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Decode only frames ``numbers`` (1-based positions, as :func:`count_frames` counts them) of
    ``path``, in increasing order, as ``(number, uint8 RGB frame)``: one frame in memory at a time,
    and the frames between them are skipped without colour conversion.

    :class:`FparError` naming the path when it ends before the last frame asked for.
    """
    path = Path(path)
    wanted = sorted(set(numbers))
    if not wanted:
        return
    if path.is_dir():
        files = image_files(path)
        if wanted[-1] > len(files):
            raise FparError(f"{path}: frame {wanted[-1]} requested but the folder holds {len(files)}")
        for number in wanted:
            yield number, read_frame(files[number - 1], color=True)
        return
    if path.suffix.lower() == ".gif":
        source = enumerate(_gif_pictures(path), 1)
        picture = lambda item: np.asarray(item.convert("RGB"))  # noqa: E731 (converted only when wanted)
    else:
        source = _grabbed(path)
        picture = lambda item: cv2.cvtColor(item(), cv2.COLOR_BGR2RGB)  # noqa: E731
    pending = iter(wanted)
    target = next(pending)
    for number, item in source:
        if number == target:
            yield number, picture(item)
            target = next(pending, None)
            if target is None:
                return
    raise FparError(f"{path}: ends before frame {target}")


def _gif_pictures(path: Path) -> Iterator[Image.Image]:
    with _open_gif(path) as gif:
        for frame in ImageSequence.Iterator(gif):
            frame.load()  # decoded here, where a truncated frame is one line naming the file
            yield frame


def _grabbed(path: Path) -> Iterator[tuple[int, Callable[[], np.ndarray]]]:
    """``(number, retrieve)`` per frame of a video file: ``retrieve()`` decodes that frame's picture."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise FparError(f"{path}: cannot open video (unknown format or corrupt file)")
        number = 0
        while capture.grab():
            number += 1

            def retrieve() -> np.ndarray:
                ok, bgr = capture.retrieve()
                if not ok:
                    raise FparError(f"{path}: frame {number} cannot be decoded")
                return bgr

            yield number, retrieve
    finally:
        capture.release()

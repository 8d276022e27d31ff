"""Reading a video into RGB frames: a video file, an animated GIF, or a folder of images.

The frames feed :mod:`fpar.prepare.dataset`, which writes the processed layout of
docs/method.md §2 (``rgb/rgb0001.png`` ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageSequence

from fpar.data.frames import read_frame
from fpar.errors import FparError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass
class VideoFrames:
    """Decoded frames, uint8 RGB ``(H, W, 3)``, and frames per second when the source says."""

    frames: list[np.ndarray]
    fps: float | None


def read_video(path: str | Path, max_frames: int | None = None) -> VideoFrames:
    """Read ``path`` (video file, GIF or image folder); :class:`FparError` naming it if unreadable or empty."""
    path = Path(path)
    if not path.exists():
        raise FparError(f"{path}: no such video file or folder")
    if path.is_dir():
        video = _read_folder(path, max_frames)
    elif path.suffix.lower() == ".gif":
        video = _read_gif(path, max_frames)  # OpenCV builds differ on GIF support; PIL always has it
    else:
        video = _read_capture(path, max_frames)
    if not video.frames:
        raise FparError(f"{path}: no frames could be decoded (empty or not a video)")
    return video


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


def _read_folder(folder: Path, max_frames: int | None) -> VideoFrames:
    files = image_files(folder)[:max_frames]
    return VideoFrames([read_frame(p, color=True) for p in files], fps=None)


def _read_gif(path: Path, max_frames: int | None) -> VideoFrames:
    try:
        with Image.open(path) as gif:
            frames = []
            for frame in ImageSequence.Iterator(gif):
                if max_frames is not None and len(frames) >= max_frames:
                    break
                frames.append(np.asarray(frame.convert("RGB")))
            duration_ms = gif.info.get("duration") or 0
    except (OSError, ValueError) as exc:
        raise FparError(f"{path}: cannot read GIF ({exc})") from None
    return VideoFrames(frames, fps=1000.0 / duration_ms if duration_ms else None)


def _read_capture(path: Path, max_frames: int | None) -> VideoFrames:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise FparError(f"{path}: cannot open video (unknown format or corrupt file)")
        fps = capture.get(cv2.CAP_PROP_FPS) or None
        frames = []
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    return VideoFrames(frames, fps=fps)

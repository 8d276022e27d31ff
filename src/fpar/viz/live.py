"""Frames of a live recognition, drawn: the current label under each frame and, for attention
models, the CAM over the part of the frame the model reads (``fpar stream --out``, docs/streaming.md)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fpar.errors import FparError
from fpar.io import atomic_path
from fpar.pictures import overlay_maps

# containers cv2.VideoWriter writes with the mp4v codec; a .gif goes through Pillow
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
OUT_SUFFIXES = (*VIDEO_SUFFIXES, ".gif")


def annotate(frame: np.ndarray, lines: list[str], attention: np.ndarray | None = None,
             box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``frame`` (uint8 RGB) with ``attention`` (h, w) blended over ``box`` ``(y, x, h, w)`` (outlined)
    and a dark band below holding ``lines``, in a font sized to the frame."""
    frame = np.ascontiguousarray(frame)
    if attention is not None and box is not None:
        y, x, height, width = box
        frame = frame.copy()
        region = frame[y:y + height, x:x + width]
        frame[y:y + height, x:x + width] = overlay_maps(region[None], np.asarray(attention)[None], alpha=0.4)[0]
        cv2.rectangle(frame, (x, y), (x + region.shape[1] - 1, y + region.shape[0] - 1), (255, 255, 255), 1)
    height, width = frame.shape[:2]
    size = max(10, min(width // 22, 28))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed size
        font = ImageFont.load_default()
    band = (size + 4) * len(lines) + 6
    image = Image.new("RGB", (width, height + band), (24, 24, 24))
    image.paste(Image.fromarray(frame), (0, 0))
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((6, height + 4 + i * (size + 4)), line, fill=(240, 240, 240), font=font)
    return np.asarray(image)


@contextlib.contextmanager
def video_writer(path: str | os.PathLike, fps: float) -> Iterator[Callable[[np.ndarray], None]]:
    """A function writing one uint8 RGB frame at a time to ``path`` (a video by its suffix, or a
    GIF); frames of another size than the first are resized to it. The file appears, whole, when
    the block ends without error (atomic); nothing is left otherwise."""
    path = Path(path)
    with atomic_path(path) as tmp:
        shape: list[tuple[int, int]] = []
        pictures: list[Image.Image] = []
        # cv2 picks the container by the file's suffix: write beside the temporary file, then move
        beside = tmp.with_name(tmp.name + path.suffix)
        writer = None

        def write(frame: np.ndarray) -> None:
            nonlocal writer
            if not shape:
                shape.append(frame.shape[:2])
            height, width = shape[0]
            if frame.shape[:2] != (height, width):
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            if path.suffix.lower() == ".gif":
                pictures.append(Image.fromarray(frame))
                return
            if writer is None:
                writer = cv2.VideoWriter(str(beside), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                if not writer.isOpened():
                    raise FparError(f"{path}: this OpenCV cannot write {path.suffix} videos; try .mp4 or .gif")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

        try:
            yield write
            if pictures:
                pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:],
                                 duration=max(20, round(1000 / fps)), loop=0)
            elif writer is not None:
                writer.release()
                writer = None
                os.replace(beside, tmp)
        finally:
            if writer is not None:
                writer.release()
            beside.unlink(missing_ok=True)

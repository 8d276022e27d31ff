"""Class-activation-map overlays on video frames as animated GIFs (the paper's §5 figures): captions
and the GIF file; the overlays themselves are :mod:`fpar.pictures` (``denormalize``, ``overlay_maps``)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from fpar.io import atomic_path


def caption_frames(frames: np.ndarray, lines: list[str]) -> np.ndarray:
    """``uint8 (T, H, W, 3)`` frames with a dark band below each: ``frame k/T`` and ``lines``
    (predicted and true class), in a font sized to the frame, so a still of the GIF explains itself."""
    from PIL import ImageDraw, ImageFont

    count, height, width = frames.shape[:3]
    size = max(10, width // 18)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed size
        font = ImageFont.load_default()
    texts = [[f"frame {k + 1}/{count}", *lines] for k in range(count)]
    band = (size + 4) * len(texts[0]) + 6
    out = []
    for frame, text in zip(frames, texts):
        image = Image.new("RGB", (width, height + band), (24, 24, 24))
        image.paste(Image.fromarray(frame), (0, 0))
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(text):
            draw.text((6, height + 4 + i * (size + 4)), line, fill=(240, 240, 240), font=font)
        out.append(np.asarray(image))
    return np.stack(out)


def save_gif(frames: np.ndarray, path: str | os.PathLike, fps: float = 4.0, scale: int = 1) -> None:
    """Write ``uint8 (T, H, W, 3)`` frames as a looping GIF, atomically."""
    images = [Image.fromarray(f) for f in frames]
    if scale != 1:
        images = [im.resize((im.width * scale, im.height * scale), Image.NEAREST) for im in images]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(1000 / fps), loop=0)

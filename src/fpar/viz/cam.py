"""Class-activation-map overlays on video frames, as animated GIFs (the paper's §5 figures)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import torch
from PIL import Image

from fpar.io import atomic_path

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def denormalize(frames: torch.Tensor) -> np.ndarray:
    """ImageNet-normalised ``(T, 3, H, W)`` frames back to ``uint8 (T, H, W, 3)`` RGB."""
    array = frames.detach().cpu().float().permute(0, 2, 3, 1).numpy()
    return np.clip((array * IMAGENET_STD + IMAGENET_MEAN) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def colorize(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(T, h, w)`` maps -> ``uint8 (T, H, W, 3)`` JET heat maps at ``size=(H, W)``.

    Each map is scaled to its own [min, max]: an attention map is a softmax over a few cells, so
    its absolute values say little; where it looks within the frame is what matters.
    """
    height, width = size
    out = []
    for m in np.asarray(maps, dtype=np.float32):
        m = cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR)
        span = float(m.max() - m.min())
        m = (m - m.min()) / span if span > 0 else np.zeros_like(m)
        heat = cv2.applyColorMap((m * 255).astype(np.uint8), cv2.COLORMAP_JET)
        out.append(cv2.cvtColor(heat, cv2.COLOR_BGR2RGB))
    return np.stack(out)


def overlay_maps(frames: np.ndarray, maps: np.ndarray, alpha: float = 0.3) -> np.ndarray:
    """Blend heat maps ``(T, h, w)`` over ``uint8 (T, H, W, 3)`` frames (light enough that the
    scene under the map stays readable)."""
    heat = colorize(maps, frames.shape[1:3]).astype(np.float32)
    blended = (1 - alpha) * frames.astype(np.float32) + alpha * heat
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


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

"""Spatial transforms of one clip (REFERENCE.md §1, "Spatial transforms").

All functions work on uint8 numpy images, ``(H, W, 3)`` or ``(H, W)``. A training clip gets
*one* :class:`TrainDraw` (flip, scale, corner) applied to every frame of every modality, so
RGB, flow and motion maps stay aligned. Order as the reference: resize the short side, flip,
then the multi-scale corner crop resized to ``crop x crop``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALES = (1.0, 0.875, 0.75, 0.65625)
POSITIONS = ("c", "tl", "tr", "bl", "br")
FIVE_CROP_ORDER = ("tl", "tr", "bl", "br", "c")
# Evaluation views: the centre crop, or five/ten crops whose scores are averaged. cv2 is imported
# inside the functions that resize, so the CLI and the settings read this without loading it.
VIEWS = ("center", "five", "ten")

RGB_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
RGB_STD = np.array([0.229, 0.224, 0.225], np.float32)
FLOW_MEAN = 0.449
FLOW_STD = 0.226


@dataclass(frozen=True)
class TrainDraw:
    """The random choices of one training clip, shared by all its frames and modalities."""

    flip: bool
    scale: float
    position: str


def draw_train(rng: np.random.Generator) -> TrainDraw:
    """Flip with p=0.5, one of :data:`SCALES`, one of :data:`POSITIONS`."""
    flip = bool(rng.random() < 0.5)
    scale = float(SCALES[rng.integers(len(SCALES))])
    position = POSITIONS[rng.integers(len(POSITIONS))]
    return TrainDraw(flip, scale, position)


def resize_short(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the short side is ``size`` (bilinear); the long side is ``int(size * long / short)``."""
    h, w = image.shape[:2]
    if min(h, w) == size:
        return image
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    import cv2

    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def crop_origin(height: int, width: int, side: int, position: str) -> tuple[int, int]:
    """Top-left ``(y, x)`` of a ``side x side`` square at ``position`` (centre rounds down)."""
    ys = {"t": 0, "b": height - side, "c": (height - side) // 2}
    xs = {"l": 0, "r": width - side, "c": (width - side) // 2}
    if position == "c":
        return ys["c"], xs["c"]
    return ys[position[0]], xs[position[1]]


def crop(image: np.ndarray, side: int, position: str) -> np.ndarray:
    y, x = crop_origin(image.shape[0], image.shape[1], side, position)
    return image[y : y + side, x : x + side]


def flip(image: np.ndarray, invert: bool = False) -> np.ndarray:
    """Mirror left-right; ``invert`` for x-flow, whose horizontal motion changes sign (255 - v)."""
    flipped = np.ascontiguousarray(image[:, ::-1])
    return 255 - flipped if invert else flipped


def train_crop(image: np.ndarray, draw: TrainDraw, size: int, is_flow_x: bool = False) -> np.ndarray:
    """Flip, take the multi-scale corner crop of side ``int(short * scale)``, resize to ``size``."""
    if draw.flip:
        image = flip(image, invert=is_flow_x)
    side = int(min(image.shape[:2]) * draw.scale)
    patch = np.ascontiguousarray(crop(image, side, draw.position))
    import cv2

    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)


def eval_views(image: np.ndarray, size: int, views: str, is_flow_x: bool = False) -> list[np.ndarray]:
    """Evaluation crops of an already resized frame.

    ``center``: one centre crop; ``five``: corners then centre (:data:`FIVE_CROP_ORDER`);
    ``ten``: the five crops followed by the same five of the flipped frame.
    """
    if views == "center":
        return [np.ascontiguousarray(crop(image, size, "c"))]
    five = [np.ascontiguousarray(crop(image, size, p)) for p in FIVE_CROP_ORDER]
    if views == "five":
        return five
    if views == "ten":
        # Cropping the flipped frame at corner p equals flipping the crop at the mirrored corner.
        mirrored = flip(image, invert=is_flow_x)
        return five + [np.ascontiguousarray(crop(mirrored, size, p)) for p in FIVE_CROP_ORDER]
    raise ValueError(f"views must be one of {', '.join(VIEWS)}, not {views!r}")


def normalize_rgb(frames: np.ndarray) -> np.ndarray:
    """uint8 ``(..., H, W, 3)`` -> float32 ``(..., 3, H, W)`` with ImageNet mean/std."""
    out = (frames.astype(np.float32) / 255.0 - RGB_MEAN) / RGB_STD
    return np.moveaxis(out, -1, -3)


def normalize_flow(flow: np.ndarray) -> np.ndarray:
    """uint8 flow images -> float32 with the scalar mean 0.449 / std 0.226."""
    return (flow.astype(np.float32) / 255.0 - FLOW_MEAN) / FLOW_STD


def scale_unit(maps: np.ndarray) -> np.ndarray:
    """Motion maps are not normalised, only brought to [0, 1]."""
    return maps.astype(np.float32) / 255.0

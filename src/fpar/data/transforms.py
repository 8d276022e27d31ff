"""Spatial transforms of one clip (docs/method.md §4).

All functions work on uint8 numpy images, ``(H, W, 3)`` or ``(H, W)``. A training clip gets
*one* :class:`TrainDraw` (flip, scale, corner) applied to every frame of every modality, so
RGB, flow and motion maps stay aligned. Order as the reference: resize the short side, flip,
then the multi-scale corner crop resized to ``crop x crop``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpar.data.normalization import FLOW_MEAN, FLOW_STD, RGB_MEAN, RGB_STD

SCALES = (1.0, 0.875, 0.75, 0.65625)
POSITIONS = ("c", "tl", "tr", "bl", "br")
FIVE_CROP_ORDER = ("tl", "tr", "bl", "br", "c")
# Evaluation views: the centre crop, or five/ten crops whose scores are averaged. cv2 is imported
# inside the functions that resize, so the CLI and the settings read this without loading it.
VIEWS = ("center", "five", "ten")


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


def resize_like_first(image: np.ndarray, size: int, first: tuple[int, int] | None) -> np.ndarray:
    """A frame of a video read on the fly (``fpar predict``, a stream): its short side resized to
    ``size`` (:func:`resize_short`), then, where it differs from ``first`` (the first frame's
    ``(h, w)`` after that resize; None for the first frame itself), brought to that size
    (bilinear), so a folder of images of mixed sizes gives one shape per clip."""
    image = resize_short(image, size)
    if first is None or image.shape[:2] == tuple(first):
        return image
    import cv2

    height, width = first
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


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


# --- whole clips -----------------------------------------------------------------------------
# The functions below take ``(T, H, W[, 3])`` uint8 clips (a memory map of an instance's frames
# plus the 0-based ``pick`` of the clip) and return exactly what the per-frame functions above
# return frame by frame, stacked. Each crop window is taken from the unflipped frames, so the
# one copy (the gather of the picked frames' windows) reads whole rows; mirroring and x-flow
# inversion are then one cv2/numpy call on the whole clip (a mirror of a window is the window
# at the mirrored place of the mirrored frame; inversion commutes with both). The resize writes
# each frame into one preallocated clip buffer: cv2's SIMD bilinear kernels cover 1-4 channels,
# and folding T into the channel axis to make it one call measured five times slower than T
# calls plus their transposes.


def _window(clip: np.ndarray, side: int, position: str, mirror: bool, invert: bool,
            pick: np.ndarray | None) -> np.ndarray:
    """Frames ``pick`` of the ``side`` square at ``position`` of the clip mirrored if ``mirror``
    (then inverted if ``invert``), as a new ``(T', side, side[, C])`` array."""
    import cv2

    height, width = clip.shape[1:3]
    y, x = crop_origin(height, width, side, position)
    if mirror:
        x = width - x - side  # where that window of the mirrored frame lies in the frame
    frames = slice(None) if pick is None else pick
    patch = np.ascontiguousarray(clip[frames, y : y + side, x : x + side])
    if mirror:
        # Rows of all frames stacked: flipping each row mirrors every frame in one call.
        rows = patch.reshape(-1, *patch.shape[2:])
        patch = cv2.flip(rows, 1).reshape(patch.shape)
        if invert:
            np.subtract(255, patch, out=patch)
    return patch


def resize_clip(clip: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of every square frame of ``(T, s, s[, C])`` to ``size x size``."""
    import cv2

    if clip.shape[1] == size:
        return np.ascontiguousarray(clip)
    out = np.empty((clip.shape[0], size, size) + clip.shape[3:], np.uint8)
    for t in range(clip.shape[0]):
        cv2.resize(np.ascontiguousarray(clip[t]), (size, size), dst=out[t], interpolation=cv2.INTER_LINEAR)
    return out


def train_crop_clip(clip: np.ndarray, draw: TrainDraw, size: int, is_flow_x: bool = False,
                    pick: np.ndarray | None = None) -> np.ndarray:
    """:func:`train_crop` of every frame of a ``(T, H, W[, 3])`` clip (of frames ``pick``, 0-based,
    if given) at once: ``(T', size, size[, 3])``."""
    side = int(min(clip.shape[1:3]) * draw.scale)
    return resize_clip(_window(clip, side, draw.position, draw.flip, is_flow_x, pick), size)


def eval_views_clip(clip: np.ndarray, size: int, views: str, is_flow_x: bool = False,
                    pick: np.ndarray | None = None) -> np.ndarray:
    """:func:`eval_views` of every frame of a ``(T, H, W[, 3])`` clip (of frames ``pick``, 0-based,
    if given): ``(V, T', size, size[, 3])``."""
    if views == "center":
        places = [("c", False)]
    elif views in ("five", "ten"):
        places = [(p, False) for p in FIVE_CROP_ORDER] + [(p, True) for p in FIVE_CROP_ORDER if views == "ten"]
    else:
        raise ValueError(f"views must be center, five or ten, not {views!r}")
    return np.stack([_window(clip, size, p, mirror, is_flow_x, pick) for p, mirror in places])


# --- normalisation ---------------------------------------------------------------------------
# A uint8 input has 256 possible values, so each normalisation is computed once per value (with
# the float32 arithmetic that defines it) into a table, and a clip is normalised by table look-up
# (cv2.LUT: one pass, no float temporaries). The results are the formula's, bit for bit; on a
# 16-frame 224px RGB clip this is over ten times faster than the arithmetic on the whole array.


def _rgb_formula(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.float32) / 255.0 - RGB_MEAN) / RGB_STD


def _flow_formula(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.float32) / 255.0 - FLOW_MEAN) / FLOW_STD


def _unit_formula(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float32) / 255.0


_BYTES = np.arange(256, dtype=np.uint8)
_RGB_TABLES = np.ascontiguousarray(_rgb_formula(np.repeat(_BYTES[:, None], 3, axis=1)).T)  # (3, 256)
_FLOW_TABLE = _flow_formula(_BYTES)
_UNIT_TABLE = _unit_formula(_BYTES)


def _look_up(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    import cv2

    values = np.ascontiguousarray(values)
    out = np.empty(values.shape, np.float32)
    if values.size:
        width = values.shape[-1] if values.ndim > 1 else values.size
        cv2.LUT(values.reshape(-1, width), table, dst=out.reshape(-1, width))
    return out


def normalize_rgb(frames: np.ndarray) -> np.ndarray:
    """uint8 ``(..., H, W, 3)`` -> float32 ``(..., 3, H, W)`` (contiguous) with ImageNet mean/std."""
    import cv2

    *lead, h, w, _ = frames.shape
    flat = np.ascontiguousarray(frames).reshape(-1, h, w, 3)
    out = np.empty((flat.shape[0], 3, h, w), np.float32)
    for frame, planes in zip(flat, out):
        for channel, plane in enumerate(cv2.split(frame) if h * w else ()):
            cv2.LUT(plane, _RGB_TABLES[channel], dst=planes[channel])
    return out.reshape(*lead, 3, h, w)


def normalize_flow(flow: np.ndarray) -> np.ndarray:
    """uint8 flow images -> float32 with the scalar mean :data:`FLOW_MEAN` / std :data:`FLOW_STD`."""
    return _look_up(flow, _FLOW_TABLE)


def scale_unit(maps: np.ndarray) -> np.ndarray:
    """Motion maps are not normalised, only brought to [0, 1]."""
    return _look_up(maps, _UNIT_TABLE)

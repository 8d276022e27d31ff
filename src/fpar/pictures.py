"""Pictures as arrays, for the layers that draw them: frames back to RGB, heat maps over frames,
a confusion matrix as rates and as an image. Nothing here writes a file: ``fpar.viz`` saves GIFs
and figures, the engine's image logging (``fpar.engine.callbacks.ValidationPictures``) sends the
arrays to its loggers. OpenCV and matplotlib load inside the functions that use them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fpar.data.normalization import RGB_MEAN, RGB_STD


def denormalize(frames: Any) -> np.ndarray:
    """ImageNet-normalised ``(T, 3, H, W)`` frames (a tensor) back to ``uint8 (T, H, W, 3)`` RGB."""
    array = frames.detach().cpu().float().permute(0, 2, 3, 1).numpy()
    return np.clip((array * RGB_STD + RGB_MEAN) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def colorize(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(T, h, w)`` maps -> ``uint8 (T, H, W, 3)`` JET heat maps at ``size=(H, W)``.

    Each map is scaled to its own [min, max]: an attention map is a softmax over a few cells, so
    its absolute values say little; where it looks within the frame is what matters.
    """
    import cv2

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


def attention_strip(frames: Any, attention: Any) -> np.ndarray:
    """ImageNet-normalised frames ``(T, 3, H, W)`` under their attention maps ``(T, h, w)`` (tensors),
    side by side, as ``uint8 (H, T * W, 3)``: the overlays of :func:`overlay_maps` in one image."""
    overlaid = overlay_maps(denormalize(frames), attention.detach().cpu().float().numpy())
    return np.concatenate(list(overlaid), axis=1)


def confusion_rates(matrix: Any) -> np.ndarray:
    """A confusion matrix (rows: true class, columns: predicted) normalised per row; a class with
    no clip keeps a row of zeros."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def confusion_picture(matrix: Any, cell: int | None = None) -> np.ndarray:
    """A row-normalised confusion matrix as an ``uint8 (H, W, 3)`` picture, one ``cell``-pixel square
    per entry, in the colours of the report's confusion figure (``Blues``)."""
    from matplotlib import colormaps

    rates = confusion_rates(matrix)
    cell = cell or max(4, 256 // len(rates))
    picture = (colormaps["Blues"](rates)[..., :3] * 255 + 0.5).astype(np.uint8)
    return picture.repeat(cell, axis=0).repeat(cell, axis=1)

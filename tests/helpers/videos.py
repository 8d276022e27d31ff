"""Frames with real motion, for the tests of everything that reads video: predict, streams, flow."""

from __future__ import annotations

import numpy as np


def moving_square(count: int = 9) -> list[np.ndarray]:
    """``count`` RGB uint8 frames (60 x 80): a textured square sliding right over a textured, still
    background, 3 pixels a frame, back to the left edge in long videos: real motion for the flow."""
    rng = np.random.default_rng(0)
    background = (rng.random((60, 80, 3)) * 120).astype(np.uint8)
    patch = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
    frames = []
    for k in range(count):
        frame = background.copy()
        x = 10 + 3 * k % 54
        frame[20:36, x:x + 16] = patch
        frames.append(frame)
    return frames

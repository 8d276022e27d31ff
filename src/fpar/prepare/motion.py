"""Motion maps: 8-bit masks of what moves in the scene, not of what the camera's motion moves.

docs/method.md §2: the MS-task paper's maps come from improved dense trajectories, which remove
camera motion before keeping moving points. We do the same on the dense flow field:

1. take correspondences ``p -> p + flow(p)`` on a regular grid;
2. fit the dominant motion as a homography with RANSAC (the camera's motion: for a head-worn
   camera most of the image is background, so the background is the RANSAC consensus);
3. subtract the flow that homography induces at every pixel;
4. threshold the residual magnitude (default 1 px) -> 0/255, and drop isolated specks.

The maps are binary (0/255) rather than graded: the MS head's target is the map resized to 7x7
bilinearly, which turns a binary map into the moving fraction of each cell anyway -- what both
the classification (threshold 0 or 0.5) and regression variants of docs/method.md §8 expect.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

DEFAULT_THRESHOLD = 1.0  # px of residual motion; TV-L1 noise on still background stays well below
DEFAULT_GRID_STEP = 8  # px between sampled correspondences


def camera_flow(flow: np.ndarray, grid_step: int = DEFAULT_GRID_STEP) -> np.ndarray:
    """The flow induced by the dominant (camera) motion, fitted as a homography: float32 ``(H, W, 2)``."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[grid_step // 2 : h : grid_step, grid_step // 2 : w : grid_step]
    src = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    homography = None
    if len(src) >= 4:
        homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, ransacReprojThreshold=1.0)
    if homography is None:
        # Too few points or a degenerate fit: fall back to the median translation.
        return np.broadcast_to(np.median(flow.reshape(-1, 2), axis=0), flow.shape).astype(np.float32)
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=-1)
    moved = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), homography).reshape(h, w, 2)
    return (moved - grid).astype(np.float32)


def motion_map(
    flow: np.ndarray, threshold: float = DEFAULT_THRESHOLD, grid_step: int = DEFAULT_GRID_STEP
) -> np.ndarray:
    """uint8 ``(H, W)`` mask, 255 where the flow minus the camera's motion exceeds ``threshold`` px."""
    residual = flow - camera_flow(flow, grid_step)
    mask = (np.linalg.norm(residual, axis=-1) > threshold).astype(np.uint8) * 255
    # An opening removes single-pixel flow noise but keeps hands and objects.
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))


def motion_maps(
    flows: Iterable[np.ndarray], threshold: float = DEFAULT_THRESHOLD, grid_step: int = DEFAULT_GRID_STEP
) -> list[np.ndarray]:
    """:func:`motion_map` of each flow field."""
    return [motion_map(flow, threshold, grid_step) for flow in flows]

"""Camera-motion compensation for "warp" flow (docs/prepare.md).

The camera's motion between two frames is modelled as a homography, fitted with RANSAC to sparse
correspondences: Shi-Tomasi corners of the first frame tracked into the second by pyramidal
Lucas-Kanade, kept only where tracking back lands within a pixel of the start (hands and
occlusions break that). The second frame resampled through the homography lines its background
up with the first, so flow between the first and the stabilised second holds what moved in the
scene (hands, objects) and not the head's motion, as improved dense trajectories and dense_flow's
warp mode do. Too few correspondences or a degenerate fit give the identity: the frame is left as
it is rather than warped by a guess.

Egocentric uploads are often letterboxed and carry burned-in overlays (a timestamp, a camera's
logo), whose corners are far stronger than a dim scene's: corners are therefore detected per cell
of a grid (each cell's strongest, so they spread over the picture), and only where the picture is:
black bars that stay black in both frames, and patches that do not change between the frames while
the camera moves (a static overlay), are left out; a changing overlay (the timestamp's digits) is
outvoted by the background in the RANSAC fit.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_CORNERS = 400
GRID = 4  # cells per side for corner detection
BAR_LEVEL = 20  # grey level at or below which a row or column of both frames is a black bar
STATIC_LEVEL = 2  # grey levels a patch may change by and still be an overlay that did not move
MIN_MATCHES = 12  # below this a homography (8 unknowns) from RANSAC is not trustworthy
RANSAC_THRESHOLD = 1.0  # px
ROUND_TRIP_TOLERANCE = 1.0  # px: forward-backward tracking error allowed for a correspondence


def camera_homography(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """3x3 float64 homography taking pixel ``(x, y, 1)`` of grey ``first`` to its place in grey ``second``."""
    identity = np.eye(3)
    height, width = first.shape
    min_distance = max(3, min(height, width) // 40)
    corners = _spread_corners(first, _picture_mask(first, second), min_distance)
    if corners is None or len(corners) < MIN_MATCHES:
        return identity
    lk = {"winSize": (21, 21), "maxLevel": 3}
    forward, ok_fwd, _ = cv2.calcOpticalFlowPyrLK(first, second, corners, None, **lk)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(second, first, forward, None, **lk)
    round_trip = np.linalg.norm((back - corners).reshape(-1, 2), axis=1)
    good = (ok_fwd.ravel() == 1) & (ok_back.ravel() == 1) & (round_trip < ROUND_TRIP_TOLERANCE)
    if good.sum() < MIN_MATCHES:
        return identity
    homography, inliers = cv2.findHomography(corners[good], forward[good], cv2.RANSAC, RANSAC_THRESHOLD)
    if homography is None or inliers.sum() < MIN_MATCHES or not _plausible(homography, width, height):
        return identity
    return homography


def _picture_mask(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """uint8 mask (255: usable) of where the moving picture is: not the black bars of a letterbox
    or pillarbox, nor patches left unchanged between the frames (static overlays, flat areas)."""
    dark = (first <= BAR_LEVEL) & (second <= BAR_LEVEL)
    bars = dark.mean(axis=1, keepdims=True) > 0.95
    bars = bars | (dark.mean(axis=0, keepdims=True) > 0.95)
    changed = (cv2.absdiff(first, second) > STATIC_LEVEL).astype(np.uint8)
    # a corner's 7x7 patch must change somewhere; the bars' edges are kept out by a margin too
    moving = cv2.dilate(changed, np.ones((7, 7), np.uint8)) > 0
    usable = (moving & ~bars).astype(np.uint8)
    return cv2.erode(usable, np.ones((9, 9), np.uint8)) * 255 if bars.any() else usable * 255


def _spread_corners(first: np.ndarray, mask: np.ndarray, min_distance: int) -> np.ndarray | None:
    """Shi-Tomasi corners of ``first`` within ``mask``, the strongest of each grid cell: (N, 1, 2) float32."""
    height, width = first.shape
    found = []
    for row in range(GRID):
        for col in range(GRID):
            y0, y1 = row * height // GRID, (row + 1) * height // GRID
            x0, x1 = col * width // GRID, (col + 1) * width // GRID
            if not mask[y0:y1, x0:x1].any():
                continue
            cell = cv2.goodFeaturesToTrack(first[y0:y1, x0:x1], MAX_CORNERS // GRID ** 2, 0.01, min_distance,
                                           mask=np.ascontiguousarray(mask[y0:y1, x0:x1]), blockSize=7)
            if cell is not None:
                found.append(cell + np.array([x0, y0], np.float32))
    return np.concatenate(found) if found else None


def stabilise(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``second`` (grey uint8) resampled so that its background lines up with ``first``'s.

    Pixel ``p`` of the result is ``second`` at ``H p``; where that falls outside the frame the
    nearest edge pixel is used, so no black border shows up as motion.
    """
    homography = camera_homography(first, second)
    if np.array_equal(homography, np.eye(3)):
        return second
    height, width = second.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpPerspective(second, homography, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _plausible(homography: np.ndarray, width: int, height: int) -> bool:
    """Between consecutive frames the camera moves a little: the frame's corners stay within half
    a frame of where they were and the image does not flip (RANSAC can fit nonsense to a few
    points on one plane)."""
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64).reshape(-1, 1, 2)
    moved = cv2.perspectiveTransform(corners, homography).reshape(-1, 2)
    shift = np.linalg.norm(moved - corners.reshape(-1, 2), axis=1).max()
    return bool(np.linalg.det(homography[:2, :2]) > 0 and shift < 0.5 * max(width, height))

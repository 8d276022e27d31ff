"""Camera-motion compensation for "warp" flow (docs/prepare.md).

The camera's motion between two frames is modelled as a homography, fitted with RANSAC to sparse
correspondences: Shi-Tomasi corners of the first frame tracked into the second by pyramidal
Lucas-Kanade, kept only where tracking back lands within a pixel of the start (hands and
occlusions break that). The second frame resampled through the homography lines its background
up with the first, so flow between the first and the stabilised second holds what moved in the
scene (hands, objects) and not the head's motion, as improved dense trajectories and dense_flow's
warp mode do. Too few correspondences or a degenerate fit give the identity: the frame is left as
it is rather than warped by a guess.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_CORNERS = 400
MIN_MATCHES = 12  # below this a homography (8 unknowns) from RANSAC is not trustworthy
RANSAC_THRESHOLD = 1.0  # px
ROUND_TRIP_TOLERANCE = 1.0  # px: forward-backward tracking error allowed for a correspondence


def camera_homography(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """3x3 float64 homography taking pixel ``(x, y, 1)`` of grey ``first`` to its place in grey ``second``."""
    identity = np.eye(3)
    height, width = first.shape
    min_distance = max(3, min(height, width) // 40)
    corners = cv2.goodFeaturesToTrack(first, MAX_CORNERS, 0.01, min_distance, blockSize=7)
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

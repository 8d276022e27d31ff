"""Warp flow: the camera's motion is removed, the scene's kept (docs/prepare.md)."""

import weakref

import cv2
import numpy as np
import pytest

from fpar.errors import FparError
from fpar.prepare.flow import flow_estimator, pair_flows
from fpar.prepare.warp import camera_homography, stabilise

from .conftest import texture

SIZE = (72, 96)
needs_opencv_tvl1 = pytest.mark.skipif(not hasattr(cv2, "optflow"), reason="needs opencv-contrib")


def panned(scene: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """The view after the camera moved: content at ``p`` is now at ``homography @ p``."""
    return cv2.warpPerspective(scene, homography, scene.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


PAN = np.array([[1.01, 0.01, 2.5], [-0.01, 1.01, -1.5], [0.0, 0.0, 1.0]])


def test_pure_pan_gives_near_zero_flow():
    first = texture(*SIZE, seed=7)
    second = panned(first, PAN)
    points = np.mgrid[10:90:20, 10:70:20].reshape(2, -1).T.reshape(-1, 1, 2).astype(np.float64)
    fitted = cv2.perspectiveTransform(points, camera_homography(first, second))
    np.testing.assert_allclose(fitted, cv2.perspectiveTransform(points, PAN), atol=0.3)
    flow = next(pair_flows([first, second], warp=True))
    assert np.linalg.norm(flow, axis=-1).mean() < 0.2
    unwarped = next(pair_flows([first, second]))
    assert np.linalg.norm(unwarped, axis=-1).mean() > 2


@pytest.mark.parametrize("method", ["tvl1", pytest.param("tvl1-opencv", marks=needs_opencv_tvl1)])
def test_moving_object_keeps_its_motion_over_a_pan(method):
    camera, own = np.array([3.0, -1.0]), np.array([-2.0, 2.0])  # px per frame, image coordinates
    background = texture(SIZE[0] + 20, SIZE[1] + 20, seed=8)
    square = texture(20, 20, seed=9)

    def frame(offset: np.ndarray, square_at: tuple[int, int]) -> np.ndarray:
        x, y = (10 - offset).astype(int)
        image = background[y : y + SIZE[0], x : x + SIZE[1]].copy()
        image[square_at[1] : square_at[1] + 20, square_at[0] : square_at[0] + 20] = square
        return image

    first = frame(np.zeros(2), (30, 26))
    second = frame(camera, (30 + int(own[0]), 26 + int(own[1])))
    flow = next(pair_flows([first, second], method=method, warp=True))
    in_square = np.median(flow[30:42, 34:46].reshape(-1, 2), axis=0)
    np.testing.assert_allclose(in_square, own - camera, atol=0.5)  # relative to the camera
    still = np.ones(SIZE, bool)
    still[20:56, 20:66] = False
    assert np.linalg.norm(flow[still], axis=-1).mean() < 0.3


def test_featureless_frames_are_left_alone():
    flat = np.full(SIZE, 90, np.uint8)
    np.testing.assert_array_equal(camera_homography(flat, flat), np.eye(3))
    assert stabilise(flat, flat) is flat


def test_pair_flows_streams_in_order_holding_few_frames():
    batch_size, n = 3, 9
    frames = [texture(*SIZE, seed=20)]
    for _ in range(n - 1):
        frames.append(np.roll(frames[-1], 1, axis=1))
    live = {"now": 0, "most": 0}

    def release() -> None:
        live["now"] -= 1

    def produce():
        for image in frames:
            copy = image.copy()
            weakref.finalize(copy, release)
            live["now"] += 1
            live["most"] = max(live["most"], live["now"])
            yield copy
            del copy

    flows = list(pair_flows(produce(), batch_size=batch_size))
    assert len(flows) == n - 1 and all(f.shape == SIZE + (2,) and f.dtype == np.float32 for f in flows)
    assert live["most"] <= batch_size + 1
    estimate = flow_estimator("tvl1")
    for k in (0, 4, 7):  # batching does not change a pair's flow
        np.testing.assert_allclose(flows[k], estimate(frames[k], frames[k + 1]), atol=1e-4)


def test_pair_flows_user_errors():
    frames = [np.zeros(SIZE, np.uint8)] * 2
    with pytest.raises(FparError, match="unknown flow method 'raft'"):
        pair_flows(frames, method="raft")
    with pytest.raises(FparError, match="needs method tvl1"):
        pair_flows(frames, method="dis", device="cuda")
    with pytest.raises(FparError, match="unknown device"):
        pair_flows(frames, device="gpu0")
    with pytest.raises(FparError, match="batch size"):
        pair_flows(frames, batch_size=0)
    with pytest.raises(FparError, match="frames of one size"):
        list(pair_flows([np.zeros(SIZE, np.uint8), np.zeros((40, 40), np.uint8)], method="dis"))


def letterboxed(scene: np.ndarray, stamp: str, bar: int = 14) -> np.ndarray:
    """``scene`` as an upload shows it: black bars above and below, a burned-in timestamp."""
    frame = scene.copy()
    frame[:bar], frame[-bar:] = 0, 0
    cv2.rectangle(frame, (4, bar + 2), (74, bar + 16), 0, -1)
    cv2.putText(frame, stamp, (6, bar + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1, cv2.LINE_AA)
    return frame


def test_warp_holds_on_a_letterboxed_pan_with_a_burned_in_timestamp():
    """The bars and the text gave the strongest corners: the fit kept the camera's motion in."""
    # a dim, soft scene (the usual head-mounted footage): the text's corners are far stronger than its own
    scene = (110 + 0.12 * (texture(100, 128, seed=11).astype(np.float32) - 128)).astype(np.uint8)
    first, second = letterboxed(scene, "12:04:31"), letterboxed(panned(scene, PAN), "12:04:32")
    picture = np.zeros(first.shape, bool)
    picture[14 + 18:-14 - 6, 6:-6] = True  # inside the bars, below the timestamp, clear of the edges
    warped = next(pair_flows([first, second], warp=True))
    plain = next(pair_flows([first, second]))
    assert np.linalg.norm(plain, axis=-1)[picture].mean() > 2
    assert np.linalg.norm(warped, axis=-1)[picture].mean() <= 0.5

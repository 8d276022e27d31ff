"""The PyTorch TV-L1 recovers known motion, agrees with OpenCV's, and batches exactly (docs/prepare.md)."""

import cv2
import numpy as np
import pytest
import torch

from fpar.prepare.flow import compute_flow, quantize_flow
from fpar.errors import FparError
from fpar.prepare import tvl1
from fpar.prepare.tvl1 import median_shifted, resize_linear, tvl1_flow
from fpar.prepare.video import read_video

from .conftest import texture
from .test_flow import shifted_pair

REAL_CLIP = "/work/shared/real/open_mayo_2.gif"
needs_opencv_tvl1 = pytest.mark.skipif(not hasattr(cv2, "optflow"), reason="needs opencv-contrib")


def rotated_pair(degrees: float, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A texture, the same rotated about its centre, and the true flow (from the first to the second)."""
    first = texture(height, width, seed=5)
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    second = cv2.warpAffine(first, rotation, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.mgrid[:height, :width].astype(np.float64)
    moved = np.stack([xs, ys, np.ones_like(xs)], -1) @ rotation.T
    return first, second, (moved - np.stack([xs, ys], -1)).astype(np.float32)


@pytest.mark.parametrize("method", ["tvl1", pytest.param("tvl1-opencv", marks=needs_opencv_tvl1)])
@pytest.mark.parametrize("dx, dy", [(3, 0), (-2, 1)])
def test_translation_recovered(method, dx, dy):
    first, second = shifted_pair(dx, dy, 72, 96)
    flow = compute_flow(first, second, method=method)
    assert flow.shape == (72, 96, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(np.median(flow[8:-8, 8:-8].reshape(-1, 2), axis=0), [dx, dy], atol=0.2)


@pytest.mark.parametrize("method", ["tvl1", pytest.param("tvl1-opencv", marks=needs_opencv_tvl1)])
def test_rotation_recovered(method):
    first, second, truth = rotated_pair(4.0, 72, 96)
    flow = compute_flow(first, second, method=method)
    error = np.linalg.norm(flow - truth, axis=-1)[10:-10, 10:-10]
    assert np.abs(truth).max() > 3  # the corners move several pixels
    assert error.mean() < 0.25


@needs_opencv_tvl1
def test_agrees_with_opencv_on_real_frames():
    frames = read_video(REAL_CLIP, max_frames=7).frames
    grey = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (120, 120), interpolation=cv2.INTER_AREA) for f in frames]
    ours = compute_flow(grey[5], grey[6], method="tvl1")
    theirs = compute_flow(grey[5], grey[6], method="tvl1-opencv")
    assert np.linalg.norm(theirs, axis=-1).mean() > 1  # the camera moves: not a trivially still pair
    assert np.linalg.norm(ours - theirs, axis=-1).mean() <= 0.1
    levels = np.abs(np.stack(quantize_flow(ours)).astype(int) - np.stack(quantize_flow(theirs))).max(0)
    assert (levels <= 1).mean() >= 0.95


def test_batch_equals_pair_by_pair():
    pairs = [shifted_pair(2, 0, 48, 64), shifted_pair(0, 0, 48, 64), rotated_pair(3.0, 48, 64)[:2]]
    firsts, seconds = (np.stack(images) for images in zip(*pairs))
    batch = tvl1_flow(firsts, seconds)
    assert batch.shape == (3, 48, 64, 2)
    for k, (first, second) in enumerate(pairs):
        torch.testing.assert_close(batch[k], tvl1_flow(first, second), atol=1e-4, rtol=0)


def test_resize_matches_opencv():
    image = np.random.default_rng(0).random((37, 50)).astype(np.float32) * 255
    ours = resize_linear(torch.from_numpy(image), (30, 40), 1 / 0.8).numpy()
    np.testing.assert_allclose(ours, cv2.resize(image, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR), atol=1e-3)
    up = resize_linear(torch.from_numpy(image), (50, 71)).numpy()
    np.testing.assert_allclose(up, cv2.resize(image, (71, 50), interpolation=cv2.INTER_LINEAR), atol=1e-3)


def test_device_median_matches_opencv():
    """The median used off the CPU (checked here on the CPU) is cv2.medianBlur's, borders included."""
    flow = np.random.default_rng(1).normal(0, 2, (2, 2, 23, 31)).astype(np.float32)
    ours = median_shifted(torch.from_numpy(flow), 5).numpy()
    theirs = np.stack([[cv2.medianBlur(plane, 5) for plane in pair] for pair in flow])
    np.testing.assert_array_equal(ours, theirs)


def test_mismatched_images_are_a_user_error():
    with pytest.raises(FparError, match="of one size"):
        tvl1_flow(np.zeros((20, 30), np.uint8), np.zeros((20, 31), np.uint8))


def test_device_median_path_gives_the_same_flow(monkeypatch):
    first, second = shifted_pair(2, -1, 48, 64)
    on_cpu = tvl1_flow(first, second)
    monkeypatch.setattr(tvl1, "_median5", lambda flow, size: flow.copy_(median_shifted(flow, size)))
    torch.testing.assert_close(tvl1_flow(first, second), on_cpu, atol=1e-5, rtol=0)

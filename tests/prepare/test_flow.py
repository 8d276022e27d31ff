"""Flow methods recover a known shift; dense_flow's 8-bit coding (REFERENCE.md §1)."""

import numpy as np
import pytest

from fpar.errors import FparError
from fpar.prepare.flow import compute_flow, dequantize_flow, flow_to_rgb, quantize_flow

from .conftest import texture


def shifted_pair(dx: int, dy: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Two crops of one texture; the second's content is moved by (dx, dy) px."""
    big = texture(height + 20, width + 20, seed=3)
    first = big[10 : 10 + height, 10 : 10 + width]
    second = big[10 - dy : 10 - dy + height, 10 - dx : 10 - dx + width]
    return first, second


@pytest.mark.parametrize("dx, dy", [(3, 0), (-2, 0), (0, 4), (2, -3)])
def test_dis_recovers_shift(dx, dy):
    first, second = shifted_pair(dx, dy, 96, 128)
    flow = compute_flow(first, second, method="dis")
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    median = np.median(flow[10:-10, 10:-10].reshape(-1, 2), axis=0)
    np.testing.assert_allclose(median, [dx, dy], atol=0.3)


def test_tvl1_recovers_shift_and_accepts_rgb():
    first, second = shifted_pair(-2, 1, 48, 64)
    rgb = [np.repeat(g[..., None], 3, axis=2) for g in (first, second)]
    flow = compute_flow(*rgb, method="tvl1")
    np.testing.assert_allclose(np.median(flow[8:-8, 8:-8].reshape(-1, 2), axis=0), [-2, 1], atol=0.3)


def test_unknown_method_is_a_user_error():
    with pytest.raises(FparError, match="unknown flow method 'raft'"):
        compute_flow(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), method="raft")


def test_quantize_still_is_128_and_bound_clips():
    flow = np.array([[[0.0, 0.0], [20.0, -20.0], [35.0, -99.0], [10.0, -10.0]]], np.float32)
    x, y = quantize_flow(flow, bound=20.0)
    assert x.dtype == np.uint8 and x.shape == (1, 4)
    assert x.tolist() == [[128, 255, 255, 191]]
    assert y.tolist() == [[128, 0, 0, 64]]


def test_quantize_round_trip_within_half_a_step():
    flow = np.random.default_rng(0).uniform(-15, 15, (20, 30, 2)).astype(np.float32)
    for bound in (20.0, 16.0):
        back = dequantize_flow(*quantize_flow(flow, bound), bound=bound)
        assert back.shape == flow.shape
        assert np.abs(back - flow).max() <= bound / 255 + 1e-5


def test_flow_to_rgb_dark_where_still_bright_where_moving():
    flow = np.zeros((4, 4, 2), np.float32)
    flow[:, 2:, 0] = 5.0
    image = flow_to_rgb(flow, max_magnitude=5.0)
    assert image.shape == (4, 4, 3) and image.dtype == np.uint8
    assert image[:, :2].max() == 0 and image[:, 2:].max() == 255

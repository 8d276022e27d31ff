"""Spatial transforms against hand-computed crops (REFERENCE.md §1, "Spatial transforms")."""

import numpy as np
import pytest

from fpar.data import transforms as T

from .conftest import ramp


def test_resize_short_side_keeps_the_aspect_ratio():
    assert T.resize_short(np.zeros((30, 40, 3), np.uint8), 15).shape == (15, 20, 3)  # 40 * 15/30 = 20
    assert T.resize_short(np.zeros((40, 30), np.uint8), 15).shape == (20, 15)
    assert T.resize_short(np.zeros((120, 160), np.uint8), 128).shape == (128, 170)  # int(170.67)


@pytest.mark.parametrize(
    "position, origin", [("c", (5, 10)), ("tl", (0, 0)), ("tr", (0, 20)), ("bl", (10, 0)), ("br", (10, 20))]
)
def test_crop_origin_of_each_position(position, origin):
    assert T.crop_origin(30, 40, 20, position) == origin


def test_train_crop_takes_the_scaled_corner_and_resizes_it():
    image = ramp("mmaps", 1, 30, 40)  # value = column index
    draw = T.TrainDraw(flip=False, scale=0.75, position="tr")
    out = T.train_crop(image, draw, size=22)
    # side = int(30 * 0.75) = 22 at the top-right: columns 18..39, already 22 wide.
    assert out.shape == (22, 22)
    assert out[0].tolist() == list(range(18, 40))


def test_flip_inverts_x_flow_but_not_y_flow():
    image = ramp("flow_x", 1, 30, 40)
    draw = T.TrainDraw(flip=True, scale=1.0, position="c")
    x = T.train_crop(image, draw, size=30, is_flow_x=True)
    y = T.train_crop(image, draw, size=30, is_flow_x=False)
    # Flipped columns 39..0, centre crop of 30 starts at 5: columns 34..5.
    assert y[0].tolist() == list(range(34, 4, -1))
    assert x[0].tolist() == [255 - v for v in range(34, 4, -1)]


def test_eval_views_shapes_and_order():
    image = ramp("mmaps", 1, 30, 40)
    assert [v[0, 0] for v in T.eval_views(image, 20, "center")] == [10]
    five = T.eval_views(image, 20, "five")
    assert [v.shape for v in five] == [(20, 20)] * 5
    assert [int(v[0, 0]) for v in five] == [0, 20, 0, 20, 10]  # tl, tr, bl, br, c
    ten = T.eval_views(image, 20, "ten", is_flow_x=True)
    assert len(ten) == 10
    # The flipped top-left crop of x-flow is columns 39..20, inverted.
    assert ten[5][0].tolist() == [255 - v for v in range(39, 19, -1)]


def test_draw_train_covers_every_choice_and_is_reproducible():
    draws = [T.draw_train(np.random.default_rng(s)) for s in range(300)]
    assert {d.flip for d in draws} == {True, False}
    assert {d.scale for d in draws} == set(T.SCALES)
    assert {d.position for d in draws} == set(T.POSITIONS)
    assert T.draw_train(np.random.default_rng(3)) == draws[3]


def test_normalisation_constants():
    rgb = np.array([[[255, 0, 128]]], np.uint8)
    out = T.normalize_rgb(rgb)
    assert out.shape == (3, 1, 1)
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(T.normalize_flow(np.array([128], np.uint8)), [(128 / 255 - 0.449) / 0.226], rtol=1e-5)
    assert T.scale_unit(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]


def test_normalisation_tables_give_the_formulas_bit_for_bit():
    values = np.random.default_rng(0).integers(0, 256, (2, 3, 5, 7, 3), dtype=np.uint8)
    rgb = (values.astype(np.float32) / 255.0 - T.RGB_MEAN) / T.RGB_STD
    np.testing.assert_array_equal(T.normalize_rgb(values), np.moveaxis(rgb, -1, -3))
    np.testing.assert_array_equal(T.normalize_flow(values), (values.astype(np.float32) / 255.0 - 0.449) / 0.226)
    np.testing.assert_array_equal(T.scale_unit(values), values.astype(np.float32) / 255.0)
    assert T.normalize_flow(values[:, :, :, :, 0].transpose(1, 0, 2, 3)).shape == (3, 2, 5, 7)

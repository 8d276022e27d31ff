"""Motion maps ignore the camera's motion and mark what moves in the scene (REFERENCE.md §1)."""

import numpy as np

from fpar.prepare.flow import compute_flow
from fpar.prepare.motion import camera_flow, motion_map, motion_maps

from .conftest import texture


def test_global_camera_shift_gives_an_empty_map():
    big = texture(140, 180, seed=5)
    first, second = big[10:130, 10:170], big[12:132, 7:167]  # the whole view pans
    flow = compute_flow(first, second, method="dis")
    assert np.abs(flow).mean() > 1.5  # there is motion to compensate ...
    assert (motion_map(flow) > 0).mean() < 0.01  # ... and none of it is left


def test_object_on_static_background_is_masked():
    background, square = texture(120, 160, seed=6), texture(30, 30, seed=7)
    first, second = background.copy(), background.copy()
    first[40:70, 50:80] = square
    second[40:70, 54:84] = square  # the object moves 4 px right
    mask = motion_map(compute_flow(first, second, method="dis"))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    assert (mask[44:66, 58:80] > 0).mean() > 0.9
    outside = np.ones_like(mask, bool)
    outside[30:80, 40:95] = False
    assert (mask[outside] > 0).mean() < 0.01


def test_object_moving_while_camera_pans():
    big, square = texture(150, 190, seed=8), texture(40, 40, seed=9)
    first, second = big[10:130, 10:170].copy(), big[10:130, 12:172].copy()  # camera pans: content moves -2 px
    first[40:80, 50:90] = square
    second[40:80, 52:92] = square  # the object moves +2 px in the image, 4 px against the background
    mask = motion_map(compute_flow(first, second, method="dis"))
    assert (mask[46:74, 58:86] > 0).mean() > 0.9
    assert (mask[:, 110:] > 0).mean() < 0.01


def test_camera_flow_of_a_pure_translation_is_that_translation():
    flow = np.zeros((40, 50, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.5, -1.0
    np.testing.assert_allclose(camera_flow(flow), flow, atol=1e-3)
    assert len(motion_maps([flow, flow])) == 2

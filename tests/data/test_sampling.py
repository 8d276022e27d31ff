"""Clip sampling against hand-computed frame numbers (REFERENCE.md §1, "Clip sampling")."""

import numpy as np
import pytest

from fpar.data import sampling


def test_rgb_indices_follow_the_reference_linspace():
    # floor(linspace(1, 20, 7, endpoint=False)): step 19/7 = 2.714 -> 1, 3.71, 6.43, 9.14, 11.86, 14.57, 17.29.
    # (Issue 3 quotes 1,3,6,9,12,15,18, which is linspace(1, n + 1, ...): a step of 20/7, not the reference's.)
    assert sampling.rgb_indices(20, 7) == [1, 3, 6, 9, 11, 14, 17]
    # step 24/5 = 4.8 -> 1, 5.8, 10.6, 15.4, 20.2
    assert sampling.rgb_indices(25, 5) == [1, 5, 10, 15, 20]


def test_rgb_indices_repeat_frames_of_a_short_instance_and_never_reach_the_last():
    # n = T = 16: step 15/16, so frame 1 appears twice and frame 16 never.
    assert sampling.rgb_indices(16, 16) == [1, 1] + list(range(2, 16))
    assert sampling.rgb_indices(3, 5) == [1, 1, 1, 2, 2]  # 1, 1.4, 1.8, 2.2, 2.6


def test_flow_stack_eval_start_is_the_centre():
    assert sampling.flow_stack_start(20, 5, train=False) == 8  # ceil(15 / 2)
    assert sampling.flow_stack_start(21, 5, train=False) == 8  # ceil(16 / 2)
    assert sampling.flow_stack_indices(20, 5, train=False) == [8, 9, 10, 11, 12]


@pytest.mark.parametrize("train", [False, True])
def test_flow_stack_starts_at_one_when_the_instance_is_short(train):
    assert sampling.flow_stack_start(5, 5, train, np.random.default_rng(0)) == 1
    assert sampling.flow_stack_start(3, 5, train, np.random.default_rng(0)) == 1


def test_flow_stack_train_start_is_uniform_over_1_to_n_minus_l():
    rng = np.random.default_rng(0)
    starts = {sampling.flow_stack_start(20, 5, True, rng) for _ in range(600)}
    assert starts == set(range(1, 16))


def test_pairs_indices_for_a_short_instance_spread_over_all_frames():
    # floor(linspace(0, 4, 7)) + 1 = floor(0, .67, 1.33, 2, 2.67, 3.33, 4) + 1
    assert sampling.pairs_indices(5, 7, train=False) == [1, 1, 2, 3, 3, 4, 5]
    assert sampling.pairs_indices(7, 7, train=True, rng=np.random.default_rng(0)) == list(range(1, 8))


def test_pairs_indices_take_consecutive_frames_from_the_centre_or_a_random_start():
    assert sampling.pairs_indices(20, 7, train=False) == list(range(7, 14))  # ceil(13 / 2) = 7
    rng = np.random.default_rng(1)
    starts = {sampling.pairs_indices(20, 7, True, rng)[0] for _ in range(500)}
    assert starts == set(range(1, 14))


def test_sampling_is_reproducible_from_the_generator():
    a = [sampling.flow_stack_start(50, 5, True, np.random.default_rng(7)) for _ in range(3)]
    b = [sampling.flow_stack_start(50, 5, True, np.random.default_rng(7)) for _ in range(3)]
    assert a == b


def test_an_empty_instance_is_refused():
    with pytest.raises(ValueError):
        sampling.rgb_indices(0, 4)


def test_eval_frame_numbers_of_a_video_per_file_kind():
    """The docstring's worked example: what an evaluation clip of a 20-frame video reads."""
    from fpar.data import ClipSettings

    stack = ClipSettings(modalities=["frames", "flow"], num_frames=7, stack_size=5)
    assert sampling.eval_frame_numbers(20, stack) == {"rgb": [1, 3, 6, 9, 11, 14, 17], "flow_x": [8, 9, 10, 11, 12],
                                                      "flow_y": [8, 9, 10, 11, 12]}
    pairs = ClipSettings(modalities=["frames", "flow", "mmaps"], num_frames=7, flow_mode="pairs")
    assert set(map(tuple, sampling.eval_frame_numbers(20, pairs).values())) == {tuple(range(7, 14))}
    maps = ClipSettings(modalities=["mmaps"], num_frames=7)  # motion maps alone read the RGB numbers
    assert sampling.eval_frame_numbers(20, maps) == {"mmaps": [1, 3, 6, 9, 11, 14, 17]}

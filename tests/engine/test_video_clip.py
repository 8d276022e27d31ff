"""The numpy clip of a video (``--runtime onnx``) is the clip ``fpar predict`` gives its PyTorch model."""

import numpy as np
import pytest
from PIL import Image

from fpar.data import ClipSettings
from fpar.engine.predict import read_clip
from fpar.engine.video_clip import clip_arrays


@pytest.fixture(scope="module")
def video(module_tmp):
    folder = module_tmp("clip") / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    background = (rng.random((40, 52, 3)) * 120).astype(np.uint8)
    for k in range(11):
        frame = background.copy()
        frame[12:24, 3 + 3 * k:15 + 3 * k] = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
        Image.fromarray(frame).save(folder / f"img_{k + 1:03d}.png")
    return folder


@pytest.mark.parametrize("settings", [
    ClipSettings(modalities=["frames"], num_frames=4, resize=36, crop=32),
    ClipSettings(modalities=["frames", "flow", "mmaps"], num_frames=3, stack_size=4, resize=36, crop=28),
    ClipSettings(modalities=["frames", "flow"], flow_mode="pairs", num_frames=5, resize=36, crop=32),
    ClipSettings(modalities=["flow"], flow_mode="pairs", num_frames=16, resize=36, crop=32),  # more than the video
], ids=["rgb", "stack-with-maps", "pairs", "pairs-repeating"])
def test_the_numpy_clip_equals_the_datasets(video, settings):
    tensors = read_clip(video, settings, flow="dis")
    arrays = clip_arrays(video, settings, flow="dis")
    assert set(arrays) == set(settings.modalities)
    for name, value in arrays.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, tensors[name].numpy())

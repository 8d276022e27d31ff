"""The picture arrays that training logs (``ValidationPictures``) and ``fpar cam`` saves: one
implementation, in ``fpar.pictures``, below the engine."""

import numpy as np
import torch

from fpar.data.normalization import RGB_MEAN, RGB_STD
from fpar.pictures import attention_strip, confusion_picture, confusion_rates


def test_attention_strip_puts_each_frame_under_its_map_side_by_side():
    rgb = np.full((3, 16, 20, 3), 128, np.uint8)
    frames = torch.from_numpy((rgb / 255.0 - RGB_MEAN) / RGB_STD).permute(0, 3, 1, 2).float()
    attention = torch.zeros(3, 4, 5)
    attention[1, 0, 4] = 1.0  # frame 2 looks at its top-right corner
    strip = attention_strip(frames, attention)
    assert strip.shape == (16, 3 * 20, 3) and strip.dtype == np.uint8
    hot, cold = strip[1, 20 + 19], strip[15, 20]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # red where frame 2's map peaks, blue far from it


def test_confusion_picture_is_row_normalised_with_one_square_per_cell():
    confusion = torch.tensor([[8, 2, 0], [0, 0, 0], [1, 1, 2]])
    rates = confusion_rates(confusion)
    assert np.allclose(rates, [[0.8, 0.2, 0], [0, 0, 0], [0.25, 0.25, 0.5]])  # a class without clips: zeros
    picture = confusion_picture(confusion, cell=4)
    assert picture.shape == (12, 12, 3) and picture.dtype == np.uint8
    assert picture[0, 0].sum() < picture[0, 4].sum() < picture[0, 8].sum()  # darker blue = higher rate
    assert np.array_equal(picture[4, 0], picture[0, 8])  # rate 0 is one colour everywhere

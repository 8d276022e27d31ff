"""Classifier and motion-segmentation (MS) heads.

The MS head (docs/method.md §8, the report's self-supervised task) predicts, per frame, one value per
cell of layer4's grid from ``f``: 1x1 conv 512 -> 100, flatten (channel-major, as ``torch.flatten``
orders an (N, 100, h, w) map), linear ``100*h*w -> h*w``. Its outputs are raw scores: the
classification variant reads them as logits of "this cell moves", the regression variant puts a
sigmoid on them; both happen in its loss (:meth:`MSHead.loss`, the task's family in
``fpar.models.ms_task``).
"""

from __future__ import annotations

import torch
from torch import nn

from fpar.models.ms_task import MSLossSettings, ms_loss

MS_HIDDEN_CHANNELS = 100


def classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Dropout + Linear; the Linear is ``classifier.1``, the key the reference uses too."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))


class MSHead(nn.Module):
    """Motion-segmentation head: (N, C, h, w) -> (N, h*w) raw scores.

    ``input_sigmoid=True`` reproduces the ``ego-rnn-ms-task`` reference, which squashes ``f`` with a
    sigmoid before the conv; the two-in-one reference (and the report) feed ``f`` as it is.
    """

    def __init__(self, in_channels: int, grid: int, input_sigmoid: bool = False):
        super().__init__()
        self.grid = grid
        self.input_sigmoid = input_sigmoid
        self.conv = nn.Conv2d(in_channels, MS_HIDDEN_CHANNELS, kernel_size=1)
        self.fc = nn.Linear(MS_HIDDEN_CHANNELS * grid * grid, grid * grid)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.input_sigmoid:
            features = torch.sigmoid(features)
        return self.fc(self.conv(features).flatten(1))

    def loss(self, scores: torch.Tensor, mmaps: torch.Tensor, settings: MSLossSettings) -> torch.Tensor:
        """The weighted MS term of the training loss: the task's loss of ``scores (B, T, h*w)``
        against the motion maps ``mmaps (B, T, 1, H, W)``, times ``settings.weight``."""
        term = ms_loss(scores, mmaps, kind=settings.kind, threshold=settings.threshold,
                       regression=settings.regression)
        return settings.weight * term

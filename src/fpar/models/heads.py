"""Classifier, label (verb, noun) and motion-segmentation (MS) heads.

Every model classifies its ``features`` with ``classifier`` (the action head: output ``logits``,
target ``label``). A model built with ``heads={"verb": 97, "noun": 300}`` also carries
:class:`LabelHeads`, one Dropout + Linear per label kind over the same features (outputs
``logits_verb``, ``logits_noun``; targets ``label_verb``, ``label_noun``), which owns their
cross-entropy terms (:meth:`LabelHeads.loss`). :data:`HEADS` and :func:`output_key` are the
vocabulary; the label kinds come from the data layer (``fpar.data.labels``).

The MS head (docs/method.md §8, the report's self-supervised task) predicts, per frame, one value per
cell of layer4's grid from ``f``: 1x1 conv 512 -> 100, flatten (channel-major, as ``torch.flatten``
orders an (N, 100, h, w) map), linear ``100*h*w -> h*w``. Its outputs are raw scores: the
classification variant reads them as logits of "this cell moves", the regression variant puts a
sigmoid on them; both happen in its loss (:meth:`MSHead.loss`, the task's family in
``fpar.models.ms_task``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fpar.data.labels import ACTION, LABEL_KINDS, label_key, logits_key
from fpar.models.ms_task import MSLossSettings, ms_loss

MS_HIDDEN_CHANNELS = 100
# ACTION: the head every model has: ``classifier``, output ``logits``, target ``label``
HEADS = (ACTION, *LABEL_KINDS)


def output_key(head: str) -> str:
    """A head's output key: ``logits`` for the action head, ``logits_<kind>`` for the others."""
    return "logits" if head == ACTION else logits_key(head)


def target_key(head: str) -> str:
    """The batch key of a head's class ids: ``label`` for the action head, ``label_<kind>`` else."""
    return "label" if head == ACTION else label_key(head)


def classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Dropout + Linear; the Linear is ``classifier.1``, the key the reference uses too."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))


class LabelHeads(nn.ModuleDict):
    """One Dropout + Linear per label kind (``widths``: {kind: classes}) over the features the action
    classifier reads; sub-modules named by kind (``verb.1.weight``, as ``classifier.1.weight``)."""

    def __init__(self, in_features: int, widths: dict[str, int], dropout: float):
        super().__init__({kind: classifier(in_features, widths[kind], dropout) for kind in LABEL_KINDS if kind in widths})

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {output_key(kind): head(features) for kind, head in self.items()}

    def widths(self) -> dict[str, int]:
        return {kind: head[1].out_features for kind, head in self.items()}

    def loss_inputs(self) -> tuple[str, ...]:
        return tuple(target_key(kind) for kind in self)

    def loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One cross-entropy term per head, ``ce_<kind>``: summed with the action's by the engine."""
        return {f"ce_{kind}": F.cross_entropy(out[output_key(kind)], batch[target_key(kind)]) for kind in self}


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

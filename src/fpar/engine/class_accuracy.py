"""Per-class accuracy from a confusion matrix, and mean-class accuracy as the paper's tables count
it: the accuracy of the classes present in the split, averaged (a held-out subject may lack a class;
an absent class has no accuracy, not a zero one)."""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassConfusionMatrix


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """Each class's accuracy from a confusion matrix (rows: true class), NaN for a class absent from the split."""
    support = confusion.sum(dim=1)
    present = support > 0
    per_class = torch.full(support.shape, float("nan"), device=confusion.device)
    per_class[present] = confusion.diagonal()[present].float() / support[present].float()
    return per_class


class PresentClassAccuracy(MulticlassConfusionMatrix):
    """The accuracy of the classes present in the split, averaged: a held-out subject may lack a
    class, and an absent class has no accuracy, not a zero one."""

    def compute(self) -> torch.Tensor:
        per_class = per_class_accuracy(super().compute())
        return per_class[~per_class.isnan()].mean()

"""The numbers of the paper's tables, from torchmetrics: top-1, top-5 and mean-class accuracy and
the confusion matrix, the same in training's validation and in ``evaluate``.

Mean-class accuracy averages the accuracy of the classes present in the split (a held-out subject
may lack a class; an absent class has no accuracy, not a zero one).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix


class ClassificationMetrics(nn.Module):
    """Accumulates ``update(scores (N, C), labels (N,))``; ``compute()`` returns ``accuracy``, ``top5``,
    ``mean_class_accuracy``, ``per_class`` (tensor, NaN for absent classes) and ``confusion``
    (rows: true class, columns: predicted)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.top1 = MulticlassAccuracy(num_classes, average="micro")
        self.top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro")
        self.confusion = MulticlassConfusionMatrix(num_classes)

    def update(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        self.top1.update(scores, labels)
        self.top5.update(scores, labels)
        self.confusion.update(scores, labels)

    def compute(self) -> dict[str, Any]:
        confusion = self.confusion.compute()
        support = confusion.sum(dim=1)
        present = support > 0
        per_class = torch.full(support.shape, float("nan"), device=confusion.device)
        per_class[present] = confusion.diagonal()[present].float() / support[present].float()
        return {"accuracy": self.top1.compute(), "top5": self.top5.compute(),
                "mean_class_accuracy": per_class[present].mean(), "per_class": per_class, "confusion": confusion}

    def reset(self) -> None:
        for metric in (self.top1, self.top5, self.confusion):
            metric.reset()

"""The numbers of the paper's tables, from torchmetrics: every metric of the registry
(:mod:`fpar.engine.metric_registry`: top-1, top-5 and mean-class accuracy, and any registered) and
the confusion matrix, the same in training's validation and in ``evaluate``.

A model with label heads (verb, noun) is measured per head (:class:`LabelMetrics`), and where it
has both, by its action accuracy as EPIC-KITCHENS counts it: a clip is right when its best verb and
its best noun are (the top-1 of EPIC's verb x noun rule, ``fpar.engine.epic_metrics``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassConfusionMatrix

from fpar.engine.class_accuracy import per_class_accuracy
from fpar.engine.metric_registry import JOINT, METRICS, validation_numbers
from fpar.models.heads import output_key, target_key

__all__ = ["JOINT", "METRICS", "ClassificationMetrics", "LabelMetrics", "per_class_accuracy",
           "validation_numbers"]


class ClassificationMetrics(nn.Module):
    """Accumulates ``update(scores (N, C), labels (N,))``; ``compute()`` returns every registered
    metric by name (``accuracy``, ``top5``, ``mean_class_accuracy``, ...), ``per_class`` (tensor, NaN
    for absent classes) and ``confusion`` (rows: true class, columns: predicted)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.scores = nn.ModuleDict({name: metric.make(num_classes) for name, metric in METRICS.items()})
        self.confusion = MulticlassConfusionMatrix(num_classes)

    def update(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        for metric in self.scores.values():
            metric.update(scores, labels)
        self.confusion.update(scores, labels)

    def compute(self) -> dict[str, Any]:
        confusion = self.confusion.compute()
        return {**{name: metric.compute() for name, metric in self.scores.items()},
                "per_class": per_class_accuracy(confusion), "confusion": confusion}

    def reset(self) -> None:
        for metric in (*self.scores.values(), self.confusion):
            metric.reset()


class LabelMetrics(nn.Module):
    """:class:`ClassificationMetrics` per label head (``widths``: {kind: classes}), updated from a
    model's outputs and its batch; with both a verb and a noun head also ``verb_noun_accuracy``, the
    share of clips whose best verb and best noun are both right."""

    def __init__(self, widths: dict[str, int]):
        super().__init__()
        self.heads = nn.ModuleDict({kind: ClassificationMetrics(classes) for kind, classes in widths.items()})
        self.joint = MeanMetric() if {"verb", "noun"} <= set(widths) else None

    def update(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> None:
        for kind, metrics in self.heads.items():
            metrics.update(out[output_key(kind)].detach(), batch[target_key(kind)])
        if self.joint is not None:
            right = [out[output_key(kind)].argmax(dim=1) == batch[target_key(kind)] for kind in ("verb", "noun")]
            self.joint.update((right[0] & right[1]).float())

    def compute(self) -> dict[str, Any]:
        """{kind: the numbers of :meth:`ClassificationMetrics.compute`} and, with verb and noun heads,
        ``verb_noun_accuracy``."""
        numbers: dict[str, Any] = {kind: metrics.compute() for kind, metrics in self.heads.items()}
        if self.joint is not None:
            numbers[JOINT[0]] = self.joint.compute()
        return numbers

    def reset(self) -> None:
        for metrics in self.heads.values():
            metrics.reset()
        if self.joint is not None:
            self.joint.reset()

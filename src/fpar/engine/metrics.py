"""The numbers of the paper's tables, from torchmetrics: top-1, top-5 and mean-class accuracy and
the confusion matrix, the same in training's validation and in ``evaluate``.

A model with label heads (verb, noun) is measured per head (:class:`LabelMetrics`), and where it
has both, by its action accuracy as EPIC-KITCHENS counts it: a clip is right when its best verb and
its best noun are (the top-1 of EPIC's verb x noun rule, ``fpar.engine.epic_metrics``).

Mean-class accuracy averages the accuracy of the classes present in the split (a held-out subject
may lack a class; an absent class has no accuracy, not a zero one).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from fpar.data.labels import LABEL_KINDS
from fpar.models.heads import output_key, target_key

# The one metric vocabulary (docs/units.md): each accuracy's name in results and files (evaluation's
# JSON; metrics.csv/json as ``val_<name>``, a label head's as ``val_<head>_<name>``), the key
# Lightning logs it under while validating, and its words in the epoch line. All are fractions in [0, 1].
ACCURACIES = {"accuracy": ("acc", "acc"), "top5": ("top5", "top-5"),
              "mean_class_accuracy": ("mean_class_acc", "mean class")}
# both a verb and a noun head: a clip right when its best verb and its best noun are
JOINT = ("verb_noun_accuracy", "verb_noun_acc", "verb+noun acc")


def validation_numbers() -> list[tuple[str, str, str]]:
    """(logged key, file column, epoch-line words) of every validation accuracy a run may have: the
    action's, then each label head's, then the verb x noun one; a run has those its model's heads give."""
    found = [(f"val/{logged}", f"val_{name}", "val acc" if name == "accuracy" else words)
             for name, (logged, words) in ACCURACIES.items()]
    for kind in LABEL_KINDS:
        found += [(f"val/{kind}_{logged}", f"val_{kind}_{name}", f"{kind} {words}")
                  for name, (logged, words) in ACCURACIES.items()]
    return found + [(f"val/{JOINT[1]}", f"val_{JOINT[0]}", JOINT[2])]


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
            numbers["verb_noun_accuracy"] = self.joint.compute()
        return numbers

    def reset(self) -> None:
        for metrics in self.heads.values():
            metrics.reset()
        if self.joint is not None:
            self.joint.reset()

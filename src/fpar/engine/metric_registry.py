"""The metric registry: ``name -> Metric``, the one vocabulary of the numbers a clip-level model is
scored by (docs/units.md). Training's validation, its epoch line and ``metrics.csv``/``metrics.json``,
``evaluate`` (``fpar eval --json``) and a protocol's summary and table all read it, so a metric
registered here appears in each of them:

    register_metric("balanced_f1", lambda classes: MulticlassF1Score(classes, average="macro"),
                    title="F1", summary="f1")

``make(classes)`` returns a torchmetrics metric (or anything with ``update(scores (N, C), labels (N,))``,
``compute()`` and ``reset()``) whose value is a fraction in [0, 1]. This module imports no torch:
the CLI reads the names before any work starts (docs/deployment.md, "Fast start").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from fpar.data.labels import LABEL_KINDS
from fpar.errors import FparError


@dataclass(frozen=True)
class Metric:
    """One metric: ``name`` in results and files (evaluation's JSON; metrics.csv/json as ``val_<name>``,
    a label head's as ``val_<head>_<name>``), ``logged`` the key Lightning logs it under while
    validating (``val/<logged>``), ``words`` in the epoch line, ``title`` in tables, ``short`` in a
    protocol's ``scores.json`` and summary, ``summarised``: whether a protocol summarises it over
    its runs (mean, std, interval) or only keeps it per run."""
    name: str
    make: Callable[[int], Any]
    logged: str
    words: str
    title: str
    short: str
    summarised: bool = True


METRICS: dict[str, Metric] = {}


def register_metric(name: str, make: Callable[[int], Any], *, logged: str | None = None, words: str | None = None,
                    title: str | None = None, short: str | None = None, summarised: bool = True) -> Metric:
    """Add a metric (the names default to ``name``); a name taken already is refused."""
    if not name.isidentifier():
        raise FparError(f"metric name {name!r}: use letters, digits and underscores (it names files' columns)")
    metric = Metric(name, make, logged or name, words or name.replace("_", " "), title or name.replace("_", " "),
                    short or name, summarised)
    for other in METRICS.values():
        taken = {"name": other.name, "logged": other.logged, "short": other.short}
        clash = [key for key, value in taken.items() if getattr(metric, key) == value]
        if clash:
            raise FparError(f"metric {name!r}: {clash[0]} {getattr(metric, clash[0])!r} is taken by metric "
                            f"{other.name!r}")
    METRICS[name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Remove a registered metric (a test's, once it is done)."""
    METRICS.pop(name, None)


def _top1(classes: int):
    from torchmetrics.classification import MulticlassAccuracy

    return MulticlassAccuracy(classes, average="micro")


def _top5(classes: int):
    from torchmetrics.classification import MulticlassAccuracy

    return MulticlassAccuracy(classes, top_k=min(5, classes), average="micro")


def _mean_class(classes: int):
    from fpar.engine.class_accuracy import PresentClassAccuracy

    return PresentClassAccuracy(classes)


register_metric("accuracy", _top1, logged="acc", words="acc", title="top-1", short="top1")
register_metric("top5", _top5, words="top-5", title="top-5", summarised=False)
register_metric("mean_class_accuracy", _mean_class, logged="mean_class_acc", words="mean class",
                title="mean class", short="mean_class")

# both a verb and a noun head: a clip right when its best verb and its best noun are
JOINT = ("verb_noun_accuracy", "verb_noun_acc", "verb+noun acc")


def validation_numbers() -> list[tuple[str, str, str]]:
    """(logged key, file column, epoch-line words) of every validation number a run may have: the
    action's, then each label head's, then the verb x noun one; a run has those its model's heads give."""
    found = [(f"val/{m.logged}", f"val_{name}", "val acc" if name == "accuracy" else m.words)
             for name, m in METRICS.items()]
    for kind in LABEL_KINDS:
        found += [(f"val/{kind}_{m.logged}", f"val_{kind}_{name}", f"{kind} {m.words}") for name, m in METRICS.items()]
    return found + [(f"val/{JOINT[1]}", f"val_{JOINT[0]}", JOINT[2])]


def protocol_metrics() -> dict[str, Metric]:
    """{short name: metric} of the metrics a protocol summarises over its runs."""
    return {m.short: m for m in METRICS.values() if m.summarised}

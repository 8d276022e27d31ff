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


# fpar's own metrics by name, for the modules that pick one (the monitored one, the two EPIC's
# action rule gives, a protocol's reported one): they import these, never spell them
ACCURACY, TOP5, MEAN_CLASS_ACCURACY = "accuracy", "top5", "mean_class_accuracy"
register_metric(ACCURACY, _top1, logged="acc", words="acc", title="top-1", short="top1")
register_metric(TOP5, _top5, words="top-5", title="top-5", summarised=False)
register_metric(MEAN_CLASS_ACCURACY, _mean_class, logged="mean_class_acc", words="mean class",
                title="mean class", short="mean_class")
# the metric that chooses a run's best.ckpt (the checkpoint callback's monitor, docs/training.md)
# and whose best value a run's summary reports (best_val_accuracy)
MONITORED = ACCURACY

# both a verb and a noun head: a clip right when its best verb and its best noun are
JOINT = ("verb_noun_accuracy", "verb_noun_acc", "verb+noun acc")
VALIDATION_PREFIX = "val"  # of the logged keys (val/acc) and the files' columns (val_accuracy)
JOINT_KEY = f"{VALIDATION_PREFIX}/{JOINT[1]}"


def logged_key(name: str, head: str | None = None) -> str:
    """The key Lightning logs metric ``name`` under while validating (``val/acc``, ``val/verb_acc``)."""
    return f"{VALIDATION_PREFIX}/{head + '_' if head else ''}{METRICS[name].logged}"


def file_column(name: str, head: str | None = None) -> str:
    """Metric ``name``'s column in ``metrics.csv``/``metrics.json`` (``val_accuracy``, ``val_verb_accuracy``)."""
    return f"{VALIDATION_PREFIX}_{head + '_' if head else ''}{name}"


def validation_numbers() -> list[tuple[str, str, str]]:
    """(logged key, file column, epoch-line words) of every validation number a run may have: the
    action's, then each label head's, then the verb x noun one; a run has those its model's heads give."""
    found = [(logged_key(name), file_column(name), f"{VALIDATION_PREFIX} {m.words}" if name == MONITORED else m.words)
             for name, m in METRICS.items()]
    for kind in LABEL_KINDS:
        found += [(logged_key(name, kind), file_column(name, kind), f"{kind} {m.words}") for name, m in METRICS.items()]
    return found + [(JOINT_KEY, file_column(JOINT[0]), JOINT[2])]


def metrics_text(numbers: dict[str, Any], number: str = ".1f", between: str = "  ") -> str:
    """``top-1 81.2%  top-5 95.0%  mean class 80.1%``: each registered metric that ``numbers`` (a
    result, a head's, the action by EPIC's rule) holds, by title, in the registry's order."""
    return between.join(f"{m.title} {100 * numbers[name]:{number}}%" for name, m in METRICS.items()
                        if numbers.get(name) is not None)


def protocol_metrics() -> dict[str, Metric]:
    """{short name: metric} of the metrics a protocol summarises over its runs."""
    return {m.short: m for m in METRICS.values() if m.summarised}

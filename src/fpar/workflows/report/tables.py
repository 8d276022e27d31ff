"""``fpar report``'s tables: the comparison table's columns (every registered metric, read from
:mod:`fpar.engine.metric_registry`) and ``report.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fpar.engine.epic_metrics import RULE_ACTION
from fpar.engine.evaluate import printable_name
from fpar.engine.metric_registry import METRICS, metrics_text
from fpar.engine.selection import short_text


def table_columns() -> list[tuple[str, str, str]]:
    """The comparison table's columns, (key in a run's result, heading, format): every registered
    metric (read when the report is written, so a metric registered later has its column), then
    the run's clips, epochs and checkpoint selection."""
    return [*((name, metric.title, "percent") for name, metric in METRICS.items()), ("n", "clips", "int"),
            ("epochs", "epochs", "int"), ("best_epoch", "best epoch", "int"), ("selection", "selection", "selection")]


def cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "selection":  # the record of selection_record: the subjects that chose the checkpoint
        return short_text(value, value.get("subjects"))
    return f"{100 * value:.1f}%" if kind == "percent" else str(value)


def markdown(runs: list[dict[str, Any]]) -> str:
    sections = []
    columns = table_columns()
    if len(runs) > 1:
        sections += ["# Comparison", "", "| run | " + " | ".join(h for _, h, _ in columns) + " |",
                     "|---" * (len(columns) + 1) + "|"]
        sections += [f"| {printable_name(run['name'])} | " + " | ".join(cell(run.get(k), f) for k, _, f in columns) + " |"
                     for run in runs] + [""]
    level = "#" if len(runs) == 1 else "##"
    for run in runs:
        sections += [f"{level} {printable_name(run['name'])}", "",
                     f"Checkpoint `{printable_name(run['checkpoint'])}`, evaluated on {', '.join(run['split'])} "
                     f"({run['n']} clips, centre crop). Checkpoint selection: {run['selection']['text']}.", "",
                     _accuracy_table(run), ""]
        pictures = run["pictures"]
        for key, heading, alt in (("curves", "Training", "training curves"),
                                  ("confusion", "Confusion matrix", "confusion matrix"),
                                  ("features", "Feature correlation", "feature correlation")):
            if key in pictures:
                sections += [f"{level}# {heading}", "", f"![{alt}]({pictures[key]})", ""]
        if run["explained"]:
            sections += [f"{level}# What the model looks at", ""]
            for clip_id, label, paths in run["explained"]:
                sections += [f"**{clip_id}** (true class `{label}`)", ""]
                sections += [f"![{Path(p).stem}]({p})" for p in paths] + [""]
    return "\n".join(sections)


def _accuracy_table(run: dict[str, Any]) -> str:
    lines = ["| metric | value |", "|---|---|", *_metric_rows(run), "", "| class | accuracy |", "|---|---|"]
    lines += [f"| {printable_name(name)} | {100 * acc:.1f}% |" for name, acc in run["per_class"].items()]
    for kind, head in (run.get("heads") or {}).items():  # the label heads (verb, noun), each its own table
        lines += ["", f"| {kind} head | value |", "|---|---|", *_metric_rows(head), "",
                  f"| {kind} | accuracy |", "|---|---|"]
        lines += [f"| {printable_name(name)} | {100 * acc:.1f}% |" for name, acc in head["per_class"].items()]
    if RULE_ACTION in run:
        lines += ["", f"Action by EPIC-KITCHENS-100's rule over the verb and noun heads ({RULE_ACTION}): "
                      f"{metrics_text(run[RULE_ACTION], between=', ')}."]
    return "\n".join(lines)


def _metric_rows(numbers: dict[str, Any]) -> list[str]:
    """``| top-1 | 81.2% |``: one row per registered metric that ``numbers`` (a run's, a head's) holds."""
    return [f"| {metric.title} | {100 * numbers[name]:.1f}% |" for name, metric in METRICS.items()
            if numbers.get(name) is not None]

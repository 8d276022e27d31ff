"""A protocol's table and notes, as Markdown and as HTML.
"""

from __future__ import annotations

import html
from typing import Any

from fpar.engine.metric_registry import protocol_metrics
from fpar.workflows.protocol.vocabulary import MEAN_CLASS, TOP1


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _summary_cell(summary: dict[str, Any]) -> str:
    if summary["mean"] is None:
        return "-"
    if summary["std"] is None:
        return f"{_percent(summary['mean'])} (one run)"
    low, high = summary["ci95"]
    return f"{_percent(summary['mean'])} ± {_percent(summary['std'])} [{_percent(low)}, {_percent(high)}]"


def _title(short: str) -> str:
    """A protocol metric's title in tables (``top1`` -> ``top-1``)."""
    return protocol_metrics()[short].title


def _head_columns(result: dict[str, Any]) -> list[str]:
    return list(result.get("heads") or {})


def _table_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    recipe = result.get("recipe", False)
    heads = _head_columns(result)
    # every metric the protocol summarised (the registry's, docs/units.md), in the registry's order
    metrics = {short: metric for short, metric in protocol_metrics().items() if short in result}
    head = [*(["stage"] if recipe else []), "fold", "seed", "test", "selection", "clips",
            *(f"{metric.title} %" for metric in metrics.values()), *(f"{h} {_title(TOP1)} %" for h in heads)]
    rows = []
    for run in result["runs"]:
        test = f"{run['split']} test clips" if run.get("split") else ", ".join(run["test_subjects"])
        rows.append([*([run["stage"]] if recipe else []), run["fold"], str(run["seed"]), test,
                     ", ".join(run["selection_subjects"]) or "none", str(run.get("n", "-")),
                     *(_percent(run.get(short)) for short in metrics),
                     *(_percent(run.get("heads", {}).get(h, {}).get(TOP1)) for h in heads)])
    totals = []
    stages = result.get("stages") or {result["config"]: result}
    for stage, summary in stages.items():
        if not recipe and stage != result["config"]:
            continue
        totals.append([*([stage] if recipe else []), "all", f"{result['seeds']} seed(s)", "", "", "",
                       *(_summary_cell(summary[short]) for short in metrics),
                       *(_summary_cell(summary["heads"][h][TOP1]) if h in summary.get("heads", {}) else "-"
                         for h in heads)])
    return head, rows, totals


def _notes(result: dict[str, Any]) -> list[str]:
    what = "recipe" if result.get("recipe") else "config"
    notes = [f"Protocol {result['protocol']} ({result['description']}), {what} {result['config']}, "
             f"{result[TOP1]['n']} runs" + (f" of its last stage, {result['last_stage']}" if result.get("recipe") else "")
             + "; summary: mean ± standard deviation (n-1) [95% interval, t distribution].",
             f"Checkpoint selection: {result['selection']['text']}."
             + (" For a split of the clips, the training subjects' clips are the split's training clips."
                if any(run.get("split") for run in result["runs"]) else "")]
    if "data_root" in result:
        notes.append(f"Data: {result['data_root']} (dataset digest {result['dataset'][:12]}); overrides: "
                     f"{' '.join(result['overrides']) or 'none'}; fpar {result['fpar_version']}.")
    if result.get("heads"):
        from fpar.engine.epic_metrics import RULE_ACTION

        notes.append(f"Head columns: each label head's top-1; {RULE_ACTION}: the action by EPIC-KITCHENS-100's rule "
                     "(top-100 verbs x top-100 nouns) from the verb and noun heads.")
    paper = result.get("paper")
    if paper:
        notes.append(f"The paper reports {_percent(paper[TOP1])}% {_title(TOP1)} for this config "
                     f"({paper['protocol']}).")
    for row in result.get("published") or ():
        notes.append(f"Published: {row['method']} {_percent(row[MEAN_CLASS])}% mean class accuracy ({row['protocol']}).")
    return notes


def protocol_markdown(result: dict[str, Any]) -> str:
    head, rows, totals = _table_rows(result)
    clean = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    lines += ["| " + " | ".join(f"**{clean(c)}**" if c else "" for c in total) + " |" for total in totals]
    return "\n".join([*lines, "", *_notes(result)])


def protocol_html(result: dict[str, Any]) -> str:
    esc = html.escape
    head, rows, totals = _table_rows(result)
    cells = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    summary = "".join(f"<tr>{''.join(f'<td><b>{esc(c)}</b></td>' for c in total)}</tr>" for total in totals)
    table = f"<table><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr>{cells}{summary}</table>"
    notes = "".join(f"<p>{esc(note)}</p>" for note in _notes(result))
    title = esc(f"{result['config']}: {result['protocol']}")
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font:15px/1.45 system-ui,sans-serif;margin:32px}table{border-collapse:collapse}"
            "th,td{padding:5px 12px;border-bottom:1px solid #dde}th{background:#eef1f6}</style></head>"
            f"<body><h1>{title}</h1>{table}{notes}</body></html>\n")

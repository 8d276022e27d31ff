"""``fpar protocol``: a config run under a named evaluation protocol, every fold x seed, summarised
as mean, standard deviation and 95% interval over the runs (docs/protocols.md).

Each run is ``<out>/<experiment>__<fold>__seed<k>/``, trained as recipes train (finished runs are
skipped, interrupted ones resume, a run of other settings is refused) and scored once on its
fold's test subjects (``scores.json`` beside it). ``<out>/protocol.json`` holds the runs and the
summary; ``protocol.md`` and ``protocol.html`` the table, with the paper's figure for the config
where it reports one. :func:`compare` pairs two protocol folders run by run.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from fpar.engine.config import find_config, load_config
from fpar.errors import FparError
from fpar.io import inside, write_text
from fpar.workflows.recipe import train_or_skip

SCORES = "scores.json"  # a run's test-subject scores, written once it is evaluated
SUMMARY_FILE = "protocol.json"
GTEA61_SUBJECTS = ("S1", "S2", "S3", "S4")


@dataclass(frozen=True)
class Fold:
    name: str
    train: list[str]
    test: list[str]


def _gtea61_s2(subjects: Sequence[str]) -> list[Fold]:
    _require_subjects(subjects, GTEA61_SUBJECTS, "gtea61-s2")
    return [Fold("S2", ["S1", "S3", "S4"], ["S2"])]


def _leave_one_out(subjects: Sequence[str]) -> list[Fold]:
    if len(subjects) < 2:
        raise FparError(f"leave-one-subject-out needs two subjects or more; the dataset has {', '.join(subjects)}")
    return [Fold(held, [s for s in subjects if s != held], [held]) for held in subjects]


def _gtea61_loso(subjects: Sequence[str]) -> list[Fold]:
    _require_subjects(subjects, GTEA61_SUBJECTS, "gtea61-loso")
    return _leave_one_out(GTEA61_SUBJECTS)


def _egtea(subjects: Sequence[str]) -> list[Fold]:
    raise FparError("protocol egtea: EGTEA Gaze+'s three splits (train_splitN.txt / test_splitN.txt) divide clips, "
                    "not participants, and fpar's datasets split by subject only; it needs each split's clip lists "
                    "as the fold's train and test sets (docs/protocols.md, 'EGTEA Gaze+'), which fpar does not "
                    "read yet. Use loso on an EGTEA import meanwhile")


def _epic100(subjects: Sequence[str]) -> list[Fold]:
    if {"train", "validation"} <= set(subjects):
        return [Fold("validation", ["train"], ["validation"])]
    raise FparError("protocol epic100: trains on EPIC_100_train.csv and tests on EPIC_100_validation.csv, whose "
                    "participants overlap, so the two must be told apart as subjects: import them into one "
                    "dataset with subjects 'train' and 'validation' (docs/protocols.md, 'EPIC-KITCHENS-100'); "
                    f"this dataset has subjects {', '.join(subjects)}")


# name -> (folds of a dataset's subjects, what it reports, what it is)
PROTOCOLS: dict[str, tuple[Callable[[Sequence[str]], list[Fold]], str, str]] = {
    "gtea61-s2": (_gtea61_s2, "top1", "train S1, S3, S4; test S2 (the paper's GTEA61*)"),
    "gtea61-loso": (_gtea61_loso, "top1", "four folds, each GTEA61 subject held out once"),
    "loso": (_leave_one_out, "top1", "leave one subject out, every subject of the dataset"),
    "egtea": (_egtea, "mean_class", "EGTEA Gaze+'s three train/test splits, mean class accuracy"),
    "epic100": (_epic100, "top1", "EPIC-KITCHENS-100: train on train, test on validation"),
}

# The paper's figure for a config is in the config file's header ("... Paper: 64.9% on S2"; every
# gtea61/ row has one, docs/experiments.md lists them), obtained this way:
PAPER_PROTOCOL = "gtea61-s2, one run, best epoch chosen on S2 (selection: test)"
_PAPER_FIGURE = re.compile(r"Paper: (\d+(?:\.\d+)?)% on S2")


def _require_subjects(subjects: Sequence[str], wanted: Sequence[str], protocol: str) -> None:
    if sorted(subjects) != sorted(wanted):
        raise FparError(f"protocol {protocol} needs the subjects {', '.join(wanted)}; the dataset has "
                        f"{', '.join(subjects)}")


# --- statistics --------------------------------------------------------------------------------


def t_quantile(probability: float, dof: int) -> float:
    """The ``probability`` quantile of Student's t distribution (0.5 < probability < 1), from
    scipy.stats: 12.706 for (0.975, 1), 2.776 for (0.975, 4), 1.960 as ``dof`` grows."""
    if not 0.5 < probability < 1 or dof < 1:
        raise ValueError("t_quantile needs 0.5 < probability < 1 and dof >= 1")
    from scipy.stats import t as student_t  # loads only when a summary needs it

    return float(student_t.ppf(probability, dof))


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std" (n - 1), "ci95": [low, high] (t distribution), "n"}``; std and interval are
    null for a single value."""
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "std": None, "ci95": None, "n": 1}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.975, n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}


# --- running a protocol ------------------------------------------------------------------------


def run_protocol(config_path: str | os.PathLike, *, data_root: str | os.PathLike, protocol: str, seeds: int,
                 out_dir: str | os.PathLike, overrides: Iterable[str] = (), log=print,
                 **train_kwargs: Any) -> dict[str, Any]:
    """Train and score every fold x seed (skipping finished runs); write and return protocol.json's content."""
    from fpar.data import load_index
    from fpar.engine.selection import selection_subjects

    if protocol not in PROTOCOLS:
        raise FparError(f"unknown protocol {protocol!r} (choose {', '.join(PROTOCOLS)})")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise FparError(f"--seeds must be an integer >= 1, got {seeds!r}")
    make_folds, primary, _ = PROTOCOLS[protocol]
    out_dir = Path(out_dir)
    overrides = list(overrides)
    base = load_config(config_path, overrides)
    folds = make_folds(load_index(data_root, base.data.layout).subjects)
    plan = []
    for fold in folds:  # every run's config is checked before the first one trains
        for seed in range(seeds):
            config = load_config(config_path, [
                *overrides, f"experiment={base.experiment}__{fold.name}__seed{seed}", f"trainer.seed={seed}",
                f"data.train_subjects={json.dumps(fold.train)}", f"data.val_subjects={json.dumps(fold.test)}",
                "data.fold=null"])
            plan.append((fold, seed, config))
    runs = []
    for i, (fold, seed, config) in enumerate(plan):
        log(f"[{i + 1}/{len(plan)}] fold {fold.name}, seed {seed}: {config.experiment}")
        summary = train_or_skip(config, out_dir, data_root=str(data_root), **train_kwargs)
        scores = _scores(Path(summary["run_dir"]), summary, data_root, fold.test)
        runs.append({"fold": fold.name, "seed": seed, "test_subjects": fold.test,
                     "selection_subjects": selection_subjects(config.selection.model_dump(), fold.train, fold.test),
                     "top1": scores["top1"], "mean_class": scores["mean_class"],
                     "run_dir": Path(summary["run_dir"]).relative_to(out_dir).as_posix()})
    from fpar.engine.selection import describe

    result = {
        "protocol": protocol, "description": PROTOCOLS[protocol][2], "primary": primary,
        "config": base.experiment, "seeds": seeds,
        "selection": {**base.selection.model_dump(), "text": describe(base.selection.model_dump())},
        "runs": runs,
        "top1": summarise([run["top1"] for run in runs]),
        "mean_class": summarise([run["mean_class"] for run in runs]),
        "paper": paper_figure(config_path),
    }
    write_text(inside(out_dir, SUMMARY_FILE), json.dumps(result, indent=1) + "\n")
    write_text(inside(out_dir, "protocol.md"), protocol_markdown(result) + "\n")
    write_text(inside(out_dir, "protocol.html"), protocol_html(result))
    log(protocol_markdown(result))
    return result


def paper_figure(config_path: str | os.PathLike) -> dict[str, Any] | None:
    """The paper's top-1 for this config file (from its header comment) and how it was obtained; None
    for a config the paper has no row for."""
    header = []
    for line in find_config(config_path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    found = _PAPER_FIGURE.search(" ".join(header))
    return None if found is None else {"top1": float(found.group(1)) / 100, "protocol": PAPER_PROTOCOL}


def _scores(run_dir: Path, summary: dict[str, Any], data_root: str | os.PathLike, test: list[str]) -> dict[str, Any]:
    """The run's best.ckpt scored on its test subjects, once (kept in ``scores.json``)."""
    path = run_dir / SCORES
    checkpoint = summary["best_ckpt"]
    if checkpoint is None:
        raise FparError(f"{run_dir} has no best.ckpt: it ran fewer epochs than trainer.val_every")
    if path.is_file() and summary["state"] == "done":
        kept = json.loads(path.read_text())
        if kept.get("test_subjects") == test:
            return kept
    from fpar.engine.evaluate import evaluate

    result = evaluate(checkpoint, data_root, split=test)
    scores = {"test_subjects": test, "n": result["n"], "top1": result["accuracy"],
              "mean_class": result["mean_class_accuracy"], "top5": result["top5"]}
    write_text(path, json.dumps(scores, indent=1) + "\n")
    return scores


# --- tables ------------------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _summary_cell(summary: dict[str, Any]) -> str:
    if summary["mean"] is None:
        return "-"
    if summary["std"] is None:
        return f"{_percent(summary['mean'])} (one run)"
    low, high = summary["ci95"]
    return f"{_percent(summary['mean'])} ± {_percent(summary['std'])} [{_percent(low)}, {_percent(high)}]"


def _table_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    head = ["fold", "seed", "test subjects", "selection subjects", "top-1 %", "mean class %"]
    rows = [[run["fold"], str(run["seed"]), ", ".join(run["test_subjects"]),
             ", ".join(run["selection_subjects"]) or "none", _percent(run["top1"]), _percent(run["mean_class"])]
            for run in result["runs"]]
    total = ["all", f"{result['seeds']} seed(s)", "", "", _summary_cell(result["top1"]),
             _summary_cell(result["mean_class"])]
    return head, rows, total


def _notes(result: dict[str, Any]) -> list[str]:
    notes = [f"Protocol {result['protocol']} ({result['description']}), config {result['config']}, "
             f"{result['top1']['n']} runs; summary: mean ± standard deviation (n-1) [95% interval, t distribution].",
             f"Checkpoint selection: {result['selection']['text']}."]
    paper = result.get("paper")
    if paper:
        notes.append(f"The paper reports {_percent(paper['top1'])}% top-1 for this config ({paper['protocol']}).")
    return notes


def protocol_markdown(result: dict[str, Any]) -> str:
    head, rows, total = _table_rows(result)
    clean = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    lines.append("| " + " | ".join(f"**{clean(c)}**" if c else "" for c in total) + " |")
    return "\n".join([*lines, "", *_notes(result)])


def protocol_html(result: dict[str, Any]) -> str:
    esc = html.escape
    head, rows, total = _table_rows(result)
    cells = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    table = (f"<table><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr>{cells}"
             f"<tr>{''.join(f'<td><b>{esc(c)}</b></td>' for c in total)}</tr></table>")
    notes = "".join(f"<p>{esc(note)}</p>" for note in _notes(result))
    title = esc(f"{result['config']}: {result['protocol']}")
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font:15px/1.45 system-ui,sans-serif;margin:32px}table{border-collapse:collapse}"
            "th,td{padding:5px 12px;border-bottom:1px solid #dde}th{background:#eef1f6}</style></head>"
            f"<body><h1>{title}</h1>{table}{notes}</body></html>\n")


# --- comparing two protocol folders ------------------------------------------------------------


def read_protocol(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / SUMMARY_FILE
    if not path.is_file():
        raise FparError(f"{folder}: no {SUMMARY_FILE} (run fpar protocol into it first)")
    try:
        result = json.loads(path.read_text())
        if not isinstance(result, dict):
            raise ValueError("not an object")
        result["runs"] = [{**run, "key": (run["fold"], run["seed"])} for run in result["runs"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise FparError(f"{path}: not a protocol summary ({exc})") from None
    return result


def compare(folder_a: str | os.PathLike, folder_b: str | os.PathLike) -> dict[str, Any]:
    """A - B, run by run (the same folds and seeds on both sides): mean difference, its std and 95%
    interval, for top-1 and mean class accuracy."""
    a, b = read_protocol(folder_a), read_protocol(folder_b)
    if a.get("protocol") != b.get("protocol"):
        raise FparError(f"{folder_a} ran protocol {a.get('protocol')} and {folder_b} {b.get('protocol')}: "
                        "only runs of the same protocol pair up")
    runs_a = {run["key"]: run for run in a["runs"]}
    runs_b = {run["key"]: run for run in b["runs"]}
    if set(runs_a) != set(runs_b):
        only = sorted(set(runs_a) ^ set(runs_b))
        raise FparError(f"{folder_a} and {folder_b} hold different folds or seeds (unpaired: "
                        f"{', '.join(f'fold {f} seed {s}' for f, s in only[:4])}); run both with the same --seeds")
    keys = sorted(runs_a)
    result = {"protocol": a["protocol"], "a": str(folder_a), "b": str(folder_b), "pairs": len(keys)}
    for metric in ("top1", "mean_class"):
        result[metric] = summarise([runs_a[k][metric] - runs_b[k][metric] for k in keys])
    return result


def compare_text(result: dict[str, Any]) -> str:
    lines = [f"A = {result['a']}", f"B = {result['b']}",
             f"protocol {result['protocol']}, {result['pairs']} paired runs (same fold and seed)"]
    for metric, name in (("top1", "top-1"), ("mean_class", "mean class")):
        diff = result[metric]
        if diff["ci95"] is None:
            lines.append(f"{name:<11} A - B = {100 * diff['mean']:+.2f} points (one pair: no interval)")
        else:
            low, high = diff["ci95"]
            verdict = "A better" if low > 0 else "B better" if high < 0 else "no difference shown"
            lines.append(f"{name:<11} A - B = {100 * diff['mean']:+.2f} points, 95% interval "
                         f"[{100 * low:+.2f}, {100 * high:+.2f}] ({verdict})")
    return "\n".join(lines)

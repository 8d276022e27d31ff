"""``fpar report``'s work: each run evaluated once, its pictures drawn, and the report's files
written (the tables and the page: :mod:`fpar.workflows.report.tables`, :mod:`fpar.workflows.report.page`).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fpar.checkpoint import EXPORT_ONNX, EXPORT_WEIGHTS, load_checkpoint, read_contract
from fpar.data import load_index
from fpar.engine.epic_metrics import RULE_ACTION
from fpar.engine.evaluate import ClipResult, evaluate, evaluated_clips, printable_name
from fpar.engine.metric_registry import METRICS, MONITORED, file_column
from fpar.engine.run_folder import BEST_CKPT, LAST_CKPT, METRICS_JSON
from fpar.errors import FparError
from fpar.io import (inside, output_lock, refuse_link, refuse_overwriting_inputs, remove_leftovers,
                     write_text)
from fpar.workflows.report.page import html_page
from fpar.workflows.report.tables import markdown, table_columns

RunPath = str | os.PathLike
# in every report folder, first: the sign that a report may replace the folder's files
REPORT_MARKER = ".fpar-report"


def resolve_run(run: RunPath) -> Path:
    """A run folder's checkpoint (``best.ckpt``, else ``last.ckpt``), or the checkpoint or export given."""
    path = Path(run)
    if path.is_dir() and ((path / EXPORT_WEIGHTS).is_file() or (path / EXPORT_ONNX).is_file()):
        return path  # an export (fpar export): the folder is the checkpoint (an ONNX one is refused as such)
    if path.is_dir():
        for name in (BEST_CKPT, LAST_CKPT):
            if (path / name).is_file():
                return path / name
        raise FparError(f"{path}: a run folder holds best.ckpt or last.ckpt; this one has neither")
    if not path.is_file():
        raise FparError(f"{path}: no such run folder or checkpoint")
    return path


def write_report(runs: RunPath | Sequence[RunPath], data_root: RunPath, out_dir: RunPath, *,
                 split: Sequence[str] | str | None = None, clips: int = 4, title: str | None = None,
                 progress: bool = False, accelerator: str = "auto") -> dict[str, Any]:
    """Evaluate each run (a run folder or a checkpoint) on ``split`` of ``data_root`` once and write
    the report into ``out_dir``.

    Returns ``runs`` (per run: the evaluation result as :func:`fpar.engine.evaluate.evaluate` plus
    ``name``, ``epochs``, ``best_epoch`` and ``folder``) and the paths ``report`` (report.md),
    ``html`` (index.html) and ``json`` (report.json); given one run (not a list), also that run's
    result at the top level. ``title``: the name shown for a single run. ``accelerator``: what the
    evaluation runs on (as :func:`fpar.engine.evaluate.evaluate`'s).
    """
    single = isinstance(runs, (str, os.PathLike))
    checkpoints = [resolve_run(run) for run in ([runs] if single else runs)]
    if not checkpoints:
        raise FparError("report: name at least one run folder or checkpoint")
    out_dir = Path(out_dir)
    refuse_link(out_dir)
    refuse_overwriting_inputs(out_dir, data_root, *checkpoints, option="report folder")
    refuse_foreign_folder(out_dir)
    with output_lock(out_dir, f"report {out_dir}"):
        for name in ("report.md", "index.html", "report.json"):
            remove_leftovers(out_dir / name)
        return _write_report(single, checkpoints, data_root, out_dir, split, clips, title, progress, accelerator)


def refuse_foreign_folder(out_dir: Path) -> None:
    """A report replaces its own files (index.html, report.md, ...), never a user's: a folder that
    holds files but no :data:`REPORT_MARKER` (which a report writes before anything else) is
    someone else's."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FparError(f"report folder {out_dir} is a file")
    if not out_dir.is_dir() or (out_dir / REPORT_MARKER).is_file() or (out_dir / "report.json").is_file():
        return  # report.json: a finished report, of a version from before the marker
    other = sorted(p.name for p in out_dir.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp")))
    if other:
        raise FparError(f"report folder {out_dir} holds files that no fpar report wrote ({other[0]}, ...); "
                        "give a new or empty folder")


def _write_report(single: bool, checkpoints: list[Path], data_root: RunPath, out_dir: Path,
                  split: Sequence[str] | str | None, clips: int, title: str | None, progress: bool,
                  accelerator: str) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / REPORT_MARKER, "written by fpar report: a later report may replace this folder's files\n")
    names = _unique([(title if single and title else None) or _run_name(path) for path in checkpoints])
    results = []
    for checkpoint, name in zip(checkpoints, names):
        folder = out_dir if len(checkpoints) == 1 else out_dir / _slug(name)
        results.append(_report_run(checkpoint, name, data_root, folder, out_dir, split, clips, progress, accelerator))

    write_text(out_dir / "report.md", markdown(results))
    write_text(out_dir / "index.html", html_page(results, out_dir))
    write_text(out_dir / "report.json", json.dumps({"runs": [_summary(run) for run in results]}, indent=1) + "\n")
    paths = {"report": str(out_dir / "report.md"), "html": str(out_dir / "index.html"),
             "json": str(out_dir / "report.json")}
    return {**(results[0] if single else {}), "runs": results, **paths}


def _run_name(checkpoint: Path) -> str:
    contract = read_contract(load_checkpoint(checkpoint), checkpoint)
    return contract.title or (checkpoint.parent.name if checkpoint.stem in ("best", "last") else checkpoint.stem)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "run"


def _report_run(checkpoint: Path, name: str, data_root: RunPath, folder: Path, out_dir: Path,
                split: Sequence[str] | str | None, clips: int, progress: bool, accelerator: str = "auto") -> dict[str, Any]:
    """Evaluate one run and draw its pictures into ``folder``; paths in ``pictures`` are relative to ``out_dir``."""
    # matplotlib loads where pictures are drawn, not with resolve_run (`fpar eval`, docs/deployment.md)
    from fpar.viz.plots import plot_confusion, plot_correlation, plot_curves

    history = read_history(checkpoint.parent / METRICS_JSON)  # before the evaluation: a bad file fails at once
    folder.mkdir(parents=True, exist_ok=True)
    contract = read_contract(load_checkpoint(checkpoint), checkpoint)
    explain = _first_clip_of_classes(data_root, split, contract.config, clips)
    result = evaluate(checkpoint, data_root, split=split, predictions_csv=folder / "predictions.csv",
                      explain=explain, progress=progress, accelerator=accelerator)
    classes = [printable_name(c) for c in result["classes"]]
    rows = result["clips"]
    shown = printable_name(name)
    pictures: dict[str, Path] = {}

    if history:
        plot_curves(history, folder / "curves.png", title=shown)
        pictures["curves"] = folder / "curves.png"
    monitored = file_column(MONITORED)  # the validation number that chose best.ckpt
    accuracies = [(row["epoch"], row[monitored]) for row in history if row.get(monitored) is not None]
    best_epoch = max(accuracies, key=lambda pair: pair[1])[0] if accuracies else None
    if result["selection"]["method"] == "last":
        best_epoch = history[-1]["epoch"] if history else None

    plot_confusion(np.array(result["confusion"]), classes, folder / "confusion.png", title=f"{shown}: confusion")
    pictures["confusion"] = folder / "confusion.png"
    features = np.array([row.features for row in rows], dtype=np.float64)
    labels = np.array([row.label for row in rows])
    present = sorted(set(labels.tolist()))
    means = np.stack([features[labels == c].mean(axis=0) for c in present])
    # without the component all classes share, the correlations show which classes the model confuses
    plot_correlation(np.corrcoef(means - means.mean(axis=0)), [classes[c] for c in present],
                     folder / "features.png", title=f"{shown}: correlation of class-mean features")
    pictures["features"] = folder / "features.png"
    explained = [(printable_name(row.id), classes[row.label], paths)
                 for row, paths in _explanations(rows, folder / "clips", classes)]

    return {**result, "name": name, "epochs": history[-1]["epoch"] if history else None, "best_epoch": best_epoch,
            "folder": str(folder), "config": contract.config,
            "pictures": {key: path.relative_to(out_dir).as_posix() for key, path in pictures.items()},
            "explained": [(clip_id, label, [p.relative_to(out_dir).as_posix() for p in paths])
                          for clip_id, label, paths in explained]}


def read_history(path: Path) -> list[dict[str, Any]]:
    """A run's ``metrics.json`` (one row per validation), checked: each row a mapping with an integer
    ``epoch`` and numbers (or null) for its values; anything else is one line naming the file."""
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FparError(f"{path} is not valid JSON ({str(exc)[:120]}); remove it to report the run without "
                        "training curves") from None
    def number(value: Any) -> bool:
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
    if not isinstance(rows, list) or not all(
            isinstance(row, dict) and isinstance(row.get("epoch"), int) and not isinstance(row["epoch"], bool)
            and all(isinstance(key, str) and number(value) for key, value in row.items()) for row in rows):
        raise FparError(f"{path} is not a training history (a list of rows of numbers with an integer epoch); "
                        "remove it to report the run without training curves")
    return rows


def _first_clip_of_classes(data_root: RunPath, split: Sequence[str] | str | None, config: dict[str, Any] | None,
                           count: int) -> set[str]:
    """Ids of the first clip of each of the first ``count`` classes in the split (the clips explained)."""
    chosen: dict[int, str] = {}
    for inst in evaluated_clips(load_index(data_root), split, config)[1]:  # those fpar eval scores, a recorded split's too
        if inst.class_id not in chosen and len(chosen) < count:
            chosen[inst.class_id] = inst.instance_id
    return set(chosen.values())


def _explanations(rows: list[ClipResult], clips_dir: Path, classes: list[str]) -> list[tuple[ClipResult, list[Path]]]:
    """The explanation pictures of the clips evaluated with ``explain``, each frame captioned with
    the predicted class, its probability and the true class."""
    from fpar.viz.explain import explain_clip

    explained = []
    for row in rows:
        if row.explanation is not None:
            folder = inside(clips_dir, _slug(printable_name(row.id)))
            paths = explain_clip(row.explanation["clip"], row.explanation["outputs"], folder,
                                 title=printable_name(row.id), predicted=classes[row.prediction],
                                 probability=row.scores[row.prediction], true=classes[row.label])
            if paths:
                explained.append((row, paths))
    return explained


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    """What report.json keeps of a run: its numbers, names printable."""
    return {"name": printable_name(run["name"]), "checkpoint": printable_name(run["checkpoint"]),
            "split": run["split"], "selection": run["selection"], **{key: run.get(key) for key, _, _ in table_columns()},
            "per_class": {printable_name(c): acc for c, acc in run["per_class"].items()},
            "classes": [printable_name(c) for c in run["classes"]], "confusion": run["confusion"],
            **({"heads": {kind: {**{key: head[key] for key in (*METRICS, "n") if key in head},
                                 "per_class": {printable_name(c): acc for c, acc in head["per_class"].items()}}
                          for kind, head in run["heads"].items()}} if run.get("heads") else {}),
            **({RULE_ACTION: run[RULE_ACTION]} if RULE_ACTION in run else {})}

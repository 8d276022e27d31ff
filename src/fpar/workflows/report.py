"""``fpar report``: one folder a person can look at for one trained model or several side by side.

Each run is evaluated once on held-out subjects. ``index.html`` (self-contained: the pictures are
embedded) shows, with several runs, a comparison table like the paper's (rows: runs; columns:
top-1, top-5 and mean-class accuracy, epochs, best epoch), then for each run its accuracy per
class, the pictures the paper shows for each model (§5: training curves, the confusion matrix,
the correlation of class-mean features, per-clip explanations: CAM attention GIFs, MS head
against the motion maps, two-in-one modulation maps) and the config it was trained with.
``report.md`` says the same in Markdown, ``report.json`` holds the numbers, and each run's
pictures and ``predictions.csv`` lie in the report folder (one run) or in one sub-folder per run.

Names that are not UTF-8 (folders whose bytes ``os.listdir`` surrogate-escapes) are written
backslash-escaped everywhere (:func:`fpar.engine.evaluate.printable_name`).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from fpar.checkpoint import EXPORT_ONNX, EXPORT_WEIGHTS, load_checkpoint, read_contract
from fpar.data import load_index
from fpar.engine.epic_metrics import RULE_ACTION
from fpar.engine.evaluate import ClipResult, evaluate, printable_name, split_subjects
from fpar.engine.selection import short_text
from fpar.engine.run_folder import BEST_CKPT, LAST_CKPT, METRICS_JSON
from fpar.errors import FparError
from fpar.io import (inside, output_lock, refuse_link, refuse_overwriting_inputs, remove_leftovers,
                     write_text)

RunPath = str | os.PathLike
# in every report folder, first: the sign that a report may replace the folder's files
REPORT_MARKER = ".fpar-report"
# the comparison table's columns: (key, heading, format)
COLUMNS = (("accuracy", "top-1", "percent"), ("top5", "top-5", "percent"),
           ("mean_class_accuracy", "mean class", "percent"), ("n", "clips", "int"),
           ("epochs", "epochs", "int"), ("best_epoch", "best epoch", "int"), ("selection", "selection", "selection"))


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

    write_text(out_dir / "report.md", _markdown(results))
    write_text(out_dir / "index.html", _html(results, out_dir))
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
    explain = _first_clip_of_classes(data_root, contract.classes, split, contract.config, clips)
    result = evaluate(checkpoint, data_root, split=split, predictions_csv=folder / "predictions.csv",
                      explain=explain, progress=progress, accelerator=accelerator)
    classes = [printable_name(c) for c in result["classes"]]
    rows = result["clips"]
    shown = printable_name(name)
    pictures: dict[str, Path] = {}

    if history:
        plot_curves(history, folder / "curves.png", title=shown)
        pictures["curves"] = folder / "curves.png"
    accuracies = [(row["epoch"], row["val_accuracy"]) for row in history if row.get("val_accuracy") is not None]
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


def _first_clip_of_classes(data_root: RunPath, classes: list[str] | None, split: Sequence[str] | str | None,
                           config: dict[str, Any] | None, count: int) -> set[str]:
    """Ids of the first clip of each of the first ``count`` classes in the split (the clips explained)."""
    subjects = split_subjects(split, config)
    chosen: dict[int, str] = {}
    for inst in load_index(data_root).instances:
        if inst.subject in subjects and inst.class_id not in chosen and len(chosen) < count:
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
            "split": run["split"], "selection": run["selection"], **{key: run[key] for key, _, _ in COLUMNS},
            "per_class": {printable_name(c): acc for c, acc in run["per_class"].items()},
            "classes": [printable_name(c) for c in run["classes"]], "confusion": run["confusion"],
            **({"heads": {kind: {**{key: head[key] for key in ("accuracy", "top5", "mean_class_accuracy", "n")},
                                 "per_class": {printable_name(c): acc for c, acc in head["per_class"].items()}}
                          for kind, head in run["heads"].items()}} if run.get("heads") else {}),
            **({RULE_ACTION: run[RULE_ACTION]} if RULE_ACTION in run else {})}


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "selection":  # the record of selection_record: the subjects that chose the checkpoint
        return short_text(value, value.get("subjects"))
    return f"{100 * value:.1f}%" if kind == "percent" else str(value)


# --- Markdown ----------------------------------------------------------------------------------

def _markdown(runs: list[dict[str, Any]]) -> str:
    sections = []
    if len(runs) > 1:
        sections += ["# Comparison", "", "| run | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
                     "|---" * (len(COLUMNS) + 1) + "|"]
        sections += [f"| {printable_name(run['name'])} | " + " | ".join(_cell(run[k], f) for k, _, f in COLUMNS) + " |"
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
    lines = ["| metric | value |", "|---|---|",
             f"| top-1 accuracy | {100 * run['accuracy']:.1f}% |",
             f"| top-5 accuracy | {100 * run['top5']:.1f}% |",
             f"| mean per-class accuracy | {100 * run['mean_class_accuracy']:.1f}% |", "",
             "| class | accuracy |", "|---|---|"]
    lines += [f"| {printable_name(name)} | {100 * acc:.1f}% |" for name, acc in run["per_class"].items()]
    for kind, head in (run.get("heads") or {}).items():  # the label heads (verb, noun), each its own table
        lines += ["", f"| {kind} head | value |", "|---|---|",
                  f"| top-1 accuracy | {100 * head['accuracy']:.1f}% |", f"| top-5 accuracy | {100 * head['top5']:.1f}% |",
                  f"| mean per-class accuracy | {100 * head['mean_class_accuracy']:.1f}% |", "",
                  f"| {kind} | accuracy |", "|---|---|"]
        lines += [f"| {printable_name(name)} | {100 * acc:.1f}% |" for name, acc in head["per_class"].items()]
    if RULE_ACTION in run:
        rule = run[RULE_ACTION]
        lines += ["", f"Action by EPIC-KITCHENS-100's rule over the verb and noun heads ({RULE_ACTION}): top-1 "
                      f"{100 * rule['accuracy']:.1f}%, top-5 {100 * rule['top5']:.1f}%."]
    return "\n".join(lines)


# --- HTML --------------------------------------------------------------------------------------

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2330;
       background: #f4f6f9; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 21px; margin: 0 0 6px; }
h3 { font-size: 15px; margin: 18px 0 8px; color: #46506a; text-transform: uppercase; letter-spacing: .04em; }
.sub { color: #5b6478; margin: 0 0 18px; }
section { background: #fff; border-radius: 10px; box-shadow: 0 1px 3px rgba(20,30,60,.12);
          padding: 20px 24px; margin: 18px 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 12px; text-align: right; border-bottom: 1px solid #e4e8ef; }
th:first-child, td:first-child { text-align: left; }
th { background: #eef1f6; font-weight: 600; }
td.best { font-weight: 700; color: #0b6e3a; }
.tiles { display: flex; gap: 12px; flex-wrap: wrap; margin: 10px 0 4px; }
.tile { background: #f0f4fa; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.tile b { display: block; font-size: 22px; } .tile span { color: #5b6478; font-size: 13px; }
.bar { background: #e4e8ef; border-radius: 4px; width: 220px; height: 12px; display: inline-block;
       vertical-align: middle; margin-left: 8px; overflow: hidden; }
.bar i { display: block; height: 100%; background: #3b7dd8; }
.grid { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
.grid figure { margin: 0; } figure img { max-width: 100%; border-radius: 4px; }
figcaption { font-size: 13px; color: #5b6478; margin-top: 4px; overflow-wrap: break-word; }
.clip { margin: 14px 0 22px; } .clip h4 { margin: 0 0 6px; font-size: 15px; }
.clip h4 span { font-weight: 400; color: #5b6478; margin-left: 8px; }
.clip-pics { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
.clip-pics figure { margin: 0; } .clip-pics figure.cam img { width: 240px; }
.clip-pics figure.strip { flex: 1 1 100%; } .clip-pics figure.strip img { max-width: 100%; }
img.pic { max-width: 540px; } img.wide { max-width: 100%; }
details pre { background: #f6f8fb; padding: 12px; border-radius: 6px; overflow-x: auto; font-size: 12.5px; }
code { font-size: 13px; }
"""


# what each explanation picture (fpar/viz/explain.py) shows, as the report captions it
EXPLANATION_CAPTIONS = {
    "cam": "CAM attention on each sampled frame (caption: predicted and true class)",
    "ms": "MS head: motion maps, their target on the head's grid, its predictions (colour bar: probability)",
    "modulation": "two-in-one: conv1 output before modulation, scale, shift and after (mean over channels)",
}


def _embed(out_dir: Path, relative: str) -> str:
    path = out_dir / relative
    mime = {"png": "image/png", "gif": "image/gif"}.get(path.suffix.lstrip(".").lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _html(runs: list[dict[str, Any]], out_dir: Path) -> str:
    esc = lambda text: html.escape(printable_name(str(text)))  # noqa: E731
    title = "Comparison of " + ", ".join(esc(run["name"]) for run in runs) if len(runs) > 1 else esc(runs[0]["name"])
    body = [f"<h1>{title}</h1>", f"<p class='sub'>fpar report: {len(runs)} run{'s' * (len(runs) > 1)}, "
            "held-out accuracy, training curves, confusion, feature correlation and attention.</p>"]
    if len(runs) > 1:
        best = {key: max((run[key] for run in runs if run[key] is not None), default=None)
                for key, _, kind in COLUMNS if kind == "percent"}
        head = "".join(f"<th>{h}</th>" for _, h, _ in COLUMNS)
        rows = "".join(
            f"<tr><td><a href='#run{i}'>{esc(run['name'])}</a></td>" + "".join(
                f"<td class='{'best' if key in best and run[key] == best[key] else ''}'>{esc(_cell(run[key], kind))}</td>"
                for key, _, kind in COLUMNS) + "</tr>"
            for i, run in enumerate(runs))
        body.append(f"<section><h2>Comparison</h2><table><tr><th>run</th>{head}</tr>{rows}</table></section>")
    for i, run in enumerate(runs):
        body.append(_html_run(i, run, out_dir, esc))
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title>"
            f"<style>{STYLE}</style></head><body><main>{''.join(body)}</main></body></html>\n")


def _html_run(index: int, run: dict[str, Any], out_dir: Path, esc: Any) -> str:
    parts = [f"<section id='run{index}'><h2>{esc(run['name'])}</h2>",
             f"<p class='sub'>Checkpoint <code>{esc(run['checkpoint'])}</code>, evaluated on "
             f"{esc(', '.join(run['split']))} ({run['n']} clips, centre crop)"
             + (f"; {esc(run['epochs'])} epoch{'s' * (run['epochs'] != 1)}, best at epoch {esc(run['best_epoch'])}" if run["epochs"] else "")
             + f". Checkpoint selection: {esc(run['selection']['text'])}.</p>"]
    tiles = [("top-1", run["accuracy"]), ("top-5", run["top5"]), ("mean class", run["mean_class_accuracy"])]
    parts.append("<div class='tiles'>" + "".join(f"<div class='tile'><b>{100 * v:.1f}%</b><span>{k} accuracy</span></div>"
                                                 for k, v in tiles) + "</div>")
    pictures = run["pictures"]
    if "curves" in pictures:
        parts.append(f"<h3>Training</h3><img class='wide' alt='training curves' src='{_embed(out_dir, pictures['curves'])}'>")
    rows = "".join(f"<tr><td>{esc(name)}</td><td>{100 * acc:.1f}%<span class='bar'><i style='width:{100 * acc:.1f}%'>"
                   "</i></span></td></tr>" for name, acc in run["per_class"].items())
    parts.append(f"<h3>Accuracy per class</h3><table><tr><th>class</th><th>accuracy</th></tr>{rows}</table>")
    parts.append("<h3>Confusion and feature correlation</h3><div class='grid'>" + "".join(
        f"<figure><img class='pic' alt='{alt}' src='{_embed(out_dir, pictures[key])}'><figcaption>{alt}</figcaption></figure>"
        for key, alt in (("confusion", "confusion matrix (rows: true class)"),
                         ("features", "correlation of class-mean features")) if key in pictures) + "</div>")
    if run["explained"]:
        # one block per clip: its CAM GIF beside the caption, each strip of maps on a line of its own
        # (full width, so its row labels stay legible), captions that say what a picture shows
        blocks = []
        for clip_id, label, paths in run["explained"]:
            figures = []
            for path in paths:
                kind = Path(path).stem
                what = EXPLANATION_CAPTIONS.get(kind, kind)
                figures.append(f"<figure class='{'cam' if path.endswith('.gif') else 'strip'}'>"
                               f"<img alt='{esc(what)}' src='{_embed(out_dir, path)}'>"
                               f"<figcaption>{esc(what)}</figcaption></figure>")
            blocks.append(f"<div class='clip'><h4>{esc(clip_id)}<span>true class: {esc(label)}</span></h4>"
                          f"<div class='clip-pics'>{''.join(figures)}</div></div>")
        parts.append("<h3>What the model looks at</h3>" + "".join(blocks))
    if run["config"]:
        config = yaml.safe_dump(run["config"], sort_keys=False, allow_unicode=True)
        parts.append(f"<details><summary>Config</summary><pre>{esc(config)}</pre></details>")
    parts.append("</section>")
    return "".join(parts)

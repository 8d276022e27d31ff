"""``fpar report``: one folder a person can look at for a trained model.

``report.md`` with the held-out accuracy (top-1, top-5, mean per-class, per class), and the
pictures the paper shows for each model (§5): training curves, the confusion matrix, the
correlation of class-mean features, and per-clip explanations (CAM attention GIFs, MS head
against the motion maps, two-in-one modulation maps) for one clip of each of a few classes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fpar.checkpoint import load_checkpoint, read_contract
from fpar.data import load_index
from fpar.engine.evaluate import ClipResult, evaluate, split_subjects
from fpar.io import inside, write_text
from fpar.viz.explain import explain_clip
from fpar.viz.plots import plot_confusion, plot_correlation, plot_curves


def write_report(checkpoint: str | os.PathLike, data_root: str | os.PathLike, out_dir: str | os.PathLike, *,
                 split: Sequence[str] | str | None = None, clips: int = 4, title: str | None = None) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on ``split`` of ``data_root`` (once) and write the report into ``out_dir``.

    Returns the evaluation result (as :func:`fpar.engine.evaluate.evaluate`) plus ``report``, the
    path of ``report.md``. ``predictions.csv`` is written beside it as an output.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contract = read_contract(load_checkpoint(checkpoint), checkpoint)
    title = title or contract.title or checkpoint.stem
    explain = _first_clip_of_classes(data_root, contract.classes, split, contract.config, clips)
    result = evaluate(checkpoint, data_root, split=split, predictions_csv=out_dir / "predictions.csv",
                      explain=explain)
    classes, rows = result["classes"], result["clips"]

    sections = [f"# {title}", "", f"Checkpoint `{checkpoint}`, evaluated on {', '.join(result['split'])} "
                f"({result['n']} clips, centre crop).", "", _accuracy_table(result), ""]
    history = checkpoint.parent / "metrics.json"
    if history.is_file():
        plot_curves(json.loads(history.read_text()), out_dir / "curves.png", title=title)
        sections += ["## Training", "", "![training curves](curves.png)", ""]

    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, ([row.label for row in rows], [row.prediction for row in rows]), 1)
    plot_confusion(matrix, classes, out_dir / "confusion.png", title=f"{title}: confusion")
    sections += ["## Confusion matrix", "", "![confusion matrix](confusion.png)", ""]

    features = np.array([row.features for row in rows], dtype=np.float64)
    labels = np.array([row.label for row in rows])
    present = sorted(set(labels.tolist()))
    means = np.stack([features[labels == c].mean(axis=0) for c in present])
    # without the component all classes share, the correlations show which classes the model confuses
    plot_correlation(np.corrcoef(means - means.mean(axis=0)), [classes[c] for c in present],
                     out_dir / "features.png", title=f"{title}: correlation of class-mean features")
    sections += ["## Feature correlation", "", "![feature correlation](features.png)", ""]
    explained = _explanations(rows, out_dir / "clips")
    if explained:
        sections += ["## What the model looks at", ""]
        for row, paths in explained:
            sections += [f"**{row.id}** (true class `{classes[row.label]}`)", ""]
            sections += [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in paths] + [""]

    write_text(out_dir / "report.md", "\n".join(sections))
    return {**result, "report": str(out_dir / "report.md")}


def _first_clip_of_classes(data_root: str | os.PathLike, classes: list[str] | None, split: Sequence[str] | str | None,
                           config: dict[str, Any] | None, count: int) -> set[str]:
    """Ids of the first clip of each of the first ``count`` classes in the split (the clips explained)."""
    subjects = split_subjects(split, config)
    chosen: dict[int, str] = {}
    for inst in load_index(data_root).instances:
        if inst.subject in subjects and inst.class_id not in chosen and len(chosen) < count:
            chosen[inst.class_id] = inst.instance_id
    return set(chosen.values())


def _accuracy_table(result: dict[str, Any]) -> str:
    lines = ["| metric | value |", "|---|---|",
             f"| top-1 accuracy | {100 * result['accuracy']:.1f}% |",
             f"| top-5 accuracy | {100 * result['top5']:.1f}% |",
             f"| mean per-class accuracy | {100 * result['mean_class_accuracy']:.1f}% |", "",
             "| class | accuracy |", "|---|---|"]
    lines += [f"| {name} | {100 * acc:.1f}% |" for name, acc in result["per_class"].items()]
    return "\n".join(lines)


def _explanations(rows: list[ClipResult], clips_dir: Path) -> list[tuple[ClipResult, list[Path]]]:
    """The explanation pictures of the clips evaluated with ``explain``."""
    explained = []
    for row in rows:
        if row.explanation is not None:
            folder = inside(clips_dir, re.sub(r"[^A-Za-z0-9_.-]+", "_", row.id))
            paths = explain_clip(row.explanation["clip"], row.explanation["outputs"], folder, title=row.id)
            if paths:
                explained.append((row, paths))
    return explained

"""``fpar report``: one folder a person can look at for a trained model.

``report.md`` with the held-out accuracy (top-1, top-5, mean per-class, per class), and the
pictures the paper shows for each model (§5): training curves, the confusion matrix, the
correlation of class-mean features, and per-clip explanations (CAM attention GIFs, MS head
against the motion maps, two-in-one modulation maps) for one clip of each of a few classes.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from fpar.checkpoint import load_model
from fpar.data import ClipDataset, load_index
from fpar.engine.evaluate import data_settings, evaluate
from fpar.io import write_text
from fpar.viz.explain import explain_clip
from fpar.viz.plots import plot_confusion, plot_correlation, plot_curves


def write_report(checkpoint: str | os.PathLike, data_root: str | os.PathLike, out_dir: str | os.PathLike, *,
                 split: Sequence[str] | str | None = None, clips: int = 4, title: str | None = None) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on ``split`` of ``data_root`` and write the report into ``out_dir``.

    Returns the evaluation result (as :func:`fpar.engine.evaluate.evaluate`) plus ``report``, the
    path of ``report.md``.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = evaluate(checkpoint, data_root, split=split, predictions_csv=out_dir / "predictions.csv")
    model, info = load_model(checkpoint)
    if hasattr(model, "return_modulation"):
        model.return_modulation = True
    title = title or info.get("config", {}).get("experiment") or checkpoint.stem
    classes = info.get("classes") or load_index(data_root).classes

    sections = [f"# {title}", "", f"Checkpoint `{checkpoint}`, evaluated on {', '.join(result['split'])} "
                f"({result['n']} clips, centre crop).", "", _accuracy_table(result), ""]
    history = checkpoint.parent / "metrics.json"
    if history.is_file():
        plot_curves(json.loads(history.read_text()), out_dir / "curves.png", title=title)
        sections += ["## Training", "", "![training curves](curves.png)", ""]

    labels, predictions = _read_predictions(out_dir / "predictions.csv", classes)
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    plot_confusion(matrix, classes, out_dir / "confusion.png", title=f"{title}: confusion")
    sections += ["## Confusion matrix", "", "![confusion matrix](confusion.png)", ""]

    dataset = _dataset(data_root, info, result["split"], with_mmaps=getattr(model, "ms_head", None) is not None)
    features, feature_labels, explained = _features_and_explanations(model, dataset, out_dir / "clips", clips)
    means = np.stack([features[feature_labels == c].mean(axis=0) for c in sorted(set(feature_labels.tolist()))])
    present = [classes[c] for c in sorted(set(feature_labels.tolist()))]
    # without the component all classes share, the correlations show which classes the model confuses
    plot_correlation(np.corrcoef(means - means.mean(axis=0)), present, out_dir / "features.png",
                     title=f"{title}: correlation of class-mean features")
    sections += ["## Feature correlation", "", "![feature correlation](features.png)", ""]
    if explained:
        sections += ["## What the model looks at", ""]
        for clip_id, label, paths in explained:
            sections += [f"**{clip_id}** (true class `{classes[label]}`)", ""]
            sections += [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in paths] + [""]

    write_text(out_dir / "report.md", "\n".join(sections))
    return {**result, "report": str(out_dir / "report.md")}


def _accuracy_table(result: dict[str, Any]) -> str:
    lines = ["| metric | value |", "|---|---|",
             f"| top-1 accuracy | {100 * result['accuracy']:.1f}% |",
             f"| top-5 accuracy | {100 * result['top5']:.1f}% |",
             f"| mean per-class accuracy | {100 * result['mean_class_accuracy']:.1f}% |", "",
             "| class | accuracy |", "|---|---|"]
    lines += [f"| {name} | {100 * acc:.1f}% |" for name, acc in result["per_class"].items()]
    return "\n".join(lines)


def _read_predictions(path: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ids = {name: i for i, name in enumerate(classes)}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return (np.array([ids[r["label"]] for r in rows], dtype=np.int64),
            np.array([ids[r["prediction"]] for r in rows], dtype=np.int64))


def _dataset(data_root: str | os.PathLike, info: dict[str, Any], subjects: list[str], with_mmaps: bool) -> ClipDataset:
    data = data_settings(info)
    modalities = list(data["modalities"]) + (["mmaps"] if with_mmaps and "mmaps" not in data["modalities"] else [])
    instances = [i for i in load_index(data_root, data["layout"]).instances if i.subject in subjects]
    return ClipDataset(instances, modalities=modalities, num_frames=data["num_frames"], stack_size=data["stack_size"],
                       flow_mode=data["flow_mode"], train=False, resize=data["resize"], crop=data["crop"])


def _features_and_explanations(model: torch.nn.Module, dataset: ClipDataset, clips_dir: Path, clips: int):
    """Features of every clip; explanation pictures for the first clip of ``clips`` classes."""
    features, labels, explained, shown = [], [], [], set()
    with torch.inference_mode():
        for index in range(len(dataset)):
            clip = dataset[index]
            outputs = model({m: clip[m].unsqueeze(0) for m in dataset.modalities})  # models ignore mmaps
            label = int(clip["label"])
            features.append(outputs["features"][0].float().cpu().numpy())
            labels.append(label)
            if label not in shown and len(shown) < clips:
                shown.add(label)
                folder = clips_dir / re.sub(r"[^A-Za-z0-9_.-]+", "_", clip["id"])
                paths = explain_clip(clip, outputs, folder, title=clip["id"])
                if paths:
                    explained.append((clip["id"], label, paths))
    return np.stack(features), np.array(labels), explained

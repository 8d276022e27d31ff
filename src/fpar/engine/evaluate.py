"""``evaluate(checkpoint, data_root)``: accuracy of a trained model on held-out subjects, and one
row per clip (id, label, scores, features, the explanations asked for), the one inference path
that ``fpar eval`` and ``fpar report`` share.

One process scores in a plain loop; several (``devices > 1``) go through Lightning's DDP
(:mod:`fpar.engine.distributed_eval`), where every clip is still scored exactly once. Multi-view
evaluation (``five``/``ten`` crops) averages the softmax scores (and the features) of the views.
The clips are read as the checkpoint's own clip settings say: no config file is needed.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Collection, Iterator, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from fpar.checkpoint import load_model, model_reads_its_clip
from fpar.data import ClipDataset, load_index
from fpar.data.settings import DataSettings
from fpar.engine.compute import channels_last_batch, prepare_for_inference
from fpar.engine.hardware import autocast_dtype, device_for, resolve_precision
from fpar.engine.selection import selection_record
from fpar.errors import FparError
from fpar.io import check_writable, refuse_overwriting_inputs, write_text

log = logging.getLogger(__name__)  # the precision line: shown with --verbose


# accelerators a single-process evaluation runs on without Lightning (others, e.g. mps, go through it)
IN_PROCESS_ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
# frames of a batch the backbone takes at a time: `fpar eval` of a ResNet-34 at 224 px (8 clips of
# 16 frames, bf16) peaked at 1.11 GB with all 128 at once and at 0.71 GB with 32, at the same speed
FRAMES_PER_PASS = 32


@dataclass
class ClipResult:
    """One scored clip. ``explanation``: the clip (no batch axis) and the model's outputs for it
    (batch of one, with the maps ``explain=True`` adds), for the clips whose ids were asked for."""

    position: int
    id: str
    label: int
    scores: list[float]
    features: list[float]
    explanation: dict[str, dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def prediction(self) -> int:
        return max(range(len(self.scores)), key=self.scores.__getitem__)


class ClipScorer:
    """Scores batches with a fixed model, as one process's share of a dataset; ``score`` gives one
    :class:`ClipResult` per clip, numbered by ``positions`` (the clips' indices in the dataset)."""

    def __init__(self, model: nn.Module, dataset: ClipDataset, explain: Collection[str] = (),
                 dtype: torch.dtype | None = None):
        # ``dtype``: the autocast dtype it scores under, where this process sets it (its weights
        # are then stored in it); Lightning's precision plugin casts at each call instead
        self.model = prepare_for_inference(model, dtype=dtype, frames_per_pass=FRAMES_PER_PASS)
        self.dataset = dataset
        self.explain = set(explain)

    def score(self, batch: dict[str, Any], positions: Iterator[int]) -> list[ClipResult]:
        explain = bool(self.explain.intersection(batch["id"]))
        if self.dataset.views == "center":
            outputs = self.model(channels_last_batch(batch), explain=explain)
            probs, features = outputs["logits"].float().softmax(dim=1), outputs["features"].float()
        else:  # tensors are (B, V, ...): average the softmax (and features) of every view
            inputs = {m: batch[m] for m in self.dataset.modalities}
            num_views = next(iter(inputs.values())).shape[1]
            views = [self.model(channels_last_batch({m: x[:, v] for m, x in inputs.items()}))
                     for v in range(num_views)]
            probs = torch.stack([out["logits"].float().softmax(dim=1) for out in views]).mean(dim=0)
            features = torch.stack([out["features"].float() for out in views]).mean(dim=0)
        rows = []
        for i, (clip_id, label) in enumerate(zip(batch["id"], batch["label"].tolist())):
            row = ClipResult(next(positions), clip_id, label, probs[i].cpu().tolist(), features[i].cpu().tolist())
            if clip_id in self.explain and self.dataset.views == "center":
                row.explanation = {
                    "clip": {k: v[i].cpu() for k, v in batch.items() if isinstance(v, torch.Tensor)} | {"id": clip_id},
                    "outputs": {k: v[i:i + 1].detach().cpu() for k, v in outputs.items()},
                }
            rows.append(row)
        return rows


def score_in_process(scorer: ClipScorer, batch_size: int, workers: int, accelerator: str, precision: str,
                     progress: bool) -> list[ClipResult]:
    """Every clip in this process, in order: a plain loop. Lightning's (:mod:`fpar.engine.distributed_eval`)
    is for several processes; importing it costs 1.5-2 s and ~120 MB, a fifth of scoring a small
    test split."""
    device = torch.device(device_for(accelerator))
    scorer.model.to(device)
    loader = DataLoader(scorer.dataset, batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda")
    dtype = autocast_dtype(precision)
    positions = iter(range(len(scorer.dataset)))
    rows: list[ClipResult] = []
    started = time.monotonic()
    batches = tqdm(loader, desc="scoring", unit="batch", file=sys.stderr, dynamic_ncols=True) \
        if progress and sys.stderr.isatty() else loader
    with torch.inference_mode(), torch.autocast(device.type, dtype or torch.float32, enabled=dtype is not None):
        for batch in batches:
            batch = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            rows += scorer.score(batch, positions)
    if progress and not sys.stderr.isatty():
        print(f"scored {len(loader)} batches in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return rows


def evaluate(checkpoint: str | os.PathLike, data_root: str | os.PathLike, *, split: Sequence[str] | str | None = None,
             views: str = "center", batch_size: int = 8, devices: int | None = None, accelerator: str = "auto",
             workers: int = 0, predictions_csv: str | os.PathLike | None = None, explain: Collection[str] = (),
             precision: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Score ``checkpoint`` on the ``split`` subjects of ``data_root`` (default: the subjects it was validated on).

    Returns ``accuracy``, ``top5``, ``mean_class_accuracy`` (mean over the classes present of each
    class's accuracy), ``per_class`` {class: accuracy}, ``n``, ``split``, ``views``, ``checkpoint``,
    ``classes``, ``confusion`` (rows: true class, columns: predicted), ``clips`` (one
    :class:`ClipResult` per clip, in dataset order; the clips whose ids are in ``explain`` also carry
    their inputs and explanation outputs), ``selection`` (how the checkpoint was chosen:
    :func:`fpar.engine.selection.selection_record`) and ``rank``, this process's (0 but in the processes a
    ``devices > 1`` evaluation starts: only rank 0 should print or write). ``predictions_csv``:
    also write one row per clip (id, label, prediction, one score column per class) there, names
    through :func:`printable_name`. ``precision``: as ``trainer.precision`` (``auto``: what the
    hardware runs fastest); default the precision the checkpoint was trained with (``auto`` for a
    checkpoint without a training config), so a model is scored as it was validated.
    """
    devices = devices or 1
    for name, value, least in (("batch_size", batch_size, 1), ("workers", workers, 0), ("devices", devices, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise FparError(f"{name} must be an integer >= {least}, got {value!r}")
    if predictions_csv is not None:
        refuse_overwriting_inputs(predictions_csv, checkpoint, data_root, option="predictions file")
        check_writable(predictions_csv)  # before the evaluation, not after it
    model, info = load_model(checkpoint, mmap=False)  # its weights are copied to channels-last
    subjects = split_subjects(split, info.config)

    index = load_index(data_root)
    classes = info.classes or index.classes
    if index.classes != classes:
        raise FparError(f"{data_root} has classes {_short(index.classes)} but {checkpoint} was trained on "
                        f"{_short(classes)}")
    instances = [inst for inst in index.instances if inst.subject in subjects]
    if not instances:
        raise FparError(f"{data_root}: no instances of subjects {', '.join(subjects)} "
                        f"(the dataset has {', '.join(index.subjects)})")
    settings = info.clip
    if explain and getattr(model, "ms_head", None) is not None:
        settings = settings.with_modality("mmaps")  # the MS head's target, shown beside its prediction
    dataset = ClipDataset(instances, settings, train=False, views=views)

    if devices > len(dataset):
        # a process with no clip has an empty loader, which DDP cannot run (every process must step)
        raise FparError(f"{devices} processes for {len(dataset)} clips of {', '.join(subjects)}: "
                        f"give --devices {len(dataset)} or fewer")
    precision = precision or info.trained_precision
    if devices == 1 and accelerator in IN_PROCESS_ACCELERATORS:
        rank = 0
        precision = resolve_precision(precision, accelerator, announce=log.info if progress else False)
        scorer = ClipScorer(model, dataset, explain, dtype=autocast_dtype(precision))
        with model_reads_its_clip(checkpoint, info):
            rows = score_in_process(scorer, batch_size, workers, accelerator, precision, progress)
    else:
        from fpar.engine.distributed_eval import score_distributed

        rows, rank = score_distributed(ClipScorer(model, dataset, explain), batch_size, workers, accelerator, devices,
                                       precision, progress)

    if [row.position for row in rows] != list(range(len(dataset))):
        raise FparError(f"internal error: scored {len(rows)} clips for a split of {len(dataset)}")
    result = _metrics(rows, classes)
    result.update(split=list(subjects), views=views, checkpoint=str(checkpoint), classes=list(classes), clips=rows,
                  rank=rank, selection=selection_record(info.config))
    if predictions_csv is not None and rank == 0:
        write_text(predictions_csv, _predictions_csv(rows, classes))
    return result


def split_subjects(split: Sequence[str] | str | None, config: dict[str, Any] | None) -> list[str]:
    """``split`` as a list; none given: the subjects the model was validated on (imported reference
    models: the standard split's)."""
    if split is not None:
        return _subjects(split)
    return config["data"]["val_subjects"] if config else DataSettings().val_subjects


def _subjects(split: Sequence[str] | str) -> list[str]:
    subjects = [s.strip() for s in split.split(",")] if isinstance(split, str) else list(split)
    if not subjects or not all(subjects):
        raise FparError(f"--split must name subjects, e.g. S2 or S2,S4; got {split!r}")
    return subjects


def _short(names: list[str]) -> str:
    return f"[{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}] ({len(names)})"


def _metrics(rows: list[ClipResult], classes: list[str]) -> dict[str, Any]:
    # torchmetrics takes ~0.6 s to import: once the clips are scored, not before the first frame
    # (docs/deployment.md, "Fast start")
    from fpar.engine.metrics import ClassificationMetrics

    metrics = ClassificationMetrics(len(classes))
    metrics.update(torch.tensor([row.scores for row in rows]), torch.tensor([row.label for row in rows]))
    numbers = metrics.compute()
    per_class = numbers["per_class"].tolist()
    return {
        "accuracy": float(numbers["accuracy"]),
        "top5": float(numbers["top5"]),
        "mean_class_accuracy": float(numbers["mean_class_accuracy"]),
        "per_class": {classes[c]: acc for c, acc in enumerate(per_class) if acc == acc},  # NaN: absent
        "confusion": numbers["confusion"].tolist(),
        "n": len(rows),
    }


def printable_name(name: str) -> str:
    """``name`` as text every file and terminal takes: a class or clip named by a folder whose name
    is not UTF-8 (``os.listdir`` gives its bytes surrogate-escaped) shows those bytes backslash-escaped
    (``shake_\\xff\\xfejar``); valid names are unchanged. Every file ``eval`` and ``report`` write uses it."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that no byte escape made
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _predictions_csv(rows: list[ClipResult], classes: list[str]) -> str:
    """One CSV row per clip: id, true class, predicted class, one score column per class."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    names = [printable_name(name) for name in classes]
    writer.writerow(["id", "label", "prediction", *names])
    for row in rows:
        writer.writerow([printable_name(row.id), names[row.label], names[row.prediction],
                         *(f"{p:.6f}" for p in row.scores)])
    return text.getvalue()

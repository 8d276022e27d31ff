"""``evaluate(checkpoint, data_root)``: accuracy of a trained model on held-out subjects.

Every clip is scored exactly once, also across DDP processes (each rank takes every
``world_size``-th clip, no padding, and the scores are gathered to all ranks). Multi-view
evaluation (``five``/``ten`` crops) averages the softmax scores of the views.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Sequence

import lightning as L
import torch
import torch.distributed as dist
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.fabric.utilities.rank_zero import rank_zero_only
from torch import nn
from torch.utils.data import DataLoader

from fpar.checkpoint import load_model
from fpar.data import ClipDataset, load_index
from fpar.engine.config import DEFAULTS
from fpar.engine.datamodule import ShardSampler
from fpar.engine.train import quiet_lightning
from fpar.errors import FparError
from fpar.io import write_text

# What each model reads, for checkpoints that carry no training config (imported reference weights).
MODEL_INPUTS = {
    "flow_resnet": (["flow"], "stack"),
    "two_stream": (["frames", "flow"], "stack"),
    "two_in_one": (["frames", "flow"], "pairs"),
}


def data_settings(info: dict[str, Any]) -> dict[str, Any]:
    """The data section a checkpoint's model is evaluated with: its training config's, or the
    defaults with the inputs its model reads."""
    config = info.get("config") or {}
    data = {**DEFAULTS["data"], **config.get("data", {})}
    if not config:
        data["modalities"], data["flow_mode"] = MODEL_INPUTS.get(info["model"]["name"], (["frames"], "stack"))
        data["stack_size"] = info["model"].get("stack_size", data["stack_size"])
    return data


class ScoringModule(L.LightningModule):
    """Scores a dataset with a fixed model; ``results`` holds (index, label, probabilities) rows."""

    def __init__(self, model: nn.Module, dataset: ClipDataset, batch_size: int, workers: int):
        super().__init__()
        self.model = model
        self.dataset = dataset
        self.batch_size = batch_size
        self.workers = workers
        self.results: list[tuple[int, int, list[float]]] = []

    def test_dataloader(self) -> DataLoader:
        sampler = ShardSampler(len(self.dataset), rank=self.global_rank, world_size=self.trainer.world_size)
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.workers)

    def on_test_epoch_start(self) -> None:
        # the loader keeps the sampler's order: the k-th scored clip is the sampler's k-th index
        self._positions = iter(ShardSampler(len(self.dataset), rank=self.global_rank,
                                            world_size=self.trainer.world_size))
        self._rows: list[tuple[int, int, list[float]]] = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if self.dataset.views == "center":
            probs = self.model(batch)["logits"].float().softmax(dim=1)
        else:  # tensors are (B, V, ...): average the softmax of every view
            inputs = {m: batch[m] for m in self.dataset.modalities}
            num_views = next(iter(inputs.values())).shape[1]
            probs = torch.stack([self.model({m: x[:, v] for m, x in inputs.items()})["logits"].float().softmax(dim=1)
                                 for v in range(num_views)]).mean(dim=0)
        for label, p in zip(batch["label"].tolist(), probs.cpu().tolist()):
            self._rows.append((next(self._positions), label, p))

    def on_test_epoch_end(self) -> None:
        rows = self._rows
        if self.trainer.world_size > 1:
            gathered: list[Any] = [None] * self.trainer.world_size
            dist.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        self.results = sorted(rows)


def evaluate(checkpoint: str | os.PathLike, data_root: str | os.PathLike, *, split: Sequence[str] | str | None = None,
             views: str = "center", batch_size: int = 8, devices: int | None = None, accelerator: str = "auto",
             workers: int = 0, predictions_csv: str | os.PathLike | None = None,
             progress: bool = False) -> dict[str, Any]:
    """Score ``checkpoint`` on the ``split`` subjects of ``data_root`` (default: its config's val subjects).

    Returns ``accuracy``, ``top5``, ``mean_class_accuracy`` (mean over the classes present of each
    class's accuracy), ``per_class`` {class: accuracy}, ``n``, ``split``, ``views``, ``checkpoint``;
    writes one row per clip (id, label, prediction, one score column per class) to ``predictions_csv``.
    """
    model, info = load_model(checkpoint)
    data = data_settings(info)
    subjects = _subjects(split) if split is not None else data["val_subjects"]

    index = load_index(data_root, data["layout"])
    classes = info.get("classes") or index.classes
    if index.classes != classes:
        raise FparError(f"{data_root} has classes {_short(index.classes)} but {checkpoint} was trained on "
                        f"{_short(classes)}")
    instances = [inst for inst in index.instances if inst.subject in subjects]
    if not instances:
        raise FparError(f"{data_root}: no instances of subjects {', '.join(subjects)} "
                        f"(the dataset has {', '.join(index.subjects)})")
    dataset = ClipDataset(instances, modalities=data["modalities"], num_frames=data["num_frames"],
                          stack_size=data["stack_size"], flow_mode=data["flow_mode"], train=False,
                          resize=data["resize"], crop=data["crop"], views=views)

    scorer = ScoringModule(model, dataset, batch_size, workers)
    devices = devices or 1
    with quiet_lightning():
        try:
            trainer = L.Trainer(accelerator=accelerator, devices=devices, strategy="ddp" if devices > 1 else "auto",
                                logger=False, enable_checkpointing=False, enable_model_summary=False,
                                enable_progress_bar=progress, use_distributed_sampler=False)
        except (MisconfigurationException, ValueError, RuntimeError) as exc:
            raise FparError(f"accelerator={accelerator}, devices={devices}: {exc}") from None
        trainer.test(scorer, verbose=False)

    if [row[0] for row in scorer.results] != list(range(len(dataset))):
        raise FparError(f"internal error: scored {len(scorer.results)} clips for a split of {len(dataset)}")
    result = _metrics(scorer.results, classes)
    result.update(split=list(subjects), views=views, checkpoint=str(checkpoint))
    if predictions_csv is not None and rank_zero_only.rank == 0:
        write_text(predictions_csv, _predictions_csv(scorer.results, dataset, classes))
    return result


def _subjects(split: Sequence[str] | str) -> list[str]:
    subjects = [s.strip() for s in split.split(",")] if isinstance(split, str) else list(split)
    if not subjects or not all(subjects):
        raise FparError(f"--split must name subjects, e.g. S2 or S2,S4; got {split!r}")
    return subjects


def _short(names: list[str]) -> str:
    return f"[{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}] ({len(names)})"


def _metrics(rows: list[tuple[int, int, list[float]]], classes: list[str]) -> dict[str, Any]:
    labels = torch.tensor([label for _, label, _ in rows])
    scores = torch.tensor([probs for _, _, probs in rows])
    top = scores.topk(min(5, scores.shape[1]), dim=1).indices
    correct = top[:, 0] == labels
    per_class = {classes[c]: float(correct[labels == c].float().mean()) for c in sorted(set(labels.tolist()))}
    return {
        "accuracy": float(correct.float().mean()),
        "top5": float((top == labels[:, None]).any(dim=1).float().mean()),
        "mean_class_accuracy": sum(per_class.values()) / len(per_class),
        "per_class": per_class,
        "n": len(rows),
    }


def _predictions_csv(rows: list[tuple[int, int, list[float]]], dataset: ClipDataset, classes: list[str]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "label", "prediction", *classes])
    for position, label, probs in rows:
        prediction = max(range(len(probs)), key=probs.__getitem__)
        writer.writerow([dataset.instances[position].instance_id, classes[label], classes[prediction],
                         *(f"{p:.6f}" for p in probs)])
    return text.getvalue()

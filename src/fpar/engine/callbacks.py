"""Trainer plug-ins: atomic, code-free checkpoints (a model-only ``best.ckpt``) and the run's metrics files."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from fpar.checkpoint import load_checkpoint
from fpar.io import atomic_path, write_text

METRIC_FIELDS = ("epoch", "step", "lr", "train_loss", "val_loss", "val_accuracy")
# What best.ckpt keeps of Lightning's checkpoint: the weights, fpar's contract (model, classes, clip,
# config) and when it was taken. Optimiser, scheduler, loop and callback state only serve a resume,
# which reads last.ckpt; without them best.ckpt is about the size of the weights.
MODEL_CHECKPOINT_KEYS = ("state_dict", "fpar", "epoch", "global_step")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary file and renamed into place (a killed run never leaves
    a half-written ``last.ckpt``) and read back with ``weights_only=True`` (reading never runs code)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path)


class BestWeights(ModelCheckpoint):
    """``<run>/best.ckpt``: the model of the best validation accuracy, as a model-only checkpoint
    (:data:`MODEL_CHECKPOINT_KEYS`), the file people evaluate, share and start later stages from."""

    def __init__(self, run_dir: str | os.PathLike):
        super().__init__(dirpath=run_dir, filename="best", monitor="val/acc", mode="max", save_top_k=1,
                         save_weights_only=True, auto_insert_metric_name=False, enable_version_counter=False)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        full = trainer._checkpoint_connector.dump_checkpoint(weights_only=True)
        trainer.strategy.save_checkpoint({key: full[key] for key in MODEL_CHECKPOINT_KEYS}, filepath)
        trainer.strategy.barrier("BestWeights._save_checkpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath


def remove_stale_temporaries(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of checkpoint saves that were killed before their rename
    (``.last.ckpt.<random>.tmp``, see :func:`fpar.io.atomic_path`); returns what was removed.
    Called when a run folder is (re)started, when no save of that run can be in flight."""
    removed = []
    for tmp in Path(run_dir).glob(".*.ckpt.*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


class MetricsHistory(L.Callback):
    """One row per validation (epoch, train loss, val loss, val accuracy) in ``metrics.csv`` and
    ``metrics.json``. The rows travel in the checkpoint, so a resumed run continues the same files."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.rows: list[dict[str, Any]] = []
        self._validated = False
        self._lr = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Epoch schedulers step at the epoch's last batch, before validation: read the lr used now.
        self._lr = trainer.optimizers[0].param_groups[0]["lr"]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validated = not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Runs after the epoch's validation and before last.ckpt is saved (checkpoint callbacks go last).
        if not self._validated:
            return
        self._validated = False
        metrics = trainer.callback_metrics
        self.rows.append({
            "epoch": trainer.current_epoch + 1,
            "step": trainer.global_step,
            "lr": self._lr,
            "train_loss": float(pl_module.train_loss.compute()),
            "val_loss": float(metrics["val/loss"]),
            "val_accuracy": float(metrics["val/acc"]),
        })
        if trainer.is_global_zero:
            self.write()

    def write(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=METRIC_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.run_dir / "metrics.csv", text.getvalue())
        write_text(self.run_dir / "metrics.json", json.dumps(self.rows, indent=1) + "\n")

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(row) for row in state_dict["rows"]]

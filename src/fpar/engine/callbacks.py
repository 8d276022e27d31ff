"""Trainer plug-ins: atomic, code-free checkpoints and the run's metrics files."""

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

from fpar.checkpoint import load_checkpoint
from fpar.io import atomic_path, write_text

METRIC_FIELDS = ("epoch", "step", "lr", "train_loss", "val_loss", "val_accuracy")


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

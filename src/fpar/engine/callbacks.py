"""Trainer plug-ins: atomic, code-free checkpoints (a model-only ``best.ckpt``), the run's metrics
files and progress that suits where it goes (bars on a terminal, plain lines in a log file)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar

from fpar.checkpoint import load_checkpoint
from fpar.engine.metric_registry import MONITORED, file_column, logged_key
from fpar.engine.metrics import validation_numbers
from fpar.engine.run_folder import BEST_CKPT, METRICS_CSV, METRICS_JSON
from fpar.io import atomic_path, write_text
from fpar.progress import on_terminal
from fpar.pictures import attention_strip, confusion_picture

# metrics.csv's first columns; then every validation accuracy the run has (fpar.engine.metrics)
METRIC_FIELDS = ("epoch", "step", "lr", "train_loss", "val_loss")
# What best.ckpt keeps of Lightning's checkpoint: the weights, fpar's contract (model, classes, clip,
# config) and when it was taken. Optimiser, scheduler, loop and callback state only serve a resume,
# which reads last.ckpt; without them best.ckpt is about the size of the weights.
MODEL_CHECKPOINT_KEYS = ("state_dict", "fpar", "epoch", "global_step")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary file and renamed into place (a killed run never leaves
    a half-written ``last.ckpt``) and read back with ``weights_only=True`` (reading never runs code).

    Lightning's weights-only checkpoint (``trainer.save_checkpoint(path, weights_only=True)``, which
    ``ModelCheckpoint(save_weights_only=True)`` calls: its loop state without optimiser state) is
    written as fpar's model checkpoint: :data:`MODEL_CHECKPOINT_KEYS` only, weights contiguous.

    ``epochs_saved`` maps each file name to the epochs its last completed save holds: what a run
    stopped by a signal tells its user it kept."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs_saved: dict[str, int] = {}

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if "loops" in checkpoint and "optimizer_states" not in checkpoint:
            checkpoint = model_checkpoint(checkpoint)
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
        if isinstance(checkpoint.get("epoch"), int):  # saved at the end of epoch index N: N + 1 done
            self.epochs_saved[Path(path).name] = checkpoint["epoch"] + 1

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path)


class BestWeights(ModelCheckpoint):
    """``<run>/best.ckpt``: the model of the best validation accuracy, as a model-only checkpoint
    (:data:`MODEL_CHECKPOINT_KEYS`), the file people evaluate, share and start later stages from.
    ``last`` (``selection: last``): the model at the end of every epoch instead, so the last one stays.
    Lightning's weights-only save, made model-only by :class:`AtomicCheckpointIO` (the trainer's
    checkpoint plugin, :func:`fpar.engine.lightning_env.build_trainer`)."""

    def __init__(self, run_dir: str | os.PathLike, *, last: bool = False):
        selection = {"monitor": None, "every_n_epochs": 1, "save_on_train_epoch_end": True} if last else \
            {"monitor": logged_key(MONITORED), "mode": "max"}
        super().__init__(dirpath=run_dir, filename=Path(BEST_CKPT).stem, save_top_k=1, save_weights_only=True,
                         auto_insert_metric_name=False, enable_version_counter=False, **selection)


def model_checkpoint(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Of a Lightning checkpoint, what ``best.ckpt`` keeps (:data:`MODEL_CHECKPOINT_KEYS`), its weights
    contiguous: the layout of exports and imported models too, which ``load_model`` maps as they are,
    where channels-last ones (the training layout) would be copied."""
    kept = {key: checkpoint[key] for key in MODEL_CHECKPOINT_KEYS}
    kept["state_dict"] = {key: value.contiguous() for key, value in kept["state_dict"].items()}
    return kept


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
    """One row per validation (epoch, train loss, val loss, and every accuracy the epoch line shows,
    per head too: :func:`fpar.engine.metrics.validation_numbers`) in ``metrics.csv`` and
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
            **{column: float(metrics[key]) for key, column, _ in validation_numbers() if key in metrics},
        })
        if trainer.is_global_zero:
            self.write()

    def monitored(self, epoch: int) -> float | None:
        """Epoch ``epoch``'s (1-based) value of the metric that chooses best.ckpt; None if it did not validate."""
        row = self.rows[-1] if self.rows else {}
        return row.get(file_column(MONITORED)) if row.get("epoch") == epoch else None

    def write(self) -> None:
        text = io.StringIO()
        present = {key for row in self.rows for key in row}
        columns = [*METRIC_FIELDS, *(column for _, column, _ in validation_numbers() if column in present)]
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.run_dir / METRICS_CSV, text.getvalue())
        write_text(self.run_dir / METRICS_JSON, json.dumps(self.rows, indent=1) + "\n")

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(row) for row in state_dict["rows"]]


class ValidateLastEpoch(L.Callback):
    """The last epoch always validates, whatever ``trainer.val_every``: a run's final weights are
    judged (and can be selected) even where the epochs are no multiple of the period, and also when
    ``--resume`` extends a run to more epochs. The period is the trainer's own; only the last epoch
    changes it, when it starts."""

    def __init__(self, every: int):
        self.every = every

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        last = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        trainer.check_val_every_n_epoch = 1 if last else self.every


def progress_callback(stream: Any = None) -> ProgressBar:
    """Progress for a Trainer: Lightning's bars on stderr when it is a terminal, otherwise
    :class:`LineProgress` (a carriage-return bar redirected into a file is kilobytes of noise)."""
    stream = stream or sys.stderr
    return StderrProgressBar() if on_terminal(stream) else LineProgress(stream)


def _on_stderr(make_bar: Any) -> Any:
    # Lightning's bars read sys.stdout when they are made; stdout stays for results.
    with contextlib.redirect_stdout(sys.stderr):
        return make_bar()


class StderrProgressBar(TQDMProgressBar):
    """Lightning's tqdm bars, drawn on stderr."""

    def init_sanity_tqdm(self) -> Any:
        return _on_stderr(super().init_sanity_tqdm)

    def init_train_tqdm(self) -> Any:
        return _on_stderr(super().init_train_tqdm)

    def init_validation_tqdm(self) -> Any:
        return _on_stderr(super().init_validation_tqdm)

    def init_test_tqdm(self) -> Any:
        return _on_stderr(super().init_test_tqdm)

    def init_predict_tqdm(self) -> Any:
        return _on_stderr(super().init_predict_tqdm)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        # counted from 1, as the per-epoch lines, metrics.csv and train.log count them
        self.train_progress_bar.set_description(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class EpochLines(L.Callback):
    """One line per training epoch (losses, validation accuracy, learning rate, time, ETA) and one
    per test or prediction pass, on ``stream`` (stderr) or to ``write``: what a log file should hold.
    Epochs are counted from 1, as every line and file fpar writes counts them."""

    def __init__(self, stream: Any = None, write: Any = None):
        super().__init__()
        self.stream = stream
        self._write = write
        self._enabled = True
        self._started = 0.0
        self._first_epoch = 0
        self._validated = False
        self._lr: float | None = None

    def _line(self, text: str) -> None:
        if not self._enabled:
            return
        if self._write is not None:
            self._write(text)
            return
        stream = self.stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started, self._first_epoch = time.monotonic(), trainer.current_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the rate this epoch trained with (an epoch scheduler has stepped by its end)
        self._lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validated = not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # validation numbers only for the epochs that validated (every trainer.val_every)
        validated, self._validated = self._validated, False
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        metrics = trainer.callback_metrics
        elapsed = time.monotonic() - self._started
        done = epoch - self._first_epoch
        parts = [f"epoch {epoch}/{total}"]
        numbers = [("train/loss_epoch", "train loss", False), ("val/loss", "val loss", False),
                   *((key, words, True) for key, _, words in validation_numbers())]
        for key, label, percent in numbers:
            if key in metrics and (validated or not key.startswith("val/")):
                value = float(metrics[key])
                parts.append(f"{label} {100 * value:.1f}%" if percent else f"{label} {value:.4f}")
        if self._lr is not None:
            parts.append(f"lr {self._lr:.2e}")
        parts.append(f"{elapsed / done:.1f} s/epoch")
        if total is not None and total > epoch:
            parts.append(f"ETA {_duration(elapsed / done * (total - epoch))}")
        self._line("  ".join(parts))

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batches = int(sum(trainer.num_test_batches))
        self._line(f"scored {batches} batches in {time.monotonic() - self._started:.1f} s")

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batches = int(sum(trainer.num_predict_batches))
        self._line(f"predicted {batches} batches in {time.monotonic() - self._started:.1f} s")


class LineProgress(EpochLines, ProgressBar):
    """:class:`EpochLines` as the Trainer's progress display (where stderr is no terminal)."""

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True


class ValidationPictures(L.Callback):
    """At each validation, the confusion matrix (rows: true class, row-normalised) and the first
    validation clip's frames under their attention maps, as images, to the loggers that take
    pictures (TensorBoard, Weights & Biases); the others (CSV, MLflow) are skipped quietly."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        pictures = {}
        if getattr(pl_module, "val_confusion", None) is not None:
            pictures["val/confusion"] = confusion_picture(pl_module.val_confusion)
        if getattr(pl_module, "val_attention", None) is not None:
            pictures["val/attention"] = attention_strip(*pl_module.val_attention)
        for logger in trainer.loggers:
            for key, image in pictures.items():
                if hasattr(logger.experiment, "add_image"):  # TensorBoard's SummaryWriter
                    logger.experiment.add_image(key, image, trainer.global_step, dataformats="HWC")
                elif hasattr(logger, "log_image"):  # Weights & Biases
                    logger.log_image(key, [image], step=trainer.global_step)

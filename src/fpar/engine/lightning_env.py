"""The Lightning side of a run: the Trainer built from fpar's settings (a setting the machine
cannot honour is one FparError line), Lightning's chatter kept off the console, several processes
(DDP) ending as one line, and how far a stopped fit came. Training and multi-process evaluation
use it (:mod:`fpar.engine.train`, :mod:`fpar.engine.distributed_eval`)."""

from __future__ import annotations

import atexit
import contextlib
import logging
import warnings
from pathlib import Path
from typing import Iterator

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import LearningRateMonitor

from fpar.engine.callbacks import AtomicCheckpointIO, ValidateLastEpoch, ValidationPictures, progress_callback
from fpar.engine.hardware import resolve_precision
from fpar.engine.loggers import build_loggers
from fpar.engine.run_folder import LAST_CKPT
from fpar.engine.settings import ExperimentSettings
from fpar.errors import FparError
from fpar.progress import shown

log = logging.getLogger(__name__)


def build_trainer(config: ExperimentSettings, run_dir: Path, callbacks: list[L.Callback], progress: bool) -> L.Trainer:
    """The Lightning Trainer for ``config``; settings the machine cannot honour are one FparError."""
    tr = config.trainer
    loggers = build_loggers(tr.loggers, run_dir, config.experiment)
    progress = shown(progress)  # fpar --quiet: none
    callbacks = [*callbacks, ValidateLastEpoch(tr.val_every)]
    if progress:
        callbacks = [*callbacks, progress_callback()]
    if loggers:
        callbacks = [*callbacks, LearningRateMonitor(logging_interval="epoch"), ValidationPictures()]
    try:
        return L.Trainer(
            max_epochs=tr.epochs,
            accelerator=tr.accelerator,
            devices=tr.devices,
            num_nodes=tr.num_nodes,
            strategy=tr.strategy,
            # the choice's reason goes to train.log (and to the console with --verbose)
            precision=resolve_precision(tr.precision, tr.accelerator, announce=log.info if rank_zero_only.rank == 0
                                        else False),
            # "warn": some CUDA kernels (adaptive pooling backward) have no deterministic version
            deterministic="warn" if tr.deterministic else False,
            check_val_every_n_epoch=tr.val_every,
            log_every_n_steps=tr.log_every_n_steps,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            callbacks=callbacks,
            logger=loggers or False,
            plugins=[AtomicCheckpointIO()],
            enable_progress_bar=progress,
            enable_model_summary=False,
            default_root_dir=run_dir,
        )
    except (MisconfigurationException, ValueError, RuntimeError) as exc:
        raise FparError(f"trainer settings (accelerator={tr.accelerator}, devices={tr.devices}, "
                        f"strategy={tr.strategy}, precision={tr.precision}): {exc}") from None


@contextlib.contextmanager
def distributed_run(trainer: L.Trainer) -> Iterator[None]:
    """Runs a ``fit`` or ``test`` that may span several processes.

    When one DDP process stops on an error (a corrupt frame in its share), it prints that error as
    its own line; the others then fail in their next collective with a connection error and a long
    traceback. That one becomes a line pointing at the process that failed.

    A process that ends with its gloo process group still alive can abort at exit ("terminate
    called without an active exception"): the group's worker threads outlive the interpreter. The
    group is therefore destroyed at exit, while Python still runs; not here, because a recipe runs
    its next stage in the same group.
    """
    if trainer.world_size > 1:
        atexit.register(_destroy_process_group)  # registering twice is harmless: the second call finds none
    try:
        yield
    except RuntimeError as exc:
        if trainer.world_size > 1 and _lost_peer(exc):
            raise FparError(f"process {trainer.global_rank} of {trainer.world_size}: another process of this run "
                            "stopped (its error is printed above)") from None
        raise


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except (RuntimeError, ValueError):
            pass  # the process is ending anyway; a group whose peer died may not shut down cleanly


def _lost_peer(exc: RuntimeError) -> bool:
    import torch.distributed as dist

    text = str(exc)
    return isinstance(exc, dist.DistError) or any(
        sign in text for sign in ("Connection closed by peer", "Connection reset by peer", "Broken pipe",
                                  "NCCL communicator was aborted", "gloo"))


def how_far(trainer: L.Trainer, resumed: bool, planned: int) -> str:
    """Where a stopped fit stood: the epochs its last.ckpt holds (``after epoch 3/40``)."""
    done = getattr(trainer.strategy.checkpoint_io, "epochs_saved", {}).get(LAST_CKPT)
    if done is None and resumed:
        done = trainer.current_epoch  # nothing saved since the resume: last.ckpt is the one resumed from
    return f"after epoch {done}/{planned}" if done else f"in epoch 1/{planned}"


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Keep Lightning's informational chatter (device listings, tips, worker hints) off the console."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch.utilities.rank_zero",
                                                    "lightning.pytorch.accelerators.cuda",
                                                    "lightning.fabric.utilities.seed",
                                                    # "Received SIGTERM": fpar says it in its own line
                                                    "lightning.pytorch.trainer.connectors.signal_connector")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*number of training batches.*logging interval.*")
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            # a run folder moved or copied: last.ckpt's monitor-less checkpoint state does not need its old path
            warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)

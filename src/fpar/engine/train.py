"""``train(config)``: one experiment from a resolved config to a run folder.

``<out>/<experiment>/`` holds ``config.yaml`` (resolved), ``best.ckpt`` (the checkpoint ``selection``
chose: by default the best accuracy on a part held out of the training subjects, engine/selection.py),
``last.ckpt`` (end of the latest epoch, what ``resume`` continues from), ``metrics.csv`` /
``metrics.json`` (one row per validation), ``train.log`` and the logs of the ``trainer.logger``
loggers (TensorBoard's under ``tensorboard/`` by default: losses, learning rate, top-1/top-5/mean-class
accuracy, and at each validation the confusion matrix and a CAM clip as pictures). The folder's
names, lock, log, clean-up, states and resume policy are :mod:`fpar.engine.run_folder`'s; the
Trainer is built by :mod:`fpar.engine.lightning_env`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shlex
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ModelCheckpoint

from fpar.engine.callbacks import BestWeights, EpochLines, MetricsHistory, remove_stale_temporaries
from fpar.engine.config import dump_config, load_config, validate_config
from fpar.engine.datamodule import FparDataModule
from fpar.engine.init_weights import load_init_weights, resolve_init_from
from fpar.engine.lightning_env import build_trainer, distributed_run, how_far, quiet_lightning
from fpar.engine.module import DivergedError, FparModule
from fpar.engine.run_folder import (BEST_CKPT, DEFAULT_OUT, FINISHED, INTERRUPTED, LAST_CKPT, RESUME_CHANGEABLE,
                                    RUN_CONFIG, log_end, remove_new_root, removed_on_failure, require_same_settings,
                                    resume_point, run_folder_lock, run_log)
from fpar.engine.settings import ExperimentSettings
from fpar.errors import FparError, Interrupted, interruption, stop_on_signals
from fpar.io import inside

log = logging.getLogger(__name__)


def train(config: ExperimentSettings | dict[str, Any] | str | os.PathLike, *, data_root: str | os.PathLike | None = None,
          out_dir: str | os.PathLike | None = None, resume: bool = False, devices: int | str | None = None,
          num_nodes: int | None = None, precision: str | None = None, progress: bool = True,
          lock: bool = True) -> dict[str, Any]:
    """Train one experiment; returns ``run_dir``, ``state`` (``finished``, or ``interrupted`` when
    Lightning stopped the fit early: :data:`fpar.engine.run_folder.STATES`), ``best_ckpt``,
    ``last_ckpt``, ``best_val_accuracy``, ``epochs_done`` and ``metrics`` (the validation rows).

    ``resume`` continues from ``last.ckpt`` when the run directory has one (and starts afresh when
    it has none); without it an existing run is an error rather than silently overwritten. Keyword
    arguments given here override the config's ``trainer``/``data.root`` values.

    The run folder is locked while the run writes it (:func:`~fpar.engine.run_folder.run_folder_lock`;
    ``lock=False``: the caller holds that lock already), and a run that fails before its first
    checkpoint removes what it wrote (:func:`~fpar.engine.run_folder.removed_on_failure`).
    """
    if isinstance(config, (str, os.PathLike)):  # a config file or packaged name, as the CLI takes it
        config = load_config(config)
    if not isinstance(config, (ExperimentSettings, dict)):
        raise FparError(f"train() takes settings (fpar.load_config(...)), a config mapping or a config path, "
                        f"got {type(config).__name__}")
    raw = config.as_dict() if isinstance(config, ExperimentSettings) else copy.deepcopy(config)
    for key, value in (("devices", devices), ("num_nodes", num_nodes), ("precision", precision)):
        if value is not None:
            raw.setdefault("trainer", {})[key] = value
    if data_root is not None:
        raw.setdefault("data", {})["root"] = str(data_root)
    config = validate_config(raw)

    out_root = Path(out_dir if out_dir is not None else DEFAULT_OUT)
    run_dir = inside(out_root, config.experiment)
    require_dataset(config)  # before the lock: a refused start writes nothing into the out root
    new_root = not out_root.exists()
    try:
        try:
            with run_folder_lock(out_root, config.experiment) if lock else contextlib.nullcontext():
                with removed_on_failure(run_dir):
                    return _train(config, out_root, run_dir, resume, progress)
        except BaseException:
            if new_root and lock and not run_dir.exists():  # refused or failed before it kept anything
                remove_new_root(out_root, config.experiment)
            raise
    except Interrupted as exc:
        # removed_on_failure has run: a last.ckpt left now is one to continue from
        if (run_dir / LAST_CKPT).is_file():
            raise exc.but(hint=f"resume with: fpar train {shlex.quote(str(run_dir))} --resume") from None
        raise exc.but(where=exc.where or f"in epoch 1/{config.trainer.epochs}",  # stopped before fit began
                      hint="no epoch had been saved, so nothing was kept; train it again") from None


def require_dataset(config: ExperimentSettings) -> None:
    """The refusals of a dataset that is not there at all (no root, a missing folder, no layout),
    which cost nothing to find; the dataset itself is read and checked when the run starts."""
    from fpar.data.layouts import detect_layout
    from fpar.errors import NotADatasetError

    root = config.data.root
    if not root:
        raise FparError("no dataset given: pass --data ROOT or set data.root in the config")
    if not Path(root).exists():
        raise NotADatasetError(f"{root}: no such file or directory")
    if config.data.layout == "auto":
        detect_layout(Path(root))


def _train(config: ExperimentSettings, out_root: Path, run_dir: Path, resume: bool, progress: bool) -> dict[str, Any]:
    last = run_dir / LAST_CKPT
    resume_from = resume_point(run_dir, resume)
    if rank_zero_only.rank == 0:  # the rank that saves; the others may start while it runs
        for tmp in remove_stale_temporaries(run_dir):
            log.warning("removed %s, left by a checkpoint save that was killed", tmp)
    if resume_from is not None:  # a resumed run may train longer (and log elsewhere), not differently
        require_same_settings(run_dir, config, allowed=RESUME_CHANGEABLE)
    # a resumed run has its weights in last.ckpt already
    init_from = resolve_init_from(config.init_from, out_root) if resume_from is None else None

    with run_log(run_dir):  # from here on the run's lines go to train.log too
        with quiet_lightning():
            L.seed_everything(config.trainer.seed, verbose=False)  # the model's random init too
            datamodule = FparDataModule(config)
            module = FparModule(config, datamodule.classes, datamodule.label_classes)
            if init_from:
                load_init_weights(module.model, init_from, datamodule.classes)
            history = MetricsHistory(run_dir)
            # model only; last.ckpt holds the full training state
            best = BestWeights(run_dir, last=config.selection.method == "last")
            latest = ModelCheckpoint(dirpath=run_dir, filename=Path(LAST_CKPT).stem, monitor=None, save_top_k=1, every_n_epochs=1,
                                     save_on_train_epoch_end=True, enable_version_counter=False)
            log.info("%s %s in %s", "resuming" if resume_from else "training", config.experiment, run_dir)
            epoch_lines = [EpochLines(write=log.info)] if rank_zero_only.rank == 0 else []
            trainer = build_trainer(config, run_dir, [history, best, latest, *epoch_lines], progress)
            if rank_zero_only.rank == 0:
                dump_config(config, run_dir / RUN_CONFIG)
            try:
                with stop_on_signals(), distributed_run(trainer):
                    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
            except DivergedError as exc:
                kept = f"last good checkpoint: {last}" if last.exists() else "no checkpoint had been saved yet"
                raise FparError(f"{exc}; {kept}") from None
            except BaseException as exc:
                stopped = interruption(exc)
                if stopped is None and not isinstance(exc, KeyboardInterrupt):
                    raise
                # the epoch in progress is abandoned; last.ckpt holds the ones before it
                raise (stopped or Interrupted("SIGINT")).but(where=how_far(trainer, resume_from is not None,
                                                                           config.trainer.epochs)) from None
        if not config.trainer.keep_last and not trainer.interrupted and rank_zero_only.rank == 0:
            last.unlink(missing_ok=True)  # every epoch done: the model is in best.ckpt

        best_score = best.best_model_score
        if config.selection.method == "last":  # best.ckpt is the last epoch: its validation, if it had one
            best_score = history.monitored(trainer.current_epoch)
        state = INTERRUPTED if trainer.interrupted else FINISHED
        log_end(state, trainer.current_epoch, best_score)
        return {
            "run_dir": str(run_dir),
            "state": state,
            "best_ckpt": str(run_dir / BEST_CKPT) if (run_dir / BEST_CKPT).exists() else None,
            "last_ckpt": str(last) if last.exists() else None,
            "best_val_accuracy": float(best_score) if best_score is not None else None,
            "epochs_done": trainer.current_epoch,
            "metrics": list(history.rows),
        }

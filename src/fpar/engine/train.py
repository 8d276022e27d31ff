"""``train(config)``: one experiment from a resolved config to a run directory.

``<out>/<experiment>/`` holds ``config.yaml`` (resolved), ``best.ckpt`` (the checkpoint ``selection``
chose: by default the best accuracy on a part held out of the training subjects, engine/selection.py),
``last.ckpt`` (end of the latest epoch, what ``resume`` continues from), ``metrics.csv`` /
``metrics.json`` (one row per validation) and the logs of the ``trainer.logger`` loggers (TensorBoard's
under ``tensorboard/`` by default: losses, learning rate, top-1/top-5/mean-class accuracy, and at
each validation the confusion matrix and a CAM clip as pictures).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import logging
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from torch import nn

from fpar.checkpoint import EXPORT_CONTRACT, load_checkpoint, model_state_dict
from fpar.engine.callbacks import (AtomicCheckpointIO, BestWeights, EpochLines, MetricsHistory, ValidateLastEpoch,
                                   ValidationPictures, progress_callback, remove_stale_temporaries)
from fpar.engine.config import (RESUME_CHANGEABLE, dump_config, load_config, require_same_settings, resume_config,
                                validate_config)
from fpar.engine.settings import ExperimentSettings
from fpar.engine.datamodule import FparDataModule
from fpar.engine.hardware import resolve_precision
from fpar.engine.loggers import RUN_LOG, build_loggers
from fpar.engine.module import FparModule, DivergedError
from fpar.errors import FparError, Interrupted, interruption, stop_on_signals
from fpar.io import exclusive_lock, inside
from fpar.progress import shown

log = logging.getLogger(__name__)

DEFAULT_OUT = "runs"


def resumed_run(ref: str | os.PathLike, overrides: list[str] = (), out_dir: str | os.PathLike | None = None
                ) -> tuple[ExperimentSettings, Path]:
    """What ``fpar train REF --resume`` continues: ``(settings, out root)``.

    ``REF`` is a run folder (``runs/tiny``), or a config whose run folder under ``out_dir`` exists:
    either way the run's saved ``config.yaml`` is read (:func:`fpar.engine.config.resume_config`),
    so the overrides of the first call need not be typed again; ``overrides`` may change only the
    keys :data:`fpar.engine.config.RESUME_CHANGEABLE` names. A config whose run folder does not exist
    yet starts afresh, as ``train(resume=True)`` does."""
    path = Path(ref).expanduser()
    if path.is_dir() and (path / "config.yaml").is_file():
        return resume_config(path, overrides), path.parent
    config = load_config(ref, overrides)
    out_root = Path(out_dir if out_dir is not None else DEFAULT_OUT)
    run_dir = inside(out_root, config.experiment)
    if (run_dir / "config.yaml").is_file():
        return resume_config(run_dir, overrides), out_root
    return config, out_root


def train(config: ExperimentSettings | dict[str, Any] | str | os.PathLike, *, data_root: str | os.PathLike | None = None,
          out_dir: str | os.PathLike | None = None, resume: bool = False, devices: int | str | None = None,
          num_nodes: int | None = None, precision: str | None = None, progress: bool = True,
          lock: bool = True) -> dict[str, Any]:
    """Train one experiment; returns ``run_dir``, ``best_ckpt``, ``last_ckpt``, ``best_val_accuracy``,
    ``epochs_done`` and ``metrics`` (the validation rows).

    ``resume`` continues from ``last.ckpt`` when the run directory has one (and starts afresh when
    it has none); without it an existing run is an error rather than silently overwritten. Keyword
    arguments given here override the config's ``trainer``/``data.root`` values.

    The run folder is locked while the run writes it (:func:`run_folder_lock`; ``lock=False``: the
    caller holds that lock already), and a run that fails before its first checkpoint removes
    what it wrote (:func:`removed_on_failure`).
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
                _remove_new_root(out_root, config.experiment)
            raise
    except Interrupted as exc:
        # removed_on_failure has run: a last.ckpt left now is one to continue from
        if (run_dir / "last.ckpt").is_file():
            raise exc.but(hint=f"resume with: fpar train {shlex.quote(str(run_dir))} --resume") from None
        raise exc.but(where=exc.where or f"in epoch 1/{config.trainer.epochs}",  # stopped before fit began
                      hint="no epoch had been saved, so nothing was kept; train it again") from None


def _remove_new_root(out_root: Path, experiment: str) -> None:
    """The out root this call made, emptied by a run that kept nothing: its lock files (released
    by now) and the folders go, so a refused start leaves no trace. Anything another process put
    there meanwhile stays, and so does the root then."""
    if rank_zero_only.rank != 0:
        return
    locks = out_root / ".locks"
    for name in (f"{experiment}.lock", f"{experiment}.lock.holder"):
        with contextlib.suppress(OSError):
            (locks / name).unlink()
    for folder in (locks, out_root):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty


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


class _TimeFormatter(logging.Formatter):
    default_time_format = "%Y-%m-%d %H:%M:%S"
    default_msec_format = None


@contextlib.contextmanager
def run_log(run_dir: Path) -> Iterator[None]:
    """Append what the run reports (its start, the precision chosen, one line per epoch, warnings,
    its end) to ``run_dir/train.log``, each line with its time: the plain-text record a run folder
    keeps beside metrics.csv. Only the process that saves (rank 0) writes it; the console shows
    what it showed before (warnings; info lines with ``--verbose``)."""
    if rank_zero_only.rank != 0:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / RUN_LOG, encoding="utf-8", delay=True)
    handler.setFormatter(_TimeFormatter("%(asctime)s %(message)s"))
    handler.setLevel(logging.INFO)
    package = logging.getLogger("fpar")
    level = package.level
    console = None
    if not package.handlers and not logging.getLogger().handlers:  # as Python's last-resort handler shows them
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING)
        package.addHandler(console)
    package.addHandler(handler)
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    try:
        yield
    except FparError as exc:
        log.info("stopped: %s", exc)
        raise
    except KeyboardInterrupt as exc:
        # runs.run_state reads this line: a signal stopped the run, last.ckpt resumes it
        log.info("%s", exc if isinstance(exc, Interrupted) else "interrupted")
        raise
    except BaseException as exc:
        log.info("failed: %s: %s", type(exc).__name__, exc)
        raise
    finally:
        package.removeHandler(handler)
        handler.close()
        if console is not None:
            package.removeHandler(console)
        package.setLevel(level)


def run_folder_lock(out_root: str | os.PathLike, experiment: str) -> contextlib.AbstractContextManager:
    """The lock one writer of ``<out_root>/<experiment>/`` holds (an OS lock: a killed holder
    releases it); a second writer gets one line naming the holder. The lock file lives in
    ``<out_root>/.locks/``, beside the run folder, so a failed run can remove its folder whole.
    DDP processes other than rank 0 run inside rank 0's hold."""
    if rank_zero_only.rank != 0:
        return contextlib.nullcontext()
    return exclusive_lock(Path(out_root) / ".locks" / f"{experiment}.lock", f"run folder {Path(out_root) / experiment}")


@contextlib.contextmanager
def removed_on_failure(run_dir: Path) -> Iterator[None]:
    """Remove what a failing run wrote into ``run_dir`` (config.yaml, TensorBoard events, the
    folder itself if it made it) as long as it saved no checkpoint: a failed start leaves no
    half run behind, and files an earlier run left there are never touched. A run that saved
    a checkpoint keeps its folder, to be resumed."""
    existed = run_dir.is_dir()
    before = {p: _mtime(p) for p in run_dir.rglob("*")} if existed else {}
    try:
        yield
    except BaseException:
        if rank_zero_only.rank == 0 and run_dir.is_dir():
            checkpoints = [p for p in run_dir.glob("*.ckpt") if before.get(p) != _mtime(p)]
            if not checkpoints:
                created = sorted((p for p in run_dir.rglob("*") if p not in before), key=lambda p: len(p.parts),
                                 reverse=True)
                for path in created:
                    with contextlib.suppress(OSError):
                        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
                if not existed:
                    with contextlib.suppress(OSError):
                        run_dir.rmdir()
        raise


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _train(config: ExperimentSettings, out_root: Path, run_dir: Path, resume: bool, progress: bool) -> dict[str, Any]:
    last, best_path = run_dir / "last.ckpt", run_dir / "best.ckpt"
    if (last.exists() or best_path.exists()) and not resume:
        raise FparError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another "
                        "--out or experiment name")
    if resume and not last.exists() and best_path.exists():
        raise FparError(f"{run_dir} finished without keeping its resume point (trainer.keep_last: false), "
                        "so it cannot be continued; train it again under another experiment name")
    resume_from = last if resume and last.exists() else None
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
            latest = ModelCheckpoint(dirpath=run_dir, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                                     save_on_train_epoch_end=True, enable_version_counter=False)
            log.info("%s %s in %s", "resuming" if resume_from else "training", config.experiment, run_dir)
            epoch_lines = [EpochLines(write=log.info)] if rank_zero_only.rank == 0 else []
            trainer = build_trainer(config, run_dir, [history, best, latest, *epoch_lines], progress)
            if rank_zero_only.rank == 0:
                dump_config(config, run_dir / "config.yaml")
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
                raise (stopped or Interrupted("SIGINT")).but(where=_how_far(trainer, resume_from is not None,
                                                                            config.trainer.epochs)) from None
        if not config.trainer.keep_last and not trainer.interrupted and rank_zero_only.rank == 0:
            last.unlink(missing_ok=True)  # every epoch done: the model is in best.ckpt

        best_score = best.best_model_score
        if config.selection.method == "last":  # best.ckpt is the last epoch: its validation, if it had one
            best_score = history.monitored(trainer.current_epoch)
        log.info("%s after %d epoch%s; best validation accuracy %s",
                 "interrupted" if trainer.interrupted else "finished", trainer.current_epoch,
                 "s" * (trainer.current_epoch != 1), "-" if best_score is None else f"{100 * float(best_score):.1f}%")
        return {
            "run_dir": str(run_dir),
            "best_ckpt": str(run_dir / "best.ckpt") if (run_dir / "best.ckpt").exists() else None,
            "last_ckpt": str(last) if last.exists() else None,
            "best_val_accuracy": float(best_score) if best_score is not None else None,
            "epochs_done": trainer.current_epoch,
            "metrics": list(history.rows),
        }


def _how_far(trainer: L.Trainer, resumed: bool, planned: int) -> str:
    """Where a stopped fit stood: the epochs its last.ckpt holds (``after epoch 3/40``)."""
    done = getattr(trainer.strategy.checkpoint_io, "epochs_saved", {}).get("last.ckpt")
    if done is None and resumed:
        done = trainer.current_epoch  # nothing saved since the resume: last.ckpt is the one resumed from
    return f"after epoch {done}/{planned}" if done else f"in epoch 1/{planned}"


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


def resolve_init_from(init_from: str | dict[str, str] | None, out_root: Path) -> str | dict[str, str] | None:
    """Checkpoint (or export) paths of ``init_from``, relative ones against the out root; missing ones are an error."""
    if init_from is None:
        return None
    entries = {"": init_from} if isinstance(init_from, str) else init_from
    resolved = {}
    for submodule, path in entries.items():
        full = Path(path).expanduser()
        full = full if full.is_absolute() else out_root / full
        if not (full.is_file() or (full / EXPORT_CONTRACT).is_file()):  # a checkpoint, or an export's folder
            key = f"init_from.{submodule}" if submodule else "init_from"
            raise FparError(f"config key '{key}': checkpoint {full} not found (train that stage first)")
        resolved[submodule] = str(full)
    return resolved[""] if isinstance(init_from, str) else resolved


def load_init_weights(model: nn.Module, init_from: str | dict[str, str], classes: list[str]) -> None:
    """Load fpar checkpoint weights into ``model`` (or into its named submodules).

    Whole modules present on one side only (a two-in-one model's ``motion`` layers when starting
    from an RGB row, an MS head the target lacks) are skipped and reported in one line; every module
    both sides have must match exactly.
    """
    entries = {"": init_from} if isinstance(init_from, str) else init_from
    for submodule, path in entries.items():
        key = f"init_from.{submodule}" if submodule else "init_from"
        target = model.get_submodule(submodule) if submodule else model
        ckpt = load_checkpoint(path)
        if ckpt["fpar"].get("classes") and ckpt["fpar"]["classes"] != classes:
            raise FparError(f"config key '{key}': {path} was trained on other classes than this dataset's")
        source = model_state_dict(ckpt)
        own = target.state_dict()
        only_target = _top_modules(own) - _top_modules(source)
        only_source = _top_modules(source) - _top_modules(own)
        source = {k: v for k, v in source.items() if _top(k) not in only_source}
        try:
            missing, _ = target.load_state_dict(source, strict=False)
        except RuntimeError as exc:
            raise FparError(f"config key '{key}': {path} does not fit the model: {str(exc).splitlines()[-1].strip()}") \
                from None
        partial = sorted(k for k in missing if _top(k) not in only_target)
        if partial:
            raise FparError(f"config key '{key}': {path} lacks weights the model needs: {partial[:5]}")
        if only_target or only_source:
            log.warning("%s: %s kept as initialised (not in %s)%s", key, ", ".join(sorted(only_target)) or "nothing",
                        path, f"; checkpoint modules ignored: {', '.join(sorted(only_source))}" if only_source else "")


def _top(key: str) -> str:
    return key.split(".", 1)[0]


def _top_modules(state: dict[str, Any]) -> set[str]:
    return {_top(k) for k in state}


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

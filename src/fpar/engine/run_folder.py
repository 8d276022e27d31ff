"""The run folder: ``fpar train --out OUT`` writes ``OUT/<experiment>/``, and this module owns what
more than one command knows about it: its file names, its lock, its log (``train.log``), what a
failed start leaves (nothing), the state a folder is in (:data:`STATES`, read from its files and
its lock) and the resume policy (what ``--resume`` may change; what a recipe, sweep or protocol
does with a folder in each state). Training writes the folder (:mod:`fpar.engine.train`); ``fpar
runs``, recipes, sweeps, protocols, reports and the CLI read it through here (docs/training.md,
"Run folders"). Nothing here imports torch or Lightning at import time.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from fpar.engine.config import (check_overrides, flat_settings, load_config, parse_override, read_yaml, safe_yaml,
                                set_dotted, validate_config)
from fpar.engine.metric_registry import MONITORED, file_column
from fpar.engine.settings import ExperimentSettings
from fpar.errors import FparError, Interrupted
from fpar.io import exclusive_lock, inside
from fpar.locking import lock_holder

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- files

RUN_CONFIG = "config.yaml"  # the resolved experiment settings the run trains with
BEST_CKPT = "best.ckpt"  # the checkpoint the run keeps (fpar.engine.selection)
LAST_CKPT = "last.ckpt"  # the latest epoch's, with the optimiser and loop state: what --resume reads
METRICS_CSV = "metrics.csv"  # one row per validated epoch
METRICS_JSON = "metrics.json"  # the same rows as JSON
RUN_LOG = "train.log"  # the run's lines with their times; its last line says how the run ended
RUN_SUMMARY = "summary.json"  # train()'s summary, written by a recipe, sweep or protocol once it returned
RUN_FILES = (RUN_CONFIG, BEST_CKPT, LAST_CKPT, METRICS_CSV, METRICS_JSON, RUN_LOG, RUN_SUMMARY)
DEFAULT_OUT = "runs"  # the out root when none is given

# ---------------------------------------------------------------------------- states

FINISHED, INTERRUPTED, RUNNING, FAILED = "finished", "interrupted", "running", "failed"
# the states a run folder is found in, and what each means (fpar runs --help, docs/training.md)
STATES = {
    FINISHED: "training returned after its last epoch",
    INTERRUPTED: "stopped before its end (SIGTERM, Ctrl-C, killed) with a last.ckpt: fpar train RUN --resume "
                 "continues it",
    RUNNING: "a live process holds its lock and writes it",
    FAILED: "stopped on an error (the last line of its train.log) or before it saved a checkpoint",
}


def run_state(run_dir: str | os.PathLike, *, holding_lock: bool = False) -> str | None:
    """The state of ``run_dir`` (one of :data:`STATES`), or None when it holds no run. ``running``
    while a live process holds its lock (unless the caller is that holder: ``holding_lock``; a lock
    whose holder died is stale, not running); ``finished`` once train() returned after its last
    epoch (train.log's last line, or a job's :data:`RUN_SUMMARY`); ``failed`` after an error;
    otherwise it stopped before its end (a signal, or a kill that left no last line) and is
    ``interrupted`` if a last.ckpt resumes it, ``failed`` if none does."""
    run_dir = Path(run_dir)
    if not holding_lock and lock_holder(lock_file(run_dir.parent, run_dir.name)) is not None:
        return RUNNING
    if not any((run_dir / name).is_file() for name in (RUN_CONFIG, LAST_CKPT, BEST_CKPT)):
        return None
    if (run_dir / RUN_SUMMARY).is_file():
        return FINISHED
    resumable = INTERRUPTED if (run_dir / LAST_CKPT).is_file() else FAILED
    if (run_dir / RUN_LOG).is_file():
        ending = last_log_line(run_dir).split(" ", 1)[0]
        # "stopped:": how fpar ended an error's line before the states had one vocabulary
        return {FINISHED: FINISHED, f"{FAILED}:": FAILED, "stopped:": FAILED}.get(ending, resumable)
    # a run of an fpar from before train.log: its validated epochs against the planned ones
    trainer = saved_config(run_dir).get("trainer")
    trainer = trainer if isinstance(trainer, dict) else {}
    planned, every = trainer.get("epochs"), trainer.get("val_every")
    validated = max((row["epoch"] for row in metrics_rows(run_dir)), default=0)
    if isinstance(planned, int) and validated > planned - (every if isinstance(every, int) else 1):
        return FINISHED
    return resumable


def metrics_rows(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's metrics.json; a row edited or damaged by hand (an epoch of text, NaN, a
    list) is left out, and an unreadable file is no rows."""
    try:
        rows = json.loads((Path(run_dir) / METRICS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(rows, list):
        return []
    monitored = file_column(MONITORED)
    return [row for row in rows if isinstance(row, dict) and _number(row.get("epoch"), whole=True)
            and (row.get(monitored) is None or _number(row[monitored]))]


def saved_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A run's config.yaml as it is, for listings (``{}`` if unreadable); never to train with."""
    try:
        config = safe_yaml((Path(run_dir) / RUN_CONFIG).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def _number(value: Any, whole: bool = False) -> bool:
    """A finite number (a count when ``whole``), never a bool."""
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return False
    return value >= 0 if whole else math.isfinite(value)


# ---------------------------------------------------------------------------- lock


def lock_file(out_root: str | os.PathLike, experiment: str) -> Path:
    """``<out_root>/.locks/<experiment>.lock``: beside the run folder, so a failed run can remove
    its folder whole."""
    return Path(out_root) / ".locks" / f"{experiment}.lock"


def run_folder_lock(out_root: str | os.PathLike, experiment: str) -> contextlib.AbstractContextManager:
    """The lock one writer of ``<out_root>/<experiment>/`` holds (an OS lock: a killed holder
    releases it); a second writer gets one line naming the holder. DDP processes other than rank 0
    run inside rank 0's hold."""
    if _rank() != 0:
        return contextlib.nullcontext()
    return exclusive_lock(lock_file(out_root, experiment), f"run folder {Path(out_root) / experiment}")


def _rank() -> int:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return rank_zero_only.rank


# ---------------------------------------------------------------------------- log


class _TimeFormatter(logging.Formatter):
    default_time_format = "%Y-%m-%d %H:%M:%S"
    default_msec_format = None


TIME_WIDTH = 20  # "YYYY-MM-DD HH:MM:SS " before each line of train.log


@contextlib.contextmanager
def run_log(run_dir: Path) -> Iterator[None]:
    """Append what the run reports (its start, the precision chosen, one line per epoch, warnings,
    its end) to ``run_dir/train.log``, each line with its time. The line that ends the log starts
    with the run's state: ``finished ...`` (:func:`log_end`), ``interrupted by SIGTERM`` after a
    signal, ``failed: <error>`` after an error (:func:`run_state` reads it). Only the process that
    saves (rank 0) writes it; the console shows what it showed before (warnings; info lines with
    ``--verbose``)."""
    if _rank() != 0:
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
        log.info("%s: %s", FAILED, exc)
        raise
    except KeyboardInterrupt as exc:
        log.info("%s", exc if isinstance(exc, Interrupted) else INTERRUPTED)  # "interrupted by SIGTERM ..."
        raise
    except BaseException as exc:
        log.info("%s: %s: %s", FAILED, type(exc).__name__, exc)
        raise
    finally:
        package.removeHandler(handler)
        handler.close()
        if console is not None:
            package.removeHandler(console)
        package.setLevel(level)


def log_end(state: str, epochs: int, best: float | None) -> None:
    """The last line of a run that returned: ``finished after 3 epochs; best validation accuracy 41.2%``."""
    log.info("%s after %d epoch%s; best validation accuracy %s", state, epochs, "s" * (epochs != 1),
             "-" if best is None else f"{100 * float(best):.1f}%")


def last_log_line(run_dir: str | os.PathLike) -> str:
    """The last line of a run's train.log without its time, or ``""``."""
    try:
        with (Path(run_dir) / RUN_LOG).open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4096))
            tail = handle.read().decode("utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return tail[-1][TIME_WIDTH:] if tail else ""


# ---------------------------------------------------------------------------- failure clean-up


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
        if _rank() == 0 and run_dir.is_dir():
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


def remove_new_root(out_root: Path, experiment: str) -> None:
    """The out root a run made, emptied by a run that kept nothing: its lock files (released by
    now) and the folders go, so a refused start leaves no trace. Anything another process put
    there meanwhile stays, and so does the root then."""
    if _rank() != 0:
        return
    lock = lock_file(out_root, experiment)
    for path in (lock, lock.with_name(lock.name + ".holder")):
        with contextlib.suppress(OSError):
            path.unlink()
    for folder in (lock.parent, out_root):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty


# ---------------------------------------------------------------------------- resume policy

# Settings that say where and how fast a run executes, not what it computes.
RUNTIME_KEYS = {"data.root", "data.workers", "data.cache", "data.store", "data.persistent_workers", "data.prefetch",
                "data.normalize_on_device", "trainer.accelerator", "trainer.devices", "trainer.num_nodes",
                "trainer.strategy", "trainer.precision", "trainer.compile", "trainer.log_every_n_steps",
                "trainer.keep_last"}
# What a resumed run may be given anew (``fpar train ... --resume key=value``): where and how fast it
# runs, how long it trains, where it logs. Every other setting is the run's own (its config.yaml).
RESUME_CHANGEABLE = frozenset(RUNTIME_KEYS | {"trainer.epochs", "trainer.logger"})
# What a config records about how it was made, never what it computes (runs from before it lack it).
RECORD_KEYS = {"overrides"}

# What a job of runs (recipe, sweep, protocol) does with a run folder, and the word for having done it.
SKIP, RESUME, TRAIN, REFUSE = "skip", "resume", "train", "refuse"
DONE = {SKIP: "skipped", RESUME: "resumed", TRAIN: "trained", REFUSE: "refused"}


def next_step(run_dir: Path, state: str | None) -> str:
    """What a recipe, sweep or protocol does with ``run_dir`` found in ``state``: skip a finished
    run, refuse one another process is writing, resume one with a last.ckpt (interrupted, or failed
    after an epoch: the error may have been fixed since), train the others anew."""
    if state == FINISHED:
        return SKIP
    if state == RUNNING:
        return REFUSE
    return RESUME if (run_dir / LAST_CKPT).is_file() else TRAIN


def step_words(step: str, state: str | None, done: bool = False) -> str:
    """``resume (interrupted)``, ``skipped (finished)``, ``train``: a step, and the state that chose it."""
    word = DONE[step] if done else step
    return f"{word} ({state})" if state else word


def resume_point(run_dir: Path, resume: bool) -> Path | None:
    """The last.ckpt ``train(resume=...)`` continues from, or None to start afresh; one FparError
    line for a folder that holds a run when ``resume`` is not given, or one that cannot be
    continued (finished with ``trainer.keep_last: false``)."""
    last, best = run_dir / LAST_CKPT, run_dir / BEST_CKPT
    if (last.exists() or best.exists()) and not resume:
        raise FparError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another "
                        "--out or experiment name")
    if resume and not last.exists() and best.exists():
        raise FparError(f"{run_dir} finished without keeping its resume point (trainer.keep_last: false), "
                        "so it cannot be continued; train it again under another experiment name")
    return last if resume and last.exists() else None


def _changed_keys(saved: dict[str, Any], wanted: dict[str, Any], allowed: Iterable[str]) -> list[str]:
    saved, wanted = flat_settings(saved), flat_settings(wanted)
    allowed = set(RUNTIME_KEYS) | RECORD_KEYS | set(allowed)
    return sorted(key for key in saved.keys() | wanted.keys()
                  if key not in allowed and saved.get(key) != wanted.get(key))


def resume_config(run_dir: Path, overrides: Iterable[str] = ()) -> ExperimentSettings:
    """The settings a run folder resumes with: its own ``config.yaml``, with ``overrides`` of the
    :data:`RESUME_CHANGEABLE` keys applied. An override that would change any other setting is one
    FparError listing all such keys (the run's checkpoints were made with the saved values)."""
    path = run_dir / RUN_CONFIG
    if not path.is_file():
        raise FparError(f"{run_dir} is no run folder (it has no {RUN_CONFIG})")
    saved = read_yaml(path, "config")
    if not isinstance(saved, dict):
        raise FparError(f"{path}: a config must be a mapping of keys, got {type(saved).__name__}")
    raw = copy.deepcopy(saved)
    for item in check_overrides(overrides):
        set_dotted(raw, *parse_override(item))
    config = validate_config(raw, where=f"{path} with the overrides")
    refused = _changed_keys(saved, config.as_dict(), RESUME_CHANGEABLE)
    if refused:
        raise FparError(f"--resume continues {run_dir} with its own settings; these cannot change: "
                        f"{', '.join(refused)} (may change: {', '.join(sorted(RESUME_CHANGEABLE))}; to change "
                        "the others train anew under another experiment name or --out)")
    return config


def require_same_settings(run_dir: Path, config: ExperimentSettings, allowed: Iterable[str] = ()) -> None:
    """A finished or interrupted run is reused only for the experiment it was trained as (its
    ``config.yaml``): reusing it for changed settings would report results those settings never
    produced. ``allowed`` keys may differ too (a resumed run may be given more epochs)."""
    saved_path = run_dir / RUN_CONFIG
    if not saved_path.is_file():
        return
    saved_tree = safe_yaml(saved_path.read_text()) or {}
    changed = _changed_keys(saved_tree, config.as_dict(), allowed)
    saved, wanted = flat_settings(saved_tree), flat_settings(config.as_dict())
    if changed:
        detail = ", ".join(f"{key}: {saved.get(key)!r} -> {wanted.get(key)!r}" for key in changed[:3])
        raise FparError(f"{run_dir} was trained with other settings ({detail}{', ...' if len(changed) > 3 else ''}); "
                        "delete it or choose another --out")


def is_run_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run folder (a folder with its config.yaml)."""
    return Path(path).is_dir() and (Path(path) / RUN_CONFIG).is_file()


def resumed_run(ref: str | os.PathLike, overrides: list[str] = (), out_dir: str | os.PathLike | None = None
                ) -> tuple[ExperimentSettings, Path]:
    """What ``fpar train REF --resume`` continues: ``(settings, out root)``. ``REF`` is a run folder,
    or a config whose run folder under ``out_dir`` exists: either way its saved ``config.yaml`` is
    read (:func:`resume_config`; the first call's overrides are not typed again). A config whose run
    folder does not exist yet starts afresh, as ``train(resume=True)`` does."""
    path = Path(ref).expanduser()
    if is_run_folder(path):
        return resume_config(path, overrides), path.parent
    config = load_config(ref, overrides)
    out_root = Path(out_dir if out_dir is not None else DEFAULT_OUT)
    run_dir = inside(out_root, config.experiment)
    if is_run_folder(run_dir):
        return resume_config(run_dir, overrides), out_root
    return config, out_root


def load_config_or_run(ref: str | os.PathLike, overrides: Iterable[str] = ()) -> ExperimentSettings:
    """A config (file or packaged name), or a run folder's saved config.yaml: what ``fpar configs
    diff``, ``fpar configs show`` and ``--dry-run`` compare."""
    path = Path(ref).expanduser()
    if is_run_folder(path):
        try:
            return load_config(path / RUN_CONFIG, overrides)
        except FparError as exc:
            message = str(exc)
            raise FparError(message if str(path / RUN_CONFIG) in message else f"run folder {path}: {message}") \
                from None
    return load_config(ref, overrides)

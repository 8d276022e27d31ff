"""The run folders under a folder (``fpar runs [DIR]``): what each trained, how far, how well, and
whether it finished, can be resumed or failed. Read from the files a run writes (config.yaml,
metrics.json, train.log, the checkpoints, a recipe's summary.json); nothing is loaded into torch.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import yaml

from fpar.engine.loggers import RUN_LOG, last_log_line
from fpar.engine.metric_registry import MONITORED, file_column
from fpar.errors import FparError
from fpar.engine.selection import short as short_selection
from fpar.workflows.recipe import DONE_MARKER, format_accuracy

# the states a run folder is found in (docs/training.md, "Run folders")
STATES = ("finished", "interrupted", "resumable", "failed")


def run_folders(root: str | os.PathLike) -> list[Path]:
    """Every run folder (one holding config.yaml) at ``root`` or below it, sorted by path; ``root``
    itself may be one."""
    root = Path(root)
    if not root.is_dir():
        raise FparError(f"{root}: no such folder of runs")
    return sorted({path.parent for path in root.rglob("config.yaml")
                   if not any(part.startswith(".") for part in path.relative_to(root).parts)})


def describe_run(run_dir: Path) -> dict[str, Any]:
    """One run folder as ``run`` (its path), ``model``, ``stage``, ``selection`` (how best.ckpt is
    chosen: ``holdout 20%``, ``last``, ``test S2``), ``epochs`` and ``of`` (validated epochs done /
    planned), ``best_val_accuracy`` (a fraction, docs/units.md; None before the first validation)
    ``state`` (one of :data:`STATES`) and ``overrides`` (those a sweep made its config with, in full)."""
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        config = {}
    if not isinstance(config, dict):
        config = {}
    rows = _metrics(run_dir)
    monitored = file_column(MONITORED)
    accuracies = [row[monitored] for row in rows if isinstance(row.get(monitored), (int, float))]
    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    epochs = max((int(row.get("epoch", 0)) for row in rows), default=0)
    return {
        "run": str(run_dir),
        "model": (config.get("model") or {}).get("name", "?") if isinstance(config.get("model"), dict) else "?",
        "stage": (config.get("stage") or {}).get("name", "?") if isinstance(config.get("stage"), dict) else "?",
        "selection": short_selection(config),
        "epochs": epochs,
        "of": trainer.get("epochs"),
        "best_val_accuracy": max(accuracies) if accuracies else None,
        "state": run_state(run_dir, epochs, trainer.get("epochs"), trainer.get("val_every")),
        "overrides": [str(item) for item in config.get("overrides") or []] if isinstance(config.get("overrides"), list)
        else [],
    }


def run_state(run_dir: Path, validated: int = 0, planned: Any = None, val_every: Any = None) -> str:
    """``finished`` (training returned after its last epoch), ``interrupted`` (stopped by SIGTERM or
    Ctrl-C; its last.ckpt resumes), ``resumable`` (a last.ckpt to continue from: killed or still
    running) or ``failed`` (stopped on an error, which train.log's
    last line names, or never saved a checkpoint). A run from before train.log is judged by its last
    validated epoch (``validated``) against the ``planned`` epochs and the validation period."""
    if (run_dir / DONE_MARKER).is_file():
        return "finished"
    log = run_dir / RUN_LOG
    if log.is_file():
        last_line = last_log_line(run_dir)
        if last_line.startswith("finished"):
            return "finished"
        if last_line.startswith(("stopped:", "failed:")):  # an error ended it: resuming would meet it again
            return "failed"
        if last_line.startswith("interrupted") and (run_dir / "last.ckpt").is_file():
            return "interrupted"  # a signal (SIGTERM, Ctrl-C) stopped it: --resume continues it
        return "resumable" if (run_dir / "last.ckpt").is_file() else "failed"
    if isinstance(planned, int) and validated > planned - (val_every if isinstance(val_every, int) else 1):
        return "finished"
    return "resumable" if (run_dir / "last.ckpt").is_file() else "failed"


def format_runs(runs: list[dict[str, Any]]) -> str:
    """The runs as an aligned text table, one line each."""
    overrides = any(run["overrides"] for run in runs)  # a column only where a sweep made some runs
    header = ("run", "model", "stage", "selection", "epochs", "best val", "state", *("overrides",) * overrides)
    lines = [header] + [(run["run"], run["model"], run["stage"], run["selection"] or "-",
                         f"{run['epochs']}/{run['of'] if run['of'] is not None else '?'}",
                         format_accuracy(run["best_val_accuracy"]), run["state"],
                         *(" ".join(run["overrides"]) or "-",) * overrides) for run in runs]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    try:
        rows = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(rows, list):
        return []
    # a row edited or damaged by hand (an epoch of text, NaN, a list) is left out, not the run
    return [row for row in rows if isinstance(row, dict) and _count(row.get("epoch"))
            and (row.get(file_column(MONITORED)) is None or _finite(row[file_column(MONITORED)]))]


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


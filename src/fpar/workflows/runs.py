"""The run folders under a folder (``fpar runs [DIR]``): what each trained, how far, how well, and
its state (:data:`fpar.engine.run_folder.STATES`: finished, interrupted, running, failed), read by
:mod:`fpar.engine.run_folder` from the files a run writes and its lock; nothing is loaded into torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fpar.engine.metric_registry import MONITORED, file_column
from fpar.engine.run_folder import RUN_CONFIG, metrics_rows, run_state, saved_config
from fpar.engine.selection import short as short_selection
from fpar.errors import FparError
from fpar.workflows.recipe import format_accuracy


def run_folders(root: str | os.PathLike) -> list[Path]:
    """Every run folder (one holding config.yaml) at ``root`` or below it, sorted by path; ``root``
    itself may be one."""
    root = Path(root)
    if not root.is_dir():
        raise FparError(f"{root}: no such folder of runs")
    return sorted({path.parent for path in root.rglob(RUN_CONFIG)
                   if not any(part.startswith(".") for part in path.relative_to(root).parts)})


def describe_run(run_dir: Path) -> dict[str, Any]:
    """One run folder as ``run`` (its path), ``model``, ``stage``, ``selection`` (how best.ckpt is
    chosen: ``holdout 20%``, ``last``, ``test S2``), ``epochs`` and ``of`` (validated epochs done /
    planned), ``best_val_accuracy`` (a fraction, docs/units.md; None before the first validation)
    ``state`` (:func:`fpar.engine.run_folder.run_state`) and ``overrides`` (those a sweep made its
    config with, in full)."""
    config = saved_config(run_dir)
    rows = metrics_rows(run_dir)
    monitored = file_column(MONITORED)
    accuracies = [row[monitored] for row in rows if isinstance(row.get(monitored), (int, float))]
    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    return {
        "run": str(run_dir),
        "model": (config.get("model") or {}).get("name", "?") if isinstance(config.get("model"), dict) else "?",
        "stage": (config.get("stage") or {}).get("name", "?") if isinstance(config.get("stage"), dict) else "?",
        "selection": short_selection(config),
        "epochs": max((row["epoch"] for row in rows), default=0),
        "of": trainer.get("epochs"),
        "best_val_accuracy": max(accuracies) if accuracies else None,
        "state": run_state(run_dir),
        "overrides": [str(item) for item in config.get("overrides") or []] if isinstance(config.get("overrides"), list)
        else [],
    }


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

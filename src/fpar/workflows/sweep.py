"""Hyper-parameter grids: ``fpar sweep CONFIG key=v1,v2 other=a,b``.

Every combination of the values trains as its own run, ``<out>/<experiment>__key=v1_other=a__<hash>``
(:mod:`fpar.workflows.run_names`: at most 100 characters, the full overrides in its config.yaml),
so the Table 2/3 grids of the paper (epochs, batch size, step size, optimiser, MS loss) are one
command each. Finished runs are skipped and interrupted ones resume (as in recipes), so a sweep
is re-run to continue it. The results table (best validation accuracy per run) is printed and
written next to the runs as ``<experiment>__sweep.csv`` and ``.md``.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from pathlib import Path
from typing import Any, Iterable

from fpar.engine.config import load_config
from fpar.engine.run_folder import DEFAULT_OUT
from fpar.engine.settings import ExperimentSettings
from fpar.workflows.run_names import legacy_run_name, run_name
from fpar.workflows.recipe import format_accuracy, resumed_by_rerunning, train_or_skip
from fpar.errors import FparError
from fpar.io import inside, write_text


def parse_axis(item: str) -> tuple[str, list[str]]:
    """``"optimizer.lr=1e-3,1e-4"`` -> ``("optimizer.lr", ["1e-3", "1e-4"])``.

    Values are YAML; commas inside brackets belong to the value: ``scheduler.milestones=[25,75],[50,100]``.
    """
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or not text.strip():
        raise FparError(f"sweep axis '{item}' is not of the form key.sub=value1,value2")
    values, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    if depth != 0 or not all(values):
        raise FparError(f"sweep axis '{item}': unbalanced brackets or an empty value")
    if len(set(values)) != len(values):
        raise FparError(f"sweep axis '{item}' repeats a value")
    return key, values


def expand_grid(axes: Iterable[str]) -> list[list[tuple[str, str]]]:
    """Every combination, as lists of (key, value text), in the order the axes were given."""
    parsed = [parse_axis(item) for item in axes]
    keys = [key for key, _ in parsed]
    if len(set(keys)) != len(keys):
        raise FparError(f"a sweep key is given twice: {keys}")
    return [list(zip(keys, combo)) for combo in itertools.product(*(values for _, values in parsed))]


def sweep_configs(config_path: str | os.PathLike, combos: list[list[tuple[str, str]]], overrides: Iterable[str] = (),
                  out_dir: str | os.PathLike | None = None) -> list[ExperimentSettings]:
    """Each combination's config, named by :func:`~fpar.workflows.run_names.run_name` and recording
    its overrides in full. A run an older fpar named in full (:func:`legacy_run_name`) under
    ``out_dir`` keeps its name, so it is skipped or resumed, not trained again."""
    base = load_config(config_path, overrides).experiment
    configs = []
    for combo in combos:
        name = run_name(base, combo)
        if out_dir is not None and not (Path(out_dir) / name).exists():
            legacy = legacy_run_name(base, combo)
            if len(legacy.encode()) <= 255 and (Path(out_dir) / legacy).is_dir():
                name = legacy
        config = load_config(config_path, [*overrides, *(f"{k}={v}" for k, v in combo), f"experiment={name}"])
        configs.append(config.model_copy(update={"overrides": [f"{k}={v}" for k, v in combo]}))
    return configs


def run_sweep(config_path: str | os.PathLike, axes: Iterable[str], *, out_dir: str | os.PathLike = DEFAULT_OUT,
              overrides: Iterable[str] = (), log=print, **train_kwargs: Any) -> list[dict[str, Any]]:
    """Train every combination (skipping finished runs); returns one row per run and writes the table."""
    out_dir = Path(out_dir)
    combos = expand_grid(axes)
    if train_kwargs.get("data_root") is not None and any(key == "data.root" for key, _ in combos[0]):
        # --data would win over the axis: every run would train on one dataset, labelled with another
        raise FparError("the sweep axis data.root and --data both name the dataset: drop --data, each run "
                        "then trains on its data.root value")
    base = load_config(config_path, overrides).experiment
    # every run's config is checked before the first one trains
    configs = sweep_configs(config_path, combos, overrides, out_dir)
    rows = []
    for i, (combo, config) in enumerate(zip(combos, configs)):
        log(f"[{i + 1}/{len(combos)}] {config.experiment}")
        with resumed_by_rerunning(f"run {i + 1}/{len(combos)} ({config.experiment})"):
            summary = train_or_skip(config, out_dir, **train_kwargs)
        rows.append({"run": config.experiment, **dict(combo),
                     "best_val_accuracy": summary["best_val_accuracy"], "epochs_done": summary["epochs_done"]})
    from fpar.engine.selection import describe

    table = results_markdown(rows) + (f"\n\nbest_val_accuracy: the validation accuracy of each run's best.ckpt; "
                                      f"selection: {describe(configs[0].selection.model_dump())}.")
    log(table)
    write_text(inside(out_dir, f"{base}__sweep.md"), table + "\n")
    write_text(inside(out_dir, f"{base}__sweep.csv"), results_csv(rows))
    return rows


def results_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def results_markdown(rows: list[dict[str, Any]]) -> str:
    """One row per run (the run name is left out: the swept values say which), the best accuracy in bold."""
    columns = [c for c in rows[0] if c != "run"]
    best = max((row["best_val_accuracy"] for row in rows if row["best_val_accuracy"] is not None), default=None)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [str(row[c]) for c in columns]
        accuracy = format_accuracy(row["best_val_accuracy"])
        cells[columns.index("best_val_accuracy")] = f"**{accuracy}**" if row["best_val_accuracy"] == best else accuracy
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

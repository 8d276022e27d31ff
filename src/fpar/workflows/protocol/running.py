"""Running a protocol: each fold x seed trained as recipes train, scored once on its fold's test set,
and the runs summarised into ``protocol.json``, ``protocol.md`` and ``protocol.html``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from fpar.engine.config import find_config, load_config
from fpar.engine.metric_registry import METRICS, protocol_metrics
from fpar.engine.run_folder import BEST_CKPT, FINISHED, step_words
from fpar.errors import FparError
from fpar.io import inside, refuse_link, write_text
from fpar.workflows.protocol.plan import _check_plan, _plan, _Run, _stage_config_file, dataset_digest, is_recipe
from fpar.workflows.protocol.stats import summarise
from fpar.workflows.protocol.tables import _percent, protocol_html, protocol_markdown
from fpar.workflows.protocol.vocabulary import (PROTOCOLS, PUBLISHED, PUBLISHED_PROTOCOL, SCORES,
                                                PLAN_FILE, SUMMARY_FILE, TABLE_FILES, Fold, paper_figure, refuse_controlled)
from fpar.workflows.recipe import load_recipe, resolve_init_from, resumed_by_rerunning, train_or_skip


def run_protocol(config_path: str | os.PathLike, *, data_root: str | os.PathLike, protocol: str, seeds: int,
                 out_dir: str | os.PathLike, overrides: Iterable[str] = (), force: bool = False, log=print,
                 **train_kwargs: Any) -> dict[str, Any]:
    """Train and score every fold x seed (skipping finished runs; ``force``: retraining them); write
    and return protocol.json's content. ``config_path`` names a config or a recipe."""
    from fpar import __version__
    from fpar.data import load_index
    from fpar.data.splits import read_splits
    from fpar.engine.selection import describe

    if protocol not in PROTOCOLS:
        raise FparError(f"unknown protocol {protocol!r} (choose {', '.join(PROTOCOLS)})")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise FparError(f"--seeds must be an integer >= 1, got {seeds!r}")
    make_folds, primary, _ = PROTOCOLS[protocol]
    out_dir = Path(out_dir)
    overrides = [str(item) for item in overrides]
    refuse_controlled(overrides)
    path = find_config(config_path, kind="recipe")
    recipe = is_recipe(path)
    first = load_recipe(path, overrides)[0]["config"] if recipe else load_config(path, overrides)
    index = load_index(data_root, first.data.layout)
    splits = read_splits(index.root)
    folds = make_folds(index.subjects, splits)
    name, runs = _plan(path, recipe, folds, seeds, overrides)
    plan = {"protocol": protocol, "config": name, "recipe": recipe, "seeds": seeds, "overrides": overrides,
            "data_root": str(Path(data_root).resolve()), "dataset": dataset_digest(index, splits)}
    _check_plan(out_dir, plan, force, log)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(inside(out_dir, PLAN_FILE), json.dumps(plan, indent=1) + "\n")

    records = []
    for i, run in enumerate(runs):
        root = inside(out_dir, run.folder)
        if force and root.exists():
            refuse_link(root)
            shutil.rmtree(root)
        log(f"[{i + 1}/{len(runs)}] fold {run.fold.name}, seed {run.seed}: {run.folder}")
        # a signal names the run; the same command resumes it (docs/reliability.md, "Signals")
        with resumed_by_rerunning(f"run {i + 1}/{len(runs)} ({run.folder})"):
            records += _run_stages(run, out_dir, data_root, recipe, log, train_kwargs)

    last_stage = runs[0].stages[-1]["name"]
    stages = {}
    for stage in dict.fromkeys(record["stage"] for record in records):
        chosen = [record for record in records if record["stage"] == stage]
        stages[stage] = {**{metric: summarise([r[metric] for r in chosen]) for metric in protocol_metrics()},
                         "heads": _head_summaries(chosen)}
    selection = runs[0].stages[-1]["config"].selection.model_dump()
    result = {
        "protocol": protocol, "description": PROTOCOLS[protocol][2], "primary": primary,
        "config": name, "recipe": recipe, "seeds": seeds, "last_stage": last_stage,
        "selection": {**selection, "text": describe(selection)},
        "overrides": overrides, "data_root": plan["data_root"], "dataset": plan["dataset"],
        "fpar_version": __version__,
        "runs": records, "stages": stages,
        **{metric: stages[last_stage][metric] for metric in protocol_metrics()}, "heads": stages[last_stage]["heads"],
        "paper": paper_figure(_stage_config_file(path, recipe, -1)),
        "published": [{**row, "protocol": PUBLISHED_PROTOCOL[protocol]} for row in PUBLISHED.get(protocol, [])],
    }
    write_text(inside(out_dir, SUMMARY_FILE), json.dumps(result, indent=1) + "\n")
    write_text(inside(out_dir, TABLE_FILES[0]), protocol_markdown(result) + "\n")
    write_text(inside(out_dir, TABLE_FILES[1]), protocol_html(result))
    log(protocol_markdown(result))
    return result


def _run_stages(run: _Run, out_dir: Path, data_root, recipe: bool, log, train_kwargs) -> list[dict[str, Any]]:
    """Train and score each stage of one fold x seed in order; one record per stage."""
    from fpar.engine.config import validate_config
    from fpar.engine.selection import selection_subjects

    folder = inside(out_dir, run.folder)
    # a config's run is the folder itself; a recipe's stages are runs inside it, each init_from
    # pointing at its parent trained there (the same fold and seed)
    runs_root = folder if recipe else out_dir
    records = []
    for stage in run.stages:
        config = stage["config"]
        init_from = (resolve_init_from(stage["init_from"], run.stages) if recipe else None) or config.init_from
        if init_from is not None:
            config = validate_config({**config.as_dict(), "init_from": init_from})
        summary = train_or_skip(config, runs_root, data_root=str(data_root), **train_kwargs)
        run_dir = inside(runs_root, config.experiment)
        scores = _scores(run_dir, summary, data_root, run.fold)
        parents = [] if init_from is None else list(
            {init_from} if isinstance(init_from, str) else dict.fromkeys(init_from.values()))
        # the run folder's state and what was done with it, in fpar runs' words
        log(f"    {stage['name']}: {step_words(summary['step'], summary['state'], done=True)}, "
            + ", ".join(f"{metric.title} {_percent(scores[short])}%" for short, metric in protocol_metrics().items()))
        records.append({
            "stage": stage["name"], "fold": run.fold.name, "seed": run.seed, "split": run.fold.split,
            "test_subjects": run.fold.test,
            "selection_subjects": _selection_subjects(config, run.fold, selection_subjects),
            "n": scores["n"], **{metric: scores[metric] for metric in protocol_metrics()},
            "heads": scores.get("heads", {}),
            "run_dir": run_dir.relative_to(out_dir).as_posix(),
            "init_from": [(Path(runs_root.relative_to(out_dir)) / Path(parent).parent).as_posix()
                          if not Path(parent).is_absolute() else str(Path(parent).parent) for parent in parents],
        })
    return records


def _selection_subjects(config, fold: Fold, selection_subjects) -> list[str]:
    """The subjects whose clips chose the checkpoint; for a clip-level fold, which clips did."""
    method = config.selection.method
    if fold.split is None:
        return selection_subjects(config.selection.model_dump(), fold.train, fold.test)
    return {"holdout": [f"{fold.split} training clips"], "last": [], "test": [f"{fold.split} test clips"]}[method]


def _head_summaries(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Each label head's (and EPIC's verb x noun action's) top-1 and mean class over ``records``."""
    heads: dict[str, Any] = {}
    for head in dict.fromkeys(h for record in records for h in record["heads"]):
        values = [record["heads"][head] for record in records if head in record["heads"]]
        heads[head] = {metric: summarise([v[metric] for v in values]) for metric in protocol_metrics() if metric in values[0]}
    return heads


def _scores(run_dir: Path, summary: dict[str, Any], data_root: str | os.PathLike, fold: Fold) -> dict[str, Any]:
    """The run's best.ckpt scored on its fold's test set, once (kept in ``scores.json``)."""
    path = run_dir / SCORES
    checkpoint = summary["best_ckpt"]
    if checkpoint is None:
        raise FparError(f"{run_dir} has no {BEST_CKPT}: it ran fewer epochs than trainer.val_every")
    test = {"test_subjects": fold.test, "split": fold.split}
    if path.is_file() and summary["state"] == FINISHED:  # scored before, from the same best.ckpt
        kept = json.loads(path.read_text())
        if {key: kept.get(key) for key in test} == test and all(m.short in kept for m in METRICS.values()):
            return kept
    from fpar.engine.evaluate import evaluate

    result = evaluate(checkpoint, data_root, split=fold.split or fold.test)
    scores = {**test, "n": result["n"], **_short_names(result),
              "heads": {kind: _short_names(head) for kind, head in result.get("heads", {}).items()}}
    from fpar.engine.epic_metrics import RULE_ACTION

    if RULE_ACTION in result:  # the action by EPIC's rule over the verb and noun heads
        scores["heads"][RULE_ACTION] = _short_names(result[RULE_ACTION])
    write_text(path, json.dumps(scores, indent=1) + "\n")
    return scores


def _short_names(numbers: dict[str, Any]) -> dict[str, Any]:
    """Evaluation's numbers under the names a protocol keeps them by (``top1``, ``mean_class``, ...)."""
    return {metric.short: numbers[name] for name, metric in METRICS.items() if name in numbers}

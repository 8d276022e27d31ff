"""Multi-stage recipes: ``fpar run RECIPE`` trains a chain of configs in order.

A recipe is a YAML file (or a packaged recipe's name, e.g. ``gtea61_two-stream_16f``) listing stages;
each names a config (a path relative to the recipe file, or a packaged config's name),
optional ``overrides`` (``key.sub=value`` strings, as on the command line) and optional
``init_from`` naming earlier stages of the same recipe::

    stages:
      - {name: rgb_stage1, config: ../gtea61/rgb-attention_r34_16f_stage1.yaml}
      - {name: rgb_stage2, config: ../gtea61/rgb-attention_r34_16f_stage2.yaml,
         init_from: {stage: rgb_stage1}}
      - {name: flow, config: ../gtea61/flow_r34_5s_flow300.yaml}
      - name: two_stream
        config: ../gtea61/two-stream_r34_16f_joint.yaml
        init_from: {flow_model: {stage: flow}, rgb_model: {stage: rgb_stage2}}

``{stage: X}`` becomes ``<X's experiment>/best.ckpt`` (relative to the out root, as in configs). Every stage's config is loaded and
checked before the first one trains. Each stage's run folder is found in one of the states of
:data:`fpar.engine.run_folder.STATES` and treated as :func:`fpar.engine.run_folder.next_step` says:
a finished stage is skipped, one with a ``last.ckpt`` (interrupted) resumes from it, so a killed
``fpar run`` picks up where it stopped when run again; one another process writes is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from fpar.engine.config import find_config, load_config, read_yaml, validate_config
from fpar.engine.run_folder import (BEST_CKPT, DEFAULT_OUT, RESUME, RUN_SUMMARY, SKIP, next_step,
                                    require_same_settings, run_state, step_words)
from fpar.engine.settings import ExperimentSettings
from fpar.errors import FparError, Interrupted
from fpar.io import inside, write_text

STAGE_KEYS = ("name", "config", "overrides", "init_from")
# train()'s summary as a run folder keeps it (RUN_SUMMARY), written once train() has returned
SUMMARY_KEYS = ("run_dir", "best_ckpt", "last_ckpt", "best_val_accuracy", "epochs_done")


def load_recipe(path: str | os.PathLike, overrides: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Each stage as ``{"name", "config" (ExperimentSettings), "init_from" (stage refs or None)}``.

    ``overrides`` apply to every stage, after the stage's own.
    """
    path = find_config(path, kind="recipe")
    recipe = read_yaml(path, "recipe")
    if not isinstance(recipe, dict) or set(recipe) != {"stages"} or not isinstance(recipe["stages"], list) \
            or not recipe["stages"]:
        raise FparError(f"{path}: a recipe is a mapping with one key, 'stages', a non-empty list")

    stages: list[dict[str, Any]] = []
    for i, entry in enumerate(recipe["stages"]):
        where = f"{path}: stage {i + 1}"
        if not isinstance(entry, dict) or "name" not in entry or "config" not in entry:
            raise FparError(f"{where} must be a mapping with at least 'name' and 'config'")
        unknown = set(entry) - set(STAGE_KEYS)
        if unknown:
            raise FparError(f"{where}: unknown key(s) {sorted(unknown)} (known: {', '.join(STAGE_KEYS)})")
        name = entry["name"]
        if any(s["name"] == name for s in stages):
            raise FparError(f"{where}: stage name '{name}' is used twice")
        stage_overrides = entry.get("overrides") or []
        if not isinstance(stage_overrides, list) or not all(isinstance(o, str) for o in stage_overrides):
            raise FparError(f"{where} ('{name}'): overrides must be a list of 'key.sub=value' strings")
        if not isinstance(entry["config"], str):
            raise FparError(f"{where} ('{name}'): config must be a path or a packaged config's name")
        config = load_config(find_config(entry["config"], relative_to=path.parent), [*stage_overrides, *overrides])
        init_from = entry.get("init_from")
        _check_stage_refs(init_from, [s["name"] for s in stages], f"{where} ('{name}')")
        stages.append({"name": name, "config": config, "init_from": init_from})
    experiments = [s["config"].experiment for s in stages]
    if len(set(experiments)) != len(experiments):
        raise FparError(f"{path}: two stages share an experiment name (run directory): {experiments}")
    return stages


def _check_stage_refs(init_from: Any, earlier: list[str], where: str) -> None:
    """``init_from`` is None, {stage: X} or {submodule: {stage: X}} with X an earlier stage."""
    if init_from is None:
        refs = []
    elif isinstance(init_from, dict) and "stage" not in init_from:
        refs = list(init_from.values())
    else:
        refs = [init_from]
    for ref in refs:
        if not (isinstance(ref, dict) and set(ref) == {"stage"}):
            raise FparError(f"{where}: init_from must be {{stage: NAME}} or {{submodule: {{stage: NAME}}}}, "
                            f"got {ref!r}")
        if ref["stage"] not in earlier:
            raise FparError(f"{where}: init_from names stage '{ref['stage']}', which is not an earlier stage "
                            f"(earlier: {', '.join(earlier) or 'none'})")


def resolve_init_from(init_from: Any, stages: list[dict[str, Any]]) -> Any:
    """Stage references -> ``<experiment>/best.ckpt``, a path train() takes relative to the out root."""
    if init_from is None:
        return None
    experiments = {s["name"]: s["config"].experiment for s in stages}
    if "stage" in init_from:
        return f"{experiments[init_from['stage']]}/{BEST_CKPT}"
    return {key: f"{experiments[ref['stage']]}/{BEST_CKPT}" for key, ref in init_from.items()}


def _train(config: ExperimentSettings, **kwargs: Any) -> dict[str, Any]:
    from fpar.engine.train import train  # Lightning loads only when something trains

    return train(config, **kwargs)


def train_or_skip(config: ExperimentSettings, out_dir: Path, **train_kwargs: Any) -> dict[str, Any]:
    """Train one run unless it finished already; resume it if it has a last.ckpt
    (:func:`fpar.engine.run_folder.next_step`).

    Returns train()'s summary (without the metrics rows), ``seconds`` (wall time of the training),
    ``state``, the state the run folder was found in (:data:`fpar.engine.run_folder.STATES`; None:
    no run yet) and ``step``, what was done with it (skip, resume, train).
    """
    from fpar.engine.run_folder import run_folder_lock

    run_dir = inside(out_dir, config.experiment)
    # one lock from the state check to the summary: two recipes or sweeps sharing --out never
    # train, resume or finish the same run at once
    with run_folder_lock(out_dir, config.experiment):
        state = run_state(run_dir, holding_lock=True)
        step = next_step(run_dir, state)
        if state is not None:
            require_same_settings(run_dir, config)
        if (run_dir / RUN_SUMMARY).is_file():
            summary = json.loads((run_dir / RUN_SUMMARY).read_text())
        else:
            # a run `fpar train` finished has no summary yet: resuming it trains nothing and writes one
            start = time.monotonic()
            summary = _train(config, out_dir=out_dir, resume=step in (SKIP, RESUME), lock=False, **train_kwargs)
            summary = {**{key: summary[key] for key in SUMMARY_KEYS}, "seconds": time.monotonic() - start}
            write_text(run_dir / RUN_SUMMARY, json.dumps(_in_folder(summary, Path(".")), indent=1) + "\n")
    return {**_in_folder(summary, run_dir), "state": state, "step": step}


def _in_folder(summary: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The summary's paths as ``run_dir`` and the checkpoints' names in it: written with ``.`` the
    file holds no path of the folder it lies in, so a copied or moved folder reads the same
    (docs/protocols.md, "Protocol folders"); read back, they point into the folder as found."""
    def located(path: str | None) -> str | None:
        return None if path is None else str(run_dir / Path(path).name)

    return {**summary, "run_dir": str(run_dir), "best_ckpt": located(summary.get("best_ckpt")),
            "last_ckpt": located(summary.get("last_ckpt"))}


@contextlib.contextmanager
def resumed_by_rerunning(what: str) -> Iterator[None]:
    """A signal that stops one run of a recipe, sweep or protocol: its line names the run, and the
    way to continue is the same command (finished runs are skipped, the stopped one resumes)."""
    try:
        yield
    except Interrupted as exc:
        raise exc.but(where=f"in {what}{f' {exc.where}' if exc.where else ''}",
                      hint="finished runs are kept and this one resumes: run the same command again") from None


def run_recipe(path: str | os.PathLike, *, out_dir: str | os.PathLike = DEFAULT_OUT,
               overrides: Iterable[str] = (), log=print, **train_kwargs: Any) -> list[dict[str, Any]]:
    """Run every stage of the recipe in order; returns one summary per stage (see train_or_skip).

    ``train_kwargs`` (data_root, devices, num_nodes, precision, progress) go to every train() call.
    """
    out_dir = Path(out_dir)
    stages = load_recipe(path, overrides)
    results = []
    for i, stage in enumerate(stages):
        init_from = resolve_init_from(stage["init_from"], stages) or stage["config"].init_from
        config = validate_config({**stage["config"].as_dict(), "init_from": init_from})
        log(f"[{i + 1}/{len(stages)}] {stage['name']}: {config.experiment}")
        with resumed_by_rerunning(f"stage {i + 1}/{len(stages)} ({stage['name']})"):
            summary = train_or_skip(config, out_dir, **train_kwargs)
        what = step_words(summary["step"], summary["state"], done=True)
        log(f"[{i + 1}/{len(stages)}] {stage['name']}: {what}, {summary['seconds']:.0f} s of training, "
            f"best val accuracy {format_accuracy(summary['best_val_accuracy'])} ({summary['run_dir']})")
        results.append({"stage": stage["name"], "experiment": config.experiment, **summary})
    return results


def format_accuracy(value: float | None) -> str:
    """'81.2%' (docs/units.md), or '-' for a run that was never validated (fewer epochs than trainer.val_every)."""
    return "-" if value is None else f"{100 * value:.1f}%"

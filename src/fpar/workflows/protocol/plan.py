"""A protocol's plan: every fold x seed with its stages' configs, checked before the first run trains,
and the record of what its runs depend on (``protocol-plan.json``: dataset fingerprint, config,
protocol, seeds, overrides) that a resumed protocol must match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpar.engine.config import find_config, load_config, read_yaml
from fpar.errors import FparError
from fpar.workflows.protocol.vocabulary import PLAN_FILE, Fold
from fpar.workflows.recipe import load_recipe


def is_recipe(path: Path) -> bool:
    """Whether the YAML file is a recipe (a mapping with ``stages``) rather than a config."""
    document = read_yaml(path, "recipe or config")
    return isinstance(document, dict) and "stages" in document


def dataset_digest(index, splits: dict) -> str:
    """A fingerprint of the dataset a protocol scores: every instance's id, subject, class and frame
    counts per modality (the manifest's content, whatever the layout), the classes and the recorded
    splits; sha256, hex."""
    digest = hashlib.sha256()
    digest.update(json.dumps(index.classes).encode())
    for inst in sorted(index.instances + index.skipped, key=lambda i: i.instance_id):
        counts = ",".join(str(len(inst.frames(m))) for m in ("rgb", "flow_x", "flow_y", "mmaps"))
        digest.update(f"{inst.instance_id}\t{inst.subject}\t{inst.class_name}\t{counts}\n".encode(
            "utf-8", "backslashreplace"))
    digest.update(json.dumps(splits, sort_keys=True).encode())
    return digest.hexdigest()


def _fold_overrides(fold: Fold, seed: int) -> list[str]:
    if fold.split is not None:
        return [f"trainer.seed={seed}", "data.fold=null", f"data.split={json.dumps(fold.split)}"]
    return [f"trainer.seed={seed}", f"data.train_subjects={json.dumps(fold.train)}",
            f"data.val_subjects={json.dumps(fold.test)}", "data.fold=null", "data.split=null"]


@dataclass
class _Run:
    """One fold x seed: its folder under the protocol's, and the stages trained in it in order."""
    fold: Fold
    seed: int
    folder: str  # relative to the protocol folder: a config's run folder, or a recipe's fold x seed folder
    stages: list[dict[str, Any]] = field(default_factory=list)  # {name, config, init_from (stage refs)}


def _plan(config_path: Path, recipe: bool, folds: list[Fold], seeds: int, overrides: list[str]) -> tuple[str, list[_Run]]:
    """The protocol's name for the config or recipe and every fold x seed with its stages' configs,
    all checked before the first run trains."""
    if recipe:
        name = config_path.stem
    else:
        config = load_config(config_path, overrides)
        name = config.experiment
        _refuse_shared_parent(config, config_path)
    runs = []
    for fold in folds:
        for seed in range(seeds):
            per_run = [*overrides, *_fold_overrides(fold, seed)]
            folder = f"{name}__{fold.name}__seed{seed}"
            if recipe:
                stages = load_recipe(config_path, per_run)
            else:
                config = load_config(config_path, [*per_run, f"experiment={folder}"])
                stages = [{"name": name, "config": config, "init_from": None}]
            runs.append(_Run(fold, seed, folder, stages))
    return name, runs


def _refuse_shared_parent(config, config_path: Path) -> None:
    """A config whose ``init_from`` names another stage's run (a path relative to the out root) would
    start every fold x seed from one parent trained on some other split: under a protocol each needs
    its own, which a recipe trains. An absolute path (a checkpoint trained elsewhere) is taken as is."""
    init_from = config.init_from
    paths = [init_from] if isinstance(init_from, str) else list((init_from or {}).values())
    if not any(not Path(path).expanduser().is_absolute() for path in paths):
        return
    from fpar.engine.config import list_configs

    containing = [name for name in list_configs("recipes/") if _recipe_uses(name, config_path)]
    hint = f"run a recipe that trains it from its parent ({', '.join(containing)})" if containing else \
        "run a recipe of its stages"
    raise FparError(f"{config.experiment} starts from init_from {init_from}, another stage's run: under a protocol "
                    f"every fold and seed trains its own parent, so {hint}, or give init_from=null to train it "
                    "from scratch")


def _recipe_uses(recipe: str, config_path: Path) -> bool:
    path = find_config(recipe, kind="recipe")
    stages = read_yaml(path, "recipe").get("stages") or []
    wanted = config_path.resolve()
    for stage in stages:
        try:
            if find_config(stage["config"], relative_to=path.parent).resolve() == wanted:
                return True
        except (FparError, KeyError, TypeError):
            continue
    return False


def _check_plan(out_dir: Path, plan: dict[str, Any], force: bool, log) -> None:
    """A protocol folder resumed for another dataset, config, protocol, seeds or overrides would
    report runs those never produced: refused in one line naming the difference, unless ``force``."""
    path = out_dir / PLAN_FILE
    if not path.is_file():
        return
    try:
        kept = json.loads(path.read_text())
        if not isinstance(kept, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        raise FparError(f"{path}: unreadable ({exc}); delete it to start the protocol afresh") from None
    names = {"dataset": "the dataset (its manifest digest)", "config": "the config or recipe",
             "protocol": "the protocol", "seeds": "--seeds", "overrides": "the overrides"}
    for key, what in names.items():
        if kept.get(key) != plan[key]:
            if force:
                log(f"{out_dir}: {what} changed ({kept.get(key)!r} -> {plan[key]!r}); --force: retraining every run")
                return
            shown = (f"{kept.get(key, '')[:12]}... -> {plan[key][:12]}..." if key == "dataset"
                     else f"{kept.get(key)!r} -> {plan[key]!r}")
            extra = f" (data root then: {kept.get('data_root')}, now: {plan['data_root']})" if key == "dataset" else ""
            raise FparError(f"{out_dir} holds a protocol run with another {key}: {what} {shown}{extra}; "
                            "give another --out, or --force to retrain its runs")
    if kept.get("data_root") != plan["data_root"]:
        log(f"{out_dir}: the same dataset now at {plan['data_root']} (was {kept.get('data_root')})")


def _stage_config_file(path: Path, recipe: bool, position: int) -> Path:
    """The config file of a config, or of a recipe's stage at ``position``."""
    if not recipe:
        return path
    entry = read_yaml(path, "recipe")["stages"][position]
    return find_config(entry["config"], relative_to=path.parent)

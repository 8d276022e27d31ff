"""Experiment configs: YAML files with ``_base_`` inheritance, dotted overrides, strict validation.

``load_config(path, overrides)`` returns a plain dict with every key present (defaults filled),
every value checked. Any unknown key or wrong type raises :class:`FparError` naming the dotted key,
so a typo fails before a single batch is loaded. The resolved dict is what a run directory's
``config.yaml`` and a checkpoint's ``fpar.config`` hold.
"""

from __future__ import annotations

import copy
import inspect
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

from fpar.errors import FparError
from fpar.io import write_text
from fpar.models.registry import MODELS

STAGE_NAMES = ("rgb_stage1", "rgb_stage2", "flow", "two_stream", "two_in_one_stage3")
MODALITIES = ("frames", "flow", "mmaps")
PRECISIONS = ("auto", "32", "32-true", "16-mixed", "bf16-mixed")  # auto: see fpar.engine.hardware
MS_REGRESSION_LOSSES = ("mse", "l1", "smooth_l1", "soft_margin", "kl")

DEFAULTS: dict[str, Any] = {
    "experiment": None,
    "model": {"name": None, "backbone": "resnet34", "pretrained": None, "num_classes": None},
    "data": {
        "root": None,
        "layout": "auto",
        "train_subjects": ["S1", "S3", "S4"],
        "val_subjects": ["S2"],
        "fold": None,
        "modalities": ["frames"],
        "num_frames": 16,
        "stack_size": 5,
        "flow_mode": "stack",
        "resize": 256,
        "crop": 224,
        "workers": 4,
        "cache": False,
    },
    "stage": {"name": None, "options": {}},
    "init_from": None,
    "optimizer": {
        "name": "adam",
        "lr": 1.0e-4,
        "weight_decay": 4.0e-5,
        "eps": 1.0e-4,
        "momentum": 0.9,
        "group_lr": {},
    },
    "scheduler": {"name": "multistep", "milestones": [25, 75], "gamma": 0.1, "step_size": 1},
    "loss": {"ms": None},
    "trainer": {
        "epochs": 150,
        "batch_size": 32,
        "val_every": 5,
        "precision": "auto",
        "compile": False,
        "accelerator": "auto",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "seed": 0,
        "deterministic": True,
        "log_every_n_steps": 10,
    },
}

MS_DEFAULTS = {"kind": "classification", "threshold": 0.0, "regression": "mse", "weight": 1.0}

# Sections whose keys are free-form (checked by their consumer): build kwargs, stage options,
# per-group learning rates, submodule -> checkpoint maps.
OPEN_SECTIONS = ("model", "stage.options", "optimizer.group_lr", "init_from")


# ---------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read ``path`` (following ``_base_``), apply ``key.sub=value`` overrides, validate, fill defaults."""
    path = Path(path)
    raw = _read_with_bases(path, seen=())
    raw.setdefault("experiment", path.stem)
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(raw, key, value)
    return validate_config(raw)


def parse_override(item: str) -> tuple[str, Any]:
    """``"optimizer.lr=1e-3"`` -> ``("optimizer.lr", 0.001)``; the value is YAML."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise FparError(f"override '{item}' is not of the form key.sub=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise FparError(f"override {key}: value '{text}' is not valid YAML ({exc.problem})") from None
    return key, value


def dump_config(config: dict[str, Any], path: str | os.PathLike | None = None) -> str:
    """The config as YAML text (key order kept); also written atomically to ``path`` if given."""
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    if path is not None:
        write_text(path, text)
    return text


def _read_with_bases(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise FparError(f"config _base_ cycle: {' -> '.join(str(p) for p in (*seen, path))}")
    if not path.is_file():
        where = f" (a _base_ of {seen[-1]})" if seen else ""
        raise FparError(f"config file not found: {path}{where}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise FparError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise FparError(f"{path}: a config must be a mapping of keys, got {type(data).__name__}")
    bases = data.pop("_base_", None)
    if bases is None:
        bases = []
    elif isinstance(bases, str):
        bases = [bases]
    elif not (isinstance(bases, list) and all(isinstance(b, str) for b in bases)):
        raise FparError(f"{path}: _base_ must be a path or a list of paths")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = _deep_merge(merged, _read_with_bases(path.parent / base, (*seen, path)))
    return _deep_merge(merged, data)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = config
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise FparError(f"override {key}: '{'.'.join(parts[:i + 1])}' is not a section")
        node = child
    node[parts[-1]] = value


# ---------------------------------------------------------------------------- validation


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check every key and type; return a new dict with defaults filled. Raises FparError naming the key."""
    if not isinstance(config, dict):
        raise FparError(f"a config must be a mapping, got {type(config).__name__}")
    _reject_unknown(config, DEFAULTS, "")
    cfg = _deep_merge(DEFAULTS, config)

    cfg["experiment"] = _string(cfg, "experiment")
    _check_model(cfg["model"])
    _check_data(cfg["data"])
    _check_stage(cfg["stage"])
    cfg["init_from"] = _check_init_from(cfg["init_from"])
    _check_optimizer(cfg["optimizer"])
    _check_scheduler(cfg["scheduler"])
    cfg["loss"]["ms"] = _check_ms(cfg["loss"]["ms"])
    _check_trainer(cfg["trainer"])
    return cfg


def _reject_unknown(config: dict[str, Any], schema: dict[str, Any], prefix: str) -> None:
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if not isinstance(key, str) or key not in schema:
            known = ", ".join(schema)
            raise FparError(f"unknown config key '{dotted}' (known here: {known})")
        if dotted in OPEN_SECTIONS or dotted == "loss.ms":
            continue
        if isinstance(schema[key], dict):
            if not isinstance(value, dict):
                raise FparError(f"config key '{dotted}' must be a section (mapping), got {_kind(value)}")
            _reject_unknown(value, schema[key], dotted + ".")


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


def _fail(key: str, expected: str, value: Any) -> FparError:
    return FparError(f"config key '{key}' must be {expected}, got {_kind(value)}")


def _string(section: dict[str, Any], key: str, dotted: str | None = None, *, null: bool = False,
            choices: tuple[str, ...] | None = None) -> str | None:
    dotted = dotted or key
    value = section[key]
    if value is None and null:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(dotted, "a non-empty string" + (" or null" if null else ""), value)
    if choices and value not in choices:
        raise _fail(dotted, "one of " + ", ".join(choices), value)
    return value


def _int(section: dict[str, Any], key: str, dotted: str, *, minimum: int | None = None,
         null: bool = False) -> None:
    value = section[key]
    if value is None and null:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(dotted, "an integer" + (" or null" if null else ""), value)
    if minimum is not None and value < minimum:
        raise _fail(dotted, f"an integer >= {minimum}", value)


def _float(section: dict[str, Any], key: str, dotted: str, *, minimum: float | None = None) -> None:
    value = section[key]
    # YAML 1.1 reads "1e-4" (no dot) as a string; accept it as the number it obviously is.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _fail(dotted, "a number", section[key]) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(dotted, "a number", value)
    if minimum is not None and value < minimum:
        raise _fail(dotted, f"a number >= {minimum}", value)
    section[key] = float(value)


def _bool(section: dict[str, Any], key: str, dotted: str) -> None:
    if not isinstance(section[key], bool):
        raise _fail(dotted, "true or false", section[key])


def _string_list(section: dict[str, Any], key: str, dotted: str, *, choices: tuple[str, ...] | None = None,
                 nonempty: bool = True) -> None:
    value = section[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or (nonempty and not value):
        raise _fail(dotted, "a list of strings", value)
    bad = [v for v in value if choices and v not in choices]
    if bad:
        raise _fail(dotted, "a list of " + ", ".join(choices), value)


def _check_model(model: dict[str, Any]) -> None:
    name = _string(model, "name", "model.name", choices=tuple(MODELS))
    _string(model, "backbone", "model.backbone")
    _string(model, "pretrained", "model.pretrained", null=True)
    _int(model, "num_classes", "model.num_classes", minimum=1, null=True)
    if "input_size" in model:
        raise FparError("config key 'model.input_size' is filled from data.crop; set data.crop instead")
    takes = inspect.signature(MODELS[name]).parameters
    for key in model:
        if key != "name" and key not in takes:
            raise FparError(f"unknown config key 'model.{key}': model '{name}' takes "
                            f"{', '.join(k for k in takes if k != 'input_size')}")


def _check_data(data: dict[str, Any]) -> None:
    _string(data, "root", "data.root", null=True)
    _string(data, "layout", "data.layout")
    _string_list(data, "train_subjects", "data.train_subjects")
    _string_list(data, "val_subjects", "data.val_subjects")
    _string(data, "fold", "data.fold", null=True)
    _string_list(data, "modalities", "data.modalities", choices=MODALITIES)
    _int(data, "num_frames", "data.num_frames", minimum=1)
    _int(data, "stack_size", "data.stack_size", minimum=1)
    _string(data, "flow_mode", "data.flow_mode", choices=("stack", "pairs"))
    _int(data, "resize", "data.resize", minimum=1)
    _int(data, "crop", "data.crop", minimum=1)
    _int(data, "workers", "data.workers", minimum=0)
    _bool(data, "cache", "data.cache")
    if data["crop"] > data["resize"]:
        raise FparError(f"config key 'data.crop' ({data['crop']}) must not exceed data.resize ({data['resize']})")


def _check_stage(stage: dict[str, Any]) -> None:
    _string(stage, "name", "stage.name", choices=STAGE_NAMES)
    if not isinstance(stage["options"], dict):
        raise _fail("stage.options", "a mapping", stage["options"])
    for key in stage["options"]:
        if not isinstance(key, str):
            raise _fail("stage.options", "a mapping with string keys", stage["options"])


def _check_init_from(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value):
        return value
    if isinstance(value, dict) and value:
        for key, path in value.items():
            if not isinstance(key, str) or not isinstance(path, str) or not path:
                raise _fail(f"init_from.{key}", "a checkpoint path", path)
        return value
    raise _fail("init_from", "null, a checkpoint path or a mapping {submodule: path}", value)


def _check_optimizer(opt: dict[str, Any]) -> None:
    _string(opt, "name", "optimizer.name", choices=("adam", "sgd"))
    _float(opt, "lr", "optimizer.lr", minimum=0.0)
    _float(opt, "weight_decay", "optimizer.weight_decay", minimum=0.0)
    _float(opt, "eps", "optimizer.eps", minimum=0.0)
    _float(opt, "momentum", "optimizer.momentum", minimum=0.0)
    if not isinstance(opt["group_lr"], dict):
        raise _fail("optimizer.group_lr", "a mapping {param group: lr}", opt["group_lr"])
    for group in opt["group_lr"]:
        if not isinstance(group, str):
            raise _fail("optimizer.group_lr", "a mapping with string keys", opt["group_lr"])
        _float(opt["group_lr"], group, f"optimizer.group_lr.{group}", minimum=0.0)


def _check_scheduler(sched: dict[str, Any]) -> None:
    _string(sched, "name", "scheduler.name", choices=("multistep", "step", "none"))
    milestones = sched["milestones"]
    if not isinstance(milestones, list) or not all(isinstance(m, int) and not isinstance(m, bool) and m > 0
                                                   for m in milestones):
        raise _fail("scheduler.milestones", "a list of positive integers", milestones)
    if milestones != sorted(milestones):
        raise _fail("scheduler.milestones", "increasing", milestones)
    _float(sched, "gamma", "scheduler.gamma", minimum=0.0)
    _int(sched, "step_size", "scheduler.step_size", minimum=1)


def _check_ms(ms: Any) -> dict[str, Any] | None:
    if ms is None:
        return None
    if not isinstance(ms, dict):
        raise _fail("loss.ms", "null or a mapping {kind, threshold, regression, weight}", ms)
    _reject_unknown(ms, MS_DEFAULTS, "loss.ms.")
    ms = {**MS_DEFAULTS, **ms}
    _string(ms, "kind", "loss.ms.kind", choices=("classification", "regression"))
    _float(ms, "threshold", "loss.ms.threshold")
    _string(ms, "regression", "loss.ms.regression", choices=MS_REGRESSION_LOSSES)
    _float(ms, "weight", "loss.ms.weight", minimum=0.0)
    return ms


def _check_trainer(tr: dict[str, Any]) -> None:
    _int(tr, "epochs", "trainer.epochs", minimum=1)
    _int(tr, "batch_size", "trainer.batch_size", minimum=1)
    _int(tr, "val_every", "trainer.val_every", minimum=1)
    # A run shorter than the validation period still validates (at its end), so it has a best.ckpt
    # for the next stage of a recipe; the resolved config.yaml records the value used.
    tr["val_every"] = min(tr["val_every"], tr["epochs"])
    if isinstance(tr["precision"], int) and not isinstance(tr["precision"], bool):
        tr["precision"] = str(tr["precision"])  # `precision: 32` in YAML is an int
    _string(tr, "precision", "trainer.precision", choices=PRECISIONS)
    _bool(tr, "compile", "trainer.compile")
    _string(tr, "accelerator", "trainer.accelerator")
    if tr["devices"] != "auto":
        _int(tr, "devices", "trainer.devices", minimum=1)
    _int(tr, "num_nodes", "trainer.num_nodes", minimum=1)
    _string(tr, "strategy", "trainer.strategy")
    _int(tr, "seed", "trainer.seed", minimum=0)
    _bool(tr, "deterministic", "trainer.deterministic")
    _int(tr, "log_every_n_steps", "trainer.log_every_n_steps", minimum=1)


# Settings that say where and how fast a run executes, not what it computes.
RUNTIME_KEYS = {"data.root", "data.workers", "data.cache", "trainer.accelerator", "trainer.devices",
                "trainer.num_nodes", "trainer.strategy", "trainer.precision", "trainer.compile",
                "trainer.log_every_n_steps"}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and f"{prefix}{key}" != "init_from":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def require_same_settings(run_dir: Path, config: dict[str, Any], allowed: Iterable[str] = ()) -> None:
    """A finished or interrupted run is reused only for the experiment it was trained as (its
    ``config.yaml``): reusing it for changed settings would report results those settings never
    produced. ``allowed`` keys may differ too (a resumed run may be given more epochs)."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved, wanted = _flatten(yaml.safe_load(saved_path.read_text()) or {}), _flatten(config)
    changed = sorted(key for key in saved.keys() | wanted.keys()
                     if key not in RUNTIME_KEYS and key not in allowed and saved.get(key) != wanted.get(key))
    if changed:
        detail = ", ".join(f"{key}: {saved.get(key)!r} -> {wanted.get(key)!r}" for key in changed[:3])
        raise FparError(f"{run_dir} was trained with other settings ({detail}{', ...' if len(changed) > 3 else ''}); "
                        "delete it or choose another --out")

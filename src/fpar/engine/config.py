"""Experiment configs: YAML files with ``_base_`` inheritance, dotted overrides, typed validation.

``load_config(path, overrides)`` returns :class:`~fpar.engine.settings.ExperimentSettings` with
every value checked by pydantic and defaults filled. Any unknown key or wrong value raises one
:class:`FparError` line naming the file and the dotted key (``config.yaml: trainer.epochs: must be
>= 1``), so a typo fails before a single batch is loaded. ``settings.as_dict()`` is what a run
directory's ``config.yaml`` and a checkpoint's ``fpar.config`` hold.

The configs of the paper's rows, their CPU-sized versions and the recipes ship inside the package
(``fpar/configs/``). Wherever a config or recipe is asked for, ``find_config`` turns the argument
into a file: an existing path wins, otherwise it is a packaged name such as
``gtea61/rgb-attention_r34_16f_stage2`` (the ``.yaml`` may be left out).
"""

from __future__ import annotations

import copy
import fnmatch
import os
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from fpar.engine.run_files import RUN_CONFIG
from fpar.engine.settings import ExperimentSettings
from fpar.errors import FparError
from fpar.io import write_text


# ---------------------------------------------------------------------------- finding

# The packaged configs: _base_/ (pieces), gtea61/, synthetic/, recipes/.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def find_config(ref: str | os.PathLike, *, kind: str = "config", relative_to: Path | None = None) -> Path:
    """The YAML file ``ref`` names: an existing path (relative to ``relative_to`` if given, else to the
    working directory), else a packaged config's name (``gtea61/flow_r34_5s_flow300``; for
    ``kind="recipe"`` the ``recipes/`` folder may be left out). One FparError line when neither exists."""
    path = Path(ref).expanduser()
    local = relative_to / path if relative_to is not None and not path.is_absolute() else path
    if local.is_file():
        return local
    if not path.is_absolute():
        name = path.as_posix().removesuffix(".yaml")
        folders = ("", "recipes/") if kind == "recipe" else ("",)
        for folder in folders:
            packaged = CONFIG_DIR / f"{folder}{name}.yaml"
            if packaged.is_file():
                return packaged
    hint = _closest_config(str(ref), kind) or "`fpar configs list` shows the packaged ones"
    raise FparError(f"config not found: {local} is no file and no packaged config is named '{ref}' ({hint})")


def _closest_config(ref: str, kind: str) -> str:
    """``did you mean gtea61/...?`` for a mistyped packaged name: matched whole, and by its last part
    (the folder left out or mistyped)."""
    import difflib

    names = [n for n in list_configs() if kind == "recipe" or not n.startswith("recipes/")]
    wanted = Path(ref).as_posix().removesuffix(".yaml")
    whole = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
    by_tail: dict[str, list[str]] = {}
    for name in names:
        by_tail.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    tails = difflib.get_close_matches(wanted.rsplit("/", 1)[-1], list(by_tail), n=3, cutoff=0.6)
    near = list(dict.fromkeys([*whole, *(n for tail in tails for n in by_tail[tail])]))[:3]
    return f"did you mean {' or '.join(near)}?" if near else ""


def list_configs(pattern: str | None = None) -> list[str]:
    """Names of the packaged configs and recipes (``gtea61/...``, ``recipes/...``), sorted; ``pattern``
    (shell-style, ``*`` added on both sides when it has none) filters them. ``_base_`` pieces are left out."""
    names = sorted(p.relative_to(CONFIG_DIR).with_suffix("").as_posix() for p in CONFIG_DIR.rglob("*.yaml")
                   if p.relative_to(CONFIG_DIR).parts[0] != "_base_")
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [name for name in names if fnmatch.fnmatchcase(name, glob)]
    return names


# ---------------------------------------------------------------------------- loading


# Bounds on what a config may ask of the loader (docs/reliability.md): a "billion laughs" document
# (aliases of aliases) or a deep nesting would otherwise take gigabytes or overflow the stack.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_ALIASES = 100
MAX_YAML_DEPTH = 50


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no code-running tags) that refuses more than :data:`MAX_YAML_ALIASES`
    aliases and nesting deeper than :data:`MAX_YAML_DEPTH`."""

    def __init__(self, stream):
        super().__init__(stream)
        self.aliases = self.depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases (*name): fpar refuses documents "
                                     "that expand that far")
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"nested more than {MAX_YAML_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def safe_yaml(text: str) -> Any:
    """``text`` loaded with :class:`BoundedLoader`."""
    return yaml.load(text, Loader=BoundedLoader)


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document of a ``what`` ("config", "recipe") file, safely loaded (no code-running
    tags, bounded aliases and nesting; an empty file is ``{}``); one FparError line for text that is
    too large, not UTF-8 or not YAML."""
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise FparError(f"{path}: a {what} of {path.stat().st_size >> 10} KiB is more than the "
                            f"{MAX_YAML_BYTES >> 10} KiB fpar reads")
        return safe_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise FparError(f"{path} is not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from None
    except yaml.YAMLError as exc:
        raise FparError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> ExperimentSettings:
    """Read ``path`` (a file or a packaged name, following ``_base_``), apply ``key.sub=value`` overrides,
    validate, fill defaults."""
    path = find_config(path)
    return validate_config(read_config(path, overrides), where=path.name)


def read_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The merged, overridden mapping of ``path``, not yet validated (recipes add ``init_from`` first)."""
    path = find_config(path)
    overrides = check_overrides(overrides)
    raw = _read_with_bases(path, seen=())
    raw.setdefault("experiment", path.stem)
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(raw, key, value)
    return raw


def config_sources(path: str | os.PathLike, overrides: Iterable[str] = ()) -> dict[str, str]:
    """Where each setting of ``path`` is given: {dotted key: the file (a packaged one by its name under
    the configs folder) or ``command line``}, the last one that sets it (``_base_`` files first, each
    file over its bases, overrides last). A key absent here is the settings' default."""
    def named(file: Path) -> str:
        try:
            return file.relative_to(CONFIG_DIR.resolve()).as_posix()
        except ValueError:
            return str(file)

    def visit(file: Path, sources: dict[str, str]) -> None:
        file = file.resolve()
        data = read_yaml(file, "config")
        if not isinstance(data, dict):
            return
        bases = data.get("_base_") or []
        for base in [bases] if isinstance(bases, str) else bases:
            visit(file.parent / base, sources)
        own = {key: value for key, value in data.items() if key != "_base_"}
        sources.update(dict.fromkeys(_flatten(own), named(file)))

    sources: dict[str, str] = {"experiment": "the config file's name"}
    visit(find_config(path), sources)
    sources.update(dict.fromkeys((parse_override(item)[0] for item in overrides), "command line"))
    return sources


def check_overrides(overrides: Any) -> list[str]:
    """Overrides as the Python API takes them: a list of ``key.sub=value`` strings. One string alone
    is refused (it would be read a character at a time), as is anything else."""
    if isinstance(overrides, (str, bytes)):
        raise FparError(f"overrides must be a list of 'key.sub=value' strings, got the string {overrides!r}: "
                        f"write [{overrides!r}]")
    try:
        items = list(overrides)
    except TypeError:
        raise FparError(f"overrides must be a list of 'key.sub=value' strings, got {type(overrides).__name__}") \
            from None
    wrong = [item for item in items if not isinstance(item, str)]
    if wrong:
        raise FparError(f"overrides must be 'key.sub=value' strings, got {wrong[0]!r} ({type(wrong[0]).__name__})")
    return items


def parse_override(item: str) -> tuple[str, Any]:
    """``"optimizer.lr=1e-3"`` -> ``("optimizer.lr", 0.001)``; the value is YAML."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise FparError(f"override '{item}' is not of the form key.sub=value")
    if key.count(".") >= MAX_YAML_DEPTH:
        raise FparError(f"override key '{key[:80]}...' is nested more than {MAX_YAML_DEPTH} levels deep")
    try:
        value = safe_yaml(text) if text.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise FparError(f"override {key}: value '{text[:80]}' is not valid YAML ({problem})") from None
    return key, value


def dump_config(config: ExperimentSettings, path: str | os.PathLike | None = None) -> str:
    """The settings as YAML text (key order kept); also written atomically to ``path`` if given."""
    text = yaml.safe_dump(config.as_dict(), sort_keys=False, default_flow_style=False)
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
    data = read_yaml(path, "config")
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


def validate_config(config: Any, where: str = "config") -> ExperimentSettings:
    """Typed settings from a plain mapping (defaults filled); one FparError line naming the dotted key."""
    if isinstance(config, ExperimentSettings):
        return config
    if not isinstance(config, dict):
        raise FparError(f"{where}: a config must be a mapping of keys, got {type(config).__name__}")
    try:
        return ExperimentSettings.model_validate(config)
    except ValidationError as exc:
        raise FparError(f"{where}: {_first_problem(exc)}") from None


def _first_problem(exc: ValidationError) -> str:
    """pydantic's first error as ``dotted.key: what is wrong (got value)``."""
    errors = exc.errors()
    # a union (init_from, devices) reports one error per member: name the key, list what it accepts
    error = errors[0]
    key = ".".join(str(part) for part in error["loc"] if not _is_union_member(part))
    kind, ctx = error["type"], error.get("ctx", {})
    got = f" (got {error['input']!r})" if kind not in ("extra_forbidden", "missing") else ""
    if kind == "extra_forbidden":
        return f"{key}: unknown key{key_hint(key)}"
    if kind == "missing":
        return f"{key}: is required"
    if len({".".join(map(str, e["loc"])) for e in errors}) > 1 and _is_union_member(error["loc"][-1]):
        return f"{key}: must be {_description(key) or 'another value'}{got}"
    bounds = {"greater_than_equal": ">= {ge}", "greater_than": "> {gt}", "less_than_equal": "<= {le}",
              "less_than": "< {lt}"}
    if kind in bounds:
        return f"{key}: must be {bounds[kind].format(**ctx)}{got}"
    if kind == "literal_error":
        return f"{key}: must be one of {ctx['expected'].replace(chr(39), '')}{got}"
    if kind == "finite_number":
        return f"{key}: must be a finite number{got}"
    message = error["msg"].removeprefix("Value error, ")
    if not key:  # a check across sections names its keys itself
        return f"{message}{'' if kind == 'value_error' else got}"
    return f"{key}: {message[:1].lower()}{message[1:]}{'' if kind == 'value_error' else got}"


# Lightning's (and common training scripts') names for settings fpar names otherwise: an unknown key
# that is one of them gets fpar's name as its hint.
FOREIGN_NAMES = {"max_epochs": "trainer.epochs", "min_epochs": "trainer.epochs", "devices": "trainer.devices",
                 "gpus": "trainer.devices", "precision": "trainer.precision", "accelerator": "trainer.accelerator",
                 "num_nodes": "trainer.num_nodes", "strategy": "trainer.strategy",
                 "check_val_every_n_epoch": "trainer.val_every", "log_every_n_steps": "trainer.log_every_n_steps",
                 "deterministic": "trainer.deterministic", "seed": "trainer.seed", "batch_size": "trainer.batch_size",
                 "logger": "trainer.logger", "lr": "optimizer.lr", "learning_rate": "optimizer.lr",
                 "weight_decay": "optimizer.weight_decay", "optimiser": "optimizer", "num_workers": "data.workers",
                 "workers": "data.workers", "lr_scheduler": "scheduler", "epochs": "trainer.epochs"}


def config_keys(model: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key an experiment config takes (sections and their fields)."""
    model = ExperimentSettings if model is None else model
    keys = []
    for name, info in model.model_fields.items():
        keys.append(f"{prefix}{name}")
        section = _section_model(info.annotation)
        if section is not None:
            keys.extend(config_keys(section, f"{prefix}{name}."))
    return keys


def _section_model(annotation: Any) -> Any:
    """The settings class a field holds (``Optional[...]`` unwrapped), or None for a plain value."""
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    sections = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return sections[0] if len(sections) == 1 else None


def key_hint(dotted: str) -> str:
    """``"; did you mean trainer.epochs?"`` for an unknown dotted key (its Lightning name, a typo,
    or a key put in the wrong section); ``""`` when nothing is close."""
    import difflib

    last = dotted.rsplit(".", 1)[-1]
    keys = config_keys()
    if last in FOREIGN_NAMES and FOREIGN_NAMES[last] != dotted:
        return f"; fpar calls it {FOREIGN_NAMES[last]}"
    section = dotted.rpartition(".")[0]
    siblings = [k for k in keys if k.rpartition(".")[0] == section]
    near = _best(dotted, difflib.get_close_matches(dotted, siblings, n=2, cutoff=0.6))
    near += [k for k in keys if k.rsplit(".", 1)[-1] == last and k not in near]  # right name, wrong section
    near = near or _best(dotted, difflib.get_close_matches(dotted, keys, n=2, cutoff=0.7))
    return f"; did you mean {' or '.join(near[:3])}?" if near else ""


def _best(word: str, matches: list[str]) -> list[str]:
    """``matches`` (difflib's, best first) without those clearly worse than the first."""
    import difflib

    ratios = [difflib.SequenceMatcher(None, word, m).ratio() for m in matches]
    return [m for m, r in zip(matches, ratios) if r >= ratios[0] - 0.1]


def _description(dotted: str) -> str | None:
    """The ``description`` of the settings field at ``dotted`` (what a union field accepts)."""
    model: Any = ExperimentSettings
    info = None
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        info = fields[part]
        model = info.annotation
    return info.description if info is not None else None


def _is_union_member(part: Any) -> bool:
    # pydantic names union members in the location ("int", "literal['auto']", "str", "dict[str,str]")
    return isinstance(part, str) and (part in ("int", "str", "float", "bool", "none") or "[" in part
                                      or part.startswith("constrained-"))


def json_schema() -> dict[str, Any]:
    """The JSON schema of an experiment config (an editor validates and completes YAML with it)."""
    schema = ExperimentSettings.model_json_schema()
    schema["properties"]["_base_"] = {"description": "config file(s) this one extends, relative to it",
                                      "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    return schema


# Settings that say where and how fast a run executes, not what it computes.
RUNTIME_KEYS = {"data.root", "data.workers", "data.cache", "data.store", "data.persistent_workers", "data.prefetch",
                "data.normalize_on_device", "trainer.accelerator", "trainer.devices", "trainer.num_nodes",
                "trainer.strategy", "trainer.precision", "trainer.compile", "trainer.log_every_n_steps",
                "trainer.keep_last"}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and f"{prefix}{key}" != "init_from":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# What a resumed run may be given anew (``fpar train ... --resume key=value``): where and how fast it
# runs, how long it trains, where it logs. Every other setting is the run's own (its config.yaml).
RESUME_CHANGEABLE = frozenset(RUNTIME_KEYS | {"trainer.epochs", "trainer.logger"})


# What a config records about how it was made, never what it computes (runs from before it lack it).
RECORD_KEYS = {"overrides"}


def _changed_keys(saved: dict[str, Any], wanted: dict[str, Any], allowed: Iterable[str]) -> list[str]:
    saved, wanted = _flatten(saved), _flatten(wanted)
    allowed = set(RUNTIME_KEYS) | RECORD_KEYS | set(allowed)
    return sorted(key for key in saved.keys() | wanted.keys()
                  if key not in allowed and saved.get(key) != wanted.get(key))


def resume_config(run_dir: Path, overrides: Iterable[str] = ()) -> ExperimentSettings:
    """The settings a run folder resumes with: its own ``config.yaml``, with ``overrides`` of the
    :data:`RESUME_CHANGEABLE` keys applied. An override that would change any other setting is one
    FparError listing all such keys (the run's checkpoints were made with the saved values)."""
    path = run_dir / RUN_CONFIG
    if not path.is_file():
        raise FparError(f"{run_dir} is no run folder (it has no config.yaml)")
    saved = read_yaml(path, "config")
    if not isinstance(saved, dict):
        raise FparError(f"{path}: a config must be a mapping of keys, got {type(saved).__name__}")
    raw = copy.deepcopy(saved)
    for item in check_overrides(overrides):
        _set_dotted(raw, *parse_override(item))
    config = validate_config(raw, where=f"{path} with the overrides")
    refused = _changed_keys(saved, config.as_dict(), RESUME_CHANGEABLE)
    if refused:
        raise FparError(f"--resume continues {run_dir} with its own settings; these cannot change: "
                        f"{', '.join(refused)} (may change: {', '.join(sorted(RESUME_CHANGEABLE))}; to change "
                        "the others train anew under another experiment name or --out)")
    return config


def load_config_or_run(ref: str | os.PathLike, overrides: Iterable[str] = ()) -> ExperimentSettings:
    """A config (file or packaged name), or a run folder's saved config.yaml: what ``fpar configs
    diff`` and ``--dry-run`` compare."""
    path = Path(ref).expanduser()
    if path.is_dir() and (path / RUN_CONFIG).is_file():
        try:
            return load_config(path / RUN_CONFIG, overrides)
        except FparError as exc:
            message = str(exc)
            raise FparError(message if str(path / RUN_CONFIG) in message else f"run folder {path}: {message}") \
                from None
    return load_config(ref, overrides)


def config_diff(a: ExperimentSettings, b: ExperimentSettings) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in a, value in b)`` for every setting that differs, in key order."""
    left, right = _flatten(a.as_dict()), _flatten(b.as_dict())
    return [(key, left.get(key), right.get(key)) for key in sorted(left.keys() | right.keys())
            if left.get(key) != right.get(key)]


def require_same_settings(run_dir: Path, config: ExperimentSettings, allowed: Iterable[str] = ()) -> None:
    """A finished or interrupted run is reused only for the experiment it was trained as (its
    ``config.yaml``): reusing it for changed settings would report results those settings never
    produced. ``allowed`` keys may differ too (a resumed run may be given more epochs)."""
    saved_path = run_dir / RUN_CONFIG
    if not saved_path.is_file():
        return
    saved_tree = safe_yaml(saved_path.read_text()) or {}
    changed = _changed_keys(saved_tree, config.as_dict(), allowed)
    saved, wanted = _flatten(saved_tree), _flatten(config.as_dict())
    if changed:
        detail = ", ".join(f"{key}: {saved.get(key)!r} -> {wanted.get(key)!r}" for key in changed[:3])
        raise FparError(f"{run_dir} was trained with other settings ({detail}{', ...' if len(changed) > 3 else ''}); "
                        "delete it or choose another --out")

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

from fpar.engine.config_errors import first_problem
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
        set_dotted(raw, key, value)
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
        sources.update(dict.fromkeys(flat_settings(own), named(file)))

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


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` (``trainer.epochs``) of a config mapping, making missing sections."""
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
        raise FparError(f"{where}: {first_problem(exc)}") from None


def json_schema() -> dict[str, Any]:
    """The JSON schema of an experiment config (an editor validates and completes YAML with it)."""
    schema = ExperimentSettings.model_json_schema()
    schema["properties"]["_base_"] = {"description": "config file(s) this one extends, relative to it",
                                      "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    return schema


def flat_settings(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config mapping as ``{dotted key: value}`` (``init_from`` kept whole: it is one setting)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and f"{prefix}{key}" != "init_from":
            flat.update(flat_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_diff(a: ExperimentSettings, b: ExperimentSettings) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in a, value in b)`` for every setting that differs, in key order."""
    left, right = flat_settings(a.as_dict()), flat_settings(b.as_dict())
    return [(key, left.get(key), right.get(key)) for key in sorted(left.keys() | right.keys())
            if left.get(key) != right.get(key)]

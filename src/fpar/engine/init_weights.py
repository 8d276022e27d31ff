"""``init_from``: a run that starts from the weights of earlier ones (a checkpoint or an export,
for the whole model or for named submodules), as recipes chain stages (docs/training.md)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from fpar.checkpoint import EXPORT_CONTRACT, load_checkpoint, model_state_dict
from fpar.errors import FparError

log = logging.getLogger(__name__)


def resolve_init_from(init_from: str | dict[str, str] | None, out_root: Path) -> str | dict[str, str] | None:
    """Checkpoint (or export) paths of ``init_from``, relative ones against the out root; missing ones are an error."""
    if init_from is None:
        return None
    entries = {"": init_from} if isinstance(init_from, str) else init_from
    resolved = {}
    for submodule, path in entries.items():
        full = Path(path).expanduser()
        full = full if full.is_absolute() else out_root / full
        if not (full.is_file() or (full / EXPORT_CONTRACT).is_file()):  # a checkpoint, or an export's folder
            key = f"init_from.{submodule}" if submodule else "init_from"
            raise FparError(f"config key '{key}': checkpoint {full} not found (train that stage first)")
        resolved[submodule] = str(full)
    return resolved[""] if isinstance(init_from, str) else resolved


def load_init_weights(model: nn.Module, init_from: str | dict[str, str], classes: list[str]) -> None:
    """Load fpar checkpoint weights into ``model`` (or into its named submodules).

    Whole modules present on one side only (a two-in-one model's ``motion`` layers when starting
    from an RGB row, an MS head the target lacks) are skipped and reported in one line; every module
    both sides have must match exactly.
    """
    entries = {"": init_from} if isinstance(init_from, str) else init_from
    for submodule, path in entries.items():
        key = f"init_from.{submodule}" if submodule else "init_from"
        target = model.get_submodule(submodule) if submodule else model
        ckpt = load_checkpoint(path)
        if ckpt["fpar"].get("classes") and ckpt["fpar"]["classes"] != classes:
            raise FparError(f"config key '{key}': {path} was trained on other classes than this dataset's")
        source = model_state_dict(ckpt)
        own = target.state_dict()
        only_target = _top_modules(own) - _top_modules(source)
        only_source = _top_modules(source) - _top_modules(own)
        source = {k: v for k, v in source.items() if _top(k) not in only_source}
        try:
            missing, _ = target.load_state_dict(source, strict=False)
        except RuntimeError as exc:
            raise FparError(f"config key '{key}': {path} does not fit the model: {str(exc).splitlines()[-1].strip()}") \
                from None
        partial = sorted(k for k in missing if _top(k) not in only_target)
        if partial:
            raise FparError(f"config key '{key}': {path} lacks weights the model needs: {partial[:5]}")
        if only_target or only_source:
            log.warning("%s: %s kept as initialised (not in %s)%s", key, ", ".join(sorted(only_target)) or "nothing",
                        path, f"; checkpoint modules ignored: {', '.join(sorted(only_source))}" if only_source else "")


def _top(key: str) -> str:
    return key.split(".", 1)[0]


def _top_modules(state: dict[str, Any]) -> set[str]:
    return {_top(k) for k in state}

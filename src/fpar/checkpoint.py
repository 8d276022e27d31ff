"""One checkpoint format for every command that takes a CHECKPOINT.

A checkpoint is a ``torch.save``'d dict that loads with ``weights_only=True`` (tensors and plain
Python values only, so loading never runs code). Lightning's own checkpoints already have this
shape; fpar adds one entry:

* ``state_dict``: the model's weights, keys prefixed with ``model.`` (the LightningModule's
  attribute), so a Lightning checkpoint and an imported reference checkpoint look alike;
* ``fpar``: the model's contract, as a pretrained model's config would carry it:
  ``{"model": {"name": <registry name>, **build kwargs}, "classes": [names] or None,
  "clip": <ClipSettings: how the model's input clips are read>, "config": <resolved experiment
  settings> or None}``.

The clip settings make a checkpoint self-sufficient: evaluation, prediction and reports read the
data exactly as the model was trained to see it, with no config file and no table of defaults.
``fpar import-reference`` writes such a file from the reference's ``.pth`` (the clip settings come
from :mod:`fpar.interop`); training writes ``best.ckpt`` / ``last.ckpt`` in the same format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import ValidationError

from fpar.data.settings import ClipSettings
from fpar.errors import FparError
from fpar.io import atomic_path, load_torch_file

MODEL_PREFIX = "model."


@dataclass(frozen=True)
class ModelContract:
    """What a checkpoint's model is and reads: build spec, class names, input clip settings."""

    model: dict[str, Any]  # {"name": registry name, **build kwargs}
    classes: list[str] | None
    clip: ClipSettings
    config: dict[str, Any] | None  # the experiment settings it was trained with, if trained by fpar

    @property
    def title(self) -> str | None:
        return (self.config or {}).get("experiment")


def checkpoint_contract(*, model: dict[str, Any], classes: list[str] | None, clip: ClipSettings,
                        config: Any = None) -> dict[str, Any]:
    """The ``fpar`` entry of a checkpoint, in plain values (``weights_only`` loading)."""
    return {"model": dict(model), "classes": list(classes) if classes else None,
            "clip": clip.model_dump(mode="json"), "config": config.as_dict() if config is not None else None}


def read_contract(ckpt: dict[str, Any], path: str | os.PathLike) -> ModelContract:
    info = ckpt["fpar"]
    if not isinstance(info.get("clip"), dict):
        raise FparError(f"{path} carries no input contract (fpar.clip); train it again or re-import it with "
                        "`fpar import-reference`")
    try:
        clip = ClipSettings.model_validate(info["clip"])
    except ValidationError as exc:
        raise FparError(f"{path}: fpar.clip is not valid clip settings ({exc.errors()[0]['msg']})") from None
    return ModelContract(model=dict(info["model"]), classes=info.get("classes"), clip=clip, config=info.get("config"))


def load_checkpoint(path: str | os.PathLike, *, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint without executing code; one clear error for anything else. ``mmap``: as
    :func:`fpar.io.load_torch_file`."""
    ckpt = load_torch_file(path, "checkpoint", mmap=mmap)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "fpar" not in ckpt:
        raise FparError(f"{path} is not an fpar checkpoint (no 'state_dict'/'fpar' entries); "
                        "reference .pth files are converted with `fpar import-reference`")
    return ckpt


def model_state_dict(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model's own weights, without the ``model.`` prefix."""
    return {k[len(MODEL_PREFIX):]: v for k, v in ckpt["state_dict"].items() if k.startswith(MODEL_PREFIX)}


def save_checkpoint(path: str | os.PathLike, *, model_state: dict[str, torch.Tensor], model: dict[str, Any],
                    clip: ClipSettings, classes: list[str] | None = None, config: Any = None) -> None:
    """Write a model-only checkpoint (no optimiser state) atomically; ``config``: ExperimentSettings or None."""
    ckpt = {
        "state_dict": {MODEL_PREFIX + k: v.detach().cpu() for k, v in model_state.items()},
        "fpar": checkpoint_contract(model=model, classes=classes, clip=clip, config=config),
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_model(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelContract]:
    """Build the checkpoint's model from the registry and load its weights. Returns (model, contract)."""
    from fpar.models import build_model

    ckpt = load_checkpoint(path, mmap=True)
    info = read_contract(ckpt, path)
    spec = dict(info.model)
    name = spec.pop("name")
    spec["pretrained"] = None  # the checkpoint holds every weight
    # Built without memory (meta tensors) and given the loaded tensors themselves: the weights are
    # held once, not twice (a ResNet-34 two-stream's are ~250 MB).
    with torch.device("meta"):
        model = build_model(name, **spec)
    weights = model_state_dict(ckpt)
    del ckpt  # anything else it holds (an optimiser's state) is freed before the model runs
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    if missing or unexpected:
        raise FparError(f"{path} does not match model '{name}': missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(unexpected)[:5]}")
    model.eval()
    return model, info

"""One checkpoint format for every command that takes a CHECKPOINT.

A checkpoint is a ``torch.save``'d dict that loads with ``weights_only=True`` (tensors and plain
Python values only, so loading never runs code). Lightning's own checkpoints already have this
shape; fpar adds one entry:

* ``state_dict``: the model's weights, keys prefixed with ``model.`` (the LightningModule's
  attribute), so a Lightning checkpoint and an imported reference checkpoint look alike;
* ``fpar``: ``{"model": {"name": <registry name>, **build kwargs}, "classes": [names] or None,
  "config": <resolved experiment config> or None}``.

``fpar import-reference`` writes such a file from the reference's ``.pth``; training writes
``best.ckpt`` / ``last.ckpt`` in the same format.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from fpar.errors import FparError
from fpar.io import atomic_path, load_torch_file

MODEL_PREFIX = "model."


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint without executing code; one clear error for anything else."""
    ckpt = load_torch_file(path, "checkpoint")
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "fpar" not in ckpt:
        raise FparError(f"{path} is not an fpar checkpoint (no 'state_dict'/'fpar' entries); "
                        "reference .pth files are converted with `fpar import-reference`")
    return ckpt


def model_state_dict(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model's own weights, without the ``model.`` prefix."""
    return {k[len(MODEL_PREFIX):]: v for k, v in ckpt["state_dict"].items() if k.startswith(MODEL_PREFIX)}


def save_checkpoint(path: str | os.PathLike, *, model_state: dict[str, torch.Tensor], model: dict[str, Any],
                    classes: list[str] | None = None, config: dict[str, Any] | None = None) -> None:
    """Write a model-only checkpoint (no optimiser state) atomically."""
    ckpt = {
        "state_dict": {MODEL_PREFIX + k: v.detach().cpu() for k, v in model_state.items()},
        "fpar": {"model": dict(model), "classes": list(classes) if classes else None, "config": config},
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_model(path: str | os.PathLike):
    """Build the checkpoint's model from the registry and load its weights. Returns (model, fpar_info)."""
    from fpar.models import build_model  # models sit below checkpoints in the flow

    ckpt = load_checkpoint(path)
    info = ckpt["fpar"]
    spec = dict(info["model"])
    name = spec.pop("name")
    spec["pretrained"] = None  # the checkpoint holds every weight
    model = build_model(name, **spec)
    missing, unexpected = model.load_state_dict(model_state_dict(ckpt), strict=False)
    if missing or unexpected:
        raise FparError(f"{path} does not match model '{name}': missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(unexpected)[:5]}")
    model.eval()
    return model, info

"""``fpar import-reference``: a reference ``.pth`` -> one fpar checkpoint (fpar.checkpoint format)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fpar.checkpoint import save_checkpoint
from fpar.errors import FparError
from fpar.io import load_torch_file, refuse_overwriting_inputs
from fpar.interop.contract import reference_clip
from fpar.interop.reference import from_reference

# the dict entries training scripts commonly wrap a state dict in
WRAPPER_KEYS = ("state_dict", "model_state_dict")


def load_reference_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A reference state dict from ``path``, loaded without running code (``weights_only=True``)."""
    content = load_torch_file(path, "reference checkpoint")
    for key in WRAPPER_KEYS:
        if isinstance(content, dict) and isinstance(content.get(key), dict):
            content = content[key]
            break
    if not isinstance(content, dict) or not content or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise FparError(f"{path} holds no state dict (a mapping of names to tensors, possibly under "
                        f"{' or '.join(repr(k) for k in WRAPPER_KEYS)})")
    return content


def read_class_names(path: str | os.PathLike) -> list[str]:
    """One class name per line; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FparError(f"class names file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def import_reference(kind: str, source: str | os.PathLike, target: str | os.PathLike,
                     classes: str | os.PathLike | None = None) -> dict:
    """Convert ``source`` (reference ``kind``) and write the fpar checkpoint ``target``; returns the model spec."""
    refuse_overwriting_inputs(target, source, classes, option="output")
    model = from_reference(kind, load_reference_file(source))
    spec = dict(model.build_spec)
    names = read_class_names(classes) if classes else None
    if names is not None and len(names) != spec["num_classes"]:
        raise FparError(f"{classes} names {len(names)} classes but the checkpoint has {spec['num_classes']}")
    save_checkpoint(target, model_state=model.state_dict(), model=spec, clip=reference_clip(model), classes=names)
    return spec

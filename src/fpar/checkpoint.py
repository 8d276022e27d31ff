"""One checkpoint format for every command that takes a CHECKPOINT.

A checkpoint is a ``torch.save``'d dict that loads with ``weights_only=True`` (tensors and plain
Python values only, so loading never runs code). Lightning's own checkpoints already have this
shape; fpar adds one entry:

* ``state_dict``: the model's weights, keys prefixed with ``model.`` (the LightningModule's
  attribute), so a Lightning checkpoint and an imported reference checkpoint look alike;
* ``fpar``: the model's contract, as a pretrained model's config would carry it:
  ``{"model": {"name": <registry name>, **build kwargs}, "classes": [names] or None,
  "clip": <ClipSettings: how the model's input clips are read>, "config": <resolved experiment
  settings> or None}``, and for a model with label heads ``"label_classes": {"verb": [names], ...}``
  (one name per output of each head; docs/models.md, "Verb and noun heads").

The clip settings make a checkpoint self-sufficient: evaluation, prediction and reports read the
data exactly as the model was trained to see it, with no config file and no table of defaults.
``fpar import-reference`` writes such a file from the reference's ``.pth`` (the clip settings come
from :mod:`fpar.interop`); training writes ``best.ckpt`` (the model only) and ``last.ckpt`` (plus the
optimiser, scheduler and loop state a resume needs) in the same format.

An **export** (``fpar export CHECKPOINT OUT``, :func:`export_model`) is the shareable form of the same
content: ``OUT/model.safetensors`` (the model's weights, unprefixed) and ``OUT/fpar.json`` (the
``fpar`` entry). Every function here that takes a checkpoint path also takes an export, as its folder
or its ``.safetensors`` file. An ONNX export (``--format onnx``, :mod:`fpar.interop.onnx_export`)
holds ``OUT/model.onnx`` in place of the safetensors file, written by the same machinery
(:func:`write_export`) and run by onnxruntime (docs/deployment.md).

torch is imported inside the functions that need it: reading an export's contract
(:func:`read_export_contract`) stays torch-free, for the ONNX runtime path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from pydantic import ValidationError

from fpar.data.settings import MODALITIES, ClipSettings
from fpar.errors import FparError
if TYPE_CHECKING:
    import torch

from fpar.io import (atomic_path, fresh_folder, load_torch_file, output_lock, refuse_link, refuse_overwriting_inputs,
                     remove_leftovers)

MODEL_PREFIX = "model."
EXPORT_WEIGHTS = "model.safetensors"
EXPORT_CONTRACT = "fpar.json"
EXPORT_ONNX = "model.onnx"  # an ONNX export's graph, in place of EXPORT_WEIGHTS
# fpar.json's record of the weights it belongs to: a weights file from another export is refused
EXPORT_WEIGHTS_HASH = "weights_blake2b"


@dataclass(frozen=True)
class ModelContract:
    """What a checkpoint's model is and reads: build spec, class names, input clip settings."""

    model: dict[str, Any]  # {"name": registry name, **build kwargs}
    classes: list[str] | None
    clip: ClipSettings
    config: dict[str, Any] | None  # the experiment settings it was trained with, if trained by fpar
    # label head (verb, noun) -> its class names, one per output; empty for a single-head model
    label_classes: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def title(self) -> str | None:
        return (self.config or {}).get("experiment")

    @property
    def trained_precision(self) -> str:
        """The ``trainer.precision`` it was trained with (``auto`` for a checkpoint without a
        training config): the precision it is scored in unless told otherwise."""
        return (self.config or {}).get("trainer", {}).get("precision", "auto")

    @property
    def num_classes(self) -> int:
        """The action head's outputs: the model's ``num_classes``, else one per class name."""
        count = self.model.get("num_classes")
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            return count
        return len(self.classes or []) or 1


def checkpoint_contract(*, model: dict[str, Any], classes: list[str] | None, clip: ClipSettings,
                        config: Any = None, label_classes: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The ``fpar`` entry of a checkpoint, in plain values (``weights_only`` loading)."""
    contract = {"model": dict(model), "classes": list(classes) if classes else None,
                "clip": clip.model_dump(mode="json"), "config": config.as_dict() if config is not None else None}
    if label_classes:  # absent for a single-head model: its entry is what it always was
        contract["label_classes"] = {kind: list(names) for kind, names in label_classes.items()}
    return contract


def read_contract(ckpt: dict[str, Any], path: str | os.PathLike) -> ModelContract:
    info = ckpt["fpar"]
    if not isinstance(info.get("clip"), dict):
        raise FparError(f"{path} carries no input contract (fpar.clip); train it again or re-import it with "
                        "`fpar import-reference`")
    try:
        clip = ClipSettings.model_validate(info["clip"])
    except ValidationError as exc:
        raise FparError(f"{path}: fpar.clip is not valid clip settings ({exc.errors()[0]['msg']})") from None
    return ModelContract(model=dict(info["model"]), classes=info.get("classes"), clip=clip, config=info.get("config"),
                         label_classes=dict(info.get("label_classes") or {}))


def check_class_names(contract: ModelContract, widths: dict[str, int], path: str | os.PathLike) -> None:
    """The class names a checkpoint or export carries against the widths of the model's outputs
    (``widths``: ``action`` and each label kind -> classes): one name per output, each once. A name
    too many or too few would label every score with its neighbour's class."""
    named = {"action": contract.classes, **contract.label_classes}
    for head, names in named.items():
        if names is None:
            continue
        where = "fpar.classes" if head == "action" else f"fpar.label_classes.{head}"
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise FparError(f"{path}: {where} must be a list of class names, got {_kind(names)}")
        if head not in widths:
            raise FparError(f"{path}: {where} names classes of a {head} head the model does not have")
        if len(names) != widths[head]:
            raise FparError(f"{path}: {where} names {len(names)} classes but the model's {head} output has "
                            f"{widths[head]}; the export's fpar.json and its model do not match")
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise FparError(f"{path}: {where} names {twice[0]!r} more than once")


def head_class_names(contract: ModelContract, widths: Mapping[str, int],
                     known: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """Each head's class names, one per output (``widths``: ``action`` and each label kind -> its
    outputs), for every runtime alike: the contract's names, else ``known``'s (a dataset's), then
    for the outputs left unnamed ``class N`` (action head) or ``N`` (a label head, as training
    records it: :func:`label_head_names`)."""
    named = {"action": contract.classes, **contract.label_classes}
    names = {}
    for head, width in widths.items():
        given = list(named.get(head) or (known or {}).get(head) or [])
        names[head] = [*given, *(f"class {i}" for i in range(len(given), width))] if head == "action" \
            else label_head_names(given, width)
    return names


def label_head_names(names: Sequence[str], width: int) -> list[str]:
    """A label head's class names, one per output: ``names``, then the outputs' numbers."""
    return [*names, *map(str, range(len(names), width))]


@contextlib.contextmanager
def model_reads_its_clip(path: str | os.PathLike, contract: ModelContract) -> Iterator[None]:
    """Run a checkpoint's model on clips read by its contract: a model that asks for a modality the
    clip settings do not give (a checkpoint whose ``fpar.clip`` was edited or mismatched) is one line
    naming the checkpoint, not a KeyError from inside the model."""
    try:
        yield
    except KeyError as exc:
        missing = exc.args[0] if exc.args else None
        if missing not in MODALITIES:
            raise
        raise FparError(f"{path}: its model '{contract.model['name']}' reads {missing!r} but its clip settings "
                        f"(fpar.clip.modalities) give {list(contract.clip.modalities)}; the checkpoint's model and "
                        "clip do not match") from None


def load_checkpoint(path: str | os.PathLike, *, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint (or an export) without executing code; one clear error for anything else.
    ``mmap``: as :func:`fpar.io.load_torch_file`.

    The result always has a ``state_dict`` of tensors (keys ``model.*``) and an ``fpar`` mapping whose
    ``model`` names a registry model, so callers index it without further checks."""
    import torch

    path = Path(path)
    if path.is_dir() or path.suffix == ".safetensors":
        ckpt = _load_export(path)
    else:
        ckpt = load_torch_file(path, "checkpoint", mmap=mmap)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "fpar" not in ckpt:
        raise FparError(f"{path} is not an fpar checkpoint (no 'state_dict'/'fpar' entries); "
                        "reference .pth files are converted with `fpar import-reference`")
    state, info = ckpt["state_dict"], ckpt["fpar"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise FparError(f"{path}: 'state_dict' must map parameter names to tensors, got {_kind(state)}")
    if not isinstance(info, dict) or not isinstance(info.get("model"), dict) \
            or not isinstance(info["model"].get("name"), str):
        raise FparError(f"{path}: the 'fpar' entry must be a mapping with model: {{name: ..., ...}}, "
                        f"got {_kind(info)}")
    for key in ("clip", "config"):
        if info.get(key) is not None and not isinstance(info[key], dict):
            raise FparError(f"{path}: fpar.{key} must be a mapping, got {_kind(info[key])}")
    if info.get("classes") is not None and not (isinstance(info["classes"], list)
                                                and all(isinstance(c, str) for c in info["classes"])):
        raise FparError(f"{path}: fpar.classes must be a list of class names, got {_kind(info['classes'])}")
    labels = info.get("label_classes")
    if labels is not None and not (isinstance(labels, dict) and all(
            isinstance(names, list) and all(isinstance(c, str) for c in names) for names in labels.values())):
        raise FparError(f"{path}: fpar.label_classes must map label kinds to lists of class names, got {_kind(labels)}")
    return ckpt


def _kind(value: Any) -> str:
    return f"a {type(value).__name__}" + (f" ({value[:40]!r})" if isinstance(value, str) else "")


def _load_export(path: Path) -> dict[str, Any]:
    """An export folder (or its .safetensors file) as a checkpoint dict."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = path if path.is_dir() else path.parent
    weights = path if path.suffix == ".safetensors" else folder / EXPORT_WEIGHTS
    contract = folder / EXPORT_CONTRACT
    if not weights.is_file() and (folder / EXPORT_ONNX).is_file():
        raise FparError(f"{folder} is an ONNX export ({EXPORT_ONNX}): `fpar predict --runtime onnx` runs it; for "
                        "this command give the checkpoint, or export it again without `--format onnx`")
    info = read_export_contract(contract, weights)
    try:
        state = load_file(weights, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise FparError(f"{weights} is not a readable safetensors file ({exc})") from None
    return {"state_dict": {MODEL_PREFIX + k: v for k, v in state.items()}, "fpar": info}


def read_export_contract(contract: Path, model_file: Path) -> dict[str, Any]:
    """An export's ``fpar.json`` as a mapping, once it is proved to belong to ``model_file`` (the
    weights or the ONNX graph beside it): its recorded hash is checked and removed."""
    for needed in (model_file, contract):
        if not needed.is_file():
            raise FparError(f"checkpoint not found: {needed} (an export is a folder with {model_file.name} "
                            f"and {EXPORT_CONTRACT}, written by `fpar export`)")
    try:
        info = json.loads(contract.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FparError(f"{contract} is not valid JSON ({exc})") from None
    if not isinstance(info, dict):
        raise FparError(f"{contract} must hold a mapping (model, classes, clip, config), got {_kind(info)}")
    recorded = info.pop(EXPORT_WEIGHTS_HASH, None)
    if recorded is None:
        raise FparError(f"{contract} records no hash of its weights ({EXPORT_WEIGHTS_HASH}): "
                        "export the checkpoint again with `fpar export`")
    if recorded != weights_hash(model_file):
        raise FparError(f"{model_file} is not the {'weights' if model_file.suffix == '.safetensors' else 'model'} "
                        f"file {contract} was written with (its hash differs): the export was modified or mixed "
                        "with another; export the checkpoint again")
    return info


def weights_hash(path: Path) -> str:
    """BLAKE2b of a file, read in 4 MiB blocks."""
    import hashlib

    digest = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def export_model(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``out/model.safetensors`` (the weights) and ``out/fpar.json`` (model name and arguments,
    classes, clip settings, config, and the weights' hash) from any checkpoint; returns ``out``.

    Both are written into a fresh temporary folder that then replaces ``out`` whole, so a reader
    sees the previous export or the new one, never one's weights beside the other's contract; a
    second writer of ``out`` is refused while the first writes (``.locks/`` beside it), and the
    leftovers of a killed export are removed by the next one."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    def write_weights(ckpt: dict[str, Any], folder: Path) -> tuple[Path, dict[str, Any]]:
        # safetensors stores each tensor once: give views and shared storage their own contiguous copy
        weights = {k: v.detach().cpu().contiguous().clone() for k, v in model_state_dict(ckpt).items()}
        try:
            save_file(weights, str(folder / EXPORT_WEIGHTS),
                      metadata={"format": "pt", "model": ckpt["fpar"]["model"]["name"]})
        except SafetensorError as exc:  # safetensors reports a failed write as its own error, without errno
            raise OSError(errno.ENOSPC if _nearly_full(folder) else errno.EIO, str(exc), str(out)) from None
        return folder / EXPORT_WEIGHTS, {}

    return write_export(checkpoint, out, write_weights)


def write_export(checkpoint: str | os.PathLike, out: str | os.PathLike,
                 write_model: Callable[[dict[str, Any], Path], tuple[Path, dict[str, Any]]]) -> Path:
    """The machinery every export format shares (see :func:`export_model`): ``write_model(ckpt,
    folder)`` writes the model file into the fresh folder and returns its path and the entries of
    ``fpar.json`` it adds or replaces; ``fpar.json`` then records that file's hash."""
    out = Path(out)
    refuse_overwriting_inputs(out, checkpoint, Path(checkpoint).parent if Path(checkpoint).suffix == ".safetensors"
                              else None, option="export folder")
    ckpt = load_checkpoint(checkpoint)
    read_contract(ckpt, checkpoint)  # an export must be usable: refuse one without an input contract
    if out.exists() and not out.is_dir():
        raise FparError(f"export folder {out} is a file")
    refuse_link(out)
    if out.is_dir() and not {p.name for p in out.iterdir()} <= {EXPORT_WEIGHTS, EXPORT_ONNX, EXPORT_CONTRACT}:
        raise FparError(f"export folder {out} holds other files than an export; give a new or empty folder")
    with output_lock(out, f"export {out}"):
        remove_leftovers(out)
        with fresh_folder(out) as tmp:
            model_file, entries = write_model(ckpt, tmp)
            contract = {**ckpt["fpar"], **entries, EXPORT_WEIGHTS_HASH: weights_hash(model_file)}
            (tmp / EXPORT_CONTRACT).write_text(json.dumps(contract, indent=1) + "\n")
    return out


def _nearly_full(folder: Path) -> bool:
    usage = os.statvfs(folder)
    return usage.f_bavail * usage.f_frsize < (64 << 20)


def model_state_dict(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model's own weights, without the ``model.`` prefix."""
    return {k[len(MODEL_PREFIX):]: v for k, v in ckpt["state_dict"].items() if k.startswith(MODEL_PREFIX)}


def save_checkpoint(path: str | os.PathLike, *, model_state: dict[str, torch.Tensor], model: dict[str, Any],
                    clip: ClipSettings, classes: list[str] | None = None, config: Any = None) -> None:
    """Write a model-only checkpoint (no optimiser state) atomically; ``config``: ExperimentSettings or None."""
    import torch

    ckpt = {
        "state_dict": {MODEL_PREFIX + k: v.detach().cpu() for k, v in model_state.items()},
        "fpar": checkpoint_contract(model=model, classes=classes, clip=clip, config=config),
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_model(path: str | os.PathLike, *, mmap: bool = True) -> tuple[torch.nn.Module, ModelContract]:
    """Build the checkpoint's model from the registry and load its weights. Returns (model, contract).

    ``mmap``: the weights map the file (:func:`fpar.io.load_torch_file`), read as they are used;
    ``False`` reads them into memory, which costs less for a caller that replaces them all (a
    layout change): each original is freed as its copy is made, where the mapped file's pages
    would stay resident beside the copies."""
    import torch

    from fpar.models import build_model

    ckpt = load_checkpoint(path, mmap=mmap)
    info = read_contract(ckpt, path)
    spec = dict(info.model)
    name = spec.pop("name")
    if "pretrained" in spec:
        spec["pretrained"] = None  # the checkpoint holds every weight
    # Built without memory (meta tensors) and given the loaded tensors themselves: the weights are
    # held once, not twice (a ResNet-34 two-stream's are ~250 MB).
    try:
        with torch.device("meta"):
            model = build_model(name, **spec)
    except FparError as exc:
        raise FparError(f"{path}: fpar.model: {exc}") from None
    except (TypeError, ValueError) as exc:  # arguments of the right name, the wrong kind
        raise FparError(f"{path}: fpar.model cannot build '{name}': {exc}") from None
    weights = model_state_dict(ckpt)
    del ckpt  # anything else it holds (an optimiser's state) is freed before the model runs
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    except RuntimeError as exc:  # shapes that differ from the model's
        problem = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line),
                       str(exc).splitlines()[-1].strip())
        raise FparError(f"{path} does not fit model '{name}': {problem}") from None
    if missing or unexpected:
        raise FparError(f"{path} does not match model '{name}': missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(unexpected)[:5]}")
    # One weight layout whatever the file kept (a training run saves channels-last weights, an export
    # contiguous ones): the same checkpoint then gives the same scores to the last bit.
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    built = getattr(model, "build_spec", {})
    if isinstance(built.get("num_classes"), int):
        check_class_names(info, {"action": built["num_classes"], **(built.get("heads") or {})}, path)
    return model, info

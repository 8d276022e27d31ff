"""ImageNet weights for the backbones: torchvision's published ResNet-18/34 files.

``pretrained="imagenet"`` fetches them through ``torch.hub`` (cached under ``$TORCH_HOME``, loaded
with ``weights_only=True``); a path loads a local copy (``.pth``/``.pt`` or ``.safetensors``). The
flow backbone gets conv1 by cross-modality averaging (Wang et al., TSN, ECCV 2016; docs/method.md §7):
the RGB filters averaged over the colour axis and repeated once per flow channel.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fpar.errors import FparError
from fpar.io import load_torch_file
from fpar.models.backbone import ResNet

IMAGENET_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
}


def hub_checkpoint_path(arch: str) -> Path:
    """Where torch.hub keeps (and looks for) the downloaded file for ``arch``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_URLS[arch].rsplit("/", 1)[1]


def download_imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for ``arch``, from the torch.hub cache or the network."""
    url = IMAGENET_URLS[arch]
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash is a RuntimeError
        cached = hub_checkpoint_path(arch)
        raise FparError(
            f"cannot fetch ImageNet weights for {arch} from {url} ({type(exc).__name__}: {exc}); "
            f"offline, copy that file to {cached} (the torch.hub cache under TORCH_HOME) "
            f"or give its path instead of 'imagenet' (pretrained: /path/to/{cached.name})"
        ) from None


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a local ``.pth``/``.pt`` (loaded without running code) or ``.safetensors``."""
    path = Path(path)
    if not path.is_file():
        raise FparError(f"pretrained weights file not found: {path} (give 'imagenet' or a path to a .pth/.safetensors)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as exc:  # safetensors raises its own error types for a damaged header
            raise FparError(f"{path} is not a readable safetensors file: {exc}") from None
    state = load_torch_file(path, "weights file")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FparError(f"{path} does not hold a plain state dict (name -> tensor)")
    return state


def adapt_to_backbone(state: dict[str, torch.Tensor], backbone: ResNet) -> dict[str, torch.Tensor]:
    """Fit an RGB ImageNet state dict to ``backbone``: cross-modality conv1, no fc where it has none."""
    state = dict(state)
    if backbone.fc is None:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if backbone.in_channels != 3 and "conv1.weight" in state:
        rgb_filters = state["conv1.weight"]
        state["conv1.weight"] = rgb_filters.mean(dim=1, keepdim=True).repeat(1, backbone.in_channels, 1, 1)
    return state


def load_pretrained(backbone: ResNet, source: str | os.PathLike) -> None:
    """Load ImageNet weights into ``backbone``: ``source`` is ``"imagenet"`` or a local file."""
    if str(source) == "imagenet":
        state = download_imagenet_state_dict(backbone.arch)
    else:
        state = load_state_dict_file(source)
    state = adapt_to_backbone(state, backbone)
    expected = backbone.state_dict()
    # files saved before PyTorch 0.4.1 have no BN step counters; eval-mode BN does not read them
    for key in expected:
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, expected[key])
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        raise FparError(
            f"pretrained weights {source} do not fit a torchvision {backbone.arch}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong_shape[:5]}"
        )
    backbone.load_state_dict(state)

"""Models of the paper: backbones, ConvLSTM, attention, MS head, motion modulation, the registry."""

import importlib

_EXPORTS = {
    "build_model": "fpar.models.registry",
    "describe_model": "fpar.models.registry",
    "list_models": "fpar.models.registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Submodules load on first use: the CLI and the settings import this package's light modules
    # (vocabularies, settings) without pulling in torch or OpenCV.
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

"""Reference (FPAR-NET/FPAR, Ego-RNN) checkpoints -> fpar models."""

import importlib

_EXPORTS = {
    "KINDS": "fpar.interop.contract",
    "from_reference": "fpar.interop.reference",
    "reference_state_dict": "fpar.interop.reference",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Submodules load on first use: the CLI and the settings import this package's light modules
    # (vocabularies, settings) without pulling in torch or OpenCV.
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

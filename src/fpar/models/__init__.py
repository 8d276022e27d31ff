"""Models of the paper: backbones, ConvLSTM, attention, MS head, motion modulation, the registry."""

from fpar.lazy import lazy_exports

_EXPORTS = {
    "ClipModel": "fpar.models.base",
    "example_batch": "fpar.models.base",
    "register_model": "fpar.models.registry",
    "build_model": "fpar.models.registry",
    "describe_model": "fpar.models.registry",
    "list_models": "fpar.models.registry",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

"""Reference (FPAR-NET/FPAR, Ego-RNN) checkpoints -> fpar models."""

from fpar.lazy import lazy_exports

_EXPORTS = {
    "KINDS": "fpar.interop.contract",
    "from_reference": "fpar.interop.reference",
    "reference_state_dict": "fpar.interop.reference",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

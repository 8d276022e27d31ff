"""Reference (FPAR-NET/FPAR, Ego-RNN) checkpoints -> fpar models; fpar models -> ONNX, and ONNX
exports run without PyTorch (docs/deployment.md)."""

from fpar.lazy import lazy_exports

_EXPORTS = {
    "KINDS": "fpar.interop.contract",
    "OnnxModel": "fpar.interop.onnx_runtime",
    "export_onnx": "fpar.interop.onnx_export",
    "from_reference": "fpar.interop.reference",
    "reference_state_dict": "fpar.interop.reference",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

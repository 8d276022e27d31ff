"""A streaming recogniser: frames pushed one at a time as they arrive, the current action read after
each (docs/streaming.md).

* ``fpar.engine.stream.core``: :class:`Stream`, a PyTorch model fed frame by frame (``fpar.Stream``)
* ``fpar.engine.stream.threads``: the threads a push computes with, following the free cores
* ``fpar.engine.stream.sources``: video files, folders, cameras and URLs as frames; pacing and
  latency figures (no torch: the ONNX runtime's stream uses them too)
* ``fpar.prepare.live``: the inputs a model reads, made from each pushed frame (no torch), and
  :class:`StreamResult`

Submodules are imported on use, so the sources load without torch.
"""

from fpar.lazy import lazy_exports

_EXPORTS = {
    "Stream": "fpar.engine.stream.core",
    "ThreadChooser": "fpar.engine.stream.threads",
    "FrameSource": "fpar.engine.stream.sources",
    "open_source": "fpar.engine.stream.sources",
    "SourceRun": "fpar.engine.stream.sources",
    "StreamStep": "fpar.engine.stream.sources",
    "latency_summary": "fpar.engine.stream.sources",
    "StreamResult": "fpar.prepare.live",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

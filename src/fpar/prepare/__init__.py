"""Raw video -> fpar's training layout (docs/method.md §2): frames, TV-L1 flow, motion maps.

Public API (see docs/prepare.md)::

    video = read_video("clip.mp4")                               # .frames, .fps
    flow = compute_flow(prev, nxt, method="tvl1")                # float32 (H, W, 2)
    x, y = quantize_flow(flow, bound=20.0)                       # uint8, 128 = still
    prepare_video("clip.mp4", "data/mine", subject="S1", class_name="open_jar", instance_id="1")
    import_gtea("raw/gtea", "data/gtea61")

Many videos (manifests, folder trees, EGTEA / EPIC annotations, workers, shards): :mod:`fpar.prepare.jobs`
and :mod:`fpar.prepare.importers`.
"""

from fpar.lazy import lazy_exports

_EXPORTS = {
    "compute_flow": "fpar.prepare.flow",
    "dequantize_flow": "fpar.data.frames",
    "flow_estimator": "fpar.prepare.flow",
    "flow_to_rgb": "fpar.prepare.flow",
    "pair_flows": "fpar.prepare.flow",
    "quantize_flow": "fpar.data.frames",
    "GteaImport": "fpar.prepare.gtea",
    "import_gtea": "fpar.prepare.gtea",
    "Prepared": "fpar.prepare.layout_writer",
    "Settings": "fpar.prepare.layout_writer",
    "is_prepared": "fpar.prepare.layout_writer",
    "prepare_instance": "fpar.prepare.layout_writer",
    "prepare_video": "fpar.prepare.layout_writer",
    "write_instance": "fpar.prepare.layout_writer",
    "motion_map": "fpar.prepare.motion",
    "motion_maps": "fpar.prepare.motion",
    "Segment": "fpar.prepare.video",
    "VideoFrames": "fpar.prepare.video",
    "iter_frames": "fpar.prepare.video",
    "read_video": "fpar.prepare.video",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

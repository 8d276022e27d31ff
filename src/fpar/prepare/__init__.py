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

from fpar.prepare.flow import compute_flow, dequantize_flow, flow_estimator, flow_to_rgb, pair_flows, quantize_flow
from fpar.prepare.gtea import GteaImport, import_gtea
from fpar.prepare.layout_writer import Prepared, Settings, is_prepared, prepare_instance, prepare_video, write_instance
from fpar.prepare.motion import motion_map, motion_maps
from fpar.prepare.video import Segment, VideoFrames, iter_frames, read_video

__all__ = [
    "GteaImport",
    "Prepared",
    "Segment",
    "Settings",
    "VideoFrames",
    "compute_flow",
    "dequantize_flow",
    "flow_estimator",
    "flow_to_rgb",
    "import_gtea",
    "is_prepared",
    "iter_frames",
    "motion_map",
    "motion_maps",
    "pair_flows",
    "prepare_instance",
    "prepare_video",
    "quantize_flow",
    "read_video",
    "write_instance",
]

"""Raw video -> fpar's training layout (docs/method.md §2): frames, TV-L1 flow, motion maps.

Public API (see docs/prepare.md)::

    video = read_video("clip.mp4")                               # .frames, .fps
    flow = compute_flow(prev, nxt, method="tvl1")                # float32 (H, W, 2)
    x, y = quantize_flow(flow, bound=20.0)                       # uint8, 128 = still
    prepare_video("clip.mp4", "data/mine", subject="S1", class_name="open_jar", instance_id="1")
    import_gtea("raw/gtea", "data/gtea61")
"""

from fpar.prepare.flow import compute_flow, dequantize_flow, flow_estimator, flow_to_rgb, quantize_flow
from fpar.prepare.gtea import GteaImport, import_gtea
from fpar.prepare.layout_writer import Prepared, is_prepared, prepare_video, write_instance
from fpar.prepare.motion import motion_map, motion_maps
from fpar.prepare.video import VideoFrames, read_video

__all__ = [
    "GteaImport",
    "Prepared",
    "VideoFrames",
    "compute_flow",
    "dequantize_flow",
    "flow_estimator",
    "flow_to_rgb",
    "import_gtea",
    "is_prepared",
    "motion_map",
    "motion_maps",
    "prepare_video",
    "quantize_flow",
    "read_video",
    "write_instance",
]

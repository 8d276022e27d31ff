"""Data layer: dataset layouts, splits, clip sampling, transforms, the clip dataset, synthetic data.

Public API (see docs/data.md)::

    index = load_index("data/gtea61")                      # DatasetIndex
    train, val = split_by_subject(index)                    # S1,S3,S4 / S2
    ds = ClipDataset(train, ClipSettings(modalities=["frames", "flow"]), train=True, seed=0, cache=True)
"""

from fpar.lazy import lazy_exports

_EXPORTS = {
    "ClipDataset": "fpar.data.dataset",
    "normalize_batch": "fpar.data.dataset",
    "ClipSettings": "fpar.data.settings",
    "FrameCache": "fpar.data.frames",
    "read_frame": "fpar.data.frames",
    "DatasetIndex": "fpar.data.layouts",
    "Instance": "fpar.data.layouts",
    "Problem": "fpar.data.layouts",
    "detect_layout": "fpar.data.layouts",
    "load_index": "fpar.data.layouts",
    "with_class_ids": "fpar.data.layouts",
    "leave_one_subject_out": "fpar.data.splits",
    "split_by_subject": "fpar.data.splits",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

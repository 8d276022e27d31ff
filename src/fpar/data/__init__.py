"""Data layer: dataset layouts, splits, clip sampling, transforms, the clip dataset, synthetic data.

Public API (see docs/data.md)::

    index = load_index("data/gtea61")                      # DatasetIndex
    train, val = split_by_subject(index)                    # S1,S3,S4 / S2
    ds = ClipDataset(train, modalities=("frames", "flow"), train=True, seed=0, cache=True)
"""

from fpar.data.dataset import ClipDataset
from fpar.data.frames import FrameCache, read_frame
from fpar.data.layouts import DatasetIndex, Instance, Problem, detect_layout, load_index, with_class_ids
from fpar.data.splits import leave_one_subject_out, split_by_subject

__all__ = [
    "ClipDataset",
    "DatasetIndex",
    "FrameCache",
    "Instance",
    "Problem",
    "detect_layout",
    "leave_one_subject_out",
    "load_index",
    "read_frame",
    "split_by_subject",
    "with_class_ids",
]

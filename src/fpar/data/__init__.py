"""Data layer: dataset layouts, splits, clip sampling, transforms, the clip dataset, synthetic data.

Public API (see docs/data.md)::

    index = load_index("data/gtea61")                      # DatasetIndex
    train, val = split_by_subject(index)                    # S1,S3,S4 / S2
    ds = ClipDataset(train, ClipSettings(modalities=["frames", "flow"]), train=True, seed=0, cache=True)
"""

import importlib

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
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Submodules load on first use: the CLI and the settings import this package's light modules
    # (vocabularies, settings) without pulling in torch or OpenCV.
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

"""Dataset layouts on disk -> one in-memory :class:`DatasetIndex` (docs/method.md §2).

A layout is one module registering ``name -> detect, scan`` (:mod:`~fpar.data.layouts.registry`);
fpar's own are the folder trees ``processed`` and ``egornn`` (:mod:`~fpar.data.layouts.trees`) and
``manifest`` (:mod:`~fpar.data.layouts.manifest`), registered when this package is imported. What
they read into is :mod:`~fpar.data.layouts.index`.
"""

from fpar.data.layouts.index import (DEFAULT_MIN_FRAMES, FILE_KINDS, FILE_KINDS_OF_MODALITY, ROW_SKIPPED,
                                     UNFINISHED_MARKER, Candidate, DatasetIndex, FrameRange, Instance, Problem, Scan,
                                     VideoFrame, VideoRange, with_class_ids)
from fpar.data.layouts.registry import Layout, detect_layout, layout_names, list_frames, load_index, register_layout
from fpar.data.layouts.trees import (DATASET_SETTINGS, EGORNN_LAYOUT, EGORNN_TREES, PREPARE_SETTINGS, PROCESSED_LAYOUT,
                                    PROCESSED_TREES)
from fpar.data.layouts.manifest import (MANIFEST_HEADER_KEYS, MANIFEST_LAYOUT, MANIFEST_NAMES, RANGE_COLUMNS, flow_range,
                                        pattern_regex)

# fpar's own layouts (registered by the imports above); ``data.layout`` accepts these and ``auto``
LAYOUTS = layout_names()

__all__ = ["DATASET_SETTINGS", "DEFAULT_MIN_FRAMES", "EGORNN_LAYOUT", "EGORNN_TREES", "FILE_KINDS", "MANIFEST_LAYOUT",
           "FILE_KINDS_OF_MODALITY", "LAYOUTS", "MANIFEST_HEADER_KEYS", "MANIFEST_NAMES", "PREPARE_SETTINGS",
           "PROCESSED_LAYOUT", "PROCESSED_TREES", "RANGE_COLUMNS",
           "ROW_SKIPPED", "UNFINISHED_MARKER", "Candidate", "DatasetIndex", "FrameRange", "Instance", "Layout",
           "Problem", "Scan", "VideoFrame", "VideoRange", "detect_layout", "flow_range", "layout_names",
           "list_frames", "load_index", "pattern_regex", "register_layout", "with_class_ids"]

"""Jobs from the annotation files of EGTEA Gaze+ and EPIC-KITCHENS-100 (GTEA's are in :mod:`fpar.prepare.gtea`).

Each importer reads the dataset's published annotation files and yields :class:`~fpar.prepare.jobs.Job`
rows (subject = participant, class = the action's name), which :func:`fpar.prepare.jobs.run_jobs`
prepares like any manifest. Rows it cannot use are returned as problems (file and line), not raised.

**EGTEA Gaze+.** A split file (``train_split1.txt``, ``test_split1.txt``, ...) has one line per clip,
``<clip> <action_id> <verb_id> <noun_id>``, where the clip name
``OP01-R01-PastaSalad-1002316-1004005-F024051-F024101`` is the session video, the start and end in
ms, and the start and end frame. ``action_idx.txt`` maps ids to names, one ``<name words> <id>`` a
line. The clip is read from ``VIDEOS/<session>/<clip>.mp4`` or ``VIDEOS/<clip>.mp4`` (the dataset's
cropped clips) when present, else frames ``start..end`` of ``VIDEOS/<session>.mp4``.

**EPIC-KITCHENS-100.** ``EPIC_100_train.csv`` / ``EPIC_100_validation.csv``: one narrated action a row,
with ``narration_id``, ``participant_id``, ``video_id``, ``start_frame``, ``stop_frame``, ``verb``,
``noun`` (and more). The video is ``VIDEOS/<participant>/videos/<video>.MP4`` or the frame folder
``VIDEOS/<participant>/rgb_frames/<video>/frame_0000000001.jpg`` (EPIC's frame numbers start at 1).

**Verb and noun labels** (:func:`epic_labels`, :func:`egtea_labels`): the annotations' verb and noun
classes, written beside the imported dataset as its ``labels.csv`` (:mod:`fpar.data.labels`).
**In place** (:func:`epic_manifest`, :func:`egtea_manifest`; docs/prepare.md, "In place"): the same
annotations become manifest rows naming frame ranges of the published frame folders, or of the
videos, which :func:`fpar.data.load_index` reads where they are: no pixel written, no flow computed.
"""

from fpar.prepare.importers.egtea import egtea_jobs, egtea_labels, egtea_manifest
from fpar.prepare.importers.epic import (EPIC_COLUMNS, EPIC_FLOW_BOUND, EPIC_FLOW_STRIDE, EPIC_FRAME_PATTERN,
                                         epic_class_name, epic_jobs, epic_labels, epic_manifest, epic_split_name,
                                         merge_epic_rows)
from fpar.prepare.importers.manifest import MANIFEST_COLUMNS, write_in_place_manifest
from fpar.prepare.importers.rows import class_folder_name, read_index

__all__ = ["EPIC_COLUMNS", "EPIC_FLOW_BOUND", "EPIC_FLOW_STRIDE", "EPIC_FRAME_PATTERN", "MANIFEST_COLUMNS",
           "class_folder_name", "egtea_jobs", "egtea_labels", "egtea_manifest", "epic_class_name", "epic_jobs",
           "epic_labels", "epic_manifest", "epic_split_name", "merge_epic_rows", "read_index",
           "write_in_place_manifest"]

"""The two folder-tree layouts (docs/method.md §2):

* ``processed`` -- the reference's ``processed_frames/<S>/<class>/<inst>/rgb|mmaps`` plus
  ``flow_x_processed`` / ``flow_y_processed`` trees.
* ``egornn`` -- Ego-RNN's ``frames|flow_x|flow_y/<S>/<class>/<inst>/`` under one split folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from fpar.data.layouts.index import FILE_KINDS, FRAME_EXTENSIONS as _EXT, Candidate, Problem, Scan
from fpar.data.layouts.registry import register_layout

PROCESSED_LAYOUT, EGORNN_LAYOUT = "processed", "egornn"  # the layouts' names
PREPARE_SETTINGS = "prepare.json"  # in a processed instance folder: the settings it was prepared with
DATASET_SETTINGS = ("flow", "bound", "size", "warp", "max_frames")  # recorded settings all instances should share
PROCESSED_TREES = {"rgb": "processed_frames", "flow_x": "flow_x_processed", "flow_y": "flow_y_processed"}
EGORNN_TREES = {"rgb": "frames", "flow_x": "flow_x", "flow_y": "flow_y"}

# Frame names end in digits: a stray duplicate such as ``flow_x_00007(1).png`` never matches.
_PROCESSED_PATTERNS = {
    "rgb": re.compile(rf"^rgb(\d+){_EXT}$", re.I),
    "mmaps": re.compile(rf"^map(\d+){_EXT}$", re.I),
    "flow_x": re.compile(rf"^flow_x_(\d+){_EXT}$", re.I),
    "flow_y": re.compile(rf"^flow_y_(\d+){_EXT}$", re.I),
}
_EGORNN_PATTERNS = {**_PROCESSED_PATTERNS, "rgb": re.compile(rf"^image_(\d+){_EXT}$", re.I)}



def _scan_processed(root: Path) -> Scan:
    trees = {modality: root / name for modality, name in PROCESSED_TREES.items()}
    scan = _scan_trees(trees, _PROCESSED_PATTERNS)
    # processed_frames holds the instance folder itself; its rgb/ and mmaps/ sub-folders hold the frames.
    for cand in scan.candidates:
        inst_dir = cand.folders["rgb"]
        cand.folders["rgb"] = _existing(inst_dir / "rgb") if inst_dir else None
        cand.folders["mmaps"] = _existing(inst_dir / "mmaps") if inst_dir else None
        if inst_dir:
            scan.problems += _unknown_entries(inst_dir, allowed={"rgb", "mmaps", PREPARE_SETTINGS})
    return scan


def _scan_egornn(root: Path) -> Scan:
    trees = {kind: root / name for kind, name in EGORNN_TREES.items()}
    return _scan_trees(trees, _EGORNN_PATTERNS)


def _scan_trees(trees: dict[str, Path], patterns: dict[str, re.Pattern[str]]) -> Scan:
    """Walk ``<tree>/<subject>/<class>/<instance>`` for each modality tree and join the instances."""
    scan = Scan(candidates=[], class_names=set(), patterns=patterns)
    found: dict[tuple[str, str, str], Candidate] = {}
    for modality, tree in trees.items():
        if not tree.is_dir():
            continue
        for subject_dir in _subdirs(tree, scan.problems):
            for class_dir in _subdirs(subject_dir, scan.problems):
                scan.class_names.add(class_dir.name)
                inst_dirs = _subdirs(class_dir, scan.problems)
                if not inst_dirs:
                    scan.problems.append(Problem(str(class_dir), "empty class folder"))
                for inst_dir in inst_dirs:
                    key = (subject_dir.name, class_dir.name, inst_dir.name)
                    if key not in found:
                        found[key] = Candidate(*key[:2], "/".join(key), dict.fromkeys(FILE_KINDS))
                    found[key].folders[modality] = inst_dir
    scan.candidates = [found[key] for key in sorted(found)]
    return scan


def _subdirs(folder: Path, problems: list[Problem]) -> list[Path]:
    """Sub-folders of ``folder``; files there are unknown (hidden entries are skipped, as the reference does)."""
    dirs = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            dirs.append(entry)
        else:
            problems.append(Problem(str(entry), "unknown file (ignored)"))
    return dirs


def _unknown_entries(folder: Path, allowed: set[str]) -> list[Problem]:
    return [
        Problem(str(e), "unknown file (ignored)")
        for e in sorted(folder.iterdir())
        if not e.name.startswith(".") and e.name not in allowed
    ]


def _existing(folder: Path) -> Path | None:
    return folder if folder.is_dir() else None


def _is_processed(root: Path) -> bool:
    return (root / PROCESSED_TREES["rgb"]).is_dir() or (root / PROCESSED_TREES["flow_x"]).is_dir()


def _is_egornn(root: Path) -> bool:
    return any((root / name).is_dir() for name in EGORNN_TREES.values())


register_layout(PROCESSED_LAYOUT, _is_processed, _scan_processed, looks_like=f"{PROCESSED_TREES['rgb']}/")
register_layout(EGORNN_LAYOUT, _is_egornn, _scan_egornn,
                looks_like=f"{EGORNN_TREES['rgb']}/ or {EGORNN_TREES['flow_x']}/")

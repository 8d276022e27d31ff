"""The layout registry (``name -> detect, scan``) and the rules every layout shares.

A layout is one module that calls :func:`register_layout` with a ``detect(root) -> bool`` and a
``scan(root) -> Scan`` that only *finds folders*; listing frame files, detecting numbering gaps and
deciding which instances are usable is done here (:func:`load_index`), so every layout obeys the
same rules. Unusable instances are kept out of ``instances`` (the reference skips them too) but
listed in ``skipped``, with the reason in ``problems``. ``auto`` takes the first layout, in
registration order, whose ``detect`` answers yes (docs/data.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fpar.data.labels import attach_labels
from fpar.data.layouts.index import (DEFAULT_MIN_FRAMES, FILE_KINDS, ROW_SKIPPED, UNFINISHED_MARKER, Candidate,
                                     DatasetIndex, Instance, Problem, Scan, VideoRange)
from fpar.errors import FparError, NotADatasetError

log = logging.getLogger("fpar.data.layouts")


@dataclass(frozen=True)
class Layout:
    """One dataset layout: its name, whether a root holds it, and how its folders are found."""

    name: str
    detect: Callable[[Path], bool]
    scan: Callable[[Path], Scan]
    # what a root of this layout holds, for the line that says a root holds no known layout
    looks_like: str


_LAYOUTS: dict[str, Layout] = {}


def register_layout(name: str, detect: Callable[[Path], bool], scan: Callable[[Path], Scan], *,
                    looks_like: str) -> Layout:
    """Add a layout (``data.layout``, ``--layout``); a name taken by another layout is an error."""
    if not name or name == "auto" or name in _LAYOUTS:
        raise FparError(f"layout name {name!r} is {'taken' if name in _LAYOUTS else 'reserved'}")
    _LAYOUTS[name] = Layout(name, detect, scan, looks_like)
    return _LAYOUTS[name]


def layout_names() -> tuple[str, ...]:
    """The registered layouts, in registration (detection) order."""
    return tuple(_LAYOUTS)


def detect_layout(root: Path) -> str:
    """Name the layout of ``root`` from the folders (or file) it holds."""
    root = Path(root)
    for layout in _LAYOUTS.values():
        if layout.detect(root):
            return layout.name
    kinds = [layout.looks_like for layout in _LAYOUTS.values()]
    expected = ", or ".join(filter(None, (", ".join(kinds[:-1]), kinds[-1])))
    raise NotADatasetError(f"{root}: not a dataset (expected {expected})")


def load_index(root: str | Path, layout: str = "auto", *, min_frames: int = DEFAULT_MIN_FRAMES) -> DatasetIndex:
    """Read the dataset at ``root`` into a :class:`DatasetIndex`.

    ``layout`` is ``"auto"`` or a registered layout (:func:`layout_names`). Instances with fewer than
    ``min_frames`` frames (default: the flow stack, 5) are skipped, as the reference does.
    Raises :class:`NotADatasetError` when ``root`` holds no known layout.
    """
    root = Path(root)
    if not root.exists():
        raise NotADatasetError(f"{root}: no such file or directory")
    if (root / UNFINISHED_MARKER).is_file():
        raise FparError(f"{root}: a dataset whose writing was interrupted (it holds {UNFINISHED_MARKER}); "
                        "run the command that wrote it again to finish it")
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in _LAYOUTS:
        raise FparError(f"{root}: unknown layout {layout!r} (choose auto, {', '.join(_LAYOUTS)})")
    scan = _LAYOUTS[layout].scan(root)
    if not scan.candidates and not scan.class_names:
        raise NotADatasetError(f"{root}: no instances found for the {layout} layout")
    index = attach_labels(_build_index(root, layout, scan, min_frames))
    if index.skipped:
        log.warning("%s: skipped %d unusable instances (run `fpar data check %s`)", root, len(index.skipped), root)
    bad_rows = [p for p in index.problems if p.reason.endswith(ROW_SKIPPED)]
    if bad_rows:
        log.warning("%s: skipped %d manifest rows that cannot be used, the first: %s: %s", root, len(bad_rows),
                    bad_rows[0].path, bad_rows[0].reason)
    return index


# --- shared rules ----------------------------------------------------------------------------


def _build_index(root: Path, layout: str, scan: Scan, min_frames: int) -> DatasetIndex:
    classes = sorted(scan.class_names)
    class_ids = {name: i for i, name in enumerate(classes)}
    present = {m for c in scan.candidates for m in FILE_KINDS if c.folders[m] is not None}
    index = DatasetIndex(root=root, layout=layout, instances=[], classes=classes, problems=list(scan.problems))
    for cand in scan.candidates:
        frames: dict[str, Sequence[Path]] = {}
        reasons: list[Problem] = []
        for modality in FILE_KINDS:
            folder = cand.folders[modality]
            if folder is None:
                if modality in present:
                    reasons.append(Problem(_instance_path(cand), f"missing {modality} folder"))
                continue
            if cand.ranges is not None:  # in place: computed from the row, nothing to list
                frames[modality] = cand.ranges[modality]
                continue
            frames[modality], found = list_frames(folder, scan.patterns[modality])
            reasons += found
        reasons += _count_problems(cand, frames, min_frames)
        instance = Instance(cand.subject, cand.class_name, class_ids[cand.class_name], cand.instance_id, **frames,
                            flow_bound=cand.flow_bound, flow_stride=cand.flow_stride)
        index.problems += reasons
        (index.skipped if _blocking(reasons) else index.instances).append(instance)
    return index


def list_frames(folder: Path, pattern: re.Pattern[str]) -> tuple[tuple[Path, ...], list[Problem]]:
    """Frame files of ``folder`` sorted by number, and the problems found (unknown files, gaps)."""
    if not folder.is_dir():
        return (), [Problem(str(folder), "missing folder")]
    numbered: dict[int, list[Path]] = {}
    problems: list[Problem] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        match = pattern.match(entry.name)
        if match and entry.is_file():
            numbered.setdefault(int(match.group(1)), []).append(entry)
        else:
            problems.append(Problem(str(entry), "unknown file (ignored)"))
    for number, paths in numbered.items():
        if len(paths) > 1:
            problems.append(Problem(str(paths[0]), f"duplicate frame number {number}"))
    problems += _gap_problems(folder, sorted(numbered))
    return tuple(numbered[k][0] for k in sorted(numbered)), problems


def _gap_problems(folder: Path, numbers: list[int]) -> list[Problem]:
    # Frame k must be the k-th file: a hole would silently shift every later frame.
    if not numbers:
        return []
    first = 0 if numbers[0] == 0 else 1
    missing = sorted(set(range(first, numbers[-1] + 1)) - set(numbers))
    if not missing:
        return []
    shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
    return [Problem(str(folder), f"numbering gap: frame {shown} missing")]


def _count_problems(cand: Candidate, frames: dict[str, tuple[Path, ...]], min_frames: int) -> list[Problem]:
    counts = {m: len(p) for m, p in frames.items()}
    reasons = []
    for a, b in (("rgb", "mmaps"), ("flow_x", "flow_y")):
        if a in counts and b in counts and counts[a] != counts[b]:
            reasons.append(f"{a}/{b} count mismatch ({counts[a]} vs {counts[b]})")
    n = counts.get("rgb", counts.get("flow_x", 0))
    if n < min_frames:
        reasons.append(f"fewer frames than the flow stack ({n} < {min_frames})")
    elif cand.flow_stride > 1 and "flow_x" in counts and counts["flow_x"] < min_frames:
        reasons.append(f"fewer flow frames than the flow stack ({counts['flow_x']} < {min_frames}; "
                       f"one flow frame per {cand.flow_stride} RGB frames)")
    return [Problem(_instance_path(cand), reason) for reason in reasons]


def _blocking(problems: list[Problem]) -> bool:
    # An ignored stray file leaves the instance usable; anything else does not.
    return any(not p.reason.startswith("unknown file") for p in problems)


def _instance_path(cand: Candidate) -> str:
    if cand.ranges is not None:  # a segment of a shared folder or video: the segment, not the folder
        frames = next(iter(cand.ranges.values()))
        where = frames.video if isinstance(frames, VideoRange) else frames.folder
        return f"{where} frames {frames.first}-{frames.first + len(frames) - 1} ({cand.instance_id})"
    folder = next((f for f in cand.folders.values() if f is not None), None)
    return str(folder.parent if folder is not None and folder.name in ("rgb", "mmaps") else folder)

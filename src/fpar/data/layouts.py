"""Dataset layouts on disk -> one in-memory :class:`DatasetIndex` (docs/method.md §2).

Three layouts are understood:

* ``processed`` -- the reference's ``processed_frames/<S>/<class>/<inst>/rgb|mmaps`` plus
  ``flow_x_processed`` / ``flow_y_processed`` trees (docs/method.md §2).
* ``egornn`` -- Ego-RNN's ``frames|flow_x|flow_y/<S>/<class>/<inst>/`` under one split folder.
* ``manifest`` -- a CSV or JSONL file with one row per instance (for any other dataset). A row
  names whole frame folders, or, in place (docs/data.md, "In place and video sources"), a frame
  range of a per-video frame folder or of a video file that many rows share: such a row is never
  listed, its frames are :class:`FrameRange` / :class:`VideoRange` sequences computed from the
  range, so indexing costs one row of text and checks of folders it shares with other rows.

Each reader only *finds folders*; listing frame files, detecting numbering gaps and deciding
which instances are usable is shared (:func:`_build_index`), so every layout obeys the same rules.
Unusable instances are kept out of ``instances`` (the reference skips them too) but listed in
``skipped``, with the reason in ``problems``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath

from fpar.data.labels import attach_labels
from fpar.errors import FparError, NotADatasetError

log = logging.getLogger(__name__)

# the frame files an instance folder holds (the dataset's modalities read from them)
FILE_KINDS = ("rgb", "mmaps", "flow_x", "flow_y")
# the file kinds each modality (``fpar.data.settings.MODALITIES``) is read from
FILE_KINDS_OF_MODALITY = {"frames": ("rgb",), "flow": ("flow_x", "flow_y"), "mmaps": ("mmaps",)}
LAYOUTS = ("processed", "egornn", "manifest")
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
PREPARE_SETTINGS = "prepare.json"  # in a processed instance folder: the settings it was prepared with
DATASET_SETTINGS = ("flow", "bound", "size", "warp", "max_frames")  # recorded settings all instances should share
PROCESSED_TREES = {"rgb": "processed_frames", "flow_x": "flow_x_processed", "flow_y": "flow_y_processed"}
# Written by a generator (``fpar synth``) before its first file and removed after its last: a root
# holding it is a dataset a killed or failed run left half written (docs/reliability.md)
UNFINISHED_MARKER = ".fpar-unfinished.json"
DEFAULT_MIN_FRAMES = 5  # the flow stack size L: the reference skips shorter instances
# The keys of a manifest's header lines (``# root: PATH``), and the in-place columns of its rows
MANIFEST_HEADER_KEYS = ("root",)
ROW_SKIPPED = "row skipped"  # ends the problem of a manifest row that could not be used
RANGE_COLUMNS = ("start_frame", "stop_frame", "frame_pattern", "flow_pattern", "flow_stride", "flow_bound")

_EXT = r"\.(?:png|jpe?g)"
# Frame names end in digits: a stray duplicate such as ``flow_x_00007(1).png`` never matches.
_PROCESSED_PATTERNS = {
    "rgb": re.compile(rf"^rgb(\d+){_EXT}$", re.I),
    "mmaps": re.compile(rf"^map(\d+){_EXT}$", re.I),
    "flow_x": re.compile(rf"^flow_x_(\d+){_EXT}$", re.I),
    "flow_y": re.compile(rf"^flow_y_(\d+){_EXT}$", re.I),
}
_EGORNN_PATTERNS = {**_PROCESSED_PATTERNS, "rgb": re.compile(rf"^image_(\d+){_EXT}$", re.I)}
_ANY_PATTERN = re.compile(rf"^\D*(\d+){_EXT}$", re.I)  # manifest folders: a non-digit prefix, then digits
_MANIFEST_PATTERNS = {m: _ANY_PATTERN for m in FILE_KINDS}


@dataclass(frozen=True)
class Problem:
    """Something wrong with the files of a dataset: where, and why (one line)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Instance:
    """One labelled video segment. Frame ``k`` (1-based) of a modality is ``paths[k - 1]``."""

    subject: str
    class_name: str
    class_id: int
    instance_id: str
    rgb: tuple[Path, ...] = ()
    mmaps: tuple[Path, ...] = ()
    flow_x: tuple[Path, ...] = ()
    flow_y: tuple[Path, ...] = ()
    # the verb and noun class names, where the dataset gives them (fpar.data.labels)
    verb: str | None = None
    noun: str | None = None
    # the bound (px) the flow images were quantised with, when the dataset says (manifest ``flow_bound``)
    flow_bound: float | None = None
    # RGB frames per flow frame (manifest ``flow_stride``; EPIC-KITCHENS: 2)
    flow_stride: int = 1

    @property
    def n_frames(self) -> int:
        """Frames in the instance: the RGB count, or the flow count for a flow-only dataset."""
        return len(self.rgb) if self.rgb else len(self.flow_x)

    def frames(self, modality: str) -> tuple[Path, ...]:
        return getattr(self, modality)

    def rgb_numbers_of_flow(self, numbers: list[int]) -> list[int]:
        """The instance's RGB frame numbers (1-based) at which its flow frames ``numbers`` start:
        the same numbers unless the flow has its own rate (``flow_stride`` k: flow frame F of the
        video stands for RGB frames k(F-1)+1 .. kF)."""
        if self.flow_stride == 1:
            return list(numbers)
        flow_first, rgb_first = getattr(self.flow_x, "first", 1), getattr(self.rgb, "first", 1)
        last = len(self.rgb)
        return [min(max(self.flow_stride * (flow_first + n - 2) + 1 - rgb_first + 1, 1), last) for n in numbers]


@dataclass(frozen=True, slots=True)
class FrameRange(Sequence):
    """Frames ``first`` .. ``first + length - 1`` of a frame folder, named by a printf ``pattern``
    (``frame_%010d.jpg``): a tuple of paths that is never listed nor stored. Item ``k`` is the
    path of frame ``first + k``."""

    folder: Path
    pattern: str
    first: int
    length: int

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, item):
        if isinstance(item, slice):
            return tuple(self[k] for k in range(*item.indices(self.length)))
        k = item + self.length if item < 0 else item
        if not 0 <= k < self.length:
            raise IndexError(item)
        return self.folder / (self.pattern % (self.first + k))

    @property
    def numbers(self) -> range:
        """The frame numbers (as in the file names) this range holds."""
        return range(self.first, self.first + self.length)


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """Frame ``number`` (the first decoded frame is 1) of the video file ``video``."""

    video: Path
    number: int

    def __str__(self) -> str:
        return f"{self.video} frame {self.number}"

    @property
    def name(self) -> str:
        return f"{self.video.name}#{self.number}"


@dataclass(frozen=True, slots=True)
class VideoRange(Sequence):
    """Frames ``first`` .. ``first + length - 1`` of a video file (the first decoded frame is 1):
    read by seeking to them (:mod:`fpar.data.videos`), nothing extracted."""

    video: Path
    first: int
    length: int

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, item):
        if isinstance(item, slice):
            return tuple(self[k] for k in range(*item.indices(self.length)))
        k = item + self.length if item < 0 else item
        if not 0 <= k < self.length:
            raise IndexError(item)
        return VideoFrame(self.video, self.first + k)

    @property
    def numbers(self) -> range:
        return range(self.first, self.first + self.length)


@dataclass
class DatasetIndex:
    """Every instance of a dataset, with class ids from the sorted union of class names."""

    root: Path
    layout: str
    instances: list[Instance]
    classes: list[str]
    skipped: list[Instance] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # label kind (verb, noun) -> its class names, position = class id (fpar.data.labels)
    label_classes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        return sorted({inst.subject for inst in self.instances + self.skipped})


@dataclass
class _Candidate:
    """An instance as a layout reader finds it: folders only, nothing listed yet."""

    subject: str
    class_name: str
    instance_id: str
    folders: dict[str, Path | None]
    # in-place rows: the frames of each kind, already computed from the row's range (nothing to list)
    ranges: dict[str, Sequence] | None = None
    flow_bound: float | None = None
    flow_stride: int = 1


@dataclass
class _Scan:
    """What a layout reader hands to :func:`_build_index`."""

    candidates: list[_Candidate]
    class_names: set[str]
    patterns: dict[str, re.Pattern[str]]
    problems: list[Problem] = field(default_factory=list)


def load_index(root: str | Path, layout: str = "auto", *, min_frames: int = DEFAULT_MIN_FRAMES) -> DatasetIndex:
    """Read the dataset at ``root`` into a :class:`DatasetIndex`.

    ``layout`` is ``"auto"`` or one of :data:`LAYOUTS`. Instances with fewer than
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
    readers = {"processed": _scan_processed, "egornn": _scan_egornn, "manifest": _scan_manifest}
    if layout not in readers:
        raise FparError(f"{root}: unknown layout {layout!r} (choose auto, {', '.join(LAYOUTS)})")
    scan = readers[layout](root)
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


def detect_layout(root: Path) -> str:
    """Name the layout of ``root`` from the folders (or file) it holds."""
    if root.is_file() and root.suffix.lower() in (".csv", ".jsonl"):
        return "manifest"
    if (root / "processed_frames").is_dir() or (root / "flow_x_processed").is_dir():
        return "processed"
    if any((root / name).is_dir() for name in ("frames", "flow_x", "flow_y")):
        return "egornn"
    if any((root / name).is_file() for name in MANIFEST_NAMES):
        return "manifest"
    raise NotADatasetError(
        f"{root}: not a dataset (expected processed_frames/, frames/ or flow_x/, or a manifest.csv/.jsonl)"
    )


# --- layout readers ------------------------------------------------------------------------


def _scan_processed(root: Path) -> _Scan:
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


def _scan_egornn(root: Path) -> _Scan:
    trees = {"rgb": root / "frames", "flow_x": root / "flow_x", "flow_y": root / "flow_y"}
    return _scan_trees(trees, _EGORNN_PATTERNS)


def _scan_trees(trees: dict[str, Path], patterns: dict[str, re.Pattern[str]]) -> _Scan:
    """Walk ``<tree>/<subject>/<class>/<instance>`` for each modality tree and join the instances."""
    scan = _Scan(candidates=[], class_names=set(), patterns=patterns)
    found: dict[tuple[str, str, str], _Candidate] = {}
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
                        found[key] = _Candidate(*key[:2], "/".join(key), dict.fromkeys(FILE_KINDS))
                    found[key].folders[modality] = inst_dir
    scan.candidates = [found[key] for key in sorted(found)]
    return scan


def _scan_manifest(root: Path) -> _Scan:
    path = root if root.is_file() else next((root / n for n in MANIFEST_NAMES if (root / n).is_file()), None)
    if path is None:
        raise NotADatasetError(f"{root}: no {' or '.join(MANIFEST_NAMES)} found")
    header, columns, rows = _read_manifest_rows(path)
    reader = _ManifestRows(path, _data_root(path, header))
    required = ("id", "subject", "label")
    if columns is not None:  # a CSV: a column the header lacks is the whole file's mistake
        lacking = [key for key in required if key not in columns]
        if not ("frames" in columns or "video" in columns):
            lacking.append("frames")
        if lacking:  # named at the first row, as a row lacking them would be
            raise FparError(f"{path}:{len(header) + 2}: missing {', '.join(lacking)}")
    scan = _Scan(candidates=[], class_names=set(), patterns=_MANIFEST_PATTERNS)
    seen: set[str] = set()
    for line, row in rows:
        where = f"{path}:{line}"
        missing = [key for key in required if not row.get(key)]
        if not (row.get("frames") or row.get("video")):
            missing.append("frames (or video)")
        if missing:
            scan.problems.append(Problem(where, f"missing {', '.join(missing)}; {ROW_SKIPPED}"))
            continue
        if row["id"] in seen:
            scan.problems.append(Problem(where, f"duplicate instance id {row['id']!r}"))
            continue
        try:
            candidate = reader.candidate(row)
        except _BadRow as exc:
            scan.problems.append(Problem(where, f"{exc} (id {row['id']!r}); {ROW_SKIPPED}"))
            continue
        seen.add(row["id"])
        scan.class_names.add(row["label"])
        scan.candidates.append(candidate)
    return scan


class _BadRow(Exception):
    """A manifest row that cannot be used: the reason, reported with the row's line."""


def _read_manifest_rows(path: Path) -> tuple[dict[str, str], list[str] | None, list[tuple[int, dict[str, str]]]]:
    """The header lines (``# key: value`` before the rows), the CSV's columns (None for JSONL) and
    the rows of a CSV (header line) or JSONL manifest, with their line numbers."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise FparError(f"{path}: unreadable manifest ({exc})") from None
    lines = text.splitlines()
    header: dict[str, str] = {}
    skip = 0
    for line in lines:
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        if key.strip() not in MANIFEST_HEADER_KEYS:
            raise FparError(f"{path}:{skip + 1}: unknown header line {line[:80]!r} "
                            f"(known: {', '.join(f'# {k}: ...' for k in MANIFEST_HEADER_KEYS)})")
        header[key.strip()] = value.strip()
        skip += 1
    try:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(lines[skip:])
            rows = [(skip + reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
                    for row in reader]
            return header, list(reader.fieldnames or ()), rows
        return header, None, [
            (n, {k: str(v) for k, v in json.loads(line).items() if v is not None})
            for n, line in enumerate(lines, 1)
            if n > skip and line.strip()
        ]
    except (json.JSONDecodeError, AttributeError, csv.Error) as exc:
        raise FparError(f"{path}: unreadable manifest ({exc})") from None


def _data_root(manifest: Path, header: dict[str, str]) -> Path:
    """The folder every path of the manifest must lie in: its ``# root:`` line (relative to the
    manifest's folder), else the manifest's own folder."""
    value = header.get("root")
    root = manifest.parent if not value else Path(value) if Path(value).is_absolute() else manifest.parent / value
    if not root.is_dir():
        raise NotADatasetError(f"{manifest}: its data root {root} is not a folder")
    return root


class _ManifestRows:
    """Turns manifest rows into candidates. Paths are checked to lie inside the data root, and the
    facts rows share (a folder exists, its frame names) are looked up once per folder, so an
    index of many segments of few videos costs what its rows and folders cost, never its frames."""

    def __init__(self, manifest: Path, root: Path) -> None:
        self.manifest = manifest
        self.root = root
        self._root_text = os.path.normpath(os.path.abspath(root))
        self._paths: dict[str, Path] = {}
        self._exists: dict[Path, bool] = {}
        self._patterns: dict[Path, str | None] = {}
        self._given: dict[str, bool] = {}
        self._lengths: dict[Path, int] = {}

    def candidate(self, row: dict[str, str]) -> _Candidate:
        ranged = any(row.get(key) for key in ("start_frame", "stop_frame")) or bool(row.get("video"))
        if not ranged:
            # whole folders, relative to the manifest's folder or the data root: listed as before
            folders = {m: self.path(row.get("frames" if m == "rgb" else m)) for m in FILE_KINDS}
            return _Candidate(row["subject"], row["label"], row["id"], folders,
                              flow_bound=self.bound(row), flow_stride=self.stride(row))
        return self.ranged(row)

    def ranged(self, row: dict[str, str]) -> _Candidate:
        if row.get("video") and row.get("frames"):
            raise _BadRow("names both a video and a frames folder")
        start, stop = self.frame_number(row, "start_frame"), self.frame_number(row, "stop_frame")
        stride, bound = self.stride(row), self.bound(row)
        folders: dict[str, Path | None] = dict.fromkeys(FILE_KINDS)
        ranges: dict[str, Sequence] = {}
        if row.get("video"):
            video = self.path(row["video"])
            if not self.exists(video, file=True):
                raise _BadRow(f"no such video {video}")
            if start is not None and start < 1:
                raise _BadRow(f"start_frame {start}: a video's first frame is 1")
            first = 1 if start is None else start
            if stop is None and video not in self._lengths:  # the whole video: its length, once per video
                self._lengths[video] = _video_frame_count(video)
            last = stop if stop is not None else self._lengths[video]
            if last < first:
                raise _BadRow(f"stop_frame {last} before start_frame {first}")
            ranges["rgb"] = VideoRange(video, first, last - first + 1)
            folders["rgb"] = video
        else:
            if start is None or stop is None:
                raise _BadRow("a frame range needs both start_frame and stop_frame")
            if stop < start:
                raise _BadRow(f"stop_frame {stop} before start_frame {start}")
            frames = self.folder(row["frames"])
            ranges["rgb"] = FrameRange(frames, self.pattern(frames, row.get("frame_pattern")), start, stop - start + 1)
            folders["rgb"] = frames
            if row.get("mmaps"):
                maps = self.folder(row["mmaps"])
                ranges["mmaps"] = FrameRange(maps, self.pattern(maps, None), start, stop - start + 1)
                folders["mmaps"] = maps
        if bool(row.get("flow_x")) != bool(row.get("flow_y")):
            raise _BadRow("names one flow folder of flow_x and flow_y")
        if row.get("flow_x"):
            if start is None or stop is None:
                raise _BadRow("flow folders need the row's start_frame and stop_frame")
            first, last = flow_range(start, stop, stride)
            for kind in ("flow_x", "flow_y"):
                folder = self.folder(row[kind])
                ranges[kind] = FrameRange(folder, self.pattern(folder, row.get("flow_pattern")), first,
                                          max(last - first + 1, 0))
                folders[kind] = folder
        return _Candidate(row["subject"], row["label"], row["id"], folders, ranges, bound, stride)

    def path(self, value: str | None) -> Path | None:
        """``value`` (relative to the data root, or absolute inside it) as a path; :class:`_BadRow`
        if it leaves the root. The check is on the name (``..``, an absolute path elsewhere), not
        through symbolic links: links inside the root are its owner's choice, a manifest's text is not."""
        if not value:
            return None
        known = self._paths.get(value)
        if known is not None:
            return known
        joined = os.path.normpath(os.path.join(self._root_text, value))
        if joined != self._root_text and not joined.startswith(self._root_text.rstrip(os.sep) + os.sep):
            raise _BadRow(f"{value!r} is outside the data root {self.root}")
        path = self.root / os.path.relpath(joined, self._root_text) if not PurePath(value).is_absolute() \
            else Path(joined)
        self._paths[value] = path
        return path

    def folder(self, value: str) -> Path:
        folder = self.path(value)
        if not self.exists(folder, file=False):
            raise _BadRow(f"no such folder {folder}")
        return folder

    def exists(self, path: Path, file: bool) -> bool:
        known = self._exists.get(path)
        if known is None:
            known = self._exists[path] = path.is_file() if file else path.is_dir()
        return known

    def pattern(self, folder: Path, given: str | None) -> str:
        """The printf pattern of the folder's frame names: the row's, else guessed once per folder
        from the first frame file found (its digits' width: ``frame_0000000001.jpg`` ->
        ``frame_%010d.jpg``)."""
        if given:
            if given not in self._given:  # checked once per pattern, not once per row
                self._given[given] = pattern_regex(given) is not None and os.sep not in given and "/" not in given
            if not self._given[given]:
                raise _BadRow(f"frame pattern {given!r} is not a file name with one %d or %0Nd "
                              "(such as frame_%010d.jpg)")
            return given
        if folder not in self._patterns:
            self._patterns[folder] = _guess_pattern(folder)
        if self._patterns[folder] is None:
            raise _BadRow(f"no frame files in {folder}")
        return self._patterns[folder]

    @staticmethod
    def frame_number(row: dict[str, str], key: str) -> int | None:
        text = row.get(key, "")
        if not text:
            return None
        try:
            number = int(text)
        except ValueError:
            raise _BadRow(f"{key} {text!r} is not a whole number") from None
        if number < 0:
            raise _BadRow(f"{key} {number} is negative")
        return number

    @staticmethod
    def stride(row: dict[str, str]) -> int:
        text = row.get("flow_stride", "")
        if not text:
            return 1
        if not text.isdigit() or int(text) < 1:
            raise _BadRow(f"flow_stride {text!r} is not a whole number of RGB frames per flow frame (>= 1)")
        return int(text)

    @staticmethod
    def bound(row: dict[str, str]) -> float | None:
        text = row.get("flow_bound", "")
        if not text:
            return None
        try:
            bound = float(text)
        except ValueError:
            bound = math.nan
        if not math.isfinite(bound) or not 0 < bound <= 1000:
            raise _BadRow(f"flow_bound {text!r} is not a number of pixels")
        return bound


def flow_range(start: int, stop: int, stride: int) -> tuple[int, int]:
    """The flow frames of RGB frames ``start``..``stop`` when flow frame F stands for RGB frames
    ``stride*(F-1)+1 .. stride*F`` (EPIC-KITCHENS: stride 2, flow frame F from RGB frames 2F-1, 2F):
    the flow frames lying wholly inside the segment, ``ceil((start-1)/stride)+1 .. floor(stop/stride)``.
    (An empty range, last < first, leaves the instance too short.)"""
    return -(-(start - 1) // stride) + 1, stop // stride


_PRINTF = re.compile(r"((?:[^%]|%%)*)%(0?\d*)d((?:[^%]|%%)*)")


def pattern_regex(pattern: str) -> re.Pattern[str] | None:
    """A regular expression matching the file names of a printf frame ``pattern``
    (``frame_%010d.jpg``), the number as its group; None if ``pattern`` is not one such pattern."""
    parts = _PRINTF.fullmatch(pattern)
    if parts is None:
        return None
    prefix, width, suffix = parts.groups()
    digits = rf"\d{{{int(width)},}}" if width.startswith("0") and len(width) > 1 else r"\d+"
    return re.compile(re.escape(prefix.replace("%%", "%")) + f"({digits})" + re.escape(suffix.replace("%%", "%")))


_NUMBERED = re.compile(rf"^(\D*)(\d+)({_EXT})$", re.I)


def _guess_pattern(folder: Path) -> str | None:
    # The first matching entry of the listing: os.scandir reads a folder in small batches, so this
    # costs one batch, not a listing of a video's 100,000 frames.
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _NUMBERED.match(entry.name)
            if match and not entry.name.startswith("."):
                prefix, digits, suffix = match.groups()
                width = f"0{len(digits)}" if digits.startswith("0") and len(digits) > 1 else ""
                return f"{prefix.replace('%', '%%')}%{width}d{suffix.replace('%', '%%')}"
    return None


def _video_frame_count(video: Path) -> int:
    from fpar.data.videos import frame_count  # decoding libraries load only for video rows

    try:
        return frame_count(video)
    except FparError as exc:
        raise _BadRow(str(exc)) from None


# --- shared rules ----------------------------------------------------------------------------


def _build_index(root: Path, layout: str, scan: _Scan, min_frames: int) -> DatasetIndex:
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


def _count_problems(cand: _Candidate, frames: dict[str, tuple[Path, ...]], min_frames: int) -> list[Problem]:
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


def _instance_path(cand: _Candidate) -> str:
    if cand.ranges is not None:  # a segment of a shared folder or video: the segment, not the folder
        frames = next(iter(cand.ranges.values()))
        where = frames.video if isinstance(frames, VideoRange) else frames.folder
        return f"{where} frames {frames.first}-{frames.first + len(frames) - 1} ({cand.instance_id})"
    folder = next((f for f in cand.folders.values() if f is not None), None)
    return str(folder.parent if folder is not None and folder.name in ("rgb", "mmaps") else folder)


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


def with_class_ids(instances: list[Instance], classes: list[str]) -> list[Instance]:
    """Renumber ``instances`` against another class list (e.g. a checkpoint's)."""
    ids = {name: i for i, name in enumerate(classes)}
    missing = sorted({inst.class_name for inst in instances} - ids.keys())
    if missing:
        raise FparError(f"classes not in the model's class list: {', '.join(missing)}")
    return [replace(inst, class_id=ids[inst.class_name]) for inst in instances]

"""The ``manifest`` layout: a CSV or JSONL file with one row per instance (for any other dataset).

A row names whole frame folders, or, in place (docs/data.md, "In place and video sources"), a frame
range of a per-video frame folder or of a video file that many rows share: such a row is never
listed, its frames are :class:`~fpar.data.layouts.index.FrameRange` /
:class:`~fpar.data.layouts.index.VideoRange` sequences computed from the range, so indexing costs
one row of text and checks of folders it shares with other rows.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePath

from fpar.data.frames import FLOW_BOUND_RANGE
from fpar.data.layouts.index import (FILE_KINDS, FRAME_EXTENSIONS as _EXT, ROW_SKIPPED, Candidate, FrameRange,
                                     Problem, Scan, VideoRange)
from fpar.data.layouts.registry import register_layout
from fpar.errors import FparError, NotADatasetError

MANIFEST_LAYOUT = "manifest"
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
MANIFEST_SUFFIXES = (".csv", ".jsonl")  # a manifest given as a file
# The keys of a manifest's header lines (``# root: PATH``), and the in-place columns of its rows
MANIFEST_HEADER_KEYS = ("root",)
RANGE_COLUMNS = ("start_frame", "stop_frame", "frame_pattern", "flow_pattern", "flow_stride", "flow_bound")
_ANY_PATTERN = re.compile(rf"^\D*(\d+){_EXT}$", re.I)  # manifest folders: a non-digit prefix, then digits
_MANIFEST_PATTERNS = {m: _ANY_PATTERN for m in FILE_KINDS}


def _scan_manifest(root: Path) -> Scan:
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
    scan = Scan(candidates=[], class_names=set(), patterns=_MANIFEST_PATTERNS)
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

    def candidate(self, row: dict[str, str]) -> Candidate:
        ranged = any(row.get(key) for key in ("start_frame", "stop_frame")) or bool(row.get("video"))
        if not ranged:
            # whole folders, relative to the manifest's folder or the data root: listed as before
            folders = {m: self.path(row.get("frames" if m == "rgb" else m)) for m in FILE_KINDS}
            return Candidate(row["subject"], row["label"], row["id"], folders,
                              flow_bound=self.bound(row), flow_stride=self.stride(row))
        return self.ranged(row)

    def ranged(self, row: dict[str, str]) -> Candidate:
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
        return Candidate(row["subject"], row["label"], row["id"], folders, ranges, bound, stride)

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
        if not math.isfinite(bound) or not FLOW_BOUND_RANGE[0] <= bound <= FLOW_BOUND_RANGE[1]:
            raise _BadRow(f"flow_bound {text!r} is not a number of pixels from {FLOW_BOUND_RANGE[0]:g} to "
                          f"{FLOW_BOUND_RANGE[1]:g}")
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


def _is_manifest(root: Path) -> bool:
    if root.is_file():
        return root.suffix.lower() in MANIFEST_SUFFIXES
    return any((root / name).is_file() for name in MANIFEST_NAMES)


register_layout(MANIFEST_LAYOUT, _is_manifest, _scan_manifest, looks_like="a manifest.csv/.jsonl")

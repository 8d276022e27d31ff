"""``fpar data check``: is a dataset usable, and if not, what exactly is wrong with it.

The structural problems (unknown files, numbering gaps, count mismatches, short instances, empty
class folders) come from :func:`fpar.data.layouts.load_index`; this module adds the file-level
ones by reading every frame: zero-byte, truncated and undecodable images. For the processed layout
it also reports a missing modality tree (no ``flow_x_processed`` at all) and instances prepared
with other settings than the rest (their ``prepare.json`` records).

Instances read in place (frame ranges of shared folders, or of videos) are checked per folder and
per video, not per segment: each folder is listed once and every segment's range is checked
against the listing (a frame shared by a hundred segments is looked at once); ``deep=True`` then
decodes each frame some segment uses, once, and each video from start to end.
"""

from __future__ import annotations

import bisect
import json
import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from fpar.errors import FparError
from fpar.progress import bar as progress_bar
from fpar.data.frames import check_pixels, decode, image_problem, image_size
from fpar.data.layouts import (
    DATASET_SETTINGS,
    FILE_KINDS,
    PREPARE_SETTINGS,
    PROCESSED_LAYOUT,
    PROCESSED_TREES,
    DatasetIndex,
    FrameRange,
    Instance,
    Problem,
    VideoRange,
    load_index,
    pattern_regex,
)


@dataclass
class CheckReport:
    """Counts and problems of one dataset; ``ok`` when nothing at all was found wrong."""

    root: str
    layout: str
    instances: int
    skipped: int
    classes: list[str]
    subjects: dict[str, int]
    per_class: dict[str, dict[str, int]]  # class -> subject -> usable instances
    frames: dict[str, float]
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {
            "root": self.root,
            "layout": self.layout,
            "instances": self.instances,
            "skipped": self.skipped,
            "classes": self.classes,
            "subjects": self.subjects,
            "per_class": self.per_class,
            "frames": self.frames,
            "problems": [{"path": p.path, "reason": p.reason} for p in self.problems],
        }

    def format(self) -> str:
        """The human-readable report ``fpar data check`` prints."""
        lines = [
            f"{self.root}: {self.layout} layout, {self.instances} usable instances"
            f" ({self.skipped} skipped), {len(self.classes)} classes, {len(self.subjects)} subjects",
            "frames per instance: " + ", ".join(f"{k} {v:g}" for k, v in self.frames.items()),
            "",
            _table(self.per_class, list(self.subjects)),
            "",
        ]
        if self.ok:
            lines.append("no problems found: the dataset is usable")
        else:
            lines.append(f"{len(self.problems)} problems:")
            lines += [f"  {p.path}: {p.reason}" for p in self.problems]
        return "\n".join(lines)


def check_dataset(root: str | Path, layout: str = "auto", progress: bool | None = None, *,
                  deep: bool = False) -> CheckReport:
    """Index ``root``, then read every frame file of every instance, usable or not.

    Instances read in place are checked for the existence of every frame their ranges name (and
    their videos' lengths); ``deep`` also decodes each of those frames once.
    ``progress``: show a progress bar on stderr (None: only when stderr is a terminal).
    Raises :class:`~fpar.errors.NotADatasetError` when ``root`` is no dataset at all.
    """
    index = load_index(root, layout)
    problems = list(index.problems)
    if index.layout == PROCESSED_LAYOUT:
        problems += _missing_trees(index.root) + _settings_problems(index)
    everything = index.instances + index.skipped
    in_place = [inst for inst in everything if _read_in_place(inst)]
    problems += _in_place_problems(in_place, deep, progress)
    files = list(_frame_files([inst for inst in everything if not _read_in_place(inst)]))
    sizes: dict[str, tuple[int, int]] = {}  # instance id -> (height, width) of its first good frame
    for inst, path, color in progress_bar(files, desc="checking frames", unit="frame", progress=progress,
                                         leave=False):
        reason, image = frame_problem(path, color)
        if image is not None:
            # every modality of an instance shares one crop: mismatched sizes would misalign them
            size = sizes.setdefault(inst.instance_id, image.shape[:2])
            if image.shape[:2] != size:
                reason = f"frame is {image.shape[1]}x{image.shape[0]}, the instance's others {size[1]}x{size[0]}"
        if reason:
            problems.append(Problem(str(path), reason))
    return _report(index, problems)


def _read_in_place(inst: Instance) -> bool:
    return any(isinstance(inst.frames(kind), (FrameRange, VideoRange)) for kind in FILE_KINDS)


def _in_place_problems(instances: list[Instance], deep: bool, progress: bool | None) -> list[Problem]:
    """Missing (and with ``deep``, broken) frames of in-place instances, found per folder and video."""
    ranges: dict[tuple[Path, str], list[tuple[Instance, FrameRange, bool]]] = {}
    videos: dict[Path, list[tuple[Instance, VideoRange]]] = {}
    for inst in instances:
        for kind in FILE_KINDS:
            frames = inst.frames(kind)
            if isinstance(frames, FrameRange) and len(frames):
                ranges.setdefault((frames.folder, frames.pattern), []).append((inst, frames, kind == "rgb"))
            elif isinstance(frames, VideoRange):
                videos.setdefault(frames.video, []).append((inst, frames))
    problems: list[Problem] = []
    for (folder, pattern), users in progress_bar(
            sorted(ranges.items()), desc="checking frame folders", unit="folder", progress=progress, leave=False):
        present = _frame_numbers(folder, pattern)
        for inst, frames, _ in users:
            first, last = frames.first, frames.first + len(frames) - 1
            found = bisect.bisect_right(present, last) - bisect.bisect_left(present, first)
            if found < len(frames):
                have = set(present[bisect.bisect_left(present, first):bisect.bisect_right(present, last)])
                gone = [n for n in frames.numbers if n not in have]
                more = f" and {len(gone) - 1} more" if len(gone) > 1 else ""
                problems.append(Problem(str(folder / (pattern % gone[0])),
                                        f"missing frame{more} of frames {first}-{last} of instance {inst.instance_id}"))
        if deep:
            used = sorted({n for _, frames, _ in users for n in frames.numbers} & set(present))
            color = users[0][2]
            for number in used:
                path = folder / (pattern % number)
                reason, _ = frame_problem(path, color)
                if reason:
                    problems.append(Problem(str(path), reason))
    for video, users in progress_bar(sorted(videos.items()), desc="checking videos", unit="video",
                                     progress=progress, leave=False):
        problems += _video_problems(video, users, deep)
    return problems


def _frame_numbers(folder: Path, pattern: str) -> list[int]:
    """The sorted frame numbers of the files in ``folder`` named by ``pattern`` (one listing)."""
    name = pattern_regex(pattern)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    numbers = []
    for entry in names:
        match = name.fullmatch(entry)
        if match and pattern % int(match.group(1)) == entry:
            numbers.append(int(match.group(1)))
    return sorted(numbers)


def _video_problems(video: Path, users: list[tuple[Instance, VideoRange]], deep: bool) -> list[Problem]:
    from fpar.data.videos import VideoReader  # noqa: PLC0415 (PyAV loads for video sources only)

    try:
        reader = VideoReader(video)
    except FparError as exc:
        return [Problem(str(video), str(exc).removeprefix(f"{video}: "))]
    try:
        problems = [Problem(str(video), f"frames {frames.first}-{frames.first + len(frames) - 1} of instance "
                                        f"{inst.instance_id}, but the video has {len(reader)}")
                    for inst, frames in users if frames.first + len(frames) - 1 > len(reader)]
        if deep:
            decoded = reader.decode_all()
            if decoded != len(reader):
                problems.append(Problem(str(video), f"{decoded} frames decode of the {len(reader)} its packets hold"))
        return problems
    except FparError as exc:
        return [Problem(str(video), str(exc).removeprefix(f"{video}: "))]
    finally:
        reader.close()


def _missing_trees(root: Path) -> list[Problem]:
    """A processed dataset without a whole modality tree loads (its instances just lack it), but
    cannot train the two-stream or flow models: a problem."""
    return [Problem(str(root / name), f"missing {modality} tree (no instance has {modality})")
            for modality, name in PROCESSED_TREES.items() if not (root / name).is_dir()]


def _settings_problems(index: DatasetIndex) -> list[Problem]:
    """Instances whose recorded preparation settings differ from the most common ones (a dataset
    mixing flow methods or bounds trains on inconsistent inputs)."""
    recorded: dict[str, tuple] = {}
    for inst in index.instances + index.skipped:
        folder = Path(index.root) / PROCESSED_TREES["rgb"] / inst.instance_id
        try:
            record = json.loads((folder / PREPARE_SETTINGS).read_text())
        except (OSError, ValueError):
            continue  # prepared before settings were recorded: nothing to compare
        if isinstance(record, dict):
            recorded[str(folder)] = tuple(record.get(key) for key in DATASET_SETTINGS)
    if len(set(recorded.values())) < 2:
        return []
    common = Counter(recorded.values()).most_common(1)[0][0]
    problems = []
    for folder, settings in recorded.items():
        if settings != common:
            differences = ", ".join(f"{key} {mine} (most: {theirs})"
                                    for key, mine, theirs in zip(DATASET_SETTINGS, settings, common) if mine != theirs)
            problems.append(Problem(folder, f"prepared with other settings than most instances: {differences}"))
    return problems


def frame_problem(path: Path, color: bool) -> tuple[str | None, np.ndarray | None]:
    """Why the frame at ``path`` cannot be used (None if it decodes), and the decoded image."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})", None
    reason = image_problem(data)
    if reason is not None:
        return reason, None
    size = image_size(data)
    if size is not None:
        try:
            check_pixels(*size, path)
        except FparError as exc:
            return str(exc).removeprefix(f"{path}: "), None
    image = decode(data, color)
    return (None, image) if image is not None else ("corrupt image (cannot decode)", None)


def _frame_files(instances: list[Instance]) -> Iterator[tuple[Instance, Path, bool]]:
    for inst in instances:
        for modality in FILE_KINDS:
            for path in inst.frames(modality):
                yield inst, path, modality == "rgb"


def _report(index: DatasetIndex, problems: list[Problem]) -> CheckReport:
    usable = index.instances
    subjects = index.subjects  # a property over every instance: computed once, not once per class
    per_class = {name: dict.fromkeys(subjects, 0) for name in index.classes}
    for inst in usable:
        per_class[inst.class_name][inst.subject] += 1
    counts = [inst.n_frames for inst in usable]
    frames = (
        {"min": min(counts), "median": statistics.median(counts), "mean": round(statistics.mean(counts), 1),
         "max": max(counts)}
        if counts
        else {}
    )
    by_subject = Counter(inst.subject for inst in usable)
    return CheckReport(
        root=str(index.root),
        layout=index.layout,
        instances=len(usable),
        skipped=len(index.skipped),
        classes=index.classes,
        subjects={s: by_subject.get(s, 0) for s in subjects},
        per_class=per_class,
        frames=frames,
        problems=problems,
    )


def _table(per_class: dict[str, dict[str, int]], subjects: list[str]) -> str:
    """Usable instances per class (rows) and subject (columns)."""
    width = max([len("class")] + [len(name) for name in per_class])
    header = "class".ljust(width) + "".join(f"{s:>6}" for s in subjects)
    rows = [name.ljust(width) + "".join(f"{counts[s]:>6}" for s in subjects) for name, counts in per_class.items()]
    return "\n".join([header] + rows)

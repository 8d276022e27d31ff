"""``fpar data check``: is a dataset usable, and if not, what exactly is wrong with it.

The structural problems (unknown files, numbering gaps, count mismatches, short instances, empty
class folders) come from :func:`fpar.data.layouts.load_index`; this module adds the file-level
ones by reading every frame: zero-byte, truncated and undecodable images. For the processed layout
it also reports a missing modality tree (no ``flow_x_processed`` at all) and instances prepared
with other settings than the rest (their ``prepare.json`` records).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from fpar.errors import FparError
from fpar.data.frames import check_pixels, decode, image_problem, image_size
from fpar.data.layouts import (
    DATASET_SETTINGS,
    FILE_KINDS,
    PREPARE_SETTINGS,
    PROCESSED_TREES,
    DatasetIndex,
    Instance,
    Problem,
    load_index,
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


def check_dataset(root: str | Path, layout: str = "auto", progress: bool | None = None) -> CheckReport:
    """Index ``root``, then read every frame file of every instance, usable or not.

    ``progress``: show a progress bar on stderr (None: only when stderr is a terminal).
    Raises :class:`~fpar.errors.NotADatasetError` when ``root`` is no dataset at all.
    """
    index = load_index(root, layout)
    problems = list(index.problems)
    if index.layout == "processed":
        problems += _missing_trees(index.root) + _settings_problems(index)
    files = list(_frame_files(index.instances + index.skipped))
    sizes: dict[str, tuple[int, int]] = {}  # instance id -> (height, width) of its first good frame
    for inst, path, color in tqdm(files, desc="checking frames", unit="frame", disable=_no_bar(progress),
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
    per_class = {name: dict.fromkeys(index.subjects, 0) for name in index.classes}
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
        subjects={s: by_subject.get(s, 0) for s in index.subjects},
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


def _no_bar(progress: bool | None) -> bool | None:
    # tqdm's disable=None means "off unless stderr is a terminal".
    return None if progress is None else not progress

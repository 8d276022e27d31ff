"""What every layout reads into: :class:`DatasetIndex` of :class:`Instance` (frames as paths, or as
:class:`FrameRange` / :class:`VideoRange` computed from an in-place row), the file kinds, and what a
layout's ``scan`` hands over (:class:`Scan` of :class:`Candidate`: folders found, nothing listed)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from fpar.errors import FparError

# the frame files an instance folder holds (the dataset's modalities read from them)
FILE_KINDS = ("rgb", "mmaps", "flow_x", "flow_y")
# the file kinds each modality (``fpar.data.settings.MODALITIES``) is read from
FILE_KINDS_OF_MODALITY = {"frames": ("rgb",), "flow": ("flow_x", "flow_y"), "mmaps": ("mmaps",)}
# Written by a generator (``fpar synth``) before its first file and removed after its last: a root
# holding it is a dataset a killed or failed run left half written (docs/reliability.md)
UNFINISHED_MARKER = ".fpar-unfinished.json"
DEFAULT_MIN_FRAMES = 5  # the flow stack size L: the reference skips shorter instances
ROW_SKIPPED = "row skipped"  # ends the problem of a manifest row that could not be used
FRAME_EXTENSIONS = r"\.(?:png|jpe?g)"  # the frame files every layout reads




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


class _NumberedFrames(Sequence):
    """Frames ``first`` .. ``first + length - 1`` of one source, as a tuple that is never listed
    nor stored: item ``k`` is :meth:`_frame` of number ``first + k``."""

    __slots__ = ()
    first: int
    length: int

    def _frame(self, number: int):
        raise NotImplementedError

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, item):
        if isinstance(item, slice):
            return tuple(self[k] for k in range(*item.indices(self.length)))
        k = item + self.length if item < 0 else item
        if not 0 <= k < self.length:
            raise IndexError(item)
        return self._frame(self.first + k)

    @property
    def numbers(self) -> range:
        """The frame numbers (as in the file names, or decoded frames from 1) this range holds."""
        return range(self.first, self.first + self.length)


@dataclass(frozen=True, slots=True)
class FrameRange(_NumberedFrames):
    """Frames ``first`` .. ``first + length - 1`` of a frame folder, named by a printf ``pattern``
    (``frame_%010d.jpg``). Item ``k`` is the path of frame ``first + k``."""

    folder: Path
    pattern: str
    first: int
    length: int

    def _frame(self, number: int) -> Path:
        return self.folder / (self.pattern % number)


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
class VideoRange(_NumberedFrames):
    """Frames ``first`` .. ``first + length - 1`` of a video file (the first decoded frame is 1):
    read by seeking to them (:mod:`fpar.data.videos`), nothing extracted."""

    video: Path
    first: int
    length: int

    def _frame(self, number: int) -> VideoFrame:
        return VideoFrame(self.video, number)


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
class Candidate:
    """An instance as a layout reader finds it: folders only, nothing listed yet (``folders``: file
    kind -> its folder, or None)."""

    subject: str
    class_name: str
    instance_id: str
    folders: dict[str, Path | None]
    # in-place rows: the frames of each kind, already computed from the row's range (nothing to list)
    ranges: dict[str, Sequence] | None = None
    flow_bound: float | None = None
    flow_stride: int = 1


@dataclass
class Scan:
    """What a layout reader hands to :func:`~fpar.data.layouts.registry.load_index`."""

    candidates: list[Candidate]
    class_names: set[str]
    patterns: dict[str, re.Pattern[str]]
    problems: list[Problem] = field(default_factory=list)


def with_class_ids(instances: list[Instance], classes: list[str]) -> list[Instance]:
    """Renumber ``instances`` against another class list (e.g. a checkpoint's)."""
    ids = {name: i for i, name in enumerate(classes)}
    missing = sorted({inst.class_name for inst in instances} - ids.keys())
    if missing:
        raise FparError(f"classes not in the model's class list: {', '.join(missing)}")
    return [replace(inst, class_id=ids[inst.class_name]) for inst in instances]

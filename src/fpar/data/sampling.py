"""Which frames of an instance make up a clip (docs/method.md §3).

Every function is pure and returns **1-based** frame numbers, as the file names are
(``rgb0001.png`` is frame 1). ``n`` is the number of frames in the instance.
Random choices take a ``numpy.random.Generator`` so the caller controls reproducibility.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from fpar.data.layouts.index import FILE_KINDS_OF_MODALITY

if TYPE_CHECKING:
    from fpar.data.settings import ClipSettings

# the numbers each file kind reads: RGB frames and motion maps the ``rgb`` ones, flow the ``flow`` ones
NUMBERS_OF_KIND = {"rgb": "rgb", "mmaps": "rgb", "flow_x": "flow", "flow_y": "flow"}


def rgb_indices(n: int, num_frames: int) -> list[int]:
    """RGB and motion-map frames: ``floor(linspace(1, n, T, endpoint=False))``, train and eval alike.

    The spacing is ``(n - 1) / T``, so for n=20, T=7 the frames are 1,3,6,9,11,14,17:
    the last frame is never reached, exactly as the reference does it.
    """
    _require_frames(n)
    return [int(math.floor(v)) for v in np.linspace(1, n, num_frames, endpoint=False)]


def flow_stack_start(n: int, stack_size: int, train: bool, rng: np.random.Generator | None = None) -> int:
    """First frame of a stack of ``stack_size`` consecutive flow pairs.

    Train: uniform over 1..n-L; eval: ceil((n-L)/2); 1 when n <= L (n=20, L=5 gives 8).
    """
    _require_frames(n)
    if n <= stack_size:
        return 1
    if train:
        return int(_rng(rng).integers(1, n - stack_size, endpoint=True))
    return int(math.ceil((n - stack_size) / 2))


def flow_stack_indices(n: int, stack_size: int, train: bool, rng: np.random.Generator | None = None) -> list[int]:
    """The ``stack_size`` consecutive flow frames starting at :func:`flow_stack_start`."""
    start = flow_stack_start(n, stack_size, train, rng)
    return list(range(start, start + stack_size))


def pairs_indices(n: int, num_frames: int, train: bool, rng: np.random.Generator | None = None) -> list[int]:
    """Two-in-one: one flow pair per RGB frame, the same frame numbers for both.

    n <= T: ``floor(linspace(0, n-1, T)) + 1`` (frames repeat); otherwise T consecutive frames
    from s, train s ~ U{1..n-T}, eval s = ceil((n-T)/2).
    """
    _require_frames(n)
    if n <= num_frames:
        return [int(math.floor(v)) + 1 for v in np.linspace(0, n - 1, num_frames)]
    if train:
        start = int(_rng(rng).integers(1, n - num_frames, endpoint=True))
    else:
        start = int(math.ceil((n - num_frames) / 2))
    return list(range(start, start + num_frames))


def file_kinds(modalities: Sequence[str]) -> list[str]:
    """The frame-file kinds a clip of ``modalities`` reads, in the modalities' order."""
    return [kind for modality in modalities for kind in FILE_KINDS_OF_MODALITY[modality]]


def clip_numbers(settings: "ClipSettings", counts: Mapping[str, int], train: bool = False,
                 rng: np.random.Generator | None = None) -> dict[str, list[int]]:
    """The frame numbers of a clip read as ``settings`` say: ``rgb`` (RGB frames and motion maps)
    and ``flow`` (flow frames), for the modalities it reads. ``counts``: the frames of each file
    kind it reads (:func:`file_kinds`); with ``flow_mode="stack"`` a flow stack needs at least
    ``stack_size`` flow frames (the caller checks, naming its instance).

    Two-in-one (``pairs``): :func:`pairs_indices` over the fewest frames of any kind, the same
    numbers for both; otherwise :func:`flow_stack_indices` over the flow frames and
    :func:`rgb_indices` over the RGB frames (the motion maps' without RGB). Flow is drawn first.
    """
    modalities = settings.modalities
    if "flow" in modalities and settings.flow_mode == "pairs":
        numbers = pairs_indices(min(counts.values()), settings.num_frames, train, rng)
        return {"rgb": numbers, "flow": numbers}
    numbers = {}
    if "flow" in modalities:
        numbers["flow"] = flow_stack_indices(counts["flow_x"], settings.stack_size, train, rng)
    if "frames" in modalities or "mmaps" in modalities:
        numbers["rgb"] = rgb_indices(counts["rgb" if "frames" in modalities else "mmaps"], settings.num_frames)
    return numbers


def numbers_per_kind(numbers: Mapping[str, list[int]], modalities: Sequence[str]) -> dict[str, list[int]]:
    """:func:`clip_numbers`' ``rgb``/``flow`` numbers as the numbers each file kind reads."""
    return {kind: list(numbers[NUMBERS_OF_KIND[kind]]) for kind in file_kinds(modalities)}


def eval_frame_numbers(n: int, settings: "ClipSettings") -> dict[str, list[int]]:
    """The frame numbers the evaluation clip of an ``n``-frame video reads, per file kind (``rgb``,
    ``flow_x``, ``flow_y``, ``mmaps``: those its modalities read), every kind having ``n`` frames.

    n=20, frames and a flow stack, T=7, L=5: ``rgb`` 1,3,6,9,11,14,17, ``flow_x`` = ``flow_y`` 8..12;
    two-in-one, T=7: every kind 7..13.
    """
    kinds = file_kinds(settings.modalities)
    return numbers_per_kind(clip_numbers(settings, {kind: n for kind in kinds}), settings.modalities)


def _require_frames(n: int) -> None:
    if n < 1:
        raise ValueError(f"an instance needs at least one frame, got n={n}")


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    # Training draws must be reproducible; a caller that passes nothing gets fresh entropy.
    return rng if rng is not None else np.random.default_rng()

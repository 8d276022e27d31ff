"""Which frames of an instance make up a clip (docs/method.md §3).

Every function is pure and returns **1-based** frame numbers, as the file names are
(``rgb0001.png`` is frame 1). ``n`` is the number of frames in the instance.
Random choices take a ``numpy.random.Generator`` so the caller controls reproducibility.
"""

from __future__ import annotations

import math

import numpy as np


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


def _require_frames(n: int) -> None:
    if n < 1:
        raise ValueError(f"an instance needs at least one frame, got n={n}")


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    # Training draws must be reproducible; a caller that passes nothing gets fresh entropy.
    return rng if rng is not None else np.random.default_rng()

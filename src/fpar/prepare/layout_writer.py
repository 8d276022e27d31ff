"""Write one instance in the processed layout (docs/method.md §2), atomically and resumably.

One instance lives in three trees::

    ROOT/processed_frames/<S>/<class>/<inst>/rgb/rgb0001.png, mmaps/map0001.png
    ROOT/flow_x_processed/<S>/<class>/<inst>/flow_x_00001.png
    ROOT/flow_y_processed/<S>/<class>/<inst>/flow_y_00001.png

**Counts.** n frames give n RGB images, n motion maps and n flow pairs. Flow k is the motion
from frame k to frame k+1; the last frame has no successor, so flow n repeats flow n-1 (and map
n repeats map n-1). Equal counts let two-in-one sampling use one flow pair per RGB frame with the
same frame numbers (§1, "Clip sampling").

**Atomicity.** Each tree's folder is first written as a hidden sibling ``.<inst>.partial``
(``fpar.data.load_index`` skips hidden entries) and renamed into place when all files are
written, the ``processed_frames`` one last. An instance is finished when all three folders exist;
anything less (a killed run) is removed and redone on the next run. A failed write removes what
it wrote. ``processed_frames/.../<inst>/prepare.json`` records the settings the instance was made
with; a rerun with other settings refuses it (or, with ``overwrite``, rebuilds it).

**One writer.** An instance is written while holding the OS lock ``ROOT/.locks/<hash>.lock``, so
two processes (workers, shards on machines sharing the disk, a forgotten run) never write one
instance at once; the second gets an :class:`FparError` naming it. A run killed between two
renames leaves an instance without its rgb/mmaps folder, which ``load_index`` skips ("missing rgb
folder") as soon as the dataset holds one complete instance.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from fpar.data.layouts import DATASET_SETTINGS, PREPARE_SETTINGS, PROCESSED_TREES
from fpar.errors import FparError
from fpar.io import exclusive_lock, no_links_below
from fpar.data.frames import FLOW_BOUND, FLOW_BOUND_RANGE, quantize_flow
from fpar.progress import bar as progress_bar
from fpar.prepare.flow import DEFAULT_FLOW_METHOD, pair_flows
from fpar.prepare.motion import motion_map
from fpar.prepare.video import Segment, iter_frames, resize_short_side

TREES = tuple(PROCESSED_TREES[m] for m in ("flow_x", "flow_y", "rgb"))  # rename order: rgb last
# The longest name a file system takes is 255 bytes; the temporary ".<inst>.partial" adds 9.
MAX_NAME_BYTES = 255 - len("..partial")
COMPARED = (*DATASET_SETTINGS, "segment")  # what makes two preparations of one instance differ


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare_video` did: the instance, its frame count (0 when skipped), whether skipped."""

    instance_id: str
    n_frames: int
    skipped: bool


@dataclass(frozen=True)
class Settings:
    """How instances are prepared; recorded in each instance's ``prepare.json``."""

    flow: str = DEFAULT_FLOW_METHOD
    bound: float = FLOW_BOUND
    size: int | None = None
    warp: bool = False
    max_frames: int | None = None

    def __post_init__(self) -> None:
        check_bound(self.bound)

    def record(self, segment: Segment | None = None, source: str | None = None) -> dict:
        return {"flow": self.flow, "bound": float(self.bound), "size": self.size, "warp": self.warp,
                "max_frames": self.max_frames, "segment": segment.to_json() if segment else None,
                "source": source}


def check_bound(bound: float) -> None:
    """The flow bound must be a number of pixels in ``FLOW_BOUND_RANGE``: ``nan`` would code all flow as 0,
    a negative one as 255, 0 divides by zero, and a tiny or huge one saturates or zeroes every motion."""
    low, high = FLOW_BOUND_RANGE
    if not isinstance(bound, (int, float)) or not math.isfinite(bound) or not low <= bound <= high:
        raise FparError(f"flow bound must be a number of pixels from {low:g} to {high:g}, got {bound!r}")


def check_name(name: str, what: str) -> None:
    """A subject, class or instance name must be one plain folder name the file system takes."""
    if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise FparError(f"invalid {what} name {name!r} (a plain folder name is needed: no /, \\, leading dot)")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise FparError(f"{what} name too long ({len(name.encode())} bytes, at most {MAX_NAME_BYTES}): {name[:40]}...")


def instance_dirs(out_root: str | Path, subject: str, class_name: str, instance_id: str) -> dict[str, Path]:
    """The instance's folder in each tree of the processed layout (names checked: nothing outside ``out_root``)."""
    for name, what in ((subject, "subject"), (class_name, "class"), (instance_id, "instance")):
        check_name(name, what)
    dirs = {tree: Path(out_root) / tree / subject / class_name / instance_id for tree in TREES}
    root = Path(out_root).resolve()
    for folder in dirs.values():
        if not folder.resolve().is_relative_to(root):  # a symlinked subject or class folder pointing away
            raise FparError(f"{folder}: resolves outside the output folder {root}; refusing to write there")
    return dirs


def is_prepared(out_root: str | Path, subject: str, class_name: str, instance_id: str) -> bool:
    """True when a previous run finished this instance (all three folders renamed into place)."""
    return all(d.is_dir() for d in instance_dirs(out_root, subject, class_name, instance_id).values())


def read_settings(instance_dir: Path) -> dict | None:
    """The settings recorded in a processed instance folder, or None (prepared before records existed)."""
    try:
        return json.loads((instance_dir / PREPARE_SETTINGS).read_text())
    except (OSError, ValueError):
        return None


def settings_differences(old: dict, new: dict) -> list[str]:
    """``"flow dis -> tvl1"`` for each compared setting that differs."""
    return [f"{key} {old.get(key)} -> {new.get(key)}" for key in COMPARED if old.get(key) != new.get(key)]


def check_out_root(out_root: str | Path) -> None:
    """One line naming ``out_root`` when it cannot hold a dataset (a file, not writable)."""
    out_root = Path(out_root)
    if out_root.exists() and not out_root.is_dir():
        raise FparError(f"{out_root}: is a file, not a folder (give a dataset folder to write into)")
    existing = next((p for p in (out_root, *out_root.parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise FparError(f"{existing}: not writable (permission denied), cannot write {out_root}")


def lock_path(out_root: str | Path, key: str) -> Path:
    # hashed: a "<subject>/<class>/<instance>" key may be longer than a file name may be
    return Path(out_root) / ".locks" / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.lock"


def write_instance(
    frames: Iterable[np.ndarray],
    out_root: str | Path,
    *,
    subject: str,
    class_name: str,
    instance_id: str,
    flow: str = DEFAULT_FLOW_METHOD,
    bound: float = FLOW_BOUND,
    warp: bool = False,
    device: str = "cpu",
    record: dict | None = None,
    progress: bool = False,
) -> int:
    """Compute flow and motion maps for ``frames`` (uint8 RGB, any iterable: consumed one at a
    time) and write the instance under its lock; returns n frames.

    Whatever a previous run left for this instance (finished or not) is replaced. ``record`` is
    written as its ``prepare.json`` (default: the flow settings only).
    """
    check_bound(bound)
    check_out_root(out_root)
    key = f"{subject}/{class_name}/{instance_id}"
    dirs = instance_dirs(out_root, subject, class_name, instance_id)
    record = record or Settings(flow, bound, warp=warp).record()
    with exclusive_lock(lock_path(out_root, key), key):
        return _write(iter(frames), dirs, key, flow=flow, bound=bound, warp=warp, device=device, record=record,
                      progress=progress)


def prepare_instance(
    frames: Callable[[], Iterator[np.ndarray]],
    out_root: str | Path,
    *,
    subject: str,
    class_name: str,
    instance_id: str,
    settings: Settings,
    segment: Segment | None = None,
    source: str | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = False,
) -> Prepared:
    """Write one instance from ``frames()`` unless a previous run finished it with the same settings.

    Finished with other settings: :class:`FparError` naming the instance and the differences, or
    rebuilt when ``overwrite``. Nothing is created before the first frame decodes.
    """
    check_out_root(out_root)
    key = f"{subject}/{class_name}/{instance_id}"
    dirs = instance_dirs(out_root, subject, class_name, instance_id)
    record = settings.record(segment, source)

    def finished() -> bool:
        if not all(d.is_dir() for d in dirs.values()):
            return False
        old = read_settings(dirs["processed_frames"])
        differences = settings_differences(old, record) if old is not None else []
        if differences and not overwrite:
            raise FparError(f"{key}: prepared with other settings ({'; '.join(differences)}); "
                            "rerun with --overwrite to rebuild it")
        return not differences

    if finished():  # checked before decoding anything: a resumed run skips finished instances fast
        return Prepared(instance_id, 0, skipped=True)
    stream = frames()
    first = next(stream, None)  # an unreadable video fails here, before any folder exists
    if first is None:
        raise FparError(f"{key}: no frames; flow needs at least 2")
    with exclusive_lock(lock_path(out_root, key), key):
        if finished():  # another process finished it while this one decoded
            return Prepared(instance_id, 0, skipped=True)
        n = _write(_chain(first, stream), dirs, key, flow=settings.flow, bound=settings.bound, warp=settings.warp,
                   device=device, record=record, progress=progress)
    return Prepared(instance_id, n, skipped=False)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _write(
    frames: Iterator[np.ndarray], finals: dict[str, Path], key: str, *, flow: str, bound: float, warp: bool,
    device: str, record: dict, progress: bool,
) -> int:
    temps = {tree: d.with_name(f".{d.name}.partial") for tree, d in finals.items()}
    for folder in (*finals.values(), *temps.values()):
        # <root>/<tree>/<subject>/<class>/<instance>: a link planted anywhere below the root is refused,
        # so nothing is written or deleted through it
        no_links_below(folder.parents[3], folder)
        shutil.rmtree(folder, ignore_errors=True)
    try:
        return _write_temps(frames, finals, temps, key, flow=flow, bound=bound, warp=warp, device=device,
                            record=record, progress=progress)
    except BaseException as exc:
        # a failed or interrupted write leaves neither half an instance nor empty folders
        for folder in temps.values():
            shutil.rmtree(folder, ignore_errors=True)
            _remove_empty_parents(folder.parent, levels=3)
        if isinstance(exc, OSError):
            raise FparError(f"{exc.filename or finals['processed_frames']}: cannot write "
                            f"({exc.strerror or exc}); {key} not written") from None
        if isinstance(exc, cv2.error):
            raise FparError(f"{key}: OpenCV failed while writing it ({str(exc).strip().splitlines()[-1]})") from None
        raise


def _write_temps(
    frames: Iterator[np.ndarray], finals: dict[str, Path], temps: dict[str, Path], key: str, *, flow: str,
    bound: float, warp: bool, device: str, record: dict, progress: bool,
) -> int:
    rgb_dir, map_dir = temps["processed_frames"] / "rgb", temps["processed_frames"] / "mmaps"
    for folder in (rgb_dir, map_dir, temps["flow_x_processed"], temps["flow_y_processed"]):
        folder.mkdir(parents=True)
    # Frames wait here from decoding until their flow comes back: a few (the flow's batch), never the video.
    pending: collections.deque[np.ndarray] = collections.deque()

    def tap() -> Iterator[np.ndarray]:
        for frame in frames:
            if pending and frame.shape != pending[0].shape:
                raise FparError(f"{key}: frames differ in size ({frame.shape} vs {pending[0].shape}); "
                                "pass a size to resize them")
            pending.append(frame)
            yield frame

    k = 0
    # a bar on a terminal only: prepare's own line per instance says the rest
    bar = progress_bar(desc=key, unit="frame", progress=None if progress else False, leave=False)
    for field in pair_flows(tap(), method=flow, warp=warp, device=device):
        k += 1
        fx, fy = quantize_flow(field, bound)
        mmap = motion_map(field)
        _write_frame(k, pending.popleft(), fx, fy, mmap, rgb_dir, map_dir, temps)
        bar.update()
    if k == 0:
        raise FparError(f"{key}: {len(pending)} frame(s); flow needs at least 2")
    # flow n repeats flow n-1 (see the module docstring)
    _write_frame(k + 1, pending.popleft(), fx, fy, mmap, rgb_dir, map_dir, temps)
    bar.close()
    (temps["processed_frames"] / PREPARE_SETTINGS).write_text(json.dumps(record, sort_keys=True, indent=1) + "\n")

    for tree in TREES:
        temps[tree].rename(finals[tree])
    return k + 1


def _write_frame(k: int, frame: np.ndarray, fx: np.ndarray, fy: np.ndarray, mmap: np.ndarray, rgb_dir: Path,
                 map_dir: Path, temps: dict[str, Path]) -> None:
    _write_png(rgb_dir / f"rgb{k:04d}.png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    _write_png(map_dir / f"map{k:04d}.png", mmap)
    _write_png(temps["flow_x_processed"] / f"flow_x_{k:05d}.png", fx)
    _write_png(temps["flow_y_processed"] / f"flow_y_{k:05d}.png", fy)


def _remove_empty_parents(folder: Path, levels: int) -> None:
    for _ in range(levels):
        try:
            folder.rmdir()
        except OSError:  # not empty (other instances) or already gone
            return
        folder = folder.parent


def prepare_video(
    video_path: str | Path,
    out_root: str | Path,
    *,
    subject: str,
    class_name: str,
    instance_id: str,
    flow: str = DEFAULT_FLOW_METHOD,
    bound: float = FLOW_BOUND,
    size: int | None = None,
    max_frames: int | None = None,
    segment: Segment | None = None,
    fps: float | None = None,
    warp: bool = False,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
) -> Prepared:
    """Turn one video (or a ``segment`` of it) into one instance of the processed layout, decoding
    it as a stream; skip it if a previous run finished it with the same settings.

    ``size`` resizes so the short side is ``size`` px (aspect kept; default: keep the video's size).
    Flow is computed at that size, so ``bound`` (px) refers to it too. ``fps`` is the frame rate of
    a folder of frames, needed only for a segment in seconds.
    """
    settings = Settings(flow, bound, size, warp, max_frames)

    def frames() -> Iterator[np.ndarray]:
        for frame in iter_frames(video_path, segment, fps=fps, max_frames=max_frames):
            yield resize_short_side(frame, size)

    return prepare_instance(
        frames, out_root, subject=subject, class_name=class_name, instance_id=instance_id, settings=settings,
        segment=segment, source=str(video_path), device=device, overwrite=overwrite, progress=progress,
    )


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise FparError(f"{path}: cannot write image (disk full or not writable?)")

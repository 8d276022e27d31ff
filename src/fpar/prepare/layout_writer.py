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
anything less (a killed run) is removed and redone on the next run. A run killed between two
renames leaves an instance without its rgb/mmaps folder, which ``load_index`` skips ("missing rgb
folder") as soon as the dataset holds one complete instance.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from fpar.errors import FparError
from fpar.prepare.flow import DEFAULT_BOUND, flow_estimator, quantize_flow
from fpar.prepare.motion import motion_map
from fpar.prepare.video import read_video, resize_short_side

TREES = ("flow_x_processed", "flow_y_processed", "processed_frames")  # rename order: rgb last


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare_video` did: the instance, its frame count (0 when skipped), whether skipped."""

    instance_id: str
    n_frames: int
    skipped: bool


def instance_dirs(out_root: str | Path, subject: str, class_name: str, instance_id: str) -> dict[str, Path]:
    """The instance's folder in each tree of the processed layout."""
    for name in (subject, class_name, instance_id):
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            raise FparError(f"invalid subject/class/instance name {name!r} (a plain folder name is needed)")
    return {tree: Path(out_root) / tree / subject / class_name / instance_id for tree in TREES}


def is_prepared(out_root: str | Path, subject: str, class_name: str, instance_id: str) -> bool:
    """True when a previous run finished this instance (all three folders renamed into place)."""
    return all(d.is_dir() for d in instance_dirs(out_root, subject, class_name, instance_id).values())


def write_instance(
    frames: Sequence[np.ndarray],
    out_root: str | Path,
    *,
    subject: str,
    class_name: str,
    instance_id: str,
    flow: str = "tvl1",
    bound: float = DEFAULT_BOUND,
    progress: bool = False,
) -> int:
    """Compute flow and motion maps for ``frames`` (uint8 RGB) and write the instance; returns n frames.

    Whatever a previous run left for this instance (finished or not) is replaced.
    """
    if len(frames) < 2:
        raise FparError(f"{instance_id}: {len(frames)} frame(s); flow needs at least 2")
    if len({f.shape for f in frames}) > 1:
        raise FparError(f"{instance_id}: frames differ in size; pass a size to resize them")
    finals = instance_dirs(out_root, subject, class_name, instance_id)
    temps = {tree: d.with_name(f".{d.name}.partial") for tree, d in finals.items()}
    for folder in (*finals.values(), *temps.values()):
        shutil.rmtree(folder, ignore_errors=True)
    rgb_dir, map_dir = temps["processed_frames"] / "rgb", temps["processed_frames"] / "mmaps"
    for folder in (rgb_dir, map_dir, temps["flow_x_processed"], temps["flow_y_processed"]):
        folder.mkdir(parents=True)

    estimate = flow_estimator(flow)
    n = len(frames)
    for k in tqdm(range(1, n + 1), desc=instance_id, unit="frame", disable=not progress, leave=False):
        if k < n:  # flow n repeats flow n-1 (see the module docstring)
            field = estimate(frames[k - 1], frames[k])
            fx, fy = quantize_flow(field, bound)
            mmap = motion_map(field)
        _write_png(rgb_dir / f"rgb{k:04d}.png", cv2.cvtColor(frames[k - 1], cv2.COLOR_RGB2BGR))
        _write_png(map_dir / f"map{k:04d}.png", mmap)
        _write_png(temps["flow_x_processed"] / f"flow_x_{k:05d}.png", fx)
        _write_png(temps["flow_y_processed"] / f"flow_y_{k:05d}.png", fy)

    for tree in TREES:
        temps[tree].rename(finals[tree])
    return n


def prepare_video(
    video_path: str | Path,
    out_root: str | Path,
    *,
    subject: str,
    class_name: str,
    instance_id: str,
    flow: str = "tvl1",
    bound: float = DEFAULT_BOUND,
    size: int | None = None,
    max_frames: int | None = None,
    progress: bool = True,
) -> Prepared:
    """Turn one video into one instance of the processed layout; skip it if a previous run finished it.

    ``size`` resizes so the short side is ``size`` px (aspect kept; default: keep the video's size).
    Flow is computed at that size, so ``bound`` (px) refers to it too.
    """
    if is_prepared(out_root, subject, class_name, instance_id):
        return Prepared(instance_id, 0, skipped=True)
    video = read_video(video_path, max_frames)
    frames = [resize_short_side(f, size) for f in video.frames]
    n = write_instance(
        frames, out_root, subject=subject, class_name=class_name, instance_id=instance_id,
        flow=flow, bound=bound, progress=progress,
    )
    return Prepared(instance_id, n, skipped=False)


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise FparError(f"{path}: cannot write image")

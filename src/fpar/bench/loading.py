"""``fpar bench``'s loading rows: clip loading per DataLoader worker, the reference's way, the
image tree and the dataset store.

One process, one thread (a worker has one core), every way timed alternately on the same clips
and the same random draws, so load from other processes hits all of them alike. The ways:

* ``reference``: every PNG opened with PIL and transformed frame by frame, for every clip
  (:func:`fpar.bench.reference.reference_frame`);
* ``images``: :class:`~fpar.data.ClipDataset` on the image tree, first epoch (OpenCV decode);
* ``images, cached``: the same with a warm :class:`~fpar.data.FrameCache` (later epochs with
  persistent workers; each worker holds its own copy);
* ``store``: the same dataset reading from the store (:mod:`fpar.data.store`), from the first
  epoch after ``fpar cache``, shared by every worker through the page cache.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from fpar.bench.reference import reference_frame
from fpar.data import ClipDataset, ClipSettings, FrameCache, load_index
from fpar.data.layouts import FILE_KINDS_OF_MODALITY
from fpar.data.store import FrameStore, build_store

CLIPS = {
    # 16 RGB frames and their motion maps, plus a stack of 5 x/y flow pairs.
    "two-stream": dict(modalities=["frames", "flow", "mmaps"], flow_mode="stack", num_frames=16, stack_size=5),
    # one x/y flow pair per RGB frame.
    "two-in-one": dict(modalities=["frames", "flow"], flow_mode="pairs", num_frames=16),
}


MemoryProbe = Callable[[Callable[[], object]], int]


def bench_clip_loading(root: str | Path | None = None, *, resize: int = 256, crop: int = 224,
                       size: tuple[int, int] = (320, 240), repeats: int = 3,
                       peak_memory: MemoryProbe | None = None) -> list[dict]:
    """Seconds per training clip for each way and clip kind, as rows for ``fpar bench``'s table.

    ``root``: a dataset to time (its store is built beside it if missing); by default a synthetic
    one of ``size`` (width, height) frames in a temporary folder. ``peak_memory``: a function
    returning the peak bytes over one call of its argument; given, each way's peak over one more
    epoch is reported (the cached way's includes its filled cache: what each worker holds).
    """
    if root is not None:
        return _bench(Path(root), resize, crop, repeats, peak_memory)
    from fpar.data.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "ds", subjects=1, classes=2, videos_per_class=2, frames=24, size=size, seed=0)
        return _bench(Path(tmp) / "ds", resize, crop, repeats, peak_memory)


def _bench(root: Path, resize: int, crop: int, repeats: int, peak_memory: MemoryProbe | None) -> list[dict]:
    import cv2
    import torch

    index = load_index(root)
    frame_store = FrameStore(build_store(root, resize=resize, index=index, progress=False))
    threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    rows = []
    try:
        for name, settings in CLIPS.items():
            clip = ClipSettings(resize=resize, crop=crop, **settings)
            make = lambda **extra: ClipDataset(index.instances, clip, train=True, seed=0, **extra)
            images, cached, stored = make(), make(cache=FrameCache(max_bytes=1 << 40)), make()
            stored.use_store(frame_store)
            epoch_of(cached, 0)  # fill the cache: what later epochs find
            ways = {"reference": lambda e: _reference_epoch(images, e), "images": lambda e: epoch_of(images, e),
                    "images, cached": lambda e: epoch_of(cached, e), "store": lambda e: epoch_of(stored, e)}
            seconds = _alternate(ways, repeats)
            per_clip = {way: s / len(images) for way, s in seconds.items()}
            memory = ({way: peak_memory(lambda fn=fn: fn(repeats + 1)) for way, fn in ways.items()}
                      if peak_memory is not None else {})
            for way in ("images", "images, cached", "store"):
                rows.append({"name": f"clip loading, {name}, {way} ({resize}px/{crop})",
                             "clip": name, "way": way, "clips": len(images),
                             "reference_s": per_clip["reference"], "fpar_s": per_clip[way],
                             "speedup": per_clip["reference"] / per_clip[way],
                             "reference_peak_memory": memory.get("reference"), "fpar_peak_memory": memory.get(way),
                             "agreement": "same draws" + (", same tensors as images" if way == "store" else "")})
    finally:
        cv2.setNumThreads(threads[0])
        torch.set_num_threads(threads[1])
    return rows


def epoch_of(dataset: ClipDataset, epoch: int) -> None:
    for i in range(len(dataset)):
        dataset[(i, epoch)]


def _alternate(ways: dict[str, Callable[[int], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each way over ``repeats`` rounds; each round runs every way once, on the
    draws of a new epoch (epoch 0 is the warm-up)."""
    for fn in ways.values():
        fn(0)
    times: dict[str, list[float]] = {way: [] for way in ways}
    for epoch in range(1, repeats + 1):
        for way, fn in ways.items():
            start = time.perf_counter()
            fn(epoch)
            times[way].append(time.perf_counter() - start)
    return {way: statistics.median(t) for way, t in times.items()}


def _reference_epoch(dataset: ClipDataset, epoch: int) -> None:
    """The reference's clip loading: each PNG opened with PIL, resized, flipped, cropped and
    normalised on its own, with the draws ``dataset`` makes for the same clip."""
    for i, inst in enumerate(dataset.instances):
        numbers, draw = dataset.draws(i, epoch)
        for modality in dataset.modalities:
            key = "flow" if modality == "flow" else "rgb"
            np.stack([reference_frame(inst.frames(kind)[k - 1], kind, dataset.resize, dataset.crop, draw)
                      for k in numbers[key] for kind in FILE_KINDS_OF_MODALITY[modality]])

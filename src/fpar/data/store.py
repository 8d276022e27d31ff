"""The dataset store: every frame decoded and resized once, packed on disk, memory-mapped.

Why: decoding a PNG and resizing it costs far more than cropping it, and an in-memory
:class:`~fpar.data.frames.FrameCache` is one private copy per DataLoader worker, capped, and lost
with the worker. The store pays the decode and the short-side resize once (``fpar cache``);
afterwards a clip is one gather from a read-only ``numpy.memmap`` plus one crop/resize per
modality. Workers map the same files, so the kernel's page cache holds one copy for all of them
(and for every later run), pages are read on demand, and a store larger than RAM works: the
kernel evicts cold pages instead of the process running out of memory.

Layout of a store folder::

    index.json     settings, the source files it was built from, instance -> offset/shape
    rgb.u8 ...     one flat uint8 file per file kind (rgb, mmaps, flow_x, flow_y): each instance's
                   frames back to back, ``(n, h, w, 3)`` for rgb, ``(n, h, w)`` otherwise
    progress.json  while building: the instances already written (removed when done)
    build.lock     held by the process that builds

A flat file plus a JSON index (rather than HDF5/zarr) keeps reading to a pointer offset, needs no
extra dependency, and maps zero-copy into every worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from fpar.data import transforms
from fpar.data.frames import read_frame
from fpar.data.layouts import FILE_KINDS, FILE_KINDS_OF_MODALITY, DatasetIndex, Instance, load_index
from fpar.errors import FparError
from fpar.io import exclusive_lock, write_text

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
PROGRESS_NAME = "progress.json"
LOCK_NAME = "build.lock"


def default_store_path(root: str | Path, resize: int) -> Path:
    """Where ``data.store: true`` keeps the store: a hidden folder in the dataset, one per resize.

    Hidden entries are skipped by every layout reader, so the store never looks like data.
    """
    root = Path(root)
    if root.is_file():  # a manifest file
        return root.parent / ".fpar-store" / f"{root.stem}-r{resize}"
    return root / ".fpar-store" / f"r{resize}"


def kinds_for(modalities: Iterable[str]) -> tuple[str, ...]:
    """The file kinds that ``modalities`` (``frames``/``flow``/``mmaps``) read, in ``FILE_KINDS`` order."""
    wanted = {k for m in modalities for k in FILE_KINDS_OF_MODALITY[m]}
    return tuple(k for k in FILE_KINDS if k in wanted)


def _sources(index: DatasetIndex, kinds: Sequence[str]) -> dict[str, list[list]]:
    """Per kind, ``[path relative to the dataset, size, mtime_ns]`` of every file the store reads."""
    base = index.root.parent if index.root.is_file() else index.root
    rows: dict[str, list[list]] = {kind: [] for kind in kinds}
    for inst in index.instances:
        for kind in kinds:
            for path in inst.frames(kind):
                try:
                    st = os.stat(path)
                except OSError as exc:
                    raise FparError(f"{path}: cannot read frame ({exc.strerror or exc})") from None
                rows[kind].append([os.path.relpath(path, base), st.st_size, st.st_mtime_ns])
    return rows


def _settings(resize: int, kinds: Sequence[str]) -> dict:
    return {"format": FORMAT_VERSION, "resize": resize, "kinds": list(kinds)}


def _digest(settings: dict, sources: dict[str, list[list]], instances: Sequence[Instance]) -> str:
    text = json.dumps([settings, sources, [i.instance_id for i in instances]], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _build_lock(path: Path) -> contextlib.AbstractContextManager:
    """The lock that keeps two builders off one store; a second builder gets one line naming the holder."""
    return exclusive_lock(path / LOCK_NAME, f"store {path} (being built by another process)")


# --- building ----------------------------------------------------------------------------------


def build_store(
    root: str | Path,
    path: str | Path | None = None,
    *,
    layout: str = "auto",
    resize: int = 256,
    modalities: Sequence[str] | None = None,
    rebuild: bool = False,
    index: DatasetIndex | None = None,
    progress: bool = True,
) -> Path:
    """Build (or finish, or check) the store of the dataset at ``root``; return its folder.

    ``modalities`` (default: every modality the dataset has) choose the file kinds stored.
    An up-to-date store is left as it is. A store built from other files or settings is an error
    unless ``rebuild``; an interrupted build resumes from its last whole instance and ends in
    the same bytes as an uninterrupted one. Another process building the same store is an error.
    """
    index = index or load_index(root, layout)
    path = Path(path) if path else default_store_path(index.root, resize)
    present = tuple(k for k in FILE_KINDS if any(inst.frames(k) for inst in index.instances))
    kinds = kinds_for(modalities) if modalities else present
    settings = _settings(resize, kinds)
    path.mkdir(parents=True, exist_ok=True)
    with _build_lock(path):
        sources = _sources(index, kinds)
        problem = _stale_reason(path, settings, sources)
        if problem is None:
            return path
        if problem != "missing" and not rebuild:
            raise FparError(f"store {path} is out of date ({problem}): rebuild it with "
                            f"`fpar cache {index.root} --rebuild`")
        _write(path, index, settings, sources, progress)
    return path


def _stale_reason(path: Path, settings: dict, sources: dict[str, list[list]]) -> str | None:
    """None if the store at ``path`` was built from exactly ``sources`` with ``settings``; else why
    not (``"missing"`` when there is no finished store)."""
    index_file = path / INDEX_NAME
    if not index_file.is_file():
        return "missing"
    try:
        meta = json.loads(index_file.read_text())
    except (OSError, ValueError):
        return f"unreadable {INDEX_NAME}"
    return _compare(meta, settings, sources)


def _compare(meta: dict, settings: dict, sources: dict[str, list[list]]) -> str | None:
    built = meta.get("settings", {})
    for key in ("format", "resize"):
        if built.get(key) != settings[key]:
            return f"built with {key} {built.get(key)}, wanted {settings[key]}"
    for kind, rows in sources.items():
        recorded = meta.get("sources", {}).get(kind)
        if recorded is None:
            return f"it holds no {kind} frames"
        if recorded != rows:
            return _first_difference(recorded, rows)
    return None


def _first_difference(recorded: list[list], current: list[list]) -> str:
    old = {row[0]: row for row in recorded}
    new = {row[0] for row in current}
    for row in current:
        if row[0] not in old:
            return f"{row[0]} is new"
        if old[row[0]] != row:
            return f"{row[0]} changed since the store was built"
    gone = next((name for name in old if name not in new), None)
    return f"{gone} is gone" if gone else "the frames are listed in another order"


def _write(path: Path, index: DatasetIndex, settings: dict, sources: dict[str, list[list]], progress: bool) -> None:
    """Write the data files instance by instance, then commit ``index.json`` last.

    ``progress.json`` (replaced atomically after each instance) records the instances finished
    and the end offset of every data file; a resumed build cuts the files back to those ends, so
    a half-written instance is written again from its start.
    """
    from tqdm import tqdm

    kinds = settings["kinds"]
    digest = _digest(settings, sources, index.instances)
    done = _resume_point(path, digest, kinds)
    (path / INDEX_NAME).unlink(missing_ok=True)  # from here on no reader takes the store as finished
    total = sum(len(inst.frames(k)) for inst in index.instances for k in kinds)
    finished = sum(len(inst.frames(k)) for inst in index.instances[: len(done["instances"])] for k in kinds)
    files = {}
    try:
        for kind in kinds:
            files[kind] = open(path / f"{kind}.u8", "r+b" if done["instances"] else "wb")
            files[kind].truncate(done["ends"][kind])
            files[kind].seek(done["ends"][kind])
        bar = tqdm(total=total, initial=finished, unit="frame", desc=f"store {path.name}", file=sys.stderr,
                   disable=not progress, dynamic_ncols=True)
        with bar:
            for inst in index.instances[len(done["instances"]) :]:
                entry = {}
                for kind in kinds:
                    entry[kind] = _write_instance(files[kind], inst, kind, settings["resize"])
                    bar.update(len(inst.frames(kind)))
                for f in files.values():
                    f.flush()
                    os.fsync(f.fileno())
                done["instances"].append([inst.instance_id, entry])
                done["ends"] = {kind: files[kind].tell() for kind in kinds}
                write_text(path / PROGRESS_NAME, json.dumps(done))
    finally:
        for f in files.values():
            f.close()
    meta = {"settings": settings, "instances": dict(done["instances"]), "sources": sources}
    write_text(path / INDEX_NAME, json.dumps(meta, separators=(",", ":")))
    (path / PROGRESS_NAME).unlink()


def _resume_point(path: Path, digest: str, kinds: Sequence[str]) -> dict:
    """The progress of an interrupted build of the same sources and settings, else a fresh start."""
    fresh = {"digest": digest, "instances": [], "ends": dict.fromkeys(kinds, 0)}
    try:
        done = json.loads((path / PROGRESS_NAME).read_text())
    except (OSError, ValueError):
        done = None
    resumable = done and done.get("digest") == digest and all(
        (path / f"{k}.u8").is_file() and (path / f"{k}.u8").stat().st_size >= done["ends"][k] for k in kinds)
    if resumable:
        return done
    for old in path.glob("*.u8"):
        # Unlinked, not truncated: a reader still mapping the old file keeps its pages.
        old.unlink()
    return fresh


def _write_instance(out, inst: Instance, kind: str, resize: int) -> list[int]:
    """Decode, resize and append every frame of one kind of ``inst``; ``[offset, n, h, w(, 3)]``."""
    offset = out.tell()
    shape = source = None
    for path in inst.frames(kind):
        image = read_frame(path, color=kind == "rgb")
        # compared before resizing: a frame twice the size of the others would resize to the same
        # shape and slip into the clips unnoticed (``fpar data check`` reports it)
        if source is None:
            source = image.shape[:2]
        elif image.shape[:2] != source:
            raise FparError(f"instance {inst.instance_id}: {path}: frame is {image.shape[1]}x{image.shape[0]}, "
                            f"the instance's others {source[1]}x{source[0]} (frames of one instance must share "
                            "one size)")
        image = transforms.resize_short(image, resize)
        shape = shape or image.shape
        out.write(np.ascontiguousarray(image).data)
    return [offset, len(inst.frames(kind)), *shape]


# --- reading -----------------------------------------------------------------------------------


class FrameStore:
    """A finished store, read through memory maps opened lazily in each process.

    Pickling (DataLoader workers with spawn) sends the folder and the index, never mapped data.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            meta = json.loads((self.path / INDEX_NAME).read_text())
        except (OSError, ValueError):
            raise FparError(f"store {self.path}: no finished store here (build it with `fpar cache ROOT`)") from None
        self.resize: int = meta["settings"]["resize"]
        self.kinds: tuple[str, ...] = tuple(meta["settings"]["kinds"])
        self.instances: dict[str, dict[str, list[int]]] = meta["instances"]
        self._maps: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": {}}

    def _map(self, kind: str) -> np.ndarray:
        mapped = self._maps.get(kind)
        if mapped is None:
            if not self._maps:
                _reuse_freed_memory()
            # A plain ndarray view of the map: memmap's own __getitem__ costs Python time per slice.
            mapped = np.memmap(self.path / f"{kind}.u8", np.uint8, mode="r").view(np.ndarray)
            self._maps[kind] = mapped
        return mapped

    def frames(self, instance_id: str, kind: str) -> np.ndarray:
        """All frames of one kind of an instance: a read-only ``(n, h, w[, 3])`` view of the map."""
        try:
            offset, n, *shape = self.instances[instance_id][kind]
        except KeyError:
            raise FparError(f"store {self.path}: no {kind} frames of instance {instance_id}") from None
        size = n * int(np.prod(shape))
        return self._map(kind)[offset : offset + size].reshape(n, *shape)

    def clip(self, inst: Instance, kind: str, numbers: Sequence[int], draw: transforms.TrainDraw | None,
             crop: int, views: str) -> np.ndarray:
        """Frames ``numbers`` (1-based) of one kind, transformed as ``ClipDataset`` does frame by
        frame: uint8 ``(V, T, h, w[, 3])``, the same bytes, with one crop/resize for the clip."""
        frames = self.frames(inst.instance_id, kind)
        picked = np.asarray(numbers)
        if picked.min() < 1 or picked.max() > len(frames):
            bad = int(picked.max() if picked.max() > len(frames) else picked.min())
            raise FparError(f"{inst.instance_id}: frame {bad} requested but the instance has {len(frames)}")
        flow_x = kind == "flow_x"
        # The crop windows are cut from the map's view before the gather: only they are read and copied.
        if draw is not None:
            return transforms.train_crop_clip(frames, draw, crop, is_flow_x=flow_x, pick=picked - 1)[None]
        return transforms.eval_views_clip(frames, crop, views, is_flow_x=flow_x, pick=picked - 1)


def _reuse_freed_memory() -> None:
    """Let this process reuse the memory of freed clips instead of returning it to the kernel.

    A clip's float tensors are ~10-20 MB; glibc serves blocks that large with fresh ``mmap``s and
    unmaps them when freed, so every clip pays a page fault per 4 KiB (measured: two thirds of
    a store clip's time). Fixing the mmap threshold at its maximum (32 MiB) and raising the trim
    threshold keeps freed clip buffers in the heap for the next clip. Once per process that
    reads a store (each DataLoader worker); a no-op without glibc.
    """
    import ctypes

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return


def open_store(index: DatasetIndex, path: str | Path | None = None, *, resize: int,
               modalities: Sequence[str]) -> FrameStore:
    """Open the store at ``path`` (default: :func:`default_store_path`) for ``index``'s dataset,
    refusing (one line) one that is missing, built with other settings or from other files than
    the dataset holds now. Checking costs one ``stat`` per source file."""
    path = Path(path) if path else default_store_path(index.root, resize)
    kinds = kinds_for(modalities)
    problem = _stale_reason(path, _settings(resize, kinds), _sources(index, kinds))
    if problem == "missing":
        raise FparError(f"store {path}: no finished store here (build it with `fpar cache {index.root}`)")
    if problem:
        raise FparError(f"store {path} is out of date ({problem}): rebuild it with `fpar cache {index.root} --rebuild`")
    return FrameStore(path)


def ensure_store(index: DatasetIndex, path: str | Path | None, *, resize: int, modalities: Sequence[str]) -> FrameStore:
    """Build the store when it is missing or out of date (first use), then open it."""
    path = Path(path) if path else default_store_path(index.root, resize)
    kinds = kinds_for(modalities)
    if _stale_reason(path, _settings(resize, kinds), _sources(index, kinds)) is not None:
        # Every kind the dataset has, so that a later config with other modalities reuses it.
        build_store(index.root, path, resize=resize, rebuild=True, index=index)
    return open_store(index, path, resize=resize, modalities=modalities)

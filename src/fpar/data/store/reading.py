"""Reading a finished store: :class:`FrameStore` (memory-mapped shards, every frame read checked
against its hash), opening it for a dataset (:func:`open_store`, :func:`ensure_store`) and checking
the stores kept in a dataset (:func:`store_problems`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from fpar.data import transforms
from fpar.data.layouts import DatasetIndex, Instance, Problem, load_index
from fpar.data.store.format import (FORMAT_VERSION, INDEX_NAME, TABLE_DTYPE, TABLE_NAME, _claim, _inspect,
                                    _open_problem, _rebuild_hint, default_store_path, frame_hash, kinds_for)
from fpar.data.store.parts import _parts
from fpar.data.store.sources import _checked, _Sources
from fpar.data.store.verify import entry_problems, source_file_problems
from fpar.data.store.writer import build_store
from fpar.errors import FparError


class FrameStore:
    """A finished store, read through memory maps opened lazily in each process.

    Opening checks the shards' sizes and headers and the frame table's hash; each frame read is
    checked against its own hash. Pickling (DataLoader workers with spawn) sends the folder and
    the index, never mapped data.
    """

    def __init__(self, path: str | Path, root: str | Path | None = None, *, checked: dict | None = None) -> None:
        """``root``: the dataset, named in the line that says how to rebuild a damaged store;
        ``checked``: the store's index as :func:`_inspect` just found it intact (not checked again)."""
        self.path = Path(path)
        meta = checked
        if meta is None:
            meta, problem = _inspect(self.path)
            if problem:
                raise _open_problem(self.path, root)
        self.root = meta.get("root", "ROOT")
        self.codec: str = meta["settings"]["codec"]
        self.quality: int | None = meta["settings"].get("quality")
        self.reduced_decode: bool = bool(meta["settings"].get("reduced_decode"))
        self.settings: dict = meta["settings"]
        self.resize: int = meta["settings"]["resize"]
        self.kinds: tuple[str, ...] = tuple(meta["settings"]["kinds"])
        self.instances: dict[str, dict[str, list[int]]] = meta["instances"]
        self.shard_names: list[str] = [name for name, _, _ in meta["shards"]]
        self._maps: dict[int, np.ndarray] = {}
        self._table: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": {}, "_table": None}

    @property
    def table(self) -> np.ndarray:
        """The frame table, mapped (a dataset of 20 million frames has a 480 MB table)."""
        if self._table is None:
            file = self.path / TABLE_NAME
            self._table = (np.memmap(file, TABLE_DTYPE, mode="r").view(np.ndarray) if file.stat().st_size
                           else np.zeros(0, TABLE_DTYPE))
        return self._table

    def _map(self, shard: int) -> np.ndarray:
        mapped = self._maps.get(shard)
        if mapped is None:
            if not self._maps:
                _reuse_freed_memory()
            # A plain ndarray view of the map: memmap's own __getitem__ costs Python time per slice.
            mapped = np.memmap(self.path / self.shard_names[shard], np.uint8, mode="r").view(np.ndarray)
            self._maps[shard] = mapped
        return mapped

    def _entry(self, instance_id: str, kind: str) -> tuple[int, int, list[int]]:
        try:
            row, n, shape = self.instances[instance_id][kind][:3]
        except (KeyError, TypeError, ValueError):
            raise FparError(f"store {self.path}: no {kind} frames of instance {instance_id}") from None
        return row, n, shape

    def _blob(self, row: int, instance_id: str, kind: str, number: int) -> np.ndarray:
        """The checked bytes of table row ``row`` (frame ``number`` of ``kind`` of ``instance_id``)."""
        shard, length, offset, digest = self.table[row].tolist()
        blob = self._map(shard)[offset: offset + length]
        if len(blob) != length or frame_hash(blob) != digest:
            raise FparError(f"store {self.path}: {self.shard_names[shard]} is damaged (frame {number} of the {kind} "
                            f"frames of {instance_id} fails its checksum): {_rebuild_hint(self.root)}")
        return blob

    def frames(self, instance_id: str, kind: str, numbers: Sequence[int] | None = None) -> np.ndarray:
        """Frames ``numbers`` (1-based; default all) of one kind of an instance, checked and decoded:
        uint8 ``(n, h, w[, 3])`` at the store's resize (for ``raw``, a read-only view of the map)."""
        row, n, shape = self._entry(instance_id, kind)
        numbers = range(1, n + 1) if numbers is None else numbers
        if self.codec == "raw":
            shard, _, offset, _ = self.table[row].tolist()
            size = int(np.prod(shape))
            for k in sorted(set(numbers)):
                self._blob(row + k - 1, instance_id, kind, k)
            return self._map(shard)[offset: offset + n * size].reshape(n, *shape)
        if self.reduced_decode and min(shape[:2]) >= 2 * self.resize:
            return np.stack([self._reduced(self._blob(row + k - 1, instance_id, kind, k), kind, instance_id, k)
                             for k in numbers])
        # decoded straight into one buffer for the clip: no copy of the decoded frames
        decoded = np.empty((len(numbers), *shape), np.uint8)
        for i, k in enumerate(numbers):
            blob = self._blob(row + k - 1, instance_id, kind, k)
            if decode_jpeg(blob, color=kind == "rgb", out=decoded[i]) is None:
                raise FparError(f"store {self.path}: frame {k} of the {kind} frames of {instance_id} is a corrupt JPEG "
                                "(its bytes are the source's, unchanged: check the dataset with `fpar data check`)")
        if min(shape[:2]) == self.resize:
            return decoded
        return np.stack([transforms.resize_short(frame, self.resize) for frame in decoded])

    def _reduced(self, blob: np.ndarray, kind: str, instance_id: str, number: int) -> np.ndarray:
        """A frame decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose short side is still at
        least the resize, then resized as usual (opt-in: not the full decode's pixels)."""
        import simplejpeg

        height, width = simplejpeg.decode_jpeg_header(blob)[:2]
        wanted = {"min_height": self.resize} if height <= width else {"min_width": self.resize}
        try:
            image = simplejpeg.decode_jpeg(blob, colorspace="RGB" if kind == "rgb" else "GRAY", **wanted)
        except ValueError:
            raise FparError(f"store {self.path}: frame {number} of the {kind} frames of {instance_id} is a corrupt "
                            "JPEG (its bytes are the source's, unchanged: check the dataset with `fpar data check`)")
        return transforms.resize_short(image if kind == "rgb" else image[..., 0], self.resize)

    def clip(self, inst: Instance, kind: str, numbers: Sequence[int], draw: transforms.TrainDraw | None,
             crop: int, views: str) -> np.ndarray:
        """Frames ``numbers`` (1-based) of one kind, transformed as ``ClipDataset`` does frame by
        frame: uint8 ``(V, T, h, w[, 3])``, the same bytes, with one crop/resize for the clip."""
        _, n, _ = self._entry(inst.instance_id, kind)
        picked = np.asarray(numbers)
        if picked.min() < 1 or picked.max() > n:
            bad = int(picked.max() if picked.max() > n else picked.min())
            raise FparError(f"{inst.instance_id}: frame {bad} requested but the instance has {n}")
        if self.codec == "raw":
            frames, pick = self.frames(inst.instance_id, kind, picked.tolist()), picked - 1
        else:  # each distinct frame decoded once
            distinct, pick = np.unique(picked, return_inverse=True)
            frames = self.frames(inst.instance_id, kind, distinct.tolist())
        flow_x = kind == "flow_x"
        # The crop windows are cut from the frames before the gather: only they are copied.
        if draw is not None:
            return transforms.train_crop_clip(frames, draw, crop, is_flow_x=flow_x, pick=pick)[None]
        return transforms.eval_views_clip(frames, crop, views, is_flow_x=flow_x, pick=pick)

    def verify(self, index: DatasetIndex | None = None) -> dict:
        """Hash every stored frame and check the index against the frame table (``fpar cache
        --verify``) and, given the dataset's ``index``, against the instances and source files it
        names: :class:`FparError` naming the first damaged shard (and how many of its frames fail)
        or the first swapped, edited or stale entry (and how many there are); else the counts checked."""
        table = self.table
        failing: dict[int, list[int]] = {}
        for row, (shard, length, offset, digest) in enumerate(table.tolist()):
            blob = self._map(shard)[offset: offset + length]
            if len(blob) != length or frame_hash(blob) != digest:
                failing.setdefault(shard, []).append(row)
        if failing:
            shard, rows = next(iter(sorted(failing.items())))
            raise FparError(f"store {self.path}: {self.shard_names[shard]} is damaged ({len(rows)} of its frames fail "
                            f"their checksums): {_rebuild_hint(self.root)}")
        sources = _Sources(index, self.kinds) if index is not None else None
        problems = entry_problems(self.instances, table, self.settings, sources)
        if not problems and index is not None:
            problems = source_file_problems(self.instances, index, list(self.kinds))
        if problems:
            raise _unverified(self.path, problems, self.root)
        return {"frames": len(table), "shards": len(self.shard_names), "bytes": int(table["length"].sum())}


def _unverified(path: Path, problems: list[str], root) -> FparError:
    more = f"; {len(problems) - 1} more" if len(problems) > 1 else ""
    return FparError(f"store {path}: {INDEX_NAME} does not verify ({problems[0]}{more}): {_rebuild_hint(root)}")


def _verified(store: FrameStore, sources: _Sources) -> FrameStore:
    """``store``, once its index agrees with its frame table and the dataset's instances (no
    shard read): training never reads one instance's frames under another's label."""
    problems = entry_problems(store.instances, store.table, store.settings, sources)
    if problems:
        raise _unverified(store.path, problems, store.root)
    return store


def decode_jpeg(data, color: bool, out: np.ndarray | None = None) -> np.ndarray | None:
    """Decode JPEG bytes to uint8 ``(H, W, 3)`` RGB or ``(H, W)`` grey, exactly as
    :func:`fpar.data.frames.decode` does, into ``out`` if given (which must have that shape); None
    if undecodable, or not of ``out``'s shape.

    simplejpeg (libjpeg-turbo) is the fastest decoder measured (docs/data.md, "Dataset store") and
    gives OpenCV's pixels; a JPEG with EXIF data goes to OpenCV, which applies its orientation as
    the image path does."""
    import simplejpeg

    if _has_exif(data):
        from fpar.data.frames import decode

        image = decode(bytes(data), color)
    else:
        try:  # a larger picture than ``out`` is a ValueError, a smaller one is caught below
            image = simplejpeg.decode_jpeg(data, colorspace="RGB" if color else "GRAY", buffer=out)
        except ValueError:
            return None
        image = image if color else image[..., 0]
    if out is None or image is None:
        return image
    if image.shape != out.shape:
        return None
    if image.ctypes.data != out.ctypes.data:
        out[...] = image
    return out


def _has_exif(data) -> bool:
    """Whether a JPEG carries an EXIF segment among the APPn segments before its image data."""
    at = 2
    while at + 10 <= len(data) and data[at] == 0xFF and 0xE0 <= data[at + 1] <= 0xEF:
        if data[at + 1] == 0xE1 and bytes(data[at + 4:at + 10]) == b"Exif\x00\x00":
            return True
        at += 2 + (data[at + 2] << 8 | data[at + 3])
    return False


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


def _settings_for(resize: int, kinds: Sequence[str]) -> dict:
    """What a reader needs of a store (any codec)."""
    return {"format": FORMAT_VERSION, "resize": resize, "kinds": list(kinds), "codec": None, "quality": None,
            "reduced_decode": None}


def open_store(index: DatasetIndex, path: str | Path | None = None, *, resize: int,
               modalities: Sequence[str]) -> FrameStore:
    """Open the store at ``path`` (default: :func:`default_store_path`) for ``index``'s dataset,
    refusing (one line) one that is missing, damaged, built with other settings or from other files
    than the dataset holds now. Checking costs one ``stat`` per source file."""
    path = Path(path) if path else default_store_path(index.root, resize)
    kinds = kinds_for(modalities)
    sources = _Sources(index, kinds)
    problem, meta = _checked(path, _settings_for(resize, kinds), sources, explicit_codec=False)
    if problem:
        raise _open_problem(path, index.root, problem)
    return _verified(FrameStore(path, index.root, checked=meta), sources)


def ensure_store(index: DatasetIndex, path: str | Path | None, *, resize: int, modalities: Sequence[str]) -> FrameStore:
    """Build the store when it is missing or out of date (first use), then open it. A damaged store
    is not rebuilt behind the user's back: that is one line saying how to rebuild it."""
    path = Path(path) if path else default_store_path(index.root, resize)
    kinds = kinds_for(modalities)
    _claim(path)
    if any(_parts(path)):  # rebuilding here would delete parts other machines are writing
        raise FparError(f"store {path} is being built in parts: finish them with `fpar cache {index.root} "
                        "--shard K/N`")
    sources = _Sources(index, kinds)
    problem, meta = _checked(path, _settings_for(resize, kinds), sources, explicit_codec=False)
    if problem is None:
        return _verified(FrameStore(path, index.root, checked=meta), sources)
    if not problem.startswith("is damaged"):
        # Every kind the dataset has, so that a later config with other modalities reuses it.
        build_store(index.root, path, resize=resize, rebuild=True, index=index)
    return open_store(index, path, resize=resize, modalities=modalities)


def store_problems(root: str | Path, layout: str = "auto") -> list[Problem]:
    """Every frame of every store kept in the dataset at ``root`` (its ``.fpar-store`` folders)
    checked against its checksum, and its index against the dataset (``fpar data check --deep``):
    one :class:`Problem` per store that cannot be read as it is (damaged, out of date, half built,
    or an index that does not verify)."""
    root = Path(root)
    parent = (root.parent if root.is_file() else root) / ".fpar-store"
    prefix = f"{root.stem}-r" if root.is_file() else "r"
    problems = []
    folders = sorted(p for p in parent.iterdir() if p.is_dir() and p.name.startswith(prefix)) if parent.is_dir() else []
    try:
        index = load_index(root, layout) if folders else None
    except FparError:
        index = None  # the dataset's own problems are reported by the check itself
    for folder in folders:
        try:
            FrameStore(folder, root).verify(index)
        except FparError as exc:
            reason = str(exc).removeprefix(f"store {folder}").lstrip(": ")
            problems.append(Problem(str(folder), reason))
    return problems

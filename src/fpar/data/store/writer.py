"""Building a store: frames read, resized or packed as published, appended to shards instance by
instance, with progress committed so that a killed build resumes to the same bytes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from fpar.data import transforms
from fpar.data.frames import check_pixels, image_problem, image_size, read_frame
from fpar.data.layouts import FILE_KINDS, DatasetIndex, Instance, load_index
from fpar.data.store.format import (CODECS, ENTRIES_NAME, FORMAT_VERSION, HEADER_BYTES, INDEX_NAME, MAGIC,
                                    MERGE_NAME, PROGRESS_NAME, RAW_LIMIT_BYTES, SHARD_BYTES, SHARD_SUFFIX,
                                    SOURCES_NAME, TABLE_DTYPE, TABLE_NAME, _OLD_FILES, _build_lock, _claim, _digest,
                                    _rebuild_hint, _shard_files, default_store_path, digest_of_hashes, entry_seals,
                                    frame_hash, padded_shape,
                                    kinds_for)
from fpar.data.store.parts import (_merge_parts, _part_count, _part_dir, _parts, _parts_finished, _remove_parts,
                                   part_instances)
from fpar.data.store.sources import _read_bytes, _Sources, _state, choose_codec
from fpar.errors import FparError
from fpar.io import WRITE_ERRNOS, write_text
from fpar.progress import bar as progress_bar

# A build records how far it got (fsync + progress.json) at most this often: a killed build redoes
# at most that much work, and a dataset of 90,000 short instances is not fsynced 90,000 times
COMMIT_SECONDS = 1.0


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
    codec: str = "auto",
    quality: int | None = None,
    shard: tuple[int, int] | None = None,
    shard_bytes: int = SHARD_BYTES,
    raw_limit: int = RAW_LIMIT_BYTES,
    reduced_decode: bool = False,
) -> Path:
    """Build (or finish, or check) the store of the dataset at ``root``; return its folder.

    ``modalities`` (default: every modality the dataset has) choose the file kinds stored.
    ``codec``: ``raw``, ``jpeg`` or ``auto`` (:func:`choose_codec`); ``quality`` (1-100) re-encodes
    every frame as a JPEG of that quality after resizing (lossy), else a ``jpeg`` store packs the
    source JPEGs as published. ``shard=(K, N)`` builds part K of N (the K-th contiguous N-th of the
    instances) in ``part-K-of-N/``; when all N parts are finished they are merged into the store.
    ``reduced_decode`` (jpeg, opt-in): frames at least twice ``resize`` are decoded at a reduced
    size by the JPEG decoder's DCT scaling before the resize: much faster for large frames, but
    not the pixels of a full decode and bilinear resize that the image files give.
    An up-to-date, intact store is left as it is. A store built from other files or settings, or a
    damaged one, is an error unless ``rebuild`` (which always rebuilds); an interrupted build
    resumes from its last whole instance and ends in the same bytes as an uninterrupted one.
    Another process building the same store is an error.
    """
    index = index or load_index(root, layout)
    path = Path(path) if path else default_store_path(index.root, resize)
    if quality is not None and not 1 <= quality <= 100:
        raise FparError(f"JPEG quality must be between 1 and 100, not {quality}")
    if quality is not None and codec == "raw":
        raise FparError("a JPEG quality is for the jpeg codec, not raw")
    present = tuple(k for k in FILE_KINDS if any(inst.frames(k) for inst in index.instances))
    kinds = kinds_for(modalities) if modalities else present
    if codec == "auto":
        asked_jpeg = quality is not None or reduced_decode
        codec = "jpeg" if asked_jpeg else choose_codec(index, kinds, resize, raw_limit=raw_limit)
    if codec not in CODECS:
        raise FparError(f"unknown store codec {codec!r} (choose auto, {', '.join(CODECS)})")
    if reduced_decode and codec != "jpeg":
        raise FparError("reduced-size decoding is for the jpeg codec")
    settings = {"format": FORMAT_VERSION, "codec": codec, "resize": resize, "kinds": list(kinds), "quality": quality,
                "reduced_decode": reduced_decode}
    _claim(path)
    sources = _Sources(index, kinds)
    if shard is not None:
        if not (path / MERGE_NAME).is_file():  # a merge under way: the parts are done
            # only the part's own lock while building: the other parts build at the same time
            _build_part(path, index, settings, sources, shard, rebuild, progress, shard_bytes)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(_build_lock(path))
            except FparError:
                return path  # another part is merging, or checking whether it can: it, or the next run, merges
            _merge_parts(path, settings, sources, shard[1], index.root)
        return path
    with _build_lock(path):
        if rebuild:
            _remove_parts(path)
        elif (path / MERGE_NAME).is_file() or any(_parts(path)):
            count = _part_count(path)
            if _merge_parts(path, settings, sources, count, index.root):
                return path
            raise FparError(f"store {path} is being built in {count} parts ({_parts_finished(path, count)} finished): "
                            f"finish them with `fpar cache {index.root} --shard K/{count}`, or build it whole "
                            "with --rebuild")
        problem = _state(path, settings, sources, explicit_codec=True)
        if problem is None and not rebuild:
            return path
        if problem not in (None, "missing") and not rebuild:
            raise FparError(f"store {path} {problem}: {_rebuild_hint(index.root)}")
        _write(path, index.instances, settings, sources, index.root, progress, shard_bytes, part=None)
    return path


def _build_part(path: Path, index: DatasetIndex, settings: dict, sources: _Sources, shard: tuple[int, int],
                rebuild: bool, progress: bool, shard_bytes: int) -> None:
    k, n = shard
    part = _part_dir(path, k, n)
    _claim(part)
    with _build_lock(part):
        problem = _state(part, settings, sources, explicit_codec=True)
        if problem is None and not rebuild:
            return
        if problem not in (None, "missing") and not rebuild:
            raise FparError(f"store part {part} {problem}: {_rebuild_hint(index.root)} --shard {k}/{n}")
        _write(part, part_instances(index.instances, k, n), settings, sources, index.root, progress, shard_bytes,
               part=(k, n))


class _Writer:
    """Appends frames to the shards and rows to the frame table; every OS error names its file."""

    def __init__(self, path: Path, done: dict, shard_bytes: int) -> None:
        self.path, self.done, self.shard_bytes = path, done, shard_bytes
        self.table = self._open(path / TABLE_NAME, done["rows"] * TABLE_DTYPE.itemsize)
        self.entries = self._open(path / ENTRIES_NAME, done["entries_end"])
        self.shard = None
        if done["shards"]:
            name, end, _ = done["shards"][-1]
            self.shard = self._open(path / name, end)
        self.shard_file = path / done["shards"][-1][0] if done["shards"] else None

    def _open(self, file: Path, end: int):
        """``file`` opened for appending after byte ``end`` (what follows is cut off); never through a link."""
        with self.failing(file):
            fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            handle = os.fdopen(fd, "r+b")
            handle.truncate(end)
            handle.seek(end)
        return handle

    @contextlib.contextmanager
    def failing(self, file: Path) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            reason = "is a symbolic link" if exc.errno == errno.ELOOP else WRITE_ERRNOS.get(exc.errno)
            if reason is None:
                raise
            raise FparError(f"cannot write {file}: {reason}") from None

    def start_shard_if_full(self) -> None:
        if self.shard is not None and self.shard.tell() < self.shard_bytes:
            return
        if self.shard is not None:
            self.close_shard()
        number = len(self.done["shards"])
        name = f"shard-{number:05d}{SHARD_SUFFIX}"
        shard_id = hashlib.blake2b(f"{self.done['digest']}/{number}".encode(), digest_size=16).hexdigest()
        self.shard, self.shard_file = self._open(self.path / name, 0), self.path / name
        with self.failing(self.path / name):
            self.shard.write(MAGIC + FORMAT_VERSION.to_bytes(4, "little") + bytes.fromhex(shard_id)
                             + bytes(HEADER_BYTES - len(MAGIC) - 4 - 16))
        self.done["shards"].append([name, HEADER_BYTES, shard_id])

    def close_shard(self) -> None:
        """Close the full shard, its end recorded and its bytes on disk (the next commit names only the new one)."""
        with self.failing(self.shard_file):
            self.shard.flush()
            os.fsync(self.shard.fileno())
            self.done["shards"][-1][1] = self.shard.tell()
            self.shard.close()

    def append(self, blobs: Iterable[bytes]) -> tuple[int, np.ndarray]:
        """Append frames to the current shard and their rows to the table; the first row's number and
        the rows' checksums."""
        first = self.done["rows"]
        number = len(self.done["shards"]) - 1
        rows = []
        for blob in blobs:
            with self.failing(self.shard_file):
                offset = self.shard.tell()
                self.shard.write(blob)
            rows.append((number, len(blob), offset, frame_hash(blob)))
        table = np.array(rows, TABLE_DTYPE)
        with self.failing(self.path / TABLE_NAME):
            self.table.write(table.tobytes())
        self.done["rows"] += len(rows)
        return first, table["digest"]

    def add_entry(self, instance_id: str, entry: dict) -> None:
        with self.failing(self.path / ENTRIES_NAME):
            self.entries.write(json.dumps([instance_id, entry], separators=(",", ":")).encode() + b"\n")
        self.done["instances"] += 1

    def commit(self) -> None:
        """Flush and fsync, then record the ends in ``progress.json``: a resumed build cuts back to them."""
        for handle, file in ((self.shard, self.shard_file), (self.table, self.path / TABLE_NAME),
                             (self.entries, self.path / ENTRIES_NAME)):
            with self.failing(file):
                handle.flush()
                os.fsync(handle.fileno())
        self.done["shards"][-1][1] = self.shard.tell()
        self.done["entries_end"] = self.entries.tell()
        write_text(self.path / PROGRESS_NAME, json.dumps(self.done))

    def close(self) -> None:
        for handle in (self.shard, self.table, self.entries):
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()


def _write(path: Path, instances: Sequence[Instance], settings: dict, sources: _Sources, root,
           progress: bool, shard_bytes: int, part: tuple[int, int] | None) -> None:
    """Write the frames instance by instance, then commit ``index.json`` last.

    ``progress.json`` (replaced atomically at most every :data:`COMMIT_SECONDS`, after an
    instance) records how many instances are finished and where the shards, the table and
    ``entries.jsonl`` end; a resumed build cuts the files back to those ends, so the instances
    written after the last commit are written again. Progress costs the same per instance however
    many there are.
    """
    import time

    kinds = settings["kinds"]
    digest = _digest(settings, sources.digests, [i.instance_id for i in instances], part)
    done = _resume_point(path, digest)
    (path / INDEX_NAME).unlink(missing_ok=True)  # from here on no reader takes the store as finished
    total = sum(len(inst.frames(k)) for inst in instances for k in kinds)
    finished = sum(len(inst.frames(k)) for inst in instances[: done["instances"]] for k in kinds)
    writer = _Writer(path, done, shard_bytes)
    try:
        with progress_bar(total=total, initial=finished, unit="frame", desc=f"store {path.name}",
                          progress=progress) as bar:
            last_commit = time.monotonic()
            for inst in instances[done["instances"]:]:
                writer.start_shard_if_full()
                entry = {}
                for kind in kinds:
                    blobs, shape, files = _encoded_frames(inst, kind, settings)
                    row, hashes = writer.append(blobs)
                    entry[kind] = [row, len(inst.frames(kind)), shape, sources.of_instance[inst.instance_id][kind],
                                   files, _seal(hashes, shape)]
                    bar.update(len(inst.frames(kind)))
                writer.add_entry(inst.instance_id, entry)
                if time.monotonic() - last_commit >= COMMIT_SECONDS:
                    writer.commit()
                    last_commit = time.monotonic()
            if writer.shard is None:  # no instance at all: still one (empty) shard
                writer.start_shard_if_full()
            writer.commit()
    finally:
        writer.close()
    entries = dict(json.loads(line) for line in (path / ENTRIES_NAME).read_text().splitlines())
    table_bytes = (path / TABLE_NAME).read_bytes()
    meta = {"settings": settings, "root": str(root), "part": list(part) if part else None, "digest": digest,
            "shards": [[name, end, shard_id] for name, end, shard_id in done["shards"]],
            "table": [TABLE_NAME, done["rows"], f"{frame_hash(table_bytes):016x}"],
            "instances": entries, "sources": sources.digests}
    sources.write(path / SOURCES_NAME)
    write_text(path / INDEX_NAME, json.dumps(meta, separators=(",", ":")))
    (path / PROGRESS_NAME).unlink()
    (path / ENTRIES_NAME).unlink()


def _seal(hashes: np.ndarray, shape: list[int]) -> str:
    seal = entry_seals(hashes, np.zeros(1, np.int64), np.array([len(hashes)]), np.array([padded_shape(shape)]))
    return f"{int(seal[0]):016x}"


def _resume_point(path: Path, digest: str) -> dict:
    """The progress of an interrupted build of the same sources and settings, else a fresh start
    (the previous store's files removed: only names a store writes, never anything else)."""
    try:
        done = json.loads((path / PROGRESS_NAME).read_text())
        resumable = done.get("digest") == digest and all(
            (path / name).is_file() and not (path / name).is_symlink() and (path / name).stat().st_size >= end
            for name, end, _ in done["shards"]) and all(
            (path / name).is_file() and not (path / name).is_symlink() and (path / name).stat().st_size >= end
            for name, end in ((TABLE_NAME, done["rows"] * TABLE_DTYPE.itemsize), (ENTRIES_NAME, done["entries_end"])))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        resumable = False
    if resumable:
        for extra in _shard_files(path)[len(done["shards"]):]:
            extra.unlink()
        return done
    for old in [*_shard_files(path), path / TABLE_NAME, path / ENTRIES_NAME, *(path / name for name in _OLD_FILES)]:
        # Unlinked, not truncated: a reader still mapping the old file keeps its pages.
        old.unlink(missing_ok=True)
    return {"digest": digest, "instances": 0, "shards": [], "rows": 0, "entries_end": 0}


def _encoded_frames(inst: Instance, kind: str, settings: dict) -> tuple[list[bytes], list[int], str]:
    """The bytes stored for every frame of one kind of ``inst``, their decoded shape ``[h, w(, 3)]``
    and the digest of the source files' bytes (as :mod:`~fpar.data.store.verify` recomputes it)."""
    color = kind == "rgb"
    if settings["codec"] == "jpeg" and settings["quality"] is None:
        blobs, source = [], None
        for path in inst.frames(kind):
            data = _read_bytes(path)
            problem = image_problem(data)
            size = image_size(data)
            if not data.startswith(b"\xff\xd8") or size is None:
                raise FparError(f"{path}: not a JPEG, so it cannot be packed as published; build the store with "
                                "--codec raw, or re-encode with --quality Q (lossy)")
            if problem:
                raise FparError(f"{path}: {problem}")
            check_pixels(*size, path)
            source = _same_size(inst, path, size[::-1], source)
            blobs.append(data)
        return blobs, [*source, 3] if color else list(source), digest_of_hashes([frame_hash(b) for b in blobs])
    blobs, source, shape, hashes = [], None, None, []
    for path in inst.frames(kind):
        image = read_frame(path, color=color)
        hashes.append(frame_hash(_read_bytes(path)))  # read again from the page cache: decoding dwarfs it
        # compared before resizing: a frame twice the size of the others would resize to the same
        # shape and slip into the clips unnoticed (``fpar data check`` reports it)
        source = _same_size(inst, path, image.shape[:2], source)
        image = np.ascontiguousarray(transforms.resize_short(image, settings["resize"]))
        shape = shape or list(image.shape)
        blobs.append(image.tobytes() if settings["codec"] == "raw" else _encode_jpeg(image, settings["quality"], path))
    return blobs, shape, digest_of_hashes(hashes)


def _same_size(inst: Instance, path, size: tuple[int, int], first: tuple[int, int] | None) -> tuple[int, int]:
    if first is not None and tuple(size) != tuple(first):
        raise FparError(f"instance {inst.instance_id}: {path}: frame is {size[1]}x{size[0]}, "
                        f"the instance's others {first[1]}x{first[0]} (frames of one instance must share one size)")
    return tuple(size)


def _encode_jpeg(image: np.ndarray, quality: int, path) -> bytes:
    import cv2

    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise FparError(f"{path}: cannot encode as JPEG")
    return data.tobytes()

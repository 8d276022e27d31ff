"""The dataset store: every frame packed once into a few large shard files, checked, memory-mapped.

Why: decoding a PNG and resizing it costs far more than cropping it, opening one file per frame
costs a system call or three (millions of files hit file-count limits), and an in-memory
:class:`~fpar.data.frames.FrameCache` is one private copy per DataLoader worker, capped, and lost
with the worker. The store packs the frames once (``fpar cache``) into shards that every worker
maps read-only, so the kernel's page cache holds one copy for all of them (and for every later
run), pages are read on demand, and a store larger than RAM works. Two codecs (docs/data.md,
"Dataset store"):

* ``raw``: the frames decoded and resized to the short side ``resize``, as uint8 pixels. A clip is
  a gather of crop windows from the map: the fastest to read, and the largest (262 KB a 256x341
  RGB frame): for datasets of a few GB to a few tens of GB.
* ``jpeg``: JPEG bytes, the frames as published when the source frames are JPEGs (the store is
  then the size of the JPEGs it packs), or re-encoded at a stated quality after resizing (lossy,
  opt-in). A clip decodes only its picked frames.

Layout of a store folder::

    index.json         settings, the digests of the source files it was built from, its shards and
                       frame table, instance -> kind -> [first table row, n, h, w(, 3)]; written last
    sources.jsonl      the source files: [kind, path relative to the dataset, size, mtime_ns] each
    frames.tbl         one row per stored frame: shard, offset, length, xxh3-64 of its bytes
    shard-00000.fpk    a 64-byte header (magic, format, the shard's id), then frames back to back;
                       an instance's frames never straddle two shards
    progress.json      while building: how far the files are written (removed when done)
    entries.jsonl      while building: the index entries of the instances written
    part-K-of-N/       while building in parts (``--shard K/N``): one part's store, merged when all are done
    build.lock         held by the process that builds or merges

Integrity (docs/reliability.md): opening a store checks that every shard has its recorded size
and header and that the frame table has its recorded hash (about 50 ms per GB of table); every
frame read is checked against its hash (xxh3, ~20 GB/s: a few percent of a JPEG decode, about
a fifth of a raw clip's time); :meth:`FrameStore.verify` (``fpar cache --verify``) hashes them all.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from fpar.data import transforms
from fpar.data.frames import check_pixels, image_problem, image_size, read_frame
from fpar.data.layouts import FILE_KINDS, FILE_KINDS_OF_MODALITY, DatasetIndex, Instance, Problem, load_index
from fpar.errors import FparError
from fpar.io import WRITE_ERRNOS, exclusive_lock, refuse_link, write_bytes, write_text
from fpar.progress import bar as progress_bar

FORMAT_VERSION = 2
# How frames are packed; ``auto`` (the default of ``fpar cache`` and ``data.store``) chooses by size
CODECS = ("raw", "jpeg")
# ``auto`` packs JPEG sources as JPEG once a raw store would be larger than this: beyond it a raw
# store no longer fits the page cache of a usual training machine, and reading it is disk-bound
RAW_LIMIT_BYTES = 32 << 30
SHARD_BYTES = 4 << 30  # a new shard starts after an instance that takes the current one past this
# A build records how far it got (fsync + progress.json) at most this often: a killed build redoes
# at most that much work, and a dataset of 90,000 short instances is not fsynced 90,000 times
COMMIT_SECONDS = 1.0
INDEX_NAME = "index.json"
TABLE_NAME = "frames.tbl"
PROGRESS_NAME = "progress.json"
ENTRIES_NAME = "entries.jsonl"  # while building: one line per instance written
SOURCES_NAME = "sources.jsonl"
MERGE_NAME = "merge.json"
LOCK_NAME = "build.lock"
SHARD_SUFFIX = ".fpk"
MAGIC = b"FPARSTOR"
HEADER_BYTES = 64
TABLE_DTYPE = np.dtype([("shard", "<u4"), ("length", "<u4"), ("offset", "<u8"), ("digest", "<u8")])
_JPEG_NAMES = (".jpg", ".jpeg")
# Files of a format-1 store (one flat file per kind), removed when such a store is rebuilt
_OLD_FILES = tuple(f"{kind}.u8" for kind in FILE_KINDS)


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


def frame_hash(data) -> int:
    """The checksum of one stored frame's bytes: xxh3-64, fast enough to check every read."""
    import xxhash

    return xxhash.xxh3_64_intdigest(data)


class _Sources:
    """The files a store is built from: per kind, ``[path relative to the dataset, size, mtime_ns]`` of
    every frame file, in the instances' order. Only their digests go into ``index.json`` (one
    ``stat`` per file, hashed as it goes: no list of 20 million rows in memory or in the index); the
    rows themselves into ``sources.jsonl``, read only to name what changed."""

    def __init__(self, index: DatasetIndex, kinds: Sequence[str]) -> None:
        self.index, self.kinds = index, tuple(kinds)
        self.base = index.root.parent if index.root.is_file() else index.root
        hashes = {kind: hashlib.sha256() for kind in self.kinds}
        for kind, line in self.lines():
            hashes[kind].update(line)
        self.digests = {kind: h.hexdigest() for kind, h in hashes.items()}

    def lines(self, kinds: Sequence[str] | None = None) -> Iterator[tuple[str, bytes]]:
        for inst in self.index.instances:
            for kind in kinds or self.kinds:
                for path in inst.frames(kind):
                    try:
                        st = os.stat(path)
                    except OSError as exc:
                        raise FparError(f"{path}: cannot read frame ({exc.strerror or exc})") from None
                    row = [kind, os.path.relpath(path, self.base), st.st_size, st.st_mtime_ns]
                    yield kind, json.dumps(row).encode() + b"\n"

    def write(self, file: Path) -> None:
        from fpar.io import atomic_path

        with atomic_path(file) as tmp, open(tmp, "wb") as out:
            for _, line in self.lines():
                out.write(line)

    def first_difference(self, recorded_file: Path, kind: str) -> str:
        """What differs between the ``kind`` files recorded in ``recorded_file`` and the dataset's now."""
        try:
            with open(recorded_file, "rb") as rows:
                old = {row[1]: row for row in map(json.loads, rows) if row[0] == kind}
        except (OSError, ValueError, IndexError, TypeError):
            return f"its list of source files ({recorded_file.name}) is unreadable"
        new = set()
        for _, line in self.lines((kind,)):
            row = json.loads(line)
            new.add(row[1])
            if row[1] not in old:
                return f"{row[1]} is new"
            if old[row[1]] != row:
                return f"{row[1]} changed since the store was built"
        gone = next((name for name in old if name not in new), None)
        return f"{gone} is gone" if gone else "the frames are listed in another order"


def _digest(*parts) -> str:
    text = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _build_lock(path: Path) -> contextlib.AbstractContextManager:
    """The lock that keeps two builders off one store; a second builder gets one line naming the holder."""
    return exclusive_lock(path / LOCK_NAME, f"store {path} (being built by another process)")


def _rebuild_hint(root) -> str:
    return f"rebuild it with `fpar cache {root} --rebuild`"


# --- choosing the codec ------------------------------------------------------------------------


def choose_codec(index: DatasetIndex, kinds: Sequence[str], resize: int, *,
                 raw_limit: int = RAW_LIMIT_BYTES) -> str:
    """``auto``'s choice: ``jpeg`` when every frame stored is a JPEG and the raw store would be larger
    than ``raw_limit`` bytes, else ``raw``. Never a lossy choice: JPEGs are then packed as published.
    The raw size comes from one header per instance and kind (the frames of one share a size)."""
    total = 0
    for inst in index.instances:
        for kind in kinds:
            files = inst.frames(kind)
            if not files:
                continue
            if any(Path(f).suffix.lower() not in _JPEG_NAMES for f in files):
                return "raw"
            size = image_size(_read_bytes(files[0]))
            if size is None:
                return "raw"
            w, h = size
            short = min(w, h)
            total += len(files) * (resize * resize * max(w, h) // short) * (3 if kind == "rgb" else 1)
    return "jpeg" if total > raw_limit else "raw"


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


def _claim(path: Path) -> None:
    """Make the store folder, refusing one that holds files no store writes: a build deletes and
    replaces its own files, and must never do so to someone else's (a mistyped ``data.store``, a
    planted link)."""
    refuse_link(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FparError(f"cannot write {path}: {WRITE_ERRNOS.get(exc.errno, exc.strerror or exc)}") from None
    if not path.is_dir():
        raise FparError(f"store {path} is a file, not a folder")
    entries = list(path.iterdir())
    index_file = path / INDEX_NAME
    # a format-1 store's files are its own only beside its index
    old_store = index_file.is_file() and not index_file.is_symlink() and _is_our_index(index_file)
    foreign = sorted(p.name for p in entries if not _ours(p) or (p.name in _OLD_FILES and not old_store))
    store_files = [p for p in entries if _ours(p) and p.name not in (INDEX_NAME, *_OLD_FILES)
                   and not p.name.startswith(LOCK_NAME)]
    if index_file.is_file() and not store_files and not old_store:
        foreign.append(INDEX_NAME)  # an index.json alone, not a store's
    if foreign:
        raise FparError(f"store folder {path} holds files that are not a store's ({', '.join(foreign[:3])}"
                        f"{', ...' if len(foreign) > 3 else ''}); fpar builds a store only in an empty folder "
                        "or a store's: give another folder")


def _ours(entry: Path) -> bool:
    name = entry.name
    if entry.is_symlink():
        return False
    if name in (INDEX_NAME, TABLE_NAME, PROGRESS_NAME, ENTRIES_NAME, SOURCES_NAME, MERGE_NAME, *_OLD_FILES) \
            or name.startswith(LOCK_NAME):
        return entry.is_file()
    if name.startswith("shard-") and name.endswith(SHARD_SUFFIX):
        return entry.is_file()
    if name.startswith("part-") and "-of-" in name:
        return entry.is_dir()
    return name.startswith(".") and name.endswith(".tmp")  # a killed atomic write's temporary


def _is_our_index(index_file: Path) -> bool:
    try:
        meta = json.loads(index_file.read_text())
        return isinstance(meta, dict) and isinstance(meta.get("settings"), dict) and "format" in meta["settings"]
    except (OSError, ValueError, UnicodeDecodeError):
        return False


def _state(path: Path, settings: dict, sources: _Sources, *, explicit_codec: bool) -> str | None:
    """None if the store at ``path`` is finished, intact (sizes, headers, table hash) and was built
    from exactly ``sources`` with ``settings``; else why not, as words after "store PATH"
    (``"missing"`` when there is no finished store). ``explicit_codec``: the codec and quality
    asked for must be the store's (else any codec will do)."""
    return _checked(path, settings, sources, explicit_codec=explicit_codec)[0]


def _checked(path: Path, settings: dict, sources: _Sources, *,
             explicit_codec: bool) -> tuple[str | None, dict]:
    """:func:`_state`'s answer and the store's index (checked once: opening a store of 20 million
    frames reads and hashes a 480 MB table)."""
    meta, problem = _inspect(path)
    if problem:
        return problem, meta
    return _difference(path, meta, settings, sources, explicit_codec), meta


def _difference(path: Path, meta: dict, settings: dict, sources: _Sources, explicit_codec: bool) -> str | None:
    built = meta["settings"]
    keys = ("resize", "codec", "quality", "reduced_decode") if explicit_codec else ("resize",)
    for key in keys:
        if built.get(key) != settings[key]:
            return f"is out of date (built with {key} {built.get(key)}, wanted {settings[key]})"
    for kind, digest in sources.digests.items():
        recorded = meta["sources"].get(kind)
        if recorded is None:
            return f"is out of date (it holds no {kind} frames)"
        if recorded != digest:
            return f"is out of date ({sources.first_difference(path / SOURCES_NAME, kind)})"
    return None


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

    def append(self, blobs: Iterable[bytes]) -> int:
        """Append frames to the current shard and their rows to the table; the first row's number."""
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
        return first

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
                    blobs, shape = _encoded_frames(inst, kind, settings)
                    row = writer.append(blobs)
                    entry[kind] = [row, len(inst.frames(kind)), *shape]
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


def _shard_files(path: Path) -> list[Path]:
    return sorted(p for p in path.glob(f"shard-*{SHARD_SUFFIX}") if _ours(p))


def _encoded_frames(inst: Instance, kind: str, settings: dict) -> tuple[list[bytes], list[int]]:
    """The bytes stored for every frame of one kind of ``inst``, and their decoded shape ``[h, w(, 3)]``."""
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
        return blobs, [*source, 3] if color else list(source)
    blobs, source, shape = [], None, None
    for path in inst.frames(kind):
        image = read_frame(path, color=color)
        # compared before resizing: a frame twice the size of the others would resize to the same
        # shape and slip into the clips unnoticed (``fpar data check`` reports it)
        source = _same_size(inst, path, image.shape[:2], source)
        image = np.ascontiguousarray(transforms.resize_short(image, settings["resize"]))
        shape = shape or list(image.shape)
        blobs.append(image.tobytes() if settings["codec"] == "raw" else _encode_jpeg(image, settings["quality"], path))
    return blobs, shape


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


def _read_bytes(path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FparError(f"{path}: cannot read frame ({exc.strerror or exc})") from None


# --- building in parts -------------------------------------------------------------------------


def _part_dir(path: Path, k: int, n: int) -> Path:
    return path / f"part-{k}-of-{n}"


def _parts(path: Path) -> list[Path]:
    return sorted(p for p in path.glob("part-*-of-*") if _ours(p))


def _part_count(path: Path) -> int:
    try:
        return int(json.loads((path / MERGE_NAME).read_text())["count"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    counts = {p.name.rsplit("-of-", 1)[1] for p in _parts(path)}
    if len(counts) != 1 or not next(iter(counts)).isdigit():
        raise FparError(f"store {path} holds parts of different builds ({', '.join(p.name for p in _parts(path))}): "
                        "rebuild it with --rebuild")
    return int(next(iter(counts)))


def _parts_finished(path: Path, count: int) -> int:
    return sum((_part_dir(path, k, count) / INDEX_NAME).is_file() for k in range(1, count + 1))


def _remove_parts(path: Path) -> None:
    """Remove the parts of a build in parts (each under its lock: never one being written)."""
    for part in _parts(path):
        with _build_lock(part):
            for entry in part.iterdir():
                if not entry.name.startswith(LOCK_NAME):
                    entry.unlink()  # our own files (a store part holds no folders); a link is unlinked, not followed
        shutil.rmtree(part)
    (path / MERGE_NAME).unlink(missing_ok=True)


def part_instances(instances: Sequence[Instance], k: int, n: int) -> list[Instance]:
    """Part ``k`` of ``n`` (1-based): a contiguous run of the instances, so merged parts keep their order."""
    count = len(instances)
    return list(instances[(k - 1) * count // n: k * count // n])


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


def _merge_parts(path: Path, settings: dict, sources: _Sources, count: int, root) -> bool:
    """Merge the ``count`` parts into the store when all are finished (True), else False.

    The plan (``merge.json``) is written first; then each part's shards are renamed into the store
    (no data is copied), the tables concatenated and ``index.json`` written last. A merge that is
    killed is finished by the next ``fpar cache``.
    """
    plan_file = path / MERGE_NAME
    try:
        plan = json.loads(plan_file.read_text())
    except (OSError, ValueError):
        plan = None
    if plan is None:
        metas = []
        for k in range(1, count + 1):
            part = _part_dir(path, k, count)
            if not (part / INDEX_NAME).is_file():
                return False
            meta, problem = _inspect(part)
            if problem:
                raise FparError(f"store part {part} {problem}: {_rebuild_hint(root)} --shard {k}/{count}")
            if meta["settings"] != settings or meta["sources"] != sources.digests or meta.get("part") != [k, count]:
                raise FparError(f"store part {part} was built from other files or settings than the dataset and "
                                f"this build have now: {_rebuild_hint(root)} --shard {k}/{count}")
            metas.append(meta)
        for old in [*_shard_files(path), path / TABLE_NAME, path / INDEX_NAME]:
            old.unlink(missing_ok=True)
        # every part records the whole dataset's sources: the first part's list serves the store
        moves, shards, instances, row_base, renumber = [[f"{_part_dir(path, 1, count).name}/{SOURCES_NAME}",
                                                         SOURCES_NAME]], [], {}, 0, []
        for k, meta in enumerate(metas, 1):
            renumber.append([])  # part k's shard i becomes the store's shard renumber[k - 1][i]
            for name, size, shard_id in meta["shards"]:
                renumber[-1].append(len(shards))
                new_name = f"shard-{len(shards):05d}{SHARD_SUFFIX}"
                moves.append([f"{_part_dir(path, k, count).name}/{name}", new_name])
                shards.append([new_name, size, shard_id])
            for instance_id, entry in meta["instances"].items():
                instances[instance_id] = {kind: [row + row_base, *rest] for kind, (row, *rest) in entry.items()}
            row_base += meta["table"][1]
        plan = {"count": count, "moves": moves, "renumber": renumber,
                "meta": {"settings": settings, "root": str(root), "part": None,
                         "digest": _digest(settings, sources.digests, list(instances), None), "shards": shards,
                         "table": [TABLE_NAME, row_base, None], "instances": instances,
                         "sources": sources.digests}}
        write_text(plan_file, json.dumps(plan, separators=(",", ":")))
    tables = []
    for k in range(1, count + 1):
        table = np.fromfile(_part_dir(path, k, count) / TABLE_NAME, TABLE_DTYPE)
        table["shard"] = np.asarray(plan["renumber"][k - 1], np.uint32)[table["shard"]]
        tables.append(table)
    table_bytes = np.concatenate(tables).tobytes() if tables else b""
    for source, target in plan["moves"]:
        if (path / source).is_file():
            os.replace(path / source, path / target)
    write_bytes(path / TABLE_NAME, table_bytes)
    meta = plan["meta"]
    meta["table"][2] = f"{frame_hash(table_bytes):016x}"
    write_text(path / INDEX_NAME, json.dumps(meta, separators=(",", ":")))
    _remove_parts(path)
    return True


# --- reading -----------------------------------------------------------------------------------


def _inspect(path: Path) -> tuple[dict, str | None]:
    """A store's index, and why the store cannot be read as it is (None when it is finished and
    intact): ``"missing"``, ``"is out of date (...)"`` or ``"is damaged (...)"``. The checks on
    open: ``index.json`` well formed, every shard present with its recorded size and header, the
    frame table with its recorded size and hash."""
    index_file = path / INDEX_NAME
    if not index_file.exists() and not index_file.is_symlink():
        return {}, "missing"
    try:
        meta = json.loads(index_file.read_text())
        version = meta["settings"]["format"]
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError):
        return {}, f"is damaged ({INDEX_NAME} is unreadable or malformed)"
    if version != FORMAT_VERSION:
        return meta, f"is out of date (format {version}, this fpar reads format {FORMAT_VERSION})"
    try:
        settings = meta["settings"]
        well_formed = (settings["codec"] in CODECS and isinstance(settings["resize"], int)
                       and all(len(s) == 3 and isinstance(s[0], str) and "/" not in s[0] for s in meta["shards"])
                       and len(meta["table"]) == 3 and isinstance(meta["instances"], dict)
                       and isinstance(meta["sources"], dict)
                       and all(isinstance(d, str) for d in meta["sources"].values()))
    except (KeyError, TypeError):
        well_formed = False
    if not well_formed:
        return meta, f"is damaged ({INDEX_NAME} is malformed)"
    return meta, _file_problem(path, meta)


def _file_problem(path: Path, meta: dict) -> str | None:
    for name, size, shard_id in meta["shards"]:
        file = path / name
        if file.is_symlink():
            return f"is damaged ({name} is a symbolic link)"
        try:
            actual = file.stat().st_size
            with open(file, "rb") as handle:
                header = handle.read(HEADER_BYTES)
        except FileNotFoundError:
            return f"is damaged ({name} is missing)"
        except OSError as exc:
            return f"is damaged ({name} cannot be read: {exc.strerror or exc})"
        if actual != size:
            return f"is damaged ({name} is {actual} bytes, it was built with {size})"
        if header[:len(MAGIC)] != MAGIC or header[len(MAGIC) + 4:len(MAGIC) + 20].hex() != shard_id:
            return f"is damaged ({name} has another header than the one it was built with)"
    name, rows, digest = meta["table"]
    try:
        data = b"" if (path / name).is_symlink() else (path / name).read_bytes()
    except OSError:
        return f"is damaged ({name} is missing or unreadable)"
    if len(data) != rows * TABLE_DTYPE.itemsize or f"{frame_hash(data):016x}" != digest:
        return f"is damaged ({name} does not match its recorded size and hash)"
    return None


def _open_problem(path: Path, root=None, problem: str | None = None) -> FparError:
    """The one line for a store that cannot be opened (``problem``: as :func:`_state` says, else found here)."""
    meta, found = _inspect(path)
    problem = problem or found
    if problem == "missing":
        return FparError(f"store {path}: no finished store here (build it with `fpar cache {root or 'ROOT'}`)")
    return FparError(f"store {path} {problem}: {_rebuild_hint(root or meta.get('root', 'ROOT'))}")


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
            row, n, *shape = self.instances[instance_id][kind]
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

    def verify(self) -> dict:
        """Hash every stored frame (``fpar cache --verify``): :class:`FparError` naming the first
        damaged shard and how many of its frames fail; else the counts checked."""
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
        return {"frames": len(table), "shards": len(self.shard_names), "bytes": int(table["length"].sum())}


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
    problem, meta = _checked(path, _settings_for(resize, kinds), _Sources(index, kinds), explicit_codec=False)
    if problem:
        raise _open_problem(path, index.root, problem)
    return FrameStore(path, index.root, checked=meta)


def ensure_store(index: DatasetIndex, path: str | Path | None, *, resize: int, modalities: Sequence[str]) -> FrameStore:
    """Build the store when it is missing or out of date (first use), then open it. A damaged store
    is not rebuilt behind the user's back: that is one line saying how to rebuild it."""
    path = Path(path) if path else default_store_path(index.root, resize)
    kinds = kinds_for(modalities)
    _claim(path)
    if any(_parts(path)):  # rebuilding here would delete parts other machines are writing
        raise FparError(f"store {path} is being built in parts: finish them with `fpar cache {index.root} "
                        "--shard K/N`")
    problem, meta = _checked(path, _settings_for(resize, kinds), _Sources(index, kinds), explicit_codec=False)
    if problem is None:
        return FrameStore(path, index.root, checked=meta)
    if not problem.startswith("is damaged"):
        # Every kind the dataset has, so that a later config with other modalities reuses it.
        build_store(index.root, path, resize=resize, rebuild=True, index=index)
    return open_store(index, path, resize=resize, modalities=modalities)


def store_problems(root: str | Path) -> list[Problem]:
    """Every frame of every store kept in the dataset at ``root`` (its ``.fpar-store`` folders)
    checked against its checksum (``fpar data check --deep``): one :class:`Problem` per store that
    cannot be read as it is (damaged, out of date or half built)."""
    root = Path(root)
    parent = (root.parent if root.is_file() else root) / ".fpar-store"
    prefix = f"{root.stem}-r" if root.is_file() else "r"
    problems = []
    folders = sorted(p for p in parent.iterdir() if p.is_dir() and p.name.startswith(prefix)) if parent.is_dir() else []
    for folder in folders:
        try:
            FrameStore(folder, root).verify()
        except FparError as exc:
            reason = str(exc).removeprefix(f"store {folder}").lstrip(": ")
            problems.append(Problem(str(folder), reason))
    return problems

"""The dataset store's format: its files, constants, checksums, and the checks made when it is opened.

Layout of a store folder::

    index.json         settings, the digests of the source files it was built from, its shards and
                       frame table, instance -> kind -> [first table row, n, [h, w(, 3)], digest of its
                       source rows, digest of its source files' bytes, digest of its table rows'
                       checksums and its shape] (docs/data.md, "Dataset store"); written last
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
a fifth of a raw clip's time); :meth:`~fpar.data.store.reading.FrameStore.verify`
(``fpar cache --verify``) hashes them all and checks the index (:mod:`~fpar.data.store.verify`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from fpar.data.layouts import FILE_KINDS, FILE_KINDS_OF_MODALITY
from fpar.errors import FparError
from fpar.io import WRITE_ERRNOS, exclusive_lock, refuse_link

FORMAT_VERSION = 3
# How frames are packed; ``auto`` (the default of ``fpar cache`` and ``data.store``) chooses by size
CODECS = ("raw", "jpeg")
# ``auto`` packs JPEG sources as JPEG once a raw store would be larger than this: beyond it a raw
# store no longer fits the page cache of a usual training machine, and reading it is disk-bound
RAW_LIMIT_BYTES = 32 << 30
SHARD_BYTES = 4 << 30  # a new shard starts after an instance that takes the current one past this
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


# An index entry's digests: the first 16 hex digits (64 bits) of a SHA-256 or an xxh3-64, enough to
# tell one instance's files from another's, and a fifth of an index entry's size
ENTRY_DIGEST_CHARS = 16


def digest_of_hashes(hashes) -> str:
    """One entry digest of a sequence of 64-bit frame hashes (its files' or its table rows')."""
    return f"{frame_hash(np.ascontiguousarray(hashes, dtype='<u8').tobytes()):016x}"


# An entry's seal: its table rows' checksums, each weighted by its place in the entry, and its shape,
# summed modulo 2**64. Sums, not a hash of the bytes: every entry of a store is sealed at once with
# numpy when it is opened (a Python hash per entry costs seconds for 100,000 instances).
_SHAPE_WEIGHTS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], np.uint64)


def entry_seals(row_hashes: np.ndarray, starts: np.ndarray, counts: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """The seals (uint64) of the entries whose rows are ``row_hashes[start:start + count]`` and whose
    shapes are the rows of ``shapes`` (``(E, 3)``, a 2-value shape padded with 0)."""
    hashes = np.asarray(row_hashes, np.uint64)
    place = np.arange(len(hashes), dtype=np.uint64)
    zero = np.zeros(1, np.uint64)
    weighted = np.concatenate([zero, np.cumsum(hashes * (2 * place + 1), dtype=np.uint64)])
    plain = np.concatenate([zero, np.cumsum(hashes, dtype=np.uint64)])
    first = np.asarray(starts, np.uint64)
    begin, end = np.asarray(starts, np.int64), np.asarray(starts, np.int64) + np.asarray(counts, np.int64)
    # sum of h * (2 * (global place - first) + 1) = sum of h * (2 * place + 1) - 2 * first * sum of h
    sums = (weighted[end] - weighted[begin]) - 2 * first * (plain[end] - plain[begin])
    return sums + (np.asarray(shapes, np.uint64) * _SHAPE_WEIGHTS).sum(axis=1, dtype=np.uint64)


def padded_shape(shape) -> list[int]:
    """A shape as :func:`entry_seals` takes it: three values, 0 for the channel axis of a grey frame."""
    return [*shape, 0, 0, 0][:3]


def frame_hash(data) -> int:
    """The checksum of one stored frame's bytes: xxh3-64, fast enough to check every read."""
    import xxhash

    return xxhash.xxh3_64_intdigest(data)


def _digest(*parts) -> str:
    text = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _build_lock(path: Path) -> contextlib.AbstractContextManager:
    """The lock that keeps two builders off one store; a second builder gets one line naming the holder."""
    return exclusive_lock(path / LOCK_NAME, f"store {path} (being built by another process)")


def _rebuild_hint(root) -> str:
    return f"rebuild it with `fpar cache {root} --rebuild`"


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


def _shard_files(path: Path) -> list[Path]:
    return sorted(p for p in path.glob(f"shard-*{SHARD_SUFFIX}") if _ours(p))


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

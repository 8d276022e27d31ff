"""What a store is built from: the dataset's frame files (their paths, sizes and times, digested
into ``index.json`` and listed in ``sources.jsonl``), the ``auto`` codec's choice, and whether a
finished store still matches the dataset and the settings asked for."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator, Sequence

from fpar.data.frames import image_size
from fpar.data.layouts import DatasetIndex
from fpar.data.store.format import _JPEG_NAMES, ENTRY_DIGEST_CHARS, RAW_LIMIT_BYTES, SOURCES_NAME, _inspect
from fpar.errors import FparError


class _Sources:
    """The files a store is built from: per kind, ``[path relative to the dataset, size, mtime_ns]`` of
    every frame file, in the instances' order. Only their digests go into ``index.json`` (one
    ``stat`` per file, hashed as it goes: no list of 20 million rows in memory or in the index); the
    rows themselves into ``sources.jsonl``, read only to name what changed. The same rows digested
    per instance and kind (``of_instance``) go into each index entry, so an entry that names another
    instance's frames is found without the list."""

    def __init__(self, index: DatasetIndex, kinds: Sequence[str]) -> None:
        self.index, self.kinds = index, tuple(kinds)
        self.base = index.root.parent if index.root.is_file() else index.root
        hashes = {kind: hashlib.sha256() for kind in self.kinds}
        per_instance: dict[tuple[str, str], object] = {}  # (instance, kind) -> its running sha256
        for instance_id, kind, line in self.lines():
            hashes[kind].update(line)
            entry = per_instance.get((instance_id, kind))
            if entry is None:
                entry = per_instance[instance_id, kind] = hashlib.sha256()
            entry.update(line)
        self.digests = {kind: h.hexdigest() for kind, h in hashes.items()}
        self.of_instance: dict[str, dict[str, str]] = {}
        for (instance_id, kind), h in per_instance.items():
            self.of_instance.setdefault(instance_id, {})[kind] = h.hexdigest()[:ENTRY_DIGEST_CHARS]

    def lines(self, kinds: Sequence[str] | None = None) -> Iterator[tuple[str, str, bytes]]:
        """``(instance id, kind, row)`` for every source file, in the instances' order."""
        for inst in self.index.instances:
            for kind in kinds or self.kinds:
                for path in inst.frames(kind):
                    try:
                        st = os.stat(path)
                    except OSError as exc:
                        raise FparError(f"{path}: cannot read frame ({exc.strerror or exc})") from None
                    row = [kind, os.path.relpath(path, self.base), st.st_size, st.st_mtime_ns]
                    yield inst.instance_id, kind, json.dumps(row).encode() + b"\n"

    def write(self, file: Path) -> None:
        from fpar.io import atomic_path

        with atomic_path(file) as tmp, open(tmp, "wb") as out:
            for _, _, line in self.lines():
                out.write(line)

    def first_difference(self, recorded_file: Path, kind: str) -> str:
        """What differs between the ``kind`` files recorded in ``recorded_file`` and the dataset's now."""
        try:
            with open(recorded_file, "rb") as rows:
                old = {row[1]: row for row in map(json.loads, rows) if row[0] == kind}
        except (OSError, ValueError, IndexError, TypeError):
            return f"its list of source files ({recorded_file.name}) is unreadable"
        new = set()
        for _, _, line in self.lines((kind,)):
            row = json.loads(line)
            new.add(row[1])
            if row[1] not in old:
                return f"{row[1]} is new"
            if old[row[1]] != row:
                return f"{row[1]} changed since the store was built"
        gone = next((name for name in old if name not in new), None)
        return f"{gone} is gone" if gone else "the frames are listed in another order"


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


def _read_bytes(path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FparError(f"{path}: cannot read frame ({exc.strerror or exc})") from None


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

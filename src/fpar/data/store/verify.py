"""A store's index checked against its frame table and its dataset (docs/reliability.md).

Each index entry (instance -> kind) records its first table row, its frame count, its shape and
three digests: of its source rows (paths, sizes, times), of its source files' bytes, and of its
table rows' checksums with its shape. :func:`entry_problems` checks every entry against the frame
table (the entries tile the table; a raw entry's shape is its rows' size, one shard, contiguous;
its rows and shape are the ones it was built with) and, given the dataset's sources, against the instance it names: an
entry holding another instance's frames is *swapped*, one whose instance's files changed is
*stale*, one that contradicts the table is *edited*. It reads no shard and costs about a
microsecond per frame, so every open for training runs it; :func:`source_file_problems` also reads
every source file (``fpar cache --verify``, ``fpar data check --deep``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fpar.data.layouts import DatasetIndex
from fpar.data.store.format import INDEX_NAME, digest_of_hashes, entry_seals, frame_hash, padded_shape
from fpar.data.store.sources import _read_bytes, _Sources


def _parsed(value) -> tuple[int, int, list[int], str, str, int] | None:
    """An entry's fields (its seal as a number), or None when it is not an entry this format writes."""
    if type(value) is not list or len(value) != 6:
        return None
    row, n, shape, source, files, seal = value
    if not (type(row) is int and type(n) is int and row >= 0 and n >= 0 and type(shape) is list
            and 2 <= len(shape) <= 3 and set(map(type, shape)) == {int} and min(shape) > 0
            and type(source) is str and type(files) is str and type(seal) is str and len(seal) == 16):
        return None
    try:
        return row, n, shape, source, files, int(seal, 16)
    except ValueError:
        return None


def entry_problems(instances: Mapping, table: np.ndarray, settings: Mapping,
                   sources: _Sources | None = None) -> list[str]:
    """What is wrong with the index's entries (one line each, ``instance ID: ...``), checked
    against the frame ``table`` and, given them, the dataset's ``sources``; empty when nothing is."""
    problems: list[str] = []
    kinds = list(settings["kinds"])
    resized = settings["codec"] == "raw" or settings.get("quality") is not None
    entries = []  # (row, n, instance id, kind, shape, stored digest)
    for instance_id, entry in instances.items():
        if not isinstance(entry, dict) or sorted(entry) != sorted(kinds):
            problems.append(f"instance {instance_id}: its entry is malformed in {INDEX_NAME} (edited)")
            continue
        for kind in kinds:
            parsed = _parsed(entry[kind])
            if parsed is None:
                problems.append(f"instance {instance_id}: its {kind} entry is malformed in {INDEX_NAME} (edited)")
                continue
            row, n, shape, _, _, stored = parsed
            if n and resized and min(shape[:2]) != settings["resize"]:
                problems.append(f"instance {instance_id}: its {kind} shape {shape} does not have the store's short "
                                f"side {settings['resize']} (edited)")
            entries.append((row, n, instance_id, kind, shape, stored))
    problems += _tiling_problems(entries, table, raw=settings["codec"] == "raw")
    if sources is not None:
        problems += _source_row_problems(instances, list(sources.kinds), sources)
    return problems


def _tiling_problems(entries: list, table: np.ndarray, *, raw: bool) -> list[str]:
    """The entries must cover the table's rows exactly, each its own rows; a raw entry's rows are
    frames of its shape's size, back to back in one shard (a clip is one slice of the map)."""
    entries = sorted(entries, key=lambda e: e[0])
    problems, end = [], 0
    for row, n, instance_id, kind, _, _ in entries:
        if row != end or row + n > len(table):
            return problems + [f"instance {instance_id}: its {kind} entry names table rows {row}-{row + n - 1}, "
                               f"which {'overlap another entry' if row < end else 'are not the rows it was built with'}"
                               " (edited)"]
        end = row + n
    if end != len(table):
        return problems + [f"{INDEX_NAME} names {end} frames, the frame table holds {len(table)} (edited)"]
    if not entries:
        return problems
    counts = np.array([e[1] for e in entries], np.int64)
    starts = np.array([e[0] for e in entries], np.int64)
    seals = entry_seals(table["digest"], starts, counts, np.array([padded_shape(e[4]) for e in entries]))
    for k in np.flatnonzero(seals != np.array([e[5] for e in entries], np.uint64)):
        row, n, instance_id, kind, shape, _ = entries[k]
        problems.append(f"instance {instance_id}: its {kind} entry (rows {row}-{row + n - 1}, shape {shape}) is not "
                        "the one it was built with (edited)")
    if raw:
        sizes = np.array([math.prod(e[4]) for e in entries], np.int64)
        owner = np.repeat(np.arange(len(entries)), counts)
        step = np.arange(len(table)) - np.repeat(starts, counts)
        first = starts.clip(max=max(len(table) - 1, 0))
        expected_offset = np.repeat(table["offset"][first].astype(np.int64), counts) + step * sizes[owner]
        bad = ((table["length"] != sizes[owner]) | (table["offset"].astype(np.int64) != expected_offset)
               | (table["shard"] != np.repeat(table["shard"][first], counts)))
        for k in np.unique(owner[bad]):
            _, n, instance_id, kind, shape, _ = entries[k]
            problems.append(f"instance {instance_id}: its {kind} shape {shape} does not match the "
                            f"{int(table['length'][entries[k][0]])} bytes stored per frame (edited)")
    return problems


def _source_row_problems(instances: Mapping, kinds: list[str], sources: _Sources) -> list[str]:
    """Each entry against the source rows of the instance it names in the dataset now."""
    problems = []
    owner_of = {(kind, digest): instance_id for instance_id, digests in sources.of_instance.items()
                for kind, digest in digests.items()}
    for instance_id, entry in instances.items():
        expected = sources.of_instance.get(instance_id)
        if expected is None:
            problems.append(f"instance {instance_id}: not in the dataset any more (stale)")
            continue
        for kind in kinds:
            parsed = _parsed(entry.get(kind)) if isinstance(entry, dict) else None
            if parsed is None or parsed[3] == expected.get(kind):
                continue
            other = owner_of.get((kind, parsed[3]))
            if other is not None and other != instance_id:
                problems.append(f"instance {instance_id}: its {kind} entry holds the frames of instance {other} "
                                "(swapped)")
            else:
                problems.append(f"instance {instance_id}: its {kind} source files changed since the store was built "
                                "(stale)")
    stored = set(instances)
    problems += [f"instance {instance_id}: in the dataset, not in the store (stale)"
                 for instance_id in sources.of_instance if instance_id not in stored]
    return problems


def source_file_problems(instances: Mapping, index: DatasetIndex, kinds: list[str]) -> list[str]:
    """Each entry's source files read again and compared with the bytes it was built from: a frame
    changed in place (same size and time) is found too. Reads the whole dataset."""
    problems = []
    for inst in index.instances:
        entry = instances.get(inst.instance_id)
        if not isinstance(entry, dict):
            continue
        for kind in kinds:
            parsed = _parsed(entry.get(kind))
            if parsed is None:
                continue
            files = inst.frames(kind)
            if digest_of_hashes([frame_hash(_read_bytes(path)) for path in files]) != parsed[4]:
                problems.append(f"instance {inst.instance_id}: its {kind} source frames ({_folder(files)}) changed "
                                "since the store was built (stale)")
    return problems


def _folder(files) -> str:
    return str(Path(files[0]).parent) if len(files) else "none"

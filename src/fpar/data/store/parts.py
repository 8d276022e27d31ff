"""Building a store in parts (``fpar cache --shard K/N``): each part a store of its own in
``part-K-of-N/``, merged into the store (shards renamed, tables concatenated) when all are done."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from fpar.data.layouts import Instance
from fpar.data.store.format import (INDEX_NAME, LOCK_NAME, MERGE_NAME, SHARD_SUFFIX, SOURCES_NAME, TABLE_DTYPE,
                                    TABLE_NAME, _build_lock, _digest, _inspect, _ours, _rebuild_hint, _shard_files,
                                    frame_hash)
from fpar.data.store.sources import _Sources
from fpar.errors import FparError
from fpar.io import write_bytes, write_text


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

"""Folder names for the runs of jobs made of many runs (sweeps; protocols may name theirs the same way).

A run folder is named ``<experiment>__<readable>__<hash>``: the readable part gives each override's
last key part and its value (``batch_size=4_crop=32_lr=1e-3``), cut to fit :data:`MAX_RUN_NAME`
characters; the hash (of every override, key and value, in order) keeps two runs apart when the
cut makes their readable parts alike. Names stay short enough for ``ls`` and far below the usual
255-byte file-name limit however many axes a sweep has; the full overrides are in the run's
``config.yaml`` (``overrides``) and in ``fpar runs``. docs/experiments.md, "Grids".
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Sequence

import yaml

MAX_RUN_NAME = 100
HASH_CHARS = 8
SEPARATOR = "__"


def _canonical(value: str) -> str:
    """A value as YAML reads it, so ``[25, 75]`` and ``[25,75]`` name (and hash) the same run."""
    try:
        return json.dumps(yaml.safe_load(value), separators=(",", ":"), sort_keys=True)
    except yaml.YAMLError:
        return value


def _plain(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "-"


def overrides_hash(overrides: Sequence[tuple[str, str]]) -> str:
    text = "\n".join(f"{key}={_canonical(value)}" for key, value in overrides)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]


def run_name(experiment: str, overrides: Sequence[tuple[str, str]]) -> str:
    """The folder name of ``experiment`` made with ``overrides`` ((key, value text) pairs), at most
    :data:`MAX_RUN_NAME` characters; ``experiment`` itself where there are none.

    >>> run_name("exp", [("optimizer.lr", "1e-4"), ("scheduler.milestones", "[50, 100]")])
    'exp__lr=1e-4_milestones=50-100__0783e99c'
    """
    if not overrides:
        return experiment
    digest = overrides_hash(overrides)
    parts = [f"{key.rsplit('.', 1)[-1]}={_plain(_canonical(value))}" for key, value in overrides]
    fixed = 2 * len(SEPARATOR) + len(digest)
    experiment = experiment[:MAX_RUN_NAME - fixed - 16]  # a long experiment name leaves 16 for the values
    room = MAX_RUN_NAME - fixed - len(experiment)
    readable = parts[0][:room]
    for part in parts[1:]:  # whole overrides while they fit; the hash tells the rest apart
        if len(readable) + 1 + len(part) > room:
            break
        readable += "_" + part
    return SEPARATOR.join([experiment, readable.rstrip("_=.-+"), digest])


def legacy_run_name(experiment: str, overrides: Sequence[tuple[str, str]]) -> str:
    """The name sweeps gave their runs before :func:`run_name` (every key and value in full), which a
    sweep run again still finds and resumes."""
    parts = [f"{key}={re.sub(r'[^A-Za-z0-9._+-]+', '-', value).strip('-')}" for key, value in overrides]
    return SEPARATOR.join([experiment, *parts])

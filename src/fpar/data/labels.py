"""Verb and noun labels beside an instance's action class (docs/data.md, "Verb and noun labels").

A dataset gives each instance a verb and a noun in one of two ways:

* a ``labels.csv`` beside its layout (at the dataset root, or beside a manifest file): one row per
  instance id with ``verb`` / ``noun`` names and/or ``verb_class`` / ``noun_class`` numbers. With
  numbers (EPIC-KITCHENS' ``verb_class``, EGTEA's ids), class ``k`` of the head is number ``k``,
  so a results file's columns are the dataset's own class numbers; with names only, the classes
  are the sorted names. ``fpar prepare --epic`` and ``--egtea`` write it.
* without that file, class names of the form ``<verb>_<objects>`` (GTEA's ``close_coffee``,
  ``pour_mustard,hotdog,bread``) are split at the first ``_``: verb ``close``, noun ``coffee``.
  A dataset whose class names do not all have that form has no verb and noun labels.

This module owns the label kinds (:data:`LABEL_KINDS`) and their batch keys (:func:`label_key`);
the models' heads (``fpar.models.heads``) are named after them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from fpar.errors import FparError

ACTION = "action"  # the class every instance has (GTEA: verb_objects; EPIC: the verb x noun pair)
LABEL_KINDS = ("verb", "noun")  # the labels an instance may carry besides its action class
CLASS_KINDS = (ACTION, *LABEL_KINDS)  # what an import may take as the class (fpar prepare --epic-label)
LABELS_FILE = "labels.csv"
ACTION_SEPARATOR = "_"  # <verb>_<objects>: GTEA's class names
# EPIC-KITCHENS-100's verb and noun classes: what its annotations' class numbers may be, and the
# widths of the heads its challenge scores (fpar.engine.epic_metrics)
EPIC_VERBS, EPIC_NOUNS = 97, 300


def label_key(kind: str) -> str:
    """The batch key of a label kind's class id (``label_verb``); the action's is ``label``."""
    return f"label_{kind}"


def logits_key(kind: str) -> str:
    """The output key of a label kind's scores (``logits_verb``): in a model's outputs and as an
    ONNX graph's output name, read where torch is not (the ONNX runtimes); the action's is ``logits``."""
    return f"logits_{kind}"


def split_action_name(name: str) -> tuple[str, str] | None:
    """``close_coffee`` -> (``close``, ``coffee``): verb before the first ``_``, the objects after;
    None when the name has no such form."""
    verb, separator, objects = name.partition(ACTION_SEPARATOR)
    return (verb, objects) if separator and verb and objects else None


def labels_file(root: Path) -> Path:
    """Where a dataset at ``root`` (a folder, or a manifest file) keeps its ``labels.csv``."""
    return (root.parent if root.is_file() else root) / LABELS_FILE


def attach_labels(index):
    """``index`` (a :class:`~fpar.data.layouts.DatasetIndex`) with each instance's verb and noun and
    ``index.label_classes`` set, from its ``labels.csv`` or else from its class names."""
    path = labels_file(index.root)
    if path.is_file():
        names, classes = read_labels(path)
    else:
        names, classes = _from_class_names(index.classes, index.instances + index.skipped)
    if not classes:
        return index
    index.instances = [_labelled(inst, names) for inst in index.instances]
    index.skipped = [_labelled(inst, names) for inst in index.skipped]
    index.label_classes = classes
    return index


def _labelled(inst, names: dict[str, dict[str, str]]):
    found = names.get(inst.instance_id) or names.get(_short_id(inst.instance_id))
    return replace(inst, **found) if found else inst


def _short_id(instance_id: str) -> str:
    """A tree layout's instance id is ``subject/class/instance``; labels name the instance."""
    return instance_id.rsplit("/", 1)[-1]


def _from_class_names(classes: list[str], instances: Iterable) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    parts = {name: split_action_name(name) for name in classes}
    if not classes or any(split is None for split in parts.values()):
        return {}, {}
    names = {inst.instance_id: dict(zip(LABEL_KINDS, parts[inst.class_name])) for inst in instances}
    return names, {kind: sorted({split[k] for split in parts.values()}) for k, kind in enumerate(LABEL_KINDS)}


def read_labels(path: Path) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """A ``labels.csv``: {instance id: {kind: class name}} and {kind: class names, position = id}.
    A number without a name is named by its number; a number no row uses, too."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FparError(f"{path}: unreadable labels file ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    kinds = [kind for kind in LABEL_KINDS if kind in columns or f"{kind}_class" in columns]
    if "id" not in columns or not kinds:
        raise FparError(f"{path}: a labels file needs an id column and verb/noun (or verb_class/noun_class) columns")
    names: dict[str, dict[str, str]] = {}
    numbered: dict[str, dict[int, str]] = {kind: {} for kind in kinds}
    for line, row in enumerate(reader, 2):
        where = f"{path}:{line}"
        labels = {}
        for kind in kinds:
            name, number = (row.get(kind) or "").strip(), (row.get(f"{kind}_class") or "").strip()
            if f"{kind}_class" in columns:
                if not number.isdigit():
                    raise FparError(f"{where}: {kind}_class must be a class number, got {number!r}")
                known = numbered[kind].setdefault(int(number), name or number)
                if name and known != name:
                    raise FparError(f"{where}: {kind}_class {number} is named {name!r} here and {known!r} before")
                name = known
            elif not name:
                raise FparError(f"{where}: no {kind}")
            labels[kind] = name
        names[(row.get("id") or "").strip()] = labels
    classes = {}
    for kind in kinds:
        if f"{kind}_class" in columns:
            by_number = numbered[kind]
            listed = [by_number.get(k, str(k)) for k in range(max(by_number, default=-1) + 1)]
            if len(set(listed)) != len(listed):
                raise FparError(f"{path}: two {kind}_class numbers share one {kind} name")
            classes[kind] = listed
        else:
            classes[kind] = sorted({labels[kind] for labels in names.values()})
    return names, classes


def add_labels(path: Path, rows: list[dict[str, str]]) -> None:
    """Merge ``rows`` (``id`` plus verb/noun names and/or numbers) into the ``labels.csv`` at ``path``
    (atomically): a row replaces the one of the same id, others stay (EPIC's train and validation
    CSVs imported into one dataset in two runs)."""
    from fpar.io import write_text

    kept: dict[str, dict[str, str]] = {}
    if path.is_file():
        try:
            kept = {row["id"]: row for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))}
        except (OSError, UnicodeDecodeError, KeyError, csv.Error) as exc:
            raise FparError(f"{path}: unreadable labels file ({exc}); move it away to write a new one") from None
    kept.update({row["id"]: row for row in rows})
    rows = list(kept.values())
    columns = ["id", *(c for kind in LABEL_KINDS for c in (kind, f"{kind}_class") if any(row.get(c) for row in rows))]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())

"""Train/validation splits by subject (docs/method.md §1: train S1,S3,S4, validate on S2), and the
instance-level splits a dataset records beside its manifest (EGTEA Gaze+'s three train/test
splits divide clips, not participants; docs/protocols.md, "EGTEA Gaze+")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from fpar.data.layouts import DatasetIndex, Instance
from fpar.data.settings import DataSettings
from fpar.errors import FparError

Fold = tuple[list[Instance], list[Instance]]
# {split name: {"train": [instance ids], "test": [instance ids]}}, beside the dataset's manifest
SPLITS_FILE = "splits.json"


def split_by_subject(
    index: DatasetIndex, train: Sequence[str] = ("S1", "S3", "S4"), val: Sequence[str] = ("S2",)
) -> Fold:
    """Instances of the ``train`` subjects and of the ``val`` subjects; an empty side is an error."""
    overlap = sorted(set(train) & set(val))
    if overlap:
        raise FparError(f"subjects {', '.join(overlap)} are in both the training and the validation split")
    return _select(index, train, "training"), _select(index, val, "validation")


def leave_one_subject_out(index: DatasetIndex) -> list[Fold]:
    """One fold per subject: validate on it, train on all the others (in subject order)."""
    subjects = sorted({inst.subject for inst in index.instances})
    if len(subjects) < 2:
        raise FparError(f"{index.root}: leave-one-subject-out needs two subjects or more, found {len(subjects)}")
    return [split_by_subject(index, [s for s in subjects if s != held], [held]) for held in subjects]


def _select(index: DatasetIndex, subjects: Sequence[str], side: str) -> list[Instance]:
    chosen = [inst for inst in index.instances if inst.subject in set(subjects)]
    if not chosen:
        have = ", ".join(index.subjects) or "none"
        raise FparError(f"{index.root}: empty {side} split (subjects {', '.join(subjects)}; the dataset has {have})")
    return chosen


def splits_path(root: str | Path) -> Path:
    """Where the dataset at ``root`` (its folder, or its manifest file) records its splits."""
    root = Path(root)
    return (root.parent if root.is_file() else root) / SPLITS_FILE


def read_splits(root: str | Path) -> dict[str, dict[str, list[str]]]:
    """The instance-level splits the dataset at ``root`` records ({} when it records none)."""
    path = splits_path(root)
    if not path.is_file():
        return {}
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
        valid = isinstance(splits, dict) and all(
            isinstance(name, str) and isinstance(sides, dict) and set(sides) == {"train", "test"}
            and all(isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in sides.values())
            for name, sides in splits.items())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FparError(f"{path}: unreadable splits file ({exc})") from None
    if not valid:
        raise FparError(f"{path}: not a splits file ({{name: {{\"train\": [ids], \"test\": [ids]}}}})")
    return splits


def split_by_clips(index: DatasetIndex, name: str) -> Fold:
    """The instances of the recorded split ``name``'s train and test clip lists. A listed clip the
    index lacks (a row the import refused, a clip too short to sample) is left out of its side;
    a side left empty, or a clip on both sides, is an error."""
    splits = read_splits(index.root)
    if name not in splits:
        have = ", ".join(splits) or "none"
        raise FparError(f"{index.root}: no split named {name!r} (recorded in {SPLITS_FILE}: {have})")
    train_ids, test_ids = set(splits[name]["train"]), set(splits[name]["test"])
    both = sorted(train_ids & test_ids)
    if both:
        raise FparError(f"{splits_path(index.root)}: split {name} lists {both[0]!r} as a train and a test clip")
    train = [inst for inst in index.instances if inst.instance_id in train_ids]
    test = [inst for inst in index.instances if inst.instance_id in test_ids]
    for side, chosen in (("training", train), ("test", test)):
        if not chosen:
            raise FparError(f"{index.root}: split {name} has no {side} clip in the dataset")
    return train, test


def default_split(config: dict | None) -> str | None:
    """The recorded split a model trained with ``config`` trained on (``data.split``, e.g.
    ``split2``), whose test clips it is evaluated on when no split is named; None: it is evaluated
    on its validation subjects (:func:`default_subjects`)."""
    return ((config or {}).get("data") or {}).get("split") or None


def default_subjects(config: dict | None) -> list[str]:
    """The subjects a model trained with ``config`` was validated on (an imported model without a
    config: the standard split's, ``S2``)."""
    return list(((config or {}).get("data") or {}).get("val_subjects") or DataSettings().val_subjects)


def default_evaluation(index: DatasetIndex, config: dict | None) -> tuple[str, list[Instance], list[Instance]]:
    """``(name, evaluated, others)``: the clips ``fpar eval`` scores a model trained with ``config``
    on when given no ``--split`` (the test clips of the recorded split it trained on,
    ``data.split``, else its validation subjects; an imported model without a config: the
    standard split's S2), named as ``split2`` or ``S2``, and the clips it was not evaluated on."""
    split = default_split(config)
    if split is not None:
        train, test = split_by_clips(index, split)
        return split, test, train
    subjects = default_subjects(config)
    evaluated = [inst for inst in index.instances if inst.subject in subjects]
    others = [inst for inst in index.instances if inst.subject not in subjects]
    for side, chosen in (("evaluation", evaluated), ("other", others)):
        if not chosen:
            raise FparError(f"{index.root}: no {side} clips (validation subjects {', '.join(subjects)}; "
                            f"the dataset has {', '.join(index.subjects) or 'none'})")
    return ",".join(subjects), evaluated, others

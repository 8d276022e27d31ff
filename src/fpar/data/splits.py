"""Train/validation splits by subject (docs/method.md §1: train S1,S3,S4, validate on S2)."""

from __future__ import annotations

from typing import Sequence

from fpar.data.layouts import DatasetIndex, Instance
from fpar.errors import FparError

Fold = tuple[list[Instance], list[Instance]]


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

"""The protocols fpar runs: their folds of a dataset's subjects or recorded splits, what each reports,
the keys a protocol sets for its runs, and the figures published under a config or a protocol
(docs/protocols.md).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from fpar.engine.config import find_config, parse_override
from fpar.engine.metric_registry import ACCURACY, MEAN_CLASS_ACCURACY, METRICS
from fpar.errors import FparError

SCORES = "scores.json"  # a run's test-set scores, written once it is evaluated
SUMMARY_FILE = "protocol.json"
TABLE_FILES = ("protocol.md", "protocol.html")  # the summary as a table, written beside it
PLAN_FILE = "protocol-plan.json"  # what the protocol's runs depend on, written before the first one trains
GTEA61_SUBJECTS = ("S1", "S2", "S3", "S4")
EGTEA_SPLITS = ("split1", "split2", "split3")
# the keys a protocol sets for each of its runs, and why an override may not
CONTROLLED = {
    "experiment": "the protocol names its runs <experiment>__<fold>__seed<k>",
    "trainer.seed": "the protocol runs seeds 0..K-1 (give --seeds K)",
    "data.train_subjects": "the protocol's folds choose the subjects",
    "data.val_subjects": "the protocol's folds choose the subjects",
    "data.fold": "the protocol's folds choose the subjects",
    "data.split": "the protocol's folds choose the clips",
    "data.root": "--data names the dataset",
}


@dataclass(frozen=True)
class Fold:
    name: str
    train: list[str]
    test: list[str]
    # an instance-level fold: the dataset's recorded split of this name (its clip lists), not subjects
    split: str | None = None


def _gtea61_s2(subjects: Sequence[str], splits: dict) -> list[Fold]:
    _require_subjects(subjects, GTEA61_SUBJECTS, "gtea61-s2")
    return [Fold("S2", ["S1", "S3", "S4"], ["S2"])]


def _leave_one_out(subjects: Sequence[str], splits: dict) -> list[Fold]:
    if len(subjects) < 2:
        raise FparError(f"leave-one-subject-out needs two subjects or more; the dataset has {', '.join(subjects)}")
    return [Fold(held, [s for s in subjects if s != held], [held]) for held in subjects]


def _gtea61_loso(subjects: Sequence[str], splits: dict) -> list[Fold]:
    _require_subjects(subjects, GTEA61_SUBJECTS, "gtea61-loso")
    return _leave_one_out(GTEA61_SUBJECTS, splits)


def _egtea(subjects: Sequence[str], splits: dict) -> list[Fold]:
    lacking = [name for name in EGTEA_SPLITS if name not in splits]
    if lacking:
        raise FparError("protocol egtea: EGTEA Gaze+'s three splits divide clips, not participants, and this dataset "
                        f"records no {', '.join(lacking)} clip lists (splits.json); import it with "
                        "fpar prepare --egtea ANNOTATION_DIR, the folder of action_idx.txt and the six "
                        "train/test_splitN.txt (docs/protocols.md, 'EGTEA Gaze+')")
    return [Fold(name, [], [], split=name) for name in EGTEA_SPLITS]


def _epic100(subjects: Sequence[str], splits: dict) -> list[Fold]:
    if {"train", "validation"} <= set(subjects):
        return [Fold("validation", ["train"], ["validation"])]
    raise FparError("protocol epic100: trains on EPIC_100_train.csv and tests on EPIC_100_validation.csv, whose "
                    "participants overlap, so the two must be told apart as subjects: import them into one "
                    "dataset with fpar prepare --epic EPIC_100_train.csv EPIC_100_validation.csv (subjects 'train' "
                    "and 'validation'; docs/protocols.md, 'EPIC-KITCHENS-100'); "
                    f"this dataset has subjects {', '.join(subjects)}")


# the names a protocol keeps the two metrics it reports by (scores.json, protocol.json)
TOP1, MEAN_CLASS = METRICS[ACCURACY].short, METRICS[MEAN_CLASS_ACCURACY].short
# name -> (folds of a dataset's subjects and recorded splits, what it reports, what it is)
PROTOCOLS: dict[str, tuple[Callable[[Sequence[str], dict], list[Fold]], str, str]] = {
    "gtea61-s2": (_gtea61_s2, TOP1, "train S1, S3, S4; test S2 (the paper's GTEA61*)"),
    "gtea61-loso": (_gtea61_loso, TOP1, "four folds, each GTEA61 subject held out once"),
    "loso": (_leave_one_out, TOP1, "leave one subject out, every subject of the dataset"),
    "egtea": (_egtea, MEAN_CLASS, "EGTEA Gaze+'s three train/test splits of the clips, mean class accuracy"),
    "epic100": (_epic100, TOP1, "EPIC-KITCHENS-100: train on train, test on validation"),
}

# The paper's figure for a config is in the config file's header ("... Paper: 64.9% on S2"; every
# gtea61/ row has one, docs/experiments.md lists them), obtained this way:


PAPER_PROTOCOL = "gtea61-s2, one run, best epoch chosen on S2 (selection: test)"
_PAPER_FIGURE = re.compile(r"Paper: (\d+(?:\.\d+)?)% on S2")
# Figures published under a protocol itself, whatever the config: EGTEA Gaze+'s two-stream rows
# (RGB + flow, ResNet-34) as the LSTA paper (Sudhakaran, Escalera and Lanz, CVPR 2019) reports them
PUBLISHED = {
    "egtea": [
        {"method": "Ego-RNN (two-stream)", MEAN_CLASS: 0.6076},
        {"method": "LSTA (two-stream)", MEAN_CLASS: 0.6186},
    ],
}
PUBLISHED_PROTOCOL = {"egtea": "EGTEA Gaze+ splits 1-3, mean class accuracy averaged over the splits, "
                               "as the LSTA paper reports them"}


def _require_subjects(subjects: Sequence[str], wanted: Sequence[str], protocol: str) -> None:
    if sorted(subjects) != sorted(wanted):
        raise FparError(f"protocol {protocol} needs the subjects {', '.join(wanted)}; the dataset has "
                        f"{', '.join(subjects)}")


def refuse_controlled(overrides: Sequence[str]) -> None:
    """Overrides of what the protocol sets for each run: one line naming the key and why."""
    for item in overrides:
        key = parse_override(item)[0]
        if key in CONTROLLED:
            raise FparError(f"override {item!r}: {key} is set by fpar protocol for each run ({CONTROLLED[key]})")


def paper_figure(config_path: str | os.PathLike) -> dict[str, Any] | None:
    """The paper's top-1 for this config file (from its header comment) and how it was obtained; None
    for a config the paper has no row for."""
    header = []
    for line in find_config(config_path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    found = _PAPER_FIGURE.search(" ".join(header))
    return None if found is None else {TOP1: float(found.group(1)) / 100, "protocol": PAPER_PROTOCOL}

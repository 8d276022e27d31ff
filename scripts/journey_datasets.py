#!/usr/bin/env python3
"""EPIC-KITCHENS-100- and EGTEA Gaze+-shaped datasets made from the synthetic dataset, for the measured
tables of the journeys (README, "Journeys"; docs/protocols.md, "Journeys, measured").

Documentation tooling, not part of the package. The synthetic videos become each dataset's
published layout, so the journeys run through the same importers as the real files::

    fpar synth /tmp/j/synth --subjects 3 --classes 4 --videos-per-class 3
    python scripts/journey_datasets.py /tmp/j/synth /tmp/j

writes ``/tmp/j/EPIC`` (``<P>/rgb_frames/<video>/frame_%010d.jpg``, one video per synthetic video),
``/tmp/j/EPIC_100_train.csv`` (videos 1 and 2 of every class) and ``EPIC_100_validation.csv``
(video 3), and ``/tmp/j/EGTEA/frames/<session>/<clip>/`` with ``/tmp/j/EGTEA/annotations``
(``action_idx.txt``, ``train_splitN.txt`` / ``test_splitN.txt``: split N tests on every
subject's video N of each class and trains on the others).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2

from fpar.data import load_index

EPIC_COLUMNS = ("narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
                "stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun",
                "noun_class", "all_nouns", "all_noun_classes")


def _copy_frames(paths, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(paths, 1):
        cv2.imwrite(str(folder / f"frame_{k:010d}.jpg"), cv2.imread(str(path)), [cv2.IMWRITE_JPEG_QUALITY, 95])


def write(synth: Path, out: Path) -> None:
    index = load_index(synth)
    verbs = sorted({inst.class_name.split("_")[0] for inst in index.instances})
    nouns = sorted({inst.class_name.split("_", 1)[1] for inst in index.instances})
    rows = {"train": [], "validation": []}
    egtea_lines: dict[int, list[tuple[int, str]]] = {1: [], 2: [], 3: []}
    for number, inst in enumerate(sorted(index.instances, key=lambda i: i.instance_id)):
        subject = inst.subject  # S1 -> participant P01, session OP01-...
        participant = f"P{int(subject[1:]):02d}"
        video = f"{participant}_{number:03d}"
        _copy_frames(inst.rgb, out / "EPIC" / participant / "rgb_frames" / video)
        verb, noun = inst.class_name.split("_", 1)
        take = int(inst.instance_id.rsplit("/", 1)[-1])  # the synthetic video's number: 1..3
        rows["validation" if take == 3 else "train"].append({
            "narration_id": f"{video}_0", "participant_id": participant, "video_id": video,
            "narration_timestamp": "00:00:00.00", "start_timestamp": "00:00:00.00", "stop_timestamp": "00:00:01.00",
            "start_frame": 1, "stop_frame": len(inst.rgb), "narration": f"{verb} {noun}", "verb": verb,
            "verb_class": verbs.index(verb), "noun": noun, "noun_class": nouns.index(noun),
            "all_nouns": f"['{noun}']", "all_noun_classes": f"[{nouns.index(noun)}]"})
        session = f"OP{int(subject[1:]):02d}-R01-Synthetic"
        start = 1000 * number + 1
        clip = f"{session}-{start * 40}-{(start + len(inst.rgb)) * 40}-F{start:06d}-F{start + len(inst.rgb) - 1:06d}"
        _copy_frames(inst.rgb, out / "EGTEA" / "frames" / session / clip)
        action = index.classes.index(inst.class_name) + 1
        egtea_lines[take].append((take, f"{clip} {action} {verbs.index(verb) + 1} {nouns.index(noun) + 1}"))
    for split, split_rows in rows.items():
        with open(out / f"EPIC_100_{split}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, EPIC_COLUMNS)
            writer.writeheader()
            writer.writerows(split_rows)
    annotations = out / "EGTEA" / "annotations"
    annotations.mkdir(parents=True, exist_ok=True)
    (annotations / "action_idx.txt").write_text(
        "".join(f"{name.replace('_', ' ')} {a}\n" for a, name in enumerate(index.classes, 1)))
    for n in (1, 2, 3):
        test = [line for _, line in egtea_lines[n]]
        train = [line for k in (1, 2, 3) if k != n for _, line in egtea_lines[k]]
        (annotations / f"test_split{n}.txt").write_text("".join(f"{line}\n" for line in test))
        (annotations / f"train_split{n}.txt").write_text("".join(f"{line}\n" for line in train))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    write(Path(sys.argv[1]), Path(sys.argv[2]))

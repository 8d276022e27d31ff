"""Jobs from the annotation files of EGTEA Gaze+ and EPIC-KITCHENS-100 (GTEA's are in :mod:`fpar.prepare.gtea`).

Each importer reads the dataset's published annotation files and yields :class:`~fpar.prepare.jobs.Job`
rows (subject = participant, class = the action's name), which :func:`fpar.prepare.jobs.run_jobs`
prepares like any manifest. Rows it cannot use are returned as problems (file and line), not raised.

**EGTEA Gaze+.** A split file (``train_split1.txt``, ``test_split1.txt``, ...) has one line per clip,
``<clip> <action_id> <verb_id> <noun_id>``, where the clip name
``OP01-R01-PastaSalad-1002316-1004005-F024051-F024101`` is the session video, the start and end in
ms, and the start and end frame. ``action_idx.txt`` maps ids to names, one ``<name words> <id>`` a
line. The clip is read from ``VIDEOS/<session>/<clip>.mp4`` or ``VIDEOS/<clip>.mp4`` (the dataset's
cropped clips) when present, else frames ``start..end`` of ``VIDEOS/<session>.mp4``.

**EPIC-KITCHENS-100.** ``EPIC_100_train.csv`` / ``EPIC_100_validation.csv``: one narrated action a row,
with ``narration_id``, ``participant_id``, ``video_id``, ``start_frame``, ``stop_frame``, ``verb``,
``noun`` (and more). The video is ``VIDEOS/<participant>/videos/<video>.MP4`` or the frame folder
``VIDEOS/<participant>/rgb_frames/<video>/frame_0000000001.jpg`` (EPIC's frame numbers start at 1).

**Verb and noun labels** (:func:`epic_labels`, :func:`egtea_labels`): the annotations' verb and noun
classes, written beside the imported dataset as its ``labels.csv`` (:mod:`fpar.data.labels`).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from fpar.errors import FparError
from fpar.prepare.jobs import Job
from fpar.prepare.layout_writer import check_name
from fpar.prepare.video import Segment

_EGTEA_CLIP = re.compile(r"^(?P<session>(?P<subject>[A-Za-z]+\d+)-.+)-\d+-\d+-F(?P<start>\d+)-F(?P<end>\d+)$")
EPIC_LABELS = ("action", "verb", "noun")


def class_folder_name(name: str) -> str:
    """An annotation's class name as a folder name: lower case, spaces -> ``_``, anything but
    letters, digits and ``_,.+-`` -> ``-`` (EGTEA's ``Inspect/Read recipe`` -> ``inspect-read_recipe``)."""
    return re.sub(r"[^\w,.+-]", "-", re.sub(r"\s+", "_", name.strip().lower()))


def read_index(path: str | Path, problems: list[str] | None = None) -> dict[int, str]:
    """An EGTEA ``*_idx.txt``: ``<name words> <id>`` per line -> {id: name}. A malformed line is an
    error, or, given ``problems``, recorded there and skipped like the other bad annotation lines."""
    path = Path(path)
    names = {}
    for number, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        *words, index = line.split()
        problem = (f"expected '<name> <id>', got {line.strip()[:80]!r}" if not words or not index.isdigit() else
                   f"id {index} given twice" if int(index) in names else None)
        if problem is not None:
            if problems is None:
                raise FparError(f"{path}:{number}: {problem}")
            problems.append(f"{path}:{number}: {problem}, skipped")
            continue
        names[int(index)] = " ".join(words)
    return names


def egtea_jobs(split_file: str | Path, action_index: str | Path, videos: str | Path) -> tuple[list[Job], list[str]]:
    """Jobs (one per clip of ``split_file``) and problems (lines that could not be used)."""
    split_file, videos = Path(split_file), Path(videos)
    jobs, problems = [], []
    actions = read_index(action_index, problems)
    for number, line in enumerate(_read_lines(split_file), 1):
        if not line.strip():
            continue
        where = f"{split_file}:{number}"
        parts = line.split()
        match = _EGTEA_CLIP.match(parts[0])
        if len(parts) < 2 or not match or not parts[1].isdigit():
            problems.append(f"{where}: not a '<clip> <action> <verb> <noun>' line, skipped: {line.strip()!r}")
            continue
        action = actions.get(int(parts[1]))
        if action is None:
            problems.append(f"{where}: action id {parts[1]} not in {action_index}, skipped")
            continue
        clip, session = parts[0], match["session"]
        segment = Segment(int(match["start"]), int(match["end"]))
        if segment.start > segment.end:
            problems.append(f"{where}: clip ends (frame {segment.end}) before it starts ({segment.start}), skipped")
            continue
        cropped = next((p for p in (videos / session / f"{clip}.mp4", videos / f"{clip}.mp4") if p.exists()), None)
        job = (Job(str(cropped), match["subject"], class_folder_name(action), clip) if cropped else
               Job(str(videos / f"{session}.mp4"), match["subject"], class_folder_name(action), clip, segment))
        if _usable(job, where, problems):
            jobs.append(job)
    return jobs, problems


def epic_jobs(annotations: str | Path, videos: str | Path, label: str = "action") -> tuple[list[Job], list[str]]:
    """Jobs (one per narrated action of an EPIC-KITCHENS-100 CSV) and problems.

    ``label`` picks the class: ``action`` (``verb_noun``, e.g. ``open_door``), ``verb`` or ``noun``.
    """
    if label not in EPIC_LABELS:
        raise FparError(f"unknown EPIC label {label!r} (choose {', '.join(EPIC_LABELS)})")
    annotations, videos = Path(annotations), Path(videos)
    rows = csv.DictReader(_read_lines(annotations))
    needed = {"narration_id", "participant_id", "video_id", "start_frame", "stop_frame", "verb", "noun"}
    lacking = needed - set(rows.fieldnames or ())
    if lacking:
        raise FparError(f"{annotations}: not an EPIC-KITCHENS-100 annotation CSV (no {', '.join(sorted(lacking))} column)")
    jobs, problems = [], []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, 2):
        where = f"{annotations}:{number}"
        try:
            segment = Segment(int(row["start_frame"]), int(row["stop_frame"]))
        except (TypeError, ValueError):
            problems.append(f"{where}: start_frame/stop_frame not whole numbers, skipped")
            continue
        if segment.start < 0:
            problems.append(f"{where}: start_frame {segment.start} is negative, skipped")
            continue
        if segment.start > segment.end:
            problems.append(f"{where}: stop_frame {segment.end} before start_frame {segment.start}, skipped")
            continue
        if row["narration_id"] in seen:  # the duplicate is the problem, not the file
            problems.append(f"{where}: narration_id {row['narration_id']!r} already on line {seen[row['narration_id']]}, "
                            "skipped")
            continue
        seen[row["narration_id"]] = number
        name = {"action": f"{row['verb']}_{row['noun']}", "verb": row["verb"], "noun": row["noun"]}[label]
        job = Job(str(_epic_video(videos, row["participant_id"], row["video_id"])), row["participant_id"],
                  class_folder_name(name), row["narration_id"], segment)
        if _usable(job, where, problems):
            jobs.append(job)
    return jobs, problems


def _epic_video(videos: Path, participant: str, video: str) -> Path:
    candidates = [videos / participant / "videos" / f"{video}.MP4", videos / participant / "videos" / f"{video}.mp4",
                  videos / participant / "rgb_frames" / video, videos / f"{video}.MP4", videos / f"{video}.mp4",
                  videos / video]
    # the first layout is the dataset's own: naming it in "no such video" says where it was looked for
    return next((p for p in candidates if p.exists()), candidates[0])


def epic_labels(annotations: str | Path) -> list[dict[str, str]]:
    """The verb and noun (names and EPIC's class numbers) of every narration of an EPIC-KITCHENS-100
    CSV, as ``labels.csv`` rows (:mod:`fpar.data.labels`); rows without numbers are left out (the
    jobs report their lines)."""
    rows = csv.DictReader(_read_lines(Path(annotations)))
    if not {"narration_id", "verb", "verb_class", "noun", "noun_class"} <= set(rows.fieldnames or ()):
        return []  # an annotation CSV without class numbers gives no labels
    return [{"id": row["narration_id"], "verb": row["verb"], "verb_class": row["verb_class"].strip(),
             "noun": row["noun"], "noun_class": row["noun_class"].strip()}
            for row in rows if row["verb_class"].strip().isdigit() and row["noun_class"].strip().isdigit()]


def egtea_labels(split_file: str | Path, verb_index: str | Path | None = None,
                 noun_index: str | Path | None = None) -> list[dict[str, str]]:
    """The verb and noun of every clip of an EGTEA Gaze+ split file (``<clip> <action> <verb> <noun>``)
    as ``labels.csv`` rows: class number = EGTEA's id - 1 (its ids count from 1), named from
    ``verb_idx.txt`` / ``noun_idx.txt`` where given."""
    names = {kind: read_index(path, []) if path is not None and Path(path).is_file() else {}
             for kind, path in (("verb", verb_index), ("noun", noun_index))}
    rows = []
    for line in _read_lines(Path(split_file)):
        parts = line.split()
        if len(parts) < 4 or not _EGTEA_CLIP.match(parts[0]) or not all(p.isdigit() and int(p) > 0 for p in parts[2:4]):
            continue
        row = {"id": parts[0]}
        for kind, text in zip(("verb", "noun"), parts[2:4]):
            row[f"{kind}_class"] = str(int(text) - 1)
            if int(text) in names[kind]:
                row[kind] = class_folder_name(names[kind][int(text)])
        rows.append(row)
    return rows


def _usable(job: Job, where: str, problems: list[str]) -> bool:
    """Whether the job's names are plain folder names (an annotation could hold ``../`` or a
    300-character name); if not, the problem is recorded and the row skipped."""
    try:
        for name, what in ((job.subject, "subject"), (job.class_name, "class"), (job.instance_id, "instance")):
            check_name(name, what)
    except FparError as exc:
        problems.append(f"{where}: {exc}, skipped")
        return False
    return True


def _read_lines(path: Path) -> list[str]:
    try:
        # utf-8-sig: a byte order mark is the encoding's marker, not part of the first column's name
        return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise FparError(f"{path}: cannot read ({exc.strerror or exc})") from None

"""EPIC-KITCHENS-100's annotations -> jobs, ``labels.csv`` rows and in-place manifest rows; EPIC's
published frame facts (:mod:`fpar.prepare.importers`)."""

from __future__ import annotations

import csv
from pathlib import Path

from fpar.data.labels import ACTION, ACTION_SEPARATOR, CLASS_KINDS
from fpar.errors import FparError
from fpar.prepare.importers.rows import class_folder_name, read_lines, usable
from fpar.prepare.jobs import Job
from fpar.prepare.row_checks import RowChecks, refused
from fpar.prepare.video import Segment

# EPIC-KITCHENS' published frames: ``<P>/rgb_frames/<video>/frame_%010d.jpg`` and
# ``<P>/flow_frames/<video>/{u,v}/frame_%010d.jpg``; TV-L1 flow with stride 2 (flow frame F from
# RGB frames 2F-1, 2F), dilation 3, bound 25 px (the dataset's README)
EPIC_FRAME_PATTERN = "frame_%010d.jpg"
EPIC_FLOW_STRIDE = 2
EPIC_FLOW_BOUND = 25.0
# an EPIC row's participant and the annotation file's split (``train`` of EPIC_100_train.csv): the
# subject is the participant while the dataset holds one split, the split once it holds several
# (docs/protocols.md, "EPIC-KITCHENS-100")
EPIC_COLUMNS = ("participant_id", "epic_split")


def epic_class_name(row: dict[str, str], label: str) -> str:
    """An EPIC row's class name as ``label`` (:data:`~fpar.data.labels.CLASS_KINDS`) takes it: the
    action is ``<verb>_<noun>``, a label kind is its column."""
    return f"{row['verb']}{ACTION_SEPARATOR}{row['noun']}" if label == ACTION else row[label]


def epic_jobs(annotations: str | Path, videos: str | Path, label: str = ACTION) -> tuple[list[Job], list[str]]:
    """Jobs (one per narrated action of an EPIC-KITCHENS-100 CSV) and problems.

    ``label`` picks the class: ``action`` (``verb_noun``, e.g. ``open_door``), ``verb`` or ``noun``.
    """
    annotations, videos = Path(annotations), Path(videos)
    rows = _annotation_rows(annotations, label)
    jobs, problems = [], []
    checks = RowChecks()
    for number, row in enumerate(rows, 2):
        where = f"{annotations}:{number}"
        frames, problem = checks.epic_row(row, len(rows.fieldnames), where)
        if problem is None:
            video = _epic_video(videos, row["participant_id"], row["video_id"])
            problem = checks.within_video(video, frames[1]) if video.is_file() else None
        if problem is not None:  # the duplicate is the problem, not the file
            problems.append(refused(where, "narration_id", row.get("narration_id"), problem))
            continue
        segment = Segment(*frames)
        name = epic_class_name(row, label)
        job = Job(str(_epic_video(videos, row["participant_id"], row["video_id"])), row["participant_id"],
                  class_folder_name(name), row["narration_id"], segment)
        if usable(job, where, problems):
            jobs.append(job)
    return jobs, problems


def _annotation_rows(annotations: Path, label: str) -> csv.DictReader:
    """An EPIC-KITCHENS-100 annotation CSV's rows, once its columns and ``label`` are known to fit."""
    if label not in CLASS_KINDS:
        raise FparError(f"unknown EPIC label {label!r} (choose {', '.join(CLASS_KINDS)})")
    rows = csv.DictReader(read_lines(annotations))
    needed = {"narration_id", "participant_id", "video_id", "start_frame", "stop_frame", "verb", "noun"}
    lacking = needed - set(rows.fieldnames or ())
    if lacking:
        raise FparError(f"{annotations}: not an EPIC-KITCHENS-100 annotation CSV (no {', '.join(sorted(lacking))} column)")
    return rows


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
    rows = csv.DictReader(read_lines(Path(annotations)))
    if not {"narration_id", "verb", "verb_class", "noun", "noun_class"} <= set(rows.fieldnames or ()):
        return []  # an annotation CSV without class numbers gives no labels
    return [{"id": row["narration_id"], "verb": row["verb"], "verb_class": row["verb_class"].strip(),
             "noun": row["noun"], "noun_class": row["noun_class"].strip()}
            for row in rows if None not in row.values()  # a short row: the jobs report its line
            and row["verb_class"].strip().isdigit() and row["noun_class"].strip().isdigit()]


def epic_manifest(annotations: str | Path, root: str | Path, *, videos: bool = False,
                  label: str = ACTION) -> tuple[list[dict[str, str]], list[str]]:
    """In-place manifest rows (one per narrated action of an EPIC-KITCHENS-100 CSV) and problems.

    ``root`` is the dataset's folder. Each row names the segment's frames in
    ``<P>/rgb_frames/<video>/`` and, where the video has them, its flow frames in
    ``<P>/flow_frames/<video>/u`` and ``v`` (one flow frame per two RGB frames, bound 25 px); with
    ``videos=True`` it names ``<P>/videos/<video>.MP4`` instead (RGB only). Paths are relative to
    ``root``; a row whose frame folder or video is missing is a problem, not a row."""
    annotations, root = Path(annotations), Path(root)
    rows = _annotation_rows(annotations, label)
    out, problems = [], []
    checks = RowChecks()
    sources: dict[tuple[str, str], dict[str, str] | str] = {}  # (participant, video) -> columns, or why not
    for number, row in enumerate(rows, 2):
        where = f"{annotations}:{number}"
        frames, problem = checks.epic_row(row, len(rows.fieldnames), where)
        if problem is None:
            key = (row["participant_id"], row["video_id"])
            if key not in sources:
                sources[key] = _epic_source(root, *key, videos)
            problem = sources[key] if isinstance(sources[key], str) else _epic_frames_problem(
                checks, root, sources[key], *frames)
        if problem is not None:
            problems.append(refused(where, "narration_id", row.get("narration_id"), problem))
            continue
        start, stop = frames
        name = epic_class_name(row, label)
        out.append({"id": row["narration_id"], "subject": row["participant_id"], "label": class_folder_name(name),
                    "start_frame": str(start), "stop_frame": str(stop), **sources[key],
                    "participant_id": row["participant_id"], "epic_split": epic_split_name(annotations)})
    return out, problems


def epic_split_name(annotations: str | Path) -> str:
    """The split an EPIC-KITCHENS-100 CSV holds, from its published name: ``EPIC_100_train.csv`` ->
    ``train``, ``EPIC_100_validation.csv`` -> ``validation``; another name: its stem."""
    stem = Path(annotations).stem
    return stem[len("EPIC_100_"):] if stem.startswith("EPIC_100_") and len(stem) > len("EPIC_100_") else stem


def merge_epic_rows(out: str | Path, root: str | Path, rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], int]:
    """``rows`` merged with those of an EPIC manifest already in ``OUT`` (an earlier import into the
    same root), and how many earlier rows they replace: a narration imported again replaces its row,
    every other row is kept. Once the rows hold several splits, each row's subject is its split
    (``train``, ``validation``: what ``--protocol epic100`` folds on); with one, its participant.
    A manifest in ``OUT`` that is no EPIC import, or reads another frame root, is refused."""
    path = Path(out) / "manifest.csv"
    kept: list[dict[str, str]] = []
    if path.is_file():
        lines = read_lines(path)
        header = [line for line in lines if line.startswith("#")]
        old_root = next((line.partition(":")[2].strip() for line in header if line[1:].strip().startswith("root:")), None)
        table = list(csv.DictReader(line for line in lines if not line.startswith("#")))
        if not table or not set(EPIC_COLUMNS) <= set(table[0]):
            raise FparError(f"{path} is not an EPIC-KITCHENS import of fpar prepare --epic (no "
                            f"{', '.join(EPIC_COLUMNS)} columns): give another --out to import into")
        if old_root is None or Path(old_root).resolve() != Path(root).resolve():
            raise FparError(f"{path} reads frames under {old_root}, this import under {Path(root).resolve()}: one "
                            "dataset has one frame root; give another --out")
        kept = [{key: value for key, value in row.items() if key is not None and value} for row in table]
    new_ids = {row["id"] for row in rows}
    replaced = sum(row["id"] in new_ids for row in kept)
    merged = [row for row in kept if row["id"] not in new_ids] + rows
    several = len({row["epic_split"] for row in merged}) > 1
    for row in merged:
        row["subject"] = row["epic_split"] if several else row["participant_id"]
    return merged, replaced


def _epic_frames_problem(checks: RowChecks, root: Path, source: dict[str, str], start: int, stop: int) -> str | None:
    """Why frames ``start..stop`` of an EPIC video are not all there (first and last checked), or None."""
    if "video" in source:
        return checks.within_video(root / source["video"], stop)
    return checks.frames_on_disk(root / source["frames"], source["frame_pattern"], (start, stop))


def _epic_source(root: Path, participant: str, video: str, videos: bool) -> dict[str, str] | str:
    """The manifest columns naming one EPIC video's frames (or the video itself), or why there are none."""
    if videos:
        for suffix in (".MP4", ".mp4"):
            relative = f"{participant}/videos/{video}{suffix}"
            if (root / relative).is_file():
                return {"video": relative}
        return f"no video {root / participant / 'videos' / (video + '.MP4')}"
    frames = f"{participant}/rgb_frames/{video}"
    if not (root / frames).is_dir():
        return f"no frame folder {root / frames}"
    columns = {"frames": frames, "frame_pattern": EPIC_FRAME_PATTERN}
    flow = f"{participant}/flow_frames/{video}"
    if (root / flow / "u").is_dir() and (root / flow / "v").is_dir():
        columns |= {"flow_x": f"{flow}/u", "flow_y": f"{flow}/v", "flow_pattern": EPIC_FRAME_PATTERN,
                    "flow_stride": str(EPIC_FLOW_STRIDE), "flow_bound": f"{EPIC_FLOW_BOUND:g}"}
    return columns

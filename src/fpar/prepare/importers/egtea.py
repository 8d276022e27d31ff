"""EGTEA Gaze+'s annotations -> jobs, ``labels.csv`` rows and in-place manifest rows
(:mod:`fpar.prepare.importers`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from fpar.prepare.importers.epic import EPIC_FRAME_PATTERN
from fpar.prepare.importers.rows import class_folder_name, read_index, read_lines, usable
from fpar.prepare.jobs import Job
from fpar.prepare.row_checks import RowChecks, egtea_fields_problem, frame_range_problem, id_problem, refused
from fpar.prepare.video import Segment

_EGTEA_CLIP = re.compile(r"^(?P<session>(?P<subject>[A-Za-z]+\d+)-.+)-\d+-\d+-F(?P<start>\d+)-F(?P<end>\d+)$")


def _clip_lines(split_file: Path, problems: list[str]) -> Iterator[tuple[str, list[str], re.Match]]:
    """Each clip line of a split file as ``(FILE:LINE, its words, the clip name's match)``; a line
    that is no ``<clip> <action> ...`` is recorded in ``problems`` and skipped."""
    for number, line in enumerate(read_lines(split_file), 1):
        if not line.strip():
            continue
        where = f"{split_file}:{number}"
        parts = line.split()
        match = _EGTEA_CLIP.match(parts[0])
        if len(parts) < 2 or not match or not parts[1].isdigit():
            problems.append(f"{where}: not a '<clip> <action> <verb> <noun>' line, skipped: {line.strip()!r}")
            continue
        yield where, parts, match


def egtea_jobs(split_file: str | Path, action_index: str | Path, videos: str | Path) -> tuple[list[Job], list[str]]:
    """Jobs (one per clip of ``split_file``) and problems (lines that could not be used)."""
    split_file, videos = Path(split_file), Path(videos)
    jobs, problems = [], []
    actions = read_index(action_index, problems)
    for where, parts, match in _clip_lines(split_file, problems):
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
        if usable(job, where, problems):
            jobs.append(job)
    return jobs, problems


def egtea_labels(split_file: str | Path, verb_index: str | Path | None = None,
                 noun_index: str | Path | None = None) -> list[dict[str, str]]:
    """The verb and noun of every clip of an EGTEA Gaze+ split file (``<clip> <action> <verb> <noun>``)
    as ``labels.csv`` rows: class number = EGTEA's id - 1 (its ids count from 1), named from
    ``verb_idx.txt`` / ``noun_idx.txt`` where given."""
    names = {kind: read_index(path, []) if path is not None and Path(path).is_file() else {}
             for kind, path in (("verb", verb_index), ("noun", noun_index))}
    rows = []
    for line in read_lines(Path(split_file)):
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


def egtea_manifest(split_file: str | Path, action_index: str | Path, root: str | Path, *,
                   videos: bool = False) -> tuple[list[dict[str, str]], list[str]]:
    """In-place manifest rows (one per clip of an EGTEA Gaze+ split file) and problems.

    Frames (``videos=False``): a clip's own folder ``<session>/<clip>/`` or ``<clip>/`` of
    ``frame_%010d.jpg`` numbered from 1 (frames 1 .. end - start + 1), else the session's folder
    ``<session>/`` numbered as the session video (frames start .. end of the clip name). Videos:
    the cropped clip ``<session>/<clip>.mp4`` or ``<clip>.mp4`` (frames 1 .. end - start + 1),
    else ``<session>.mp4`` (frames start .. end). EGTEA publishes no flow: rows are RGB only."""
    split_file, root = Path(split_file), Path(root)
    out, problems = [], []
    actions = read_index(action_index, problems)
    checks = RowChecks()
    for where, parts, match in _clip_lines(split_file, problems):
        clip, session = parts[0], match["session"]
        start, end = int(match["start"]), int(match["end"])
        action = actions.get(int(parts[1]))
        problem = (id_problem(clip) or egtea_fields_problem(parts) or (
                   f"action id {parts[1]} not in {action_index}" if action is None else
                   f"clip ends (frame {end}) before it starts ({start})" if start > end else
                   frame_range_problem(start, end)[1] or checks.duplicate(clip, where)))
        if problem is None:
            source = _egtea_source(root, session, clip, start, end, videos)
            problem = source if isinstance(source, str) else _egtea_frames_problem(checks, root, source)
        if problem is not None:
            problems.append(refused(where, "clip", clip, problem))
            continue
        out.append({"id": clip, "subject": match["subject"], "label": class_folder_name(action), **source})
    return out, problems


def _egtea_frames_problem(checks: RowChecks, root: Path, source: dict[str, str]) -> str | None:
    """Why a clip's frames are not all in its folder or video (first and last checked), or None."""
    start, stop = int(source["start_frame"]), int(source["stop_frame"])
    if "video" in source:
        return checks.within_video(root / source["video"], stop)
    return checks.frames_on_disk(root / source["frames"], source["frame_pattern"], (start, stop))


def _egtea_source(root: Path, session: str, clip: str, start: int, end: int, videos: bool) -> dict[str, str] | str:
    whole_clip = {"start_frame": "1", "stop_frame": str(end - start + 1)}
    in_session = {"start_frame": str(start), "stop_frame": str(end)}
    if videos:
        for relative in (f"{session}/{clip}.mp4", f"{clip}.mp4"):
            if (root / relative).is_file():
                return {"video": relative, **whole_clip}
        if (root / f"{session}.mp4").is_file():
            return {"video": f"{session}.mp4", **in_session}
        return f"no video {root / session / (clip + '.mp4')} nor {root / (session + '.mp4')}"
    for relative in (f"{session}/{clip}", clip):
        if (root / relative).is_dir():
            return {"frames": relative, "frame_pattern": EPIC_FRAME_PATTERN, **whole_clip}
    if (root / session).is_dir():
        return {"frames": session, "frame_pattern": EPIC_FRAME_PATTERN, **in_session}
    return f"no frame folder {root / session / clip} nor {root / session}"

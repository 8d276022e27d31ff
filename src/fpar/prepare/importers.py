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
**In place** (:func:`epic_manifest`, :func:`egtea_manifest`; docs/prepare.md, "In place"): the same
annotations become manifest rows naming frame ranges of the published frame folders, or of the
videos, which :func:`fpar.data.load_index` reads where they are: no pixel written, no flow computed.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from fpar.data.labels import ACTION, ACTION_SEPARATOR, CLASS_KINDS
from fpar.data.layouts import FILE_KINDS, RANGE_COLUMNS
from fpar.errors import FparError
from fpar.prepare.jobs import Job
from fpar.prepare.layout_writer import check_name
from fpar.prepare.row_checks import RowChecks, egtea_fields_problem, frame_range_problem, id_problem, refused
from fpar.prepare.video import Segment

_EGTEA_CLIP = re.compile(r"^(?P<session>(?P<subject>[A-Za-z]+\d+)-.+)-\d+-\d+-F(?P<start>\d+)-F(?P<end>\d+)$")

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
# the columns of an in-place manifest, in order
MANIFEST_COLUMNS = ("id", "subject", "label", "frames", "video", *(k for k in FILE_KINDS if k != "rgb"),
                    *RANGE_COLUMNS, *EPIC_COLUMNS)


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


def epic_class_name(row: dict[str, str], label: str) -> str:
    """An EPIC row's class name as ``label`` (:data:`~fpar.data.labels.CLASS_KINDS`) takes it: the
    action is ``<verb>_<noun>``, a label kind is its column."""
    return f"{row['verb']}{ACTION_SEPARATOR}{row['noun']}" if label == ACTION else row[label]


def epic_jobs(annotations: str | Path, videos: str | Path, label: str = ACTION) -> tuple[list[Job], list[str]]:
    """Jobs (one per narrated action of an EPIC-KITCHENS-100 CSV) and problems.

    ``label`` picks the class: ``action`` (``verb_noun``, e.g. ``open_door``), ``verb`` or ``noun``.
    """
    if label not in CLASS_KINDS:
        raise FparError(f"unknown EPIC label {label!r} (choose {', '.join(CLASS_KINDS)})")
    annotations, videos = Path(annotations), Path(videos)
    rows = csv.DictReader(_read_lines(annotations))
    needed = {"narration_id", "participant_id", "video_id", "start_frame", "stop_frame", "verb", "noun"}
    lacking = needed - set(rows.fieldnames or ())
    if lacking:
        raise FparError(f"{annotations}: not an EPIC-KITCHENS-100 annotation CSV (no {', '.join(sorted(lacking))} column)")
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
            for row in rows if None not in row.values()  # a short row: the jobs report its line
            and row["verb_class"].strip().isdigit() and row["noun_class"].strip().isdigit()]


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
def epic_manifest(annotations: str | Path, root: str | Path, *, videos: bool = False,
                  label: str = ACTION) -> tuple[list[dict[str, str]], list[str]]:
    """In-place manifest rows (one per narrated action of an EPIC-KITCHENS-100 CSV) and problems.

    ``root`` is the dataset's folder. Each row names the segment's frames in
    ``<P>/rgb_frames/<video>/`` and, where the video has them, its flow frames in
    ``<P>/flow_frames/<video>/u`` and ``v`` (one flow frame per two RGB frames, bound 25 px); with
    ``videos=True`` it names ``<P>/videos/<video>.MP4`` instead (RGB only). Paths are relative to
    ``root``; a row whose frame folder or video is missing is a problem, not a row."""
    if label not in CLASS_KINDS:
        raise FparError(f"unknown EPIC label {label!r} (choose {', '.join(CLASS_KINDS)})")
    annotations, root = Path(annotations), Path(root)
    rows = csv.DictReader(_read_lines(annotations))
    needed = {"narration_id", "participant_id", "video_id", "start_frame", "stop_frame", "verb", "noun"}
    lacking = needed - set(rows.fieldnames or ())
    if lacking:
        raise FparError(f"{annotations}: not an EPIC-KITCHENS-100 annotation CSV (no {', '.join(sorted(lacking))} column)")
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
        lines = _read_lines(path)
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
    for number, line in enumerate(_read_lines(split_file), 1):
        if not line.strip():
            continue
        where = f"{split_file}:{number}"
        parts = line.split()
        match = _EGTEA_CLIP.match(parts[0])
        if len(parts) < 2 or not match or not parts[1].isdigit():
            problems.append(f"{where}: not a '<clip> <action> <verb> <noun>' line, skipped: {line.strip()!r}")
            continue
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


def write_in_place_manifest(rows: list[dict[str, str]], root: str | Path, out: str | Path) -> Path:
    """Write ``rows`` as ``OUT/manifest.csv`` whose ``# root:`` line names ``root`` (absolute), the
    folder every row's path is relative to. Refused when ``OUT`` lies inside ``root``: nothing is
    written under a dataset used in place."""
    from fpar.io import inside, write_text

    root, out = Path(root).resolve(), Path(out)
    if not root.is_dir():
        raise FparError(f"{root}: no such folder (the dataset's frames or videos)")
    real_out = out.resolve()
    if real_out == root or root in real_out.parents:
        raise FparError(f"--out {out} is inside the dataset {root}: an in-place manifest is written outside it "
                        "(nothing is written under a dataset used in place)")
    if "\n" in str(root):
        raise FparError(f"{root}: a folder name with a line break cannot be a manifest's root line")
    target = inside(out, "manifest.csv")
    columns = [c for c in MANIFEST_COLUMNS if any(row.get(c) for row in rows)]
    buffer = io.StringIO()
    buffer.write(f"# root: {root}\n")
    writer = csv.DictWriter(buffer, columns, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_text(target, buffer.getvalue())
    return target


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

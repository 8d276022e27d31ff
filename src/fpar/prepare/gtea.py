"""Raw GTEA -> the processed layout, the way Ego-RNN prepares GTEA61 (docs/method.md §1).

Expected raw layout (folder names configurable, GTEA variants differ)::

    RAW/png/<video>/<frames>.png      one folder per video, e.g. png/S1_Cheese_C1/0000000001.png
    RAW/labels/<video>.txt            one label file per video

A label line reads ``<verb><noun1,noun2> (start-end) ...``; ``start``/``end`` are frame numbers,
inclusive, matched against the number in each frame's file name. Each labelled segment becomes
one instance ``<video>_<start>-<end>`` of class ``verb_noun1,noun2`` for the subject named by the
video's prefix (``S1_Cheese_C1`` -> ``S1``). As in Ego-RNN, ``stir_cup`` is renamed
``stir_spoon,cup`` and ``put_tea`` is dropped, which leaves GTEA61's 61 classes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from fpar.data.frames import read_frame
from fpar.errors import FparError
from fpar.prepare.flow import DEFAULT_BOUND
from fpar.prepare.layout_writer import is_prepared, write_instance
from fpar.prepare.video import frame_number, image_files, resize_short_side

log = logging.getLogger(__name__)

RENAMES = {"stir_cup": "stir_spoon,cup"}
DROPS = frozenset({"put_tea"})
_LINE = re.compile(r"^\s*<([^<>]+)>\s*<([^<>]+)>\s*\(\s*(\d+)\s*-\s*(\d+)\s*\)")


@dataclass(frozen=True)
class Segment:
    """One labelled segment of a raw video."""

    video: str
    subject: str
    class_name: str
    start: int
    end: int

    @property
    def instance_id(self) -> str:
        return f"{self.video}_{self.start}-{self.end}"


@dataclass
class GteaImport:
    """What :func:`import_gtea` did, and the lines or segments it could not use."""

    written: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)  # finished by an earlier run, skipped
    dropped: int = 0  # segments of dropped classes
    problems: list[str] = field(default_factory=list)


def parse_labels(path: Path, problems: list[str]) -> tuple[list[Segment], int]:
    """Segments of one label file (renames applied, drops removed) and the number dropped.

    An unparsable line is skipped with a warning naming file and line, appended to ``problems``.
    """
    video = path.stem
    segments, dropped = [], 0
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        start, end = (int(match.group(3)), int(match.group(4))) if match else (0, -1)
        if not match or start > end:
            _warn(problems, f"{path}:{number}: not a '<verb><nouns> (start-end)' label line, skipped: {line.strip()!r}")
            continue
        nouns = ",".join(n.strip() for n in match.group(2).split(","))
        class_name = f"{match.group(1).strip()}_{nouns}"
        class_name = RENAMES.get(class_name, class_name)
        if class_name in DROPS:
            dropped += 1
            continue
        segments.append(Segment(video, video.split("_")[0], class_name, start, end))
    return segments, dropped


def import_gtea(
    raw_root: str | Path,
    out_root: str | Path,
    *,
    flow: str = "tvl1",
    bound: float = DEFAULT_BOUND,
    size: int | None = None,
    frames_dir: str = "png",
    labels_dir: str = "labels",
    progress: bool = True,
) -> GteaImport:
    """Write every labelled segment of the raw GTEA tree at ``raw_root`` as one processed instance.

    Resumable: instances a previous run finished are skipped, unfinished ones redone.
    """
    raw_root = Path(raw_root)
    label_files = sorted((raw_root / labels_dir).glob("*.txt"))
    if not label_files:
        raise FparError(f"{raw_root / labels_dir}: no label files (*.txt); is {raw_root} a raw GTEA folder?")
    result = GteaImport()
    segments: list[Segment] = []
    for path in label_files:
        found, dropped = parse_labels(path, result.problems)
        segments += found
        result.dropped += dropped

    todo = []
    for segment in segments:  # finished ones are left out before the bar starts, so its ETA is honest
        if is_prepared(out_root, segment.subject, segment.class_name, segment.instance_id):
            result.resumed.append(segment.instance_id)
        else:
            todo.append(segment)

    frame_index: dict[str, dict[int, Path]] = {}
    for segment in tqdm(todo, desc="gtea", unit="inst", disable=not progress):
        if segment.video not in frame_index:
            folder = raw_root / frames_dir / segment.video
            frame_index[segment.video] = {frame_number(p): p for p in image_files(folder)} if folder.is_dir() else {}
        files = frame_index[segment.video]
        missing = [k for k in range(segment.start, segment.end + 1) if k not in files]
        if missing:
            where = raw_root / frames_dir / segment.video
            _warn(result.problems, f"{where}: frames {missing[0]}..{missing[-1]} of {segment.instance_id} missing "
                                   f"({len(missing)} of {segment.end - segment.start + 1}), skipped")
            continue
        numbers = range(segment.start, segment.end + 1)
        frames = [resize_short_side(read_frame(files[k], color=True), size) for k in numbers]
        write_instance(
            frames, out_root, subject=segment.subject, class_name=segment.class_name,
            instance_id=segment.instance_id, flow=flow, bound=bound,
        )
        result.written.append(segment.instance_id)
    return result


def _warn(problems: list[str], message: str) -> None:
    problems.append(message)
    log.warning("%s", message)

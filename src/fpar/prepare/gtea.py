"""Raw GTEA -> the processed layout, the way Ego-RNN prepares GTEA61 (docs/method.md §1).

Expected raw layout (folder names configurable, GTEA variants differ)::

    RAW/png/<video>/<frames>.png      one folder per video, e.g. png/S1_Cheese_C1/0000000001.png
    RAW/labels/<video>.txt            one label file per video

A label line reads ``<verb><noun1,noun2> (start-end) ...``; ``start``/``end`` are frame numbers,
inclusive, matched against the number in each frame's file name. Each labelled segment becomes
one instance ``<video>_<start>-<end>`` of class ``verb_noun1,noun2`` for the subject named by the
video's prefix (``S1_Cheese_C1`` -> ``S1``). As in Ego-RNN, ``stir_cup`` is renamed
``stir_spoon,cup`` and ``put_tea`` is dropped, which leaves GTEA61's 61 classes.

Segments become :class:`~fpar.prepare.jobs.Job` rows and go through :func:`~fpar.prepare.jobs.run_jobs`
like any manifest (workers, shards, settings record, locks).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from fpar.errors import FparError
from fpar.data.frames import FLOW_BOUND
from fpar.prepare.flow import DEFAULT_FLOW_METHOD
from fpar.prepare.jobs import Job, RunOptions, check_jobs, run_jobs, shard
from fpar.prepare.layout_writer import check_name
from fpar.prepare.video import Segment as FrameRange

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
    failed: int = 0  # segments whose instance could not be written (also in problems)


def parse_labels(path: Path, problems: list[str]) -> tuple[list[Segment], int]:
    """Segments of one label file (renames applied, drops removed) and the number dropped.

    An unusable line (unparsable, or naming a class that is no plain folder name) is skipped with
    a warning naming file and line, appended to ``problems``.
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
        segment = Segment(video, video.split("_")[0], class_name, start, end)
        try:
            for name, what in ((segment.subject, "subject"), (class_name, "class"), (segment.instance_id, "instance")):
                check_name(name, what)
        except FparError as exc:
            _warn(problems, f"{path}:{number}: {exc}, skipped: {line.strip()!r}")
            continue
        segments.append(segment)
    return segments, dropped


def gtea_jobs(
    raw_root: str | Path, *, frames_dir: str = "png", labels_dir: str = "labels"
) -> tuple[list[Job], int, list[str]]:
    """Jobs (one per labelled segment of the raw GTEA tree), the number dropped, and the problems."""
    raw_root = Path(raw_root)
    label_files = sorted((raw_root / labels_dir).glob("*.txt"))
    if not label_files:
        raise FparError(f"{raw_root / labels_dir}: no label files (*.txt); is {raw_root} a raw GTEA folder?")
    jobs, dropped, problems = [], 0, []
    for path in label_files:
        found, n_dropped = parse_labels(path, problems)
        dropped += n_dropped
        jobs += [Job(str(raw_root / frames_dir / s.video), s.subject, s.class_name, s.instance_id,
                     FrameRange(s.start, s.end)) for s in found]
    return jobs, dropped, problems


def import_gtea(
    raw_root: str | Path,
    out_root: str | Path,
    *,
    flow: str = DEFAULT_FLOW_METHOD,
    bound: float = FLOW_BOUND,
    size: int | None = None,
    warp: bool = True,
    frames_dir: str = "png",
    labels_dir: str = "labels",
    workers: int = 1,
    shard_of: tuple[int, int] | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool | None = None,
) -> GteaImport:
    """Write every labelled segment of the raw GTEA tree at ``raw_root`` as one processed instance.

    Resumable: instances a previous run finished (with the same settings) are skipped, unfinished
    ones redone. A segment that fails (missing frames, ...) is recorded in ``problems``; the others
    go on. ``shard_of=(k, n)`` prepares shard k of n only.
    """
    jobs, dropped, problems = gtea_jobs(raw_root, frames_dir=frames_dir, labels_dir=labels_dir)
    jobs = check_jobs(jobs)
    if shard_of is not None:
        jobs = shard(jobs, *shard_of)
    options = RunOptions(str(out_root), flow=flow, bound=bound, size=size, warp=warp, device=device, overwrite=overwrite)
    report = run_jobs(jobs, options, workers=workers, progress=progress)
    for line in report.summary():
        _warn(problems, line)
    return GteaImport(report.written, report.skipped, dropped, problems, len(report.failed))


def _warn(problems: list[str], message: str) -> None:
    problems.append(message)
    log.warning("%s", message)

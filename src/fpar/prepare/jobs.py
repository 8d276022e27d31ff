"""Many videos in one run: jobs from a manifest, a folder tree or an importer; shards; workers.

A job is one instance to prepare: a video (file, GIF or frame folder), the subject, class and
instance names, and optionally a segment of the video. Every source of jobs -- a manifest file,
a ``SRC/<subject>/<class>/<video>`` tree, the GTEA, EGTEA Gaze+ and EPIC-KITCHENS importers --
yields the same :class:`Job` rows, and :func:`run_jobs` prepares them.

**Shards.** ``shard(jobs, k, n)`` keeps the jobs whose instance key hashes to ``k`` of ``n``. The
hash depends on the key alone, so every machine of a SLURM array computes the same split from the
same list, and adding rows to a manifest does not move the other instances to another shard.

**Resuming.** Each instance is written atomically under its own lock (see
:mod:`fpar.prepare.layout_writer`), so any mix of shards, kills and reruns ends in the same files.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from fpar.errors import FparError, Interrupted
from fpar.io import die_with_parent
from fpar.progress import on_terminal, quiet
from fpar.prepare.flow import DEFAULT_BOUND, FRAME_RATE_RANGE
from fpar.prepare.video import IMAGE_SUFFIXES, Segment

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".gif")


@dataclass(frozen=True)
class Job:
    """One instance to prepare from ``video`` (or the ``segment`` of it)."""

    video: str
    subject: str
    class_name: str
    instance_id: str
    segment: Segment | None = None
    fps: float | None = None  # of a frame folder, for a segment in seconds

    @property
    def key(self) -> str:
        return f"{self.subject}/{self.class_name}/{self.instance_id}"


@dataclass
class RunReport:
    """What :func:`run_jobs` did: instances written and skipped, and each failure's reason."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    frames: int = 0

    def summary(self) -> list[str]:
        """One line per failed instance naming its video and the reason."""
        lines = []
        for job, reason in self.failed:
            reason = reason.removeprefix(f"{job.key}: ")  # the line names the instance once
            lines.append(f"failed: {job.key}" + ("" if job.video in reason else f" ({job.video})") + f": {reason}")
        return lines


# --- job sources -------------------------------------------------------------------------------

# A manifest is read whole: far larger than any dataset's (EPIC-KITCHENS-100's is a few MiB) is a mistake
MANIFEST_MAX_BYTES = 256 << 20
_SEGMENT_COLUMNS = {"frame": ("start_frame", "end_frame"), "sec": ("start_sec", "end_sec")}


def read_manifest(path: str | Path) -> list[Job]:
    """Jobs of a CSV (header row) or JSONL (one object a line) manifest.

    Columns: ``video``, ``subject``, ``class`` (required); ``instance`` (default: the video's stem,
    plus the segment when there is one); ``start_frame``/``end_frame`` or ``start_sec``/``end_sec``
    (a segment; several rows may share one video); ``fps`` (a frame folder's rate, for seconds).
    A relative ``video`` is relative to the manifest's folder.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MANIFEST_MAX_BYTES:
            raise FparError(f"{path}: a manifest of {size / 2**20:.0f} MiB is more than the {MANIFEST_MAX_BYTES >> 20} MiB "
                            "fpar reads; split it")
        data = path.read_bytes()
    except OSError as exc:
        raise FparError(f"{path}: cannot read manifest ({exc.strerror or exc})") from None
    try:  # utf-8-sig: a byte order mark (spreadsheets write one) is the encoding's marker, not text
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise FparError(f"{path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x}); save the manifest as UTF-8") from None
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):  # nesting deeper than the parser's stack: not a row
                    raise FparError(f"{path}:{number}: not a JSON object") from None
                if not isinstance(row, dict):
                    raise FparError(f"{path}:{number}: not a JSON object")
                rows.append((number, row))
    else:
        reader = csv.DictReader(text.splitlines())
        rows = [(number, row) for number, row in enumerate(reader, 2)]
    jobs = [_job_from_row(row, f"{path}:{number}", path.parent) for number, row in rows]
    if not jobs:
        raise FparError(f"{path}: no rows (need columns video, subject, class)")
    return jobs


def _job_from_row(row: dict, where: str, base: Path) -> Job:
    row = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k is not None}
    for key in ("video", "subject", "class", "instance"):
        value = row.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int))):
            raise FparError(f"{where}: {key} must be a name (text), got {type(value).__name__} {str(value)[:40]}")
    missing = [key for key in ("video", "subject", "class") if row.get(key) in (None, "")]
    if missing:
        raise FparError(f"{where}: missing {', '.join(missing)}")
    segment = None
    for unit, (start_key, end_key) in _SEGMENT_COLUMNS.items():
        if row.get(start_key) not in (None, "") or row.get(end_key) not in (None, ""):
            if segment is not None:
                raise FparError(f"{where}: give a segment in frames or in seconds, not both")
            segment = Segment(_number(row.get(start_key), where, start_key, unit),
                              _number(row.get(end_key), where, end_key, unit), unit)
            if segment.start is not None and segment.end is not None and segment.start > segment.end:
                raise FparError(f"{where}: {start_key} {segment.start:g} is after {end_key} {segment.end:g}")
    video = Path(str(row["video"]))
    video = video if video.is_absolute() else base / video
    instance = str(row.get("instance") or "") or _default_instance(video, segment)
    fps = _number(row.get("fps"), where, "fps", "sec")
    low, high = FRAME_RATE_RANGE
    if fps is not None and not low <= fps <= high:
        raise FparError(f"{where}: fps must be from {low:g} to {high:g} frames per second, got {row['fps']!r}")
    return Job(str(video), str(row["subject"]), str(row["class"]), instance, segment, fps)


def _number(value, where: str, column: str, unit: str) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise FparError(f"{where}: {column} {value!r} is not {'a number' if unit == 'sec' else 'a whole number'}")
    try:
        number = float(value) if unit == "sec" else int(value)
    except (TypeError, ValueError):
        raise FparError(f"{where}: {column} {value!r} is not {'a number' if unit == 'sec' else 'a whole number'}") from None
    if not 0 <= number < float("inf"):
        raise FparError(f"{where}: {column} must be a finite number >= 0, got {value!r}")
    return number


def _default_instance(video: Path, segment: Segment | None) -> str:
    stem = video.stem if video.suffix.lower() in VIDEO_SUFFIXES else video.name
    if segment is None:
        return stem
    ends = "-".join("" if v is None else f"{v:g}" for v in (segment.start, segment.end))
    return f"{stem}_{ends}" + ("s" if segment.unit == "sec" else "")


def tree_jobs(source: str | Path) -> list[Job]:
    """One job per video of ``SRC/<subject>/<class>/<video>`` (a video file, GIF or frame folder)."""
    source = Path(source)
    if not source.is_dir():
        raise FparError(f"{source}: not a folder (expected SRC/<subject>/<class>/<video>)")
    jobs = []
    for subject in _visible_dirs(source):
        for class_dir in _visible_dirs(subject):
            for video in sorted(class_dir.iterdir()):
                if video.name.startswith("."):
                    continue
                if video.is_dir() or video.suffix.lower() in VIDEO_SUFFIXES:
                    jobs.append(Job(str(video), subject.name, class_dir.name, _default_instance(video, None)))
    if not jobs:
        raise FparError(f"{source}: no videos found at <subject>/<class>/<video> "
                        f"(video files {', '.join(VIDEO_SUFFIXES)}, or folders of {', '.join(IMAGE_SUFFIXES)})")
    return jobs


def _visible_dirs(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def write_manifest(jobs: Iterable[Job], path: str | Path) -> None:
    """Write ``jobs`` as a CSV manifest :func:`read_manifest` reads back (to inspect or edit an import)."""
    from fpar.io import atomic_path

    columns = ["video", "subject", "class", "instance", "start_frame", "end_frame", "start_sec", "end_sec", "fps"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for job in jobs:
            row = {"video": job.video, "subject": job.subject, "class": job.class_name, "instance": job.instance_id,
                   "fps": "" if job.fps is None else f"{job.fps:g}"}
            if job.segment is not None:
                start_key, end_key = _SEGMENT_COLUMNS[job.segment.unit]
                row[start_key] = "" if job.segment.start is None else f"{job.segment.start:g}"
                row[end_key] = "" if job.segment.end is None else f"{job.segment.end:g}"
            writer.writerow(row)


# --- planning ----------------------------------------------------------------------------------


def check_jobs(jobs: list[Job]) -> list[Job]:
    """``jobs`` sorted by instance key; :class:`FparError` if two rows would write one instance."""
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.key in seen and seen[job.key] != job:
            raise FparError(f"two rows would write one instance {job.key} ({seen[job.key].video} and {job.video}); "
                            "give them distinct instance names")
        seen[job.key] = job
    return [seen[key] for key in sorted(seen)]


def shard(jobs: list[Job], k: int, n: int) -> list[Job]:
    """The jobs of shard ``k`` of ``n`` (1-based): those whose instance key hashes to it."""
    return [job for job in jobs if int(hashlib.sha1(job.key.encode()).hexdigest(), 16) % n == k - 1]


# --- running -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    """Everything a worker needs besides the job (plain values: it crosses process boundaries)."""

    out_root: str
    flow: str = "tvl1"
    bound: float = DEFAULT_BOUND
    size: int | None = None
    warp: bool = False
    max_frames: int | None = None
    device: str = "cpu"
    overwrite: bool = False


def prepare_job(job: Job, options: RunOptions) -> tuple[bool, int]:
    """Prepare one job; (skipped, frames written). Runs in a worker process."""
    from fpar.prepare.layout_writer import prepare_video

    result = prepare_video(
        job.video, options.out_root, subject=job.subject, class_name=job.class_name, instance_id=job.instance_id,
        flow=options.flow, bound=options.bound, size=options.size, max_frames=options.max_frames,
        segment=job.segment, fps=job.fps, warp=options.warp, device=options.device, overwrite=options.overwrite,
        progress=False,
    )
    return result.skipped, result.n_frames


def _guarded(job: Job, options: RunOptions) -> tuple[bool, int, str | None]:
    """:func:`prepare_job` with its failure as a reason, so one bad video does not stop the others."""
    try:
        skipped, frames = prepare_job(job, options)
        return skipped, frames, None
    except FparError as exc:
        return False, 0, str(exc)
    except Exception as exc:  # an unforeseen failure of one instance still must not stop the run
        return False, 0, f"{type(exc).__name__}: {exc}"


def _init_worker(torch_threads: int, parent: int) -> None:
    import cv2
    import torch

    die_with_parent(parent)  # a killed `fpar prepare` leaves no worker running on (and holding locks)

    # N workers each using every core would only fight over them: OpenCV's small per-frame work runs
    # single-threaded, and the workers share the cores out for the PyTorch TV-L1.
    cv2.setNumThreads(1)
    torch.set_num_threads(torch_threads)


@contextlib.contextmanager
def _one_thread_pool(flow: str) -> Iterator[None]:
    """In one process, the PyTorch TV-L1 (OpenMP) and OpenCV's own thread pool (warp, motion maps,
    PNG encoding) take turns on the same cores; each pool's idle threads spin while the other works,
    which made warp flow ~10x slower on 2 cores. OpenCV's share is small: run it on one thread."""
    import cv2

    if flow != "tvl1":
        yield
        return
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def run_jobs(
    jobs: list[Job], options: RunOptions, *, workers: int = 1, progress: bool | None = None,
    stream: TextIO | None = None,
) -> RunReport:
    """Prepare ``jobs`` with ``workers`` processes, each taking whole instances; failures are
    recorded in the report, not raised. ``progress``: a bar on ``stream`` (stderr) when it is a
    terminal (None), always (True) or never (False); otherwise one plain line per instance."""
    from fpar.prepare.layout_writer import check_out_root

    check_out_root(options.out_root)
    stream = stream or sys.stderr
    report = RunReport()
    meter = _Progress(len(jobs), stream, progress)
    try:
        if workers <= 1:
            with _one_thread_pool(options.flow):
                for job in jobs:
                    _record(report, meter, job, _guarded(job, options))
        else:
            # spawn: a fork of a process that already ran OpenCV or torch threads can deadlock
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                       initargs=(max(1, (os.cpu_count() or 1) // workers), os.getpid()))
            try:
                pending = {pool.submit(_guarded, job, options): job for job in jobs}
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        job = pending.pop(future)
                        try:
                            outcome = future.result()
                        except Exception as exc:  # the worker process died (killed, out of memory)
                            outcome = (False, 0, f"worker failed ({type(exc).__name__}: {exc})")
                        _record(report, meter, job, outcome)
            finally:
                # on Ctrl-C, drop the queued instances instead of waiting for all of them
                pool.shutdown(wait=True, cancel_futures=True)
    except Interrupted as exc:  # the instance in progress is abandoned (its ..partial folders go next run)
        raise exc.but(where=f"after {meter.done}/{len(jobs)} instances",
                      hint="finished instances are kept: run the same command again to continue") from None
    finally:
        meter.close()
    return report


def _record(report: RunReport, meter: "_Progress", job: Job, outcome: tuple[bool, int, str | None]) -> None:
    skipped, frames, reason = outcome
    if reason is not None:
        report.failed.append((job, reason))
        state = "FAILED"
    elif skipped:
        report.skipped.append(job.key)
        state = "already prepared"
    else:
        report.written.append(job.key)
        report.frames += frames
        state = f"{frames} frames"
    meter.update(job.key, state, frames)


class _Progress:
    """A tqdm bar (instances, with frames/s) on a terminal; plain lines with rate and ETA elsewhere
    (a SLURM log should not fill with carriage returns)."""

    def __init__(self, total: int, stream: TextIO, progress: bool | None):
        from tqdm import tqdm

        self.silent = quiet()  # fpar --quiet
        interactive = not self.silent and (on_terminal(stream) if progress is None else progress)
        self.total, self.stream, self.done, self.frames, self.start = total, stream, 0, 0, time.monotonic()
        self.bar = tqdm(total=total, desc="prepare", unit="inst", file=stream, dynamic_ncols=True) if interactive else None

    def update(self, key: str, state: str, frames: int) -> None:
        self.done += 1
        self.frames += frames
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.frames / elapsed
        if self.bar is not None:
            self.bar.set_postfix_str(f"{rate:.1f} frames/s", refresh=False)
            self.bar.update()
            return
        if self.silent:
            return
        eta = elapsed / self.done * (self.total - self.done)
        print(f"[{self.done}/{self.total}] {key}: {state} ({rate:.1f} frames/s, ETA {_clock(eta)})",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"

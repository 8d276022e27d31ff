"""Every annotation row an importer takes is checked before anything is written
(docs/prepare.md, "Rows an import refuses"): its fields, its id, its class numbers, its frame range
against the frames on disk or the video's length, and duplicates. A refused row is one problem line,
``FILE:LINE: narration_id '...': reason, skipped``; the other rows are imported.

The checks are plain functions of one value (a reason, or None when the value is good) and a
:class:`RowChecks` that remembers the ids seen and the lengths of the sources it looked at, so an
importer of any annotation format calls the same ones.
"""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path

from fpar.prepare.layout_writer import MAX_NAME_BYTES

# frame numbers beyond this are no video's (a day at 1000 fps is 86.4 million): refused before
# they reach a file name or a decoder's 32-bit seek
MAX_FRAME = 2**31 - 1


def id_problem(value: str | None) -> str | None:
    """Why ``value`` cannot be an instance id (it names folders and manifest rows), or None."""
    if value is None or not value.strip():
        return "empty id"
    if value in (".", ".."):
        return f"id {value!r} names a folder, not an instance"
    if any(c in value for c in "/\\"):
        return "id holds a path separator (/ or \\)"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        return "id holds a control character"
    if value != value.strip():
        return "id begins or ends with a space"
    if len(value.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return f"id longer than {MAX_NAME_BYTES} bytes"
    return None


def class_number_problem(text: str | None, column: str, count: int | None) -> tuple[int | None, str | None]:
    """``(number, None)`` for a class number in ``0 .. count - 1`` (any whole number >= 0 when
    ``count`` is None), else ``(None, reason)``: nan, -1, 2.5 and 400 of 300 classes are refused."""
    text = (text or "").strip()
    if not text:
        return None, f"no {column}"
    try:
        number = float(text)
    except ValueError:
        return None, f"{column} {text[:20]!r} is not a number"
    if not math.isfinite(number) or number != int(number) or number < 0:
        return None, f"{column} {text[:20]!r} is not a class number (a whole number from 0)"
    if count is not None and number >= count:
        return None, f"{column} {text[:20]} is out of range (0 to {count - 1})"
    return int(number), None


def frame_range_problem(start: str | int | None, stop: str | int | None, first: int = 0) -> tuple[
        tuple[int, int] | None, str | None]:
    """``((start, stop), None)`` for whole frame numbers with ``first <= start <= stop <= MAX_FRAME``,
    else ``(None, reason)``."""
    try:
        start_n, stop_n = int(str(start).strip()), int(str(stop).strip())
    except (TypeError, ValueError):
        return None, "start_frame/stop_frame not whole numbers"
    if start_n < first:
        return None, (f"start_frame {start_n} is negative" if first == 0 else
                      f"start_frame {start_n} is before the first frame ({first})")
    if stop_n > MAX_FRAME:
        return None, f"stop_frame {stop_n} is beyond any video (more than {MAX_FRAME})"
    if stop_n < start_n:
        return None, f"stop_frame {stop_n} before start_frame {start_n}"
    return (start_n, stop_n), None


class RowChecks:
    """The checks of one import: ids seen (a duplicate is refused, naming the line of the first)
    and the frame counts of the videos it opened (each video opened once)."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self._video_frames: dict[Path, int | None] = {}

    def duplicate(self, value: str, where: str) -> str | None:
        """Why ``value`` is refused as already imported, or None (and it is recorded as seen)."""
        if value in self.seen:
            return f"already on line {self.seen[value].rsplit(':', 1)[-1]}"
        self.seen[value] = where
        return None

    def frames_on_disk(self, folder: Path, pattern: str, numbers: tuple[int, ...]) -> str | None:
        """Why the frames ``numbers`` of ``folder`` (named by ``pattern``) are not all there, or None."""
        missing = [n for n in numbers if not (folder / (pattern % n)).is_file()]
        return f"frame {missing[0]} is not in {folder}" if missing else None

    def video_length(self, video: Path) -> int | None:
        """The number of frames ``video`` declares (None when it declares none or cannot be opened)."""
        if video not in self._video_frames:
            from fpar.data.videos import frame_count  # OpenCV loads only when a video is checked

            try:
                self._video_frames[video] = frame_count(video) or None
            except Exception:  # an unreadable video is the decoding step's to report, with its reason
                self._video_frames[video] = None
        return self._video_frames[video]

    def within_video(self, video: Path, stop: int) -> str | None:
        """Why frame ``stop`` (numbered from 1, as a video's frames are) is past the end of
        ``video``, or None."""
        length = self.video_length(video)
        if length is not None and stop > length:
            return f"stop frame {stop} is past the end of {video} ({length} frames)"
        return None

    def epic_row(self, row: dict, fields: int, where: str) -> tuple[tuple[int, int] | None, str | None]:
        """An EPIC-KITCHENS-100 CSV row (``csv.DictReader``'s, ``fields`` columns in its header):
        ``((start, stop), None)`` when its fields, ids, class numbers and frame range are usable
        and it is not a duplicate, else ``(None, reason)``. Frames and videos are checked by
        the importer, which knows where they are (:meth:`frames_on_disk`, :meth:`within_video`)."""
        from fpar.data.labels import EPIC_NOUNS, EPIC_VERBS

        given = sum(value is not None for key, value in row.items() if key is not None)
        if None in row or given < fields:
            return None, f"{given + len(row.get(None) or ())} fields, the header has {fields}"
        for column in ("narration_id", "participant_id", "video_id"):
            problem = id_problem(row[column])
            if problem is not None:
                return None, problem if column == "narration_id" else f"{column}: {problem}"
        for column, count in (("verb_class", EPIC_VERBS), ("noun_class", EPIC_NOUNS)):
            if column in row:
                problem = class_number_problem(row[column], column, count)[1]
                if problem is not None:
                    return None, problem
        frames, problem = frame_range_problem(row["start_frame"], row["stop_frame"])
        if problem is None:
            problem = self.duplicate(row["narration_id"], where)
        return (frames, None) if problem is None else (None, problem)


def egtea_fields_problem(parts: list[str]) -> str | None:
    """Why a split-file line (``<clip> <action> <verb> <noun>``, ids from 1) cannot be used, or None."""
    if len(parts) != 4:
        return f"{len(parts)} fields, expected 4 (<clip> <action> <verb> <noun>)"
    bad = next((text for text in parts[1:] if not (text.isdigit() and 1 <= int(text) <= MAX_FRAME)), None)
    return None if bad is None else f"id {bad[:20]!r} is not a class id (a whole number from 1)"


def refused(where: str, key: str, value: str | None, reason: str) -> str:
    """The problem line of a refused row: ``FILE:LINE: narration_id '...': reason, skipped``."""
    return f"{where}: {key} {value!r}: {reason}, skipped"

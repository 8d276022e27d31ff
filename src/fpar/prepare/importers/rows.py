"""What every annotation importer shares: class names as folder names, a job's names checked, an
annotation file's lines, EGTEA-style ``*_idx.txt`` name files (:mod:`fpar.prepare.importers`)."""

from __future__ import annotations

import re
from pathlib import Path

from fpar.errors import FparError
from fpar.prepare.jobs import Job
from fpar.prepare.layout_writer import check_name


def class_folder_name(name: str) -> str:
    """An annotation's class name as a folder name: lower case, spaces -> ``_``, anything but
    letters, digits and ``_,.+-`` -> ``-`` (EGTEA's ``Inspect/Read recipe`` -> ``inspect-read_recipe``)."""
    return re.sub(r"[^\w,.+-]", "-", re.sub(r"\s+", "_", name.strip().lower()))


def read_index(path: str | Path, problems: list[str] | None = None) -> dict[int, str]:
    """An EGTEA ``*_idx.txt``: ``<name words> <id>`` per line -> {id: name}. A malformed line is an
    error, or, given ``problems``, recorded there and skipped like the other bad annotation lines."""
    path = Path(path)
    names = {}
    for number, line in enumerate(read_lines(path), 1):
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


def usable(job: Job, where: str, problems: list[str]) -> bool:
    """Whether the job's names are plain folder names (an annotation could hold ``../`` or a
    300-character name); if not, the problem is recorded and the row skipped."""
    try:
        for name, what in ((job.subject, "subject"), (job.class_name, "class"), (job.instance_id, "instance")):
            check_name(name, what)
    except FparError as exc:
        problems.append(f"{where}: {exc}, skipped")
        return False
    return True


def read_lines(path: Path) -> list[str]:
    try:
        # utf-8-sig: a byte order mark is the encoding's marker, not part of the first column's name
        return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise FparError(f"{path}: cannot read ({exc.strerror or exc})") from None

"""The in-place manifest an import writes (``OUT/manifest.csv`` naming frame ranges under a root;
:mod:`fpar.prepare.importers`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fpar.data.layouts import FILE_KINDS, RANGE_COLUMNS
from fpar.errors import FparError
from fpar.prepare.importers.epic import EPIC_COLUMNS

# the columns of an in-place manifest, in order
MANIFEST_COLUMNS = ("id", "subject", "label", "frames", "video", *(k for k in FILE_KINDS if k != "rgb"),
                    *RANGE_COLUMNS, *EPIC_COLUMNS)


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

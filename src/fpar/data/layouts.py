"""Dataset layouts on disk -> one in-memory :class:`DatasetIndex` (docs/method.md §2).

Three layouts are understood:

* ``processed`` -- the reference's ``processed_frames/<S>/<class>/<inst>/rgb|mmaps`` plus
  ``flow_x_processed`` / ``flow_y_processed`` trees (docs/method.md §2).
* ``egornn`` -- Ego-RNN's ``frames|flow_x|flow_y/<S>/<class>/<inst>/`` under one split folder.
* ``manifest`` -- a CSV or JSONL file with one row per instance (for any other dataset).

Each reader only *finds folders*; listing frame files, detecting numbering gaps and deciding
which instances are usable is shared (:func:`_build_index`), so every layout obeys the same rules.
Unusable instances are kept out of ``instances`` (the reference skips them too) but listed in
``skipped``, with the reason in ``problems``.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from fpar.data.labels import attach_labels
from fpar.errors import FparError, NotADatasetError

log = logging.getLogger(__name__)

# the frame files an instance folder holds (the dataset's modalities read from them)
FILE_KINDS = ("rgb", "mmaps", "flow_x", "flow_y")
# the file kinds each modality (``fpar.data.settings.MODALITIES``) is read from
FILE_KINDS_OF_MODALITY = {"frames": ("rgb",), "flow": ("flow_x", "flow_y"), "mmaps": ("mmaps",)}
LAYOUTS = ("processed", "egornn", "manifest")
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
PREPARE_SETTINGS = "prepare.json"  # in a processed instance folder: the settings it was prepared with
DATASET_SETTINGS = ("flow", "bound", "size", "warp", "max_frames")  # recorded settings all instances should share
PROCESSED_TREES = {"rgb": "processed_frames", "flow_x": "flow_x_processed", "flow_y": "flow_y_processed"}
# Written by a generator (``fpar synth``) before its first file and removed after its last: a root
# holding it is a dataset a killed or failed run left half written (docs/reliability.md)
UNFINISHED_MARKER = ".fpar-unfinished.json"
DEFAULT_MIN_FRAMES = 5  # the flow stack size L: the reference skips shorter instances

_EXT = r"\.(?:png|jpe?g)"
# Frame names end in digits: a stray duplicate such as ``flow_x_00007(1).png`` never matches.
_PROCESSED_PATTERNS = {
    "rgb": re.compile(rf"^rgb(\d+){_EXT}$", re.I),
    "mmaps": re.compile(rf"^map(\d+){_EXT}$", re.I),
    "flow_x": re.compile(rf"^flow_x_(\d+){_EXT}$", re.I),
    "flow_y": re.compile(rf"^flow_y_(\d+){_EXT}$", re.I),
}
_EGORNN_PATTERNS = {**_PROCESSED_PATTERNS, "rgb": re.compile(rf"^image_(\d+){_EXT}$", re.I)}
_ANY_PATTERN = re.compile(rf"^\D*(\d+){_EXT}$", re.I)  # manifest folders: a non-digit prefix, then digits
_MANIFEST_PATTERNS = {m: _ANY_PATTERN for m in FILE_KINDS}


@dataclass(frozen=True)
class Problem:
    """Something wrong with the files of a dataset: where, and why (one line)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Instance:
    """One labelled video segment. Frame ``k`` (1-based) of a modality is ``paths[k - 1]``."""

    subject: str
    class_name: str
    class_id: int
    instance_id: str
    rgb: tuple[Path, ...] = ()
    mmaps: tuple[Path, ...] = ()
    flow_x: tuple[Path, ...] = ()
    flow_y: tuple[Path, ...] = ()
    # the verb and noun class names, where the dataset gives them (fpar.data.labels)
    verb: str | None = None
    noun: str | None = None

    @property
    def n_frames(self) -> int:
        """Frames in the instance: the RGB count, or the flow count for a flow-only dataset."""
        return len(self.rgb) if self.rgb else len(self.flow_x)

    def frames(self, modality: str) -> tuple[Path, ...]:
        return getattr(self, modality)


@dataclass
class DatasetIndex:
    """Every instance of a dataset, with class ids from the sorted union of class names."""

    root: Path
    layout: str
    instances: list[Instance]
    classes: list[str]
    skipped: list[Instance] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # label kind (verb, noun) -> its class names, position = class id (fpar.data.labels)
    label_classes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        return sorted({inst.subject for inst in self.instances + self.skipped})


@dataclass
class _Candidate:
    """An instance as a layout reader finds it: folders only, nothing listed yet."""

    subject: str
    class_name: str
    instance_id: str
    folders: dict[str, Path | None]


@dataclass
class _Scan:
    """What a layout reader hands to :func:`_build_index`."""

    candidates: list[_Candidate]
    class_names: set[str]
    patterns: dict[str, re.Pattern[str]]
    problems: list[Problem] = field(default_factory=list)


def load_index(root: str | Path, layout: str = "auto", *, min_frames: int = DEFAULT_MIN_FRAMES) -> DatasetIndex:
    """Read the dataset at ``root`` into a :class:`DatasetIndex`.

    ``layout`` is ``"auto"`` or one of :data:`LAYOUTS`. Instances with fewer than
    ``min_frames`` frames (default: the flow stack, 5) are skipped, as the reference does.
    Raises :class:`NotADatasetError` when ``root`` holds no known layout.
    """
    root = Path(root)
    if not root.exists():
        raise NotADatasetError(f"{root}: no such file or directory")
    if (root / UNFINISHED_MARKER).is_file():
        raise FparError(f"{root}: a dataset whose writing was interrupted (it holds {UNFINISHED_MARKER}); "
                        "run the command that wrote it again to finish it")
    layout = detect_layout(root) if layout == "auto" else layout
    readers = {"processed": _scan_processed, "egornn": _scan_egornn, "manifest": _scan_manifest}
    if layout not in readers:
        raise FparError(f"{root}: unknown layout {layout!r} (choose auto, {', '.join(LAYOUTS)})")
    scan = readers[layout](root)
    if not scan.candidates and not scan.class_names:
        raise NotADatasetError(f"{root}: no instances found for the {layout} layout")
    index = attach_labels(_build_index(root, layout, scan, min_frames))
    if index.skipped:
        log.warning("%s: skipped %d unusable instances (run `fpar data check %s`)", root, len(index.skipped), root)
    return index


def detect_layout(root: Path) -> str:
    """Name the layout of ``root`` from the folders (or file) it holds."""
    if root.is_file() and root.suffix.lower() in (".csv", ".jsonl"):
        return "manifest"
    if (root / "processed_frames").is_dir() or (root / "flow_x_processed").is_dir():
        return "processed"
    if any((root / name).is_dir() for name in ("frames", "flow_x", "flow_y")):
        return "egornn"
    if any((root / name).is_file() for name in MANIFEST_NAMES):
        return "manifest"
    raise NotADatasetError(
        f"{root}: not a dataset (expected processed_frames/, frames/ or flow_x/, or a manifest.csv/.jsonl)"
    )


# --- layout readers ------------------------------------------------------------------------


def _scan_processed(root: Path) -> _Scan:
    trees = {modality: root / name for modality, name in PROCESSED_TREES.items()}
    scan = _scan_trees(trees, _PROCESSED_PATTERNS)
    # processed_frames holds the instance folder itself; its rgb/ and mmaps/ sub-folders hold the frames.
    for cand in scan.candidates:
        inst_dir = cand.folders["rgb"]
        cand.folders["rgb"] = _existing(inst_dir / "rgb") if inst_dir else None
        cand.folders["mmaps"] = _existing(inst_dir / "mmaps") if inst_dir else None
        if inst_dir:
            scan.problems += _unknown_entries(inst_dir, allowed={"rgb", "mmaps", PREPARE_SETTINGS})
    return scan


def _scan_egornn(root: Path) -> _Scan:
    trees = {"rgb": root / "frames", "flow_x": root / "flow_x", "flow_y": root / "flow_y"}
    return _scan_trees(trees, _EGORNN_PATTERNS)


def _scan_trees(trees: dict[str, Path], patterns: dict[str, re.Pattern[str]]) -> _Scan:
    """Walk ``<tree>/<subject>/<class>/<instance>`` for each modality tree and join the instances."""
    scan = _Scan(candidates=[], class_names=set(), patterns=patterns)
    found: dict[tuple[str, str, str], _Candidate] = {}
    for modality, tree in trees.items():
        if not tree.is_dir():
            continue
        for subject_dir in _subdirs(tree, scan.problems):
            for class_dir in _subdirs(subject_dir, scan.problems):
                scan.class_names.add(class_dir.name)
                inst_dirs = _subdirs(class_dir, scan.problems)
                if not inst_dirs:
                    scan.problems.append(Problem(str(class_dir), "empty class folder"))
                for inst_dir in inst_dirs:
                    key = (subject_dir.name, class_dir.name, inst_dir.name)
                    if key not in found:
                        found[key] = _Candidate(*key[:2], "/".join(key), dict.fromkeys(FILE_KINDS))
                    found[key].folders[modality] = inst_dir
    scan.candidates = [found[key] for key in sorted(found)]
    return scan


def _scan_manifest(root: Path) -> _Scan:
    path = root if root.is_file() else next((root / n for n in MANIFEST_NAMES if (root / n).is_file()), None)
    if path is None:
        raise NotADatasetError(f"{root}: no {' or '.join(MANIFEST_NAMES)} found")
    rows = _read_manifest_rows(path)
    scan = _Scan(candidates=[], class_names=set(), patterns=_MANIFEST_PATTERNS)
    seen: set[str] = set()
    for line, row in rows:
        missing = [key for key in ("id", "subject", "label", "frames") if not row.get(key)]
        if missing:
            raise FparError(f"{path}:{line}: missing {', '.join(missing)}")
        if row["id"] in seen:
            scan.problems.append(Problem(f"{path}:{line}", f"duplicate instance id {row['id']!r}"))
            continue
        seen.add(row["id"])
        folders = {m: _manifest_folder(path, row.get("frames" if m == "rgb" else m)) for m in FILE_KINDS}
        scan.class_names.add(row["label"])
        scan.candidates.append(_Candidate(row["subject"], row["label"], row["id"], folders))
    return scan


def _read_manifest_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV (header line) or JSONL manifest, with their line numbers."""
    try:
        text = path.read_text()
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(text.splitlines())
            return [(reader.line_num, {k: (v or "").strip() for k, v in row.items()}) for row in reader]
        return [
            (n, {k: str(v) for k, v in json.loads(line).items()})
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise FparError(f"{path}: unreadable manifest ({exc})") from None


def _manifest_folder(manifest: Path, value: str | None) -> Path | None:
    # Relative folders are relative to the manifest, so a dataset can be moved as a whole.
    if not value:
        return None
    folder = Path(value)
    return folder if folder.is_absolute() else manifest.parent / folder


# --- shared rules ----------------------------------------------------------------------------


def _build_index(root: Path, layout: str, scan: _Scan, min_frames: int) -> DatasetIndex:
    classes = sorted(scan.class_names)
    class_ids = {name: i for i, name in enumerate(classes)}
    present = {m for c in scan.candidates for m in FILE_KINDS if c.folders[m] is not None}
    index = DatasetIndex(root=root, layout=layout, instances=[], classes=classes, problems=list(scan.problems))
    for cand in scan.candidates:
        frames: dict[str, tuple[Path, ...]] = {}
        reasons: list[Problem] = []
        for modality in FILE_KINDS:
            folder = cand.folders[modality]
            if folder is None:
                if modality in present:
                    reasons.append(Problem(_instance_path(cand), f"missing {modality} folder"))
                continue
            frames[modality], found = list_frames(folder, scan.patterns[modality])
            reasons += found
        reasons += _count_problems(cand, frames, min_frames)
        instance = Instance(cand.subject, cand.class_name, class_ids[cand.class_name], cand.instance_id, **frames)
        index.problems += reasons
        (index.skipped if _blocking(reasons) else index.instances).append(instance)
    return index


def list_frames(folder: Path, pattern: re.Pattern[str]) -> tuple[tuple[Path, ...], list[Problem]]:
    """Frame files of ``folder`` sorted by number, and the problems found (unknown files, gaps)."""
    if not folder.is_dir():
        return (), [Problem(str(folder), "missing folder")]
    numbered: dict[int, list[Path]] = {}
    problems: list[Problem] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        match = pattern.match(entry.name)
        if match and entry.is_file():
            numbered.setdefault(int(match.group(1)), []).append(entry)
        else:
            problems.append(Problem(str(entry), "unknown file (ignored)"))
    for number, paths in numbered.items():
        if len(paths) > 1:
            problems.append(Problem(str(paths[0]), f"duplicate frame number {number}"))
    problems += _gap_problems(folder, sorted(numbered))
    return tuple(numbered[k][0] for k in sorted(numbered)), problems


def _gap_problems(folder: Path, numbers: list[int]) -> list[Problem]:
    # Frame k must be the k-th file: a hole would silently shift every later frame.
    if not numbers:
        return []
    first = 0 if numbers[0] == 0 else 1
    missing = sorted(set(range(first, numbers[-1] + 1)) - set(numbers))
    if not missing:
        return []
    shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
    return [Problem(str(folder), f"numbering gap: frame {shown} missing")]


def _count_problems(cand: _Candidate, frames: dict[str, tuple[Path, ...]], min_frames: int) -> list[Problem]:
    where = _instance_path(cand)
    counts = {m: len(p) for m, p in frames.items()}
    problems = []
    for a, b in (("rgb", "mmaps"), ("flow_x", "flow_y")):
        if a in counts and b in counts and counts[a] != counts[b]:
            problems.append(Problem(where, f"{a}/{b} count mismatch ({counts[a]} vs {counts[b]})"))
    n = counts.get("rgb", counts.get("flow_x", 0))
    if n < min_frames:
        problems.append(Problem(where, f"fewer frames than the flow stack ({n} < {min_frames})"))
    return problems


def _blocking(problems: list[Problem]) -> bool:
    # An ignored stray file leaves the instance usable; anything else does not.
    return any(not p.reason.startswith("unknown file") for p in problems)


def _instance_path(cand: _Candidate) -> str:
    folder = next((f for f in cand.folders.values() if f is not None), None)
    return str(folder.parent if folder is not None and folder.name in ("rgb", "mmaps") else folder)


def _subdirs(folder: Path, problems: list[Problem]) -> list[Path]:
    """Sub-folders of ``folder``; files there are unknown (hidden entries are skipped, as the reference does)."""
    dirs = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            dirs.append(entry)
        else:
            problems.append(Problem(str(entry), "unknown file (ignored)"))
    return dirs


def _unknown_entries(folder: Path, allowed: set[str]) -> list[Problem]:
    return [
        Problem(str(e), "unknown file (ignored)")
        for e in sorted(folder.iterdir())
        if not e.name.startswith(".") and e.name not in allowed
    ]


def _existing(folder: Path) -> Path | None:
    return folder if folder.is_dir() else None


def with_class_ids(instances: list[Instance], classes: list[str]) -> list[Instance]:
    """Renumber ``instances`` against another class list (e.g. a checkpoint's)."""
    ids = {name: i for i, name in enumerate(classes)}
    missing = sorted({inst.class_name for inst in instances} - ids.keys())
    if missing:
        raise FparError(f"classes not in the model's class list: {', '.join(missing)}")
    return [replace(inst, class_id=ids[inst.class_name]) for inst in instances]

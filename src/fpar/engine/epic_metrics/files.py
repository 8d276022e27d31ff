"""The challenge's files: its two published results formats (:func:`read_results`, ``.pt`` loaded
without running code, or ``.npz``), its annotation CSVs (:func:`read_labels`, :func:`read_class_ids`,
:func:`read_participants`), a results file written (:func:`write_results`, for ``fpar eval`` of a
verb+noun model) and the submission JSON (:func:`submission`, :func:`write_submission`). Every
problem is one :class:`~fpar.errors.FparError` before any number.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fpar.data.labels import EPIC_NOUNS, EPIC_VERBS
from fpar.engine.epic_metrics.scoring import Labels, Results, first_few
from fpar.errors import FparError
from fpar.io import atomic_path, write_text

RESULT_KEYS = ("verb_output", "noun_output", "narration_id")
SUBMISSION_VERSION = "0.2"
SUPERVISION_LEVELS = range(0, 6)  # sls_pt / sls_tl / sls_td: the challenge's scale, 0 to 5
LABEL_COLUMNS = ("narration_id", "participant_id", "verb_class", "noun_class")


def read_results(path: str | os.PathLike, *, verbs: int = EPIC_VERBS, nouns: int = EPIC_NOUNS) -> Results:
    """A results file in either published format: a dict of ``verb_output`` (N, verbs), ``noun_output``
    (N, nouns) and ``narration_id`` (N), or a list of one such dict per segment; as ``.pt`` (loaded
    with ``weights_only``: tensors, numpy arrays, strings, numbers, lists and dicts, nothing that
    runs code) or ``.npz`` (the dict format, no pickles)."""
    path = Path(path)
    if not path.is_file():
        raise FparError(f"results file not found: {path}")
    raw = _load_npz(path) if path.suffix == ".npz" else _load_pt(path)
    if isinstance(raw, list):
        raw = _collate(raw, path)
    if not isinstance(raw, dict):
        raise FparError(f"{path}: results must be a dict of {', '.join(RESULT_KEYS)} or a list of such dicts, "
                        f"not a {type(raw).__name__}")
    lacking = [key for key in RESULT_KEYS if key not in raw]
    if lacking:
        raise FparError(f"{path}: results lack {', '.join(lacking)} (found {', '.join(map(str, raw)) or 'nothing'})")
    ids = _narration_ids(raw["narration_id"], path)
    scores = {}
    for key, width in (("verb_output", verbs), ("noun_output", nouns)):
        array = _float_array(raw[key], f"{path}: {key}")
        if array.shape != (len(ids), width):
            raise FparError(f"{path}: {key} has shape {list(array.shape)}, expected [{len(ids)}, {width}] "
                            f"(one row per narration id, {width} classes)")
        bad = ~np.isfinite(array)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise FparError(f"{path}: {key} is not finite (NaN or infinite) for narration id {ids[row]} "
                            f"and {int(bad.any(axis=1).sum()) - 1} other segment(s)")
        scores[key] = array
    duplicated = sorted({nid for nid in ids if ids.count(nid) > 1}) if len(set(ids)) != len(ids) else []
    if duplicated:
        raise FparError(f"{path}: narration id(s) given twice: {first_few(duplicated)}")
    return Results(ids, scores["verb_output"], scores["noun_output"])


def _load_pt(path: Path) -> Any:
    import torch

    _refuse_what_is_no_torch_file(path)

    # what pickled numpy arrays are made of (numpy 2 moved numpy.core to numpy._core)
    multiarray = (np._core if hasattr(np, "_core") else np.core).multiarray
    allowed = [np.ndarray, np.dtype, multiarray._reconstruct, *{type(np.dtype(c)) for c in "?bBhHiIlLqQefdgU"}]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if blocked is None:  # a pickle stream that breaks off or is garbage: no object was refused
            raise FparError(f"{path} is not a readable results file (corrupt, truncated or not a torch file)") from None
        raise FparError(f"refusing to load {path}: it holds Python objects ({blocked.group(1)}) other than tensors, "
                        "numpy arrays, strings, numbers, lists and dicts, and loading them could run code") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError):
        raise FparError(f"{path} is not a readable results file (corrupt, truncated or not a torch file)") from None


# the first bytes of what torch.save writes: a zip archive, or (older files) a pickle's protocol byte
_TORCH_STARTS = (b"PK\x03\x04", b"\x80")


def _refuse_what_is_no_torch_file(path: Path) -> None:
    """A results file that is plainly something else (JSON or other text, a .npy array, random
    bytes) is named for what it is, before torch's reader calls it a pickle."""
    try:
        with path.open("rb") as file:
            head = file.read(64)
    except OSError as exc:
        raise FparError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if head.startswith(_TORCH_STARTS):
        return
    formats = "results are a .pt file (torch.save of the dict) or a .npz file (numpy.savez)"
    if head.startswith(b"\x93NUMPY"):
        raise FparError(f"{path} is a single .npy array, not a results file: {formats} of verb_output, "
                        "noun_output and narration_id")
    text = head.lstrip()
    if text[:1] in (b"{", b"[") or (head and all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head)):
        raise FparError(f"{path} is text{' (JSON?)' if text[:1] in (b'{', b'[') else ''}, not a results file: "
                        f"{formats}")
    raise FparError(f"{path} is not a results file (neither a torch file nor .npz): {formats}")


def _load_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise FparError(f"refusing to load {path}: it holds pickled Python objects; store numbers and "
                            "strings (narration_id as a string array)") from None
        raise FparError(f"{path} is not a readable .npz file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile):
        raise FparError(f"{path} is not a readable .npz file (corrupt or truncated)") from None


def _collate(rows: list[Any], path: Path) -> dict[str, list[Any]]:
    collated: dict[str, list[Any]] = {key: [] for key in RESULT_KEYS}
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or any(key not in row for key in RESULT_KEYS):
            raise FparError(f"{path}: entry {i} of the results list is not a dict of {', '.join(RESULT_KEYS)}")
        for key in RESULT_KEYS:
            collated[key].append(row[key])
    return collated


def _plain(value: Any) -> Any:
    """Tensors to numpy; anything else as it is."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return value


def _float_array(value: Any, where: str) -> np.ndarray:
    value = [_plain(v) for v in value] if isinstance(value, list) else _plain(value)
    try:
        given = np.asarray(value)
    except (TypeError, ValueError):
        given = None
    if given is not None and given.dtype.kind in "cb":  # float64 would drop the imaginary part, or rank ties
        raise FparError(f"{where}: scores of type {given.dtype} ({'complex' if given.dtype.kind == 'c' else 'true/false'}); "
                        "expected real numbers")
    if given is None or given.dtype.kind not in "iuf":
        raise FparError(f"{where}: not an array of numbers (rows of different lengths, or text)")
    array = given.astype(np.float64)
    if array.ndim != 2:
        raise FparError(f"{where} has shape {list(array.shape)}: expected [segments, classes]")
    return array


def _narration_ids(value: Any, path: Path) -> list[str]:
    value = _plain(value)
    items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else None
    if items is None or not all(isinstance(item, (str, np.str_)) for item in items):
        raise FparError(f"{path}: narration_id must be a list or array of strings, one per segment")
    return [str(item) for item in items]


def _read_csv(path: str | os.PathLike, columns: Sequence[str], what: str) -> list[dict[str, str]]:
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            lacking = [c for c in columns if c not in (reader.fieldnames or [])]
            if lacking:
                raise FparError(f"{path}: not {what} (no {', '.join(lacking)} column)")
            return list(reader)
    except FileNotFoundError:
        raise FparError(f"{what} not found: {path}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FparError(f"{path}: not a readable CSV ({exc})") from None


def _class_id(text: str | None, path: Path, line: int, column: str) -> int:
    try:
        value = int(text or "")
    except ValueError:
        raise FparError(f"{path}, line {line}: {column} must be a class number, got {text!r}") from None
    if value < 0:
        raise FparError(f"{path}, line {line}: {column} must be a class number, got {value}")
    return value


def read_labels(path: str | os.PathLike) -> Labels:
    """An EPIC-100 annotation CSV with ``narration_id``, ``participant_id``, ``verb_class``, ``noun_class``."""
    rows = _read_csv(path, LABEL_COLUMNS, "an EPIC-100 annotation CSV")
    path = Path(path)
    if not rows:
        raise FparError(f"{path}: no segments")
    ids = [row["narration_id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise FparError(f"{path}: narration id(s) given twice: {first_few(sorted({n for n in ids if ids.count(n) > 1}))}")
    verb = np.array([_class_id(row["verb_class"], path, i + 2, "verb_class") for i, row in enumerate(rows)], np.int64)
    noun = np.array([_class_id(row["noun_class"], path, i + 2, "noun_class") for i, row in enumerate(rows)], np.int64)
    return Labels(ids, [row["participant_id"] for row in rows], verb, noun)


def read_class_ids(path: str | os.PathLike, column: str) -> set[int]:
    """The class numbers in ``column`` of a CSV (``EPIC_100_tail_verbs.csv``: ``verb``)."""
    rows = _read_csv(path, (column,), f"a class list with a '{column}' column")
    return {_class_id(row[column], Path(path), i + 2, column) for i, row in enumerate(rows)}


def read_participants(path: str | os.PathLike) -> set[str]:
    """The ``participant_id`` column of a CSV (``EPIC_100_unseen_participant_ids_validation.csv``)."""
    return {row["participant_id"] for row in _read_csv(path, ("participant_id",), "a participant list")}


# --- submitting ---------------------------------------------------------------------------------


def submission(results: Results, *, sls_pt: int, sls_tl: int, sls_td: int,
               challenge: str = "action_recognition") -> dict[str, Any]:
    """The challenge's submission JSON (version 0.2): supervision levels ``sls_*`` (0-5) and, per
    narration id, every verb and noun score under its class number as a string."""
    for name, level in (("sls_pt", sls_pt), ("sls_tl", sls_tl), ("sls_td", sls_td)):
        if isinstance(level, bool) or not isinstance(level, int) or level not in SUPERVISION_LEVELS:
            raise FparError(f"{name} must be a supervision level from 0 to 5, got {level!r}")
    for name, scores in (("verb", results.verb), ("noun", results.noun)):
        if scores.ndim != 2 or len(scores) != len(results.narration_id) or not np.isfinite(scores).all():
            raise FparError(f"{name} scores must be finite, one row per narration id")

    def by_class(row: np.ndarray) -> dict[str, float]:
        return {str(c): float(s) for c, s in enumerate(row.tolist())}

    return {
        "version": SUBMISSION_VERSION, "challenge": challenge, "sls_pt": sls_pt, "sls_tl": sls_tl, "sls_td": sls_td,
        "results": {nid: {"verb": by_class(v), "noun": by_class(n)}
                    for nid, v, n in zip(results.narration_id, results.verb, results.noun)},
    }


def write_submission(path: str | os.PathLike, results: Results, *, sls_pt: int, sls_tl: int, sls_td: int) -> None:
    """:func:`submission` written as JSON to ``path`` (atomically)."""
    write_text(path, json.dumps(submission(results, sls_pt=sls_pt, sls_tl=sls_tl, sls_td=sls_td)) + "\n")


def write_results(path: str | os.PathLike, results: Results) -> None:
    """``results`` in the challenge's dict format, as ``.npz`` or ``.pt`` by the suffix: what
    :func:`read_results` and ``fpar score-epic`` read back."""
    path = Path(path)
    arrays = {"verb_output": results.verb.astype(np.float32), "noun_output": results.noun.astype(np.float32),
              "narration_id": np.array(results.narration_id, dtype=str)}
    with atomic_path(path) as tmp:
        if path.suffix == ".npz":
            with open(tmp, "wb") as file:
                np.savez(file, **arrays)
        elif path.suffix == ".pt":
            import torch

            torch.save({"verb_output": torch.from_numpy(arrays["verb_output"]),
                        "noun_output": torch.from_numpy(arrays["noun_output"]),
                        "narration_id": list(results.narration_id)}, tmp)
        else:
            raise FparError(f"{path}: results are written as .npz or .pt")

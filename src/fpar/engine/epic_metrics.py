"""EPIC-KITCHENS-100 action recognition, scored as the challenge scores it (docs/protocols.md, "EPIC-100").

* **Verb, noun**: top-1 and top-5 accuracy over every segment.
* **Action** (a verb and a noun): each segment's 100 best verbs and 100 best nouns, their scores
  softmaxed over those 100 each, every verb x noun pair scored by the product of the two, pairs
  ranked by that product. Within a segment that is the order of ``verb score + noun score`` over the
  pairs of the two top-100 lists; a product of raw scores would rank otherwise.
* **Tail**: top-1 over the segments whose verb (verb metric), noun (noun metric), or verb *or* noun
  (action metric) is one of the tail classes; **unseen**: top-1 over the segments of the participants
  absent from training.

Inputs come in the challenge's two published results formats (:func:`read_results`, ``.pt`` loaded
without running code, or ``.npz``) and its annotation CSVs (:func:`read_labels`, :func:`read_class_ids`,
:func:`read_participants`); every problem is one :class:`~fpar.errors.FparError` before any number.
:func:`submission` builds the challenge's submission JSON (:func:`write_submission` writes it) and
:func:`write_results` a results file, for ``fpar eval`` of a verb+noun model. numpy and torch only.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from fpar.data.labels import EPIC_NOUNS, EPIC_VERBS
from fpar.errors import FparError
from fpar.io import atomic_path, write_text

ACTION_TOP_N = 100  # verbs and nouns of a segment that make its action candidates
# the metric names of the challenge's evaluation, in its order; values in percent
METRIC_NAMES = (
    "all_verb_accuracy_at_1", "all_verb_accuracy_at_5", "all_noun_accuracy_at_1", "all_noun_accuracy_at_5",
    "all_action_accuracy_at_1", "all_action_accuracy_at_5", "tail_verb_accuracy_at_1", "tail_noun_accuracy_at_1",
    "tail_action_accuracy_at_1", "unseen_verb_accuracy_at_1", "unseen_noun_accuracy_at_1",
    "unseen_action_accuracy_at_1",
)
RESULT_KEYS = ("verb_output", "noun_output", "narration_id")
SUBMISSION_VERSION = "0.2"
SUPERVISION_LEVELS = range(0, 6)  # sls_pt / sls_tl / sls_td: the challenge's scale, 0 to 5
LABEL_COLUMNS = ("narration_id", "participant_id", "verb_class", "noun_class")
_ACTION_CHUNK = 512  # segments whose 100 x 100 pair scores are held at once (40 MB)


@dataclass(frozen=True)
class Labels:
    """One row per segment of an EPIC annotation CSV (``EPIC_100_validation.csv``)."""

    narration_id: list[str]
    participant_id: list[str]
    verb: np.ndarray  # int64 (N,)
    noun: np.ndarray  # int64 (N,)


@dataclass(frozen=True)
class Results:
    """A model's scores: ``verb`` (N, verbs), ``noun`` (N, nouns), one ``narration_id`` per row."""

    narration_id: list[str]
    verb: np.ndarray
    noun: np.ndarray


# --- the metrics ------------------------------------------------------------------------------


def top_k_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: whether each row's label is among its ``k`` highest scores."""
    k = min(k, scores.shape[1])
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return (best == labels[:, None]).any(axis=1)


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``n`` best class ids (best first) and their scores."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    return order, np.take_along_axis(scores, order, axis=1)


# the name of the action by EPIC's rule over a model's verb and noun heads, wherever it is reported
# beside the heads (fpar eval --json, protocol.json, fpar predict)
RULE_ACTION = "verb_noun_action"


def head_tops(logits: dict[str, np.ndarray], names: dict[str, list[str]], k: int) -> dict[str, list[dict[str, Any]]]:
    """One clip's label heads as people read them: for each head (``logits``: kind -> (classes,)
    scores) its ``k`` most probable classes ``{"class", "probability"}``, and with a verb and a noun
    head the ``k`` best actions by EPIC's rule under :data:`RULE_ACTION`, ``{"verb", "noun",
    "probability"}`` (the product of the two softmaxes over each head's top 100, what the rule ranks)."""
    tops: dict[str, list[dict[str, Any]]] = {}
    for kind, scores in logits.items():
        probabilities = _softmax(np.asarray(scores, np.float64))
        order = np.argsort(-probabilities, kind="stable")[:k]
        tops[kind] = [{"class": _name(names.get(kind), i), "probability": float(probabilities[i])} for i in order]
    if "verb" in logits and "noun" in logits:
        verb, noun = (np.asarray(logits[kind], np.float64)[None] for kind in ("verb", "noun"))
        verbs, nouns = action_top_k(verb, noun, k=k)
        (best_verbs, verb_scores), (best_nouns, noun_scores) = _top_n(verb, ACTION_TOP_N), _top_n(noun, ACTION_TOP_N)
        p_verb = dict(zip(best_verbs[0].tolist(), _softmax(verb_scores)[0].tolist()))
        p_noun = dict(zip(best_nouns[0].tolist(), _softmax(noun_scores)[0].tolist()))
        tops[RULE_ACTION] = [{"verb": _name(names.get("verb"), v), "noun": _name(names.get("noun"), n),
                              "probability": p_verb[v] * p_noun[n]}
                             for v, n in zip(verbs[0].tolist(), nouns[0].tolist())]
    return tops


def _name(names: list[str] | None, index: int) -> str:
    return names[index] if names and index < len(names) else f"class {index}"


def action_top_k(verb: np.ndarray, noun: np.ndarray, k: int = 5, top_n: int = ACTION_TOP_N) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's ``k`` best actions by EPIC's rule: ``(verbs, nouns)``, two int arrays (N, k), best first."""
    verbs_out, nouns_out = [], []
    for start in range(0, len(verb), _ACTION_CHUNK):
        top_verbs, verb_scores = _top_n(verb[start:start + _ACTION_CHUNK], top_n)
        top_nouns, noun_scores = _top_n(noun[start:start + _ACTION_CHUNK], top_n)
        pairs = _softmax(verb_scores)[:, :, None] * _softmax(noun_scores)[:, None, :]  # (n, V', N')
        flat = pairs.reshape(len(pairs), -1)
        kk = min(k, flat.shape[1])
        best = np.argpartition(-flat, kk - 1, axis=1)[:, :kk]
        best = np.take_along_axis(best, np.argsort(-np.take_along_axis(flat, best, axis=1), axis=1, kind="stable"),
                                  axis=1)
        verb_index, noun_index = np.divmod(best, pairs.shape[2])
        verbs_out.append(np.take_along_axis(top_verbs, verb_index, axis=1))
        nouns_out.append(np.take_along_axis(top_nouns, noun_index, axis=1))
    return np.concatenate(verbs_out), np.concatenate(nouns_out)


def _percent(hits: np.ndarray) -> float | None:
    return float(100.0 * hits.mean()) if len(hits) else None


def epic_metrics(labels: Labels, results: Results, *, tail_verbs: Iterable[int], tail_nouns: Iterable[int],
                 unseen_participants: Iterable[str]) -> dict[str, float | None]:
    """The challenge's twelve numbers (:data:`METRIC_NAMES`, in percent). ``results`` must hold the
    segments of ``labels`` (any order: they are matched by narration id, :func:`align`). A subset
    with no segment (no unseen participant in ``labels``) is ``None``."""
    results = align(labels, results)
    verb_hit = {k: top_k_hits(results.verb, labels.verb, k) for k in (1, 5)}
    noun_hit = {k: top_k_hits(results.noun, labels.noun, k) for k in (1, 5)}
    action_verbs, action_nouns = action_top_k(results.verb, results.noun, k=5)
    action_match = (action_verbs == labels.verb[:, None]) & (action_nouns == labels.noun[:, None])
    action_hit = {1: action_match[:, 0], 5: action_match.any(axis=1)}

    tail_verb = np.isin(labels.verb, np.fromiter(tail_verbs, np.int64))
    tail_noun = np.isin(labels.noun, np.fromiter(tail_nouns, np.int64))
    unseen = np.isin(np.asarray(labels.participant_id, dtype=object), np.asarray(list(unseen_participants), dtype=object))
    tail_action = tail_verb | tail_noun
    return {
        "all_verb_accuracy_at_1": _percent(verb_hit[1]), "all_verb_accuracy_at_5": _percent(verb_hit[5]),
        "all_noun_accuracy_at_1": _percent(noun_hit[1]), "all_noun_accuracy_at_5": _percent(noun_hit[5]),
        "all_action_accuracy_at_1": _percent(action_hit[1]), "all_action_accuracy_at_5": _percent(action_hit[5]),
        "tail_verb_accuracy_at_1": _percent(verb_hit[1][tail_verb]),
        "tail_noun_accuracy_at_1": _percent(noun_hit[1][tail_noun]),
        "tail_action_accuracy_at_1": _percent(action_hit[1][tail_action]),
        "unseen_verb_accuracy_at_1": _percent(verb_hit[1][unseen]),
        "unseen_noun_accuracy_at_1": _percent(noun_hit[1][unseen]),
        "unseen_action_accuracy_at_1": _percent(action_hit[1][unseen]),
    }


def align(labels: Labels, results: Results) -> Results:
    """``results`` reordered to the rows of ``labels``; the same narration ids on both sides, scores
    finite and wide enough for the labels' classes, or one FparError."""
    mine = {nid: i for i, nid in enumerate(results.narration_id)}
    missing = [nid for nid in labels.narration_id if nid not in mine]
    extra = sorted(set(mine) - set(labels.narration_id))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} narration id(s) of the labels have no result ({_some(missing)})")
        if extra:
            parts.append(f"{len(extra)} result(s) have a narration id the labels lack ({_some(extra)})")
        raise FparError("results do not match the labels: " + "; ".join(parts))
    for name, scores, classes in (("verb_output", results.verb, labels.verb), ("noun_output", results.noun, labels.noun)):
        if len(classes) and classes.max() >= scores.shape[1]:
            raise FparError(f"{name} has {scores.shape[1]} columns but the labels use class {int(classes.max())}")
    order = np.fromiter((mine[nid] for nid in labels.narration_id), np.int64, count=len(labels.narration_id))
    return Results(list(labels.narration_id), results.verb[order], results.noun[order])


def _some(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


# --- reading the challenge's files -------------------------------------------------------------


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
        raise FparError(f"{path}: narration id(s) given twice: {_some(duplicated)}")
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
        raise FparError(f"{path}: narration id(s) given twice: {_some(sorted({n for n in ids if ids.count(n) > 1}))}")
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


def format_metrics(metrics: dict[str, float | None]) -> str:
    """The twelve numbers as a small table (``-``: a subset with no segment)."""
    def cell(name: str) -> str:
        value = metrics.get(name)
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:6.2f}"

    lines = ["            verb@1  verb@5  noun@1  noun@5  action@1  action@5"]
    lines.append(f"all         {cell('all_verb_accuracy_at_1')}  {cell('all_verb_accuracy_at_5')}  "
                 f"{cell('all_noun_accuracy_at_1')}  {cell('all_noun_accuracy_at_5')}  "
                 f"{cell('all_action_accuracy_at_1'):>8}  {cell('all_action_accuracy_at_5'):>8}")
    for subset in ("tail", "unseen"):
        lines.append(f"{subset:<10}  {cell(f'{subset}_verb_accuracy_at_1')}          "
                     f"{cell(f'{subset}_noun_accuracy_at_1')}          {cell(f'{subset}_action_accuracy_at_1'):>8}")
    return "\n".join(lines)

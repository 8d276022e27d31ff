"""EPIC-KITCHENS-100's numbers, as the challenge computes them from a model's verb and noun scores
(the package's docstring says how; the files they come from: :mod:`fpar.engine.epic_metrics.files`).
numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from fpar.errors import FparError

ACTION_TOP_N = 100  # verbs and nouns of a segment that make its action candidates
# the metric names of the challenge's evaluation, in its order; values in percent
METRIC_NAMES = (
    "all_verb_accuracy_at_1", "all_verb_accuracy_at_5", "all_noun_accuracy_at_1", "all_noun_accuracy_at_5",
    "all_action_accuracy_at_1", "all_action_accuracy_at_5", "tail_verb_accuracy_at_1", "tail_noun_accuracy_at_1",
    "tail_action_accuracy_at_1", "unseen_verb_accuracy_at_1", "unseen_noun_accuracy_at_1",
    "unseen_action_accuracy_at_1",
)
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
            parts.append(f"{len(missing)} narration id(s) of the labels have no result ({first_few(missing)})")
        if extra:
            parts.append(f"{len(extra)} result(s) have a narration id the labels lack ({first_few(extra)})")
        raise FparError("results do not match the labels: " + "; ".join(parts))
    for name, scores, classes in (("verb_output", results.verb, labels.verb), ("noun_output", results.noun, labels.noun)):
        if len(classes) and classes.max() >= scores.shape[1]:
            raise FparError(f"{name} has {scores.shape[1]} columns but the labels use class {int(classes.max())}")
    order = np.fromiter((mine[nid] for nid in labels.narration_id), np.int64, count=len(labels.narration_id))
    return Results(list(labels.narration_id), results.verb[order], results.noun[order])


def first_few(names: Sequence[str]) -> str:
    """The first three names, and ``...`` for more: a message's list of what is wrong."""
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


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

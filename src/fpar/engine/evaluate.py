"""``evaluate(checkpoint, data_root)``: accuracy of a trained model on held-out subjects, and one
row per clip (id, label, scores, features, the explanations asked for), the one inference path
that ``fpar eval`` and ``fpar report`` share.

One process scores in a plain loop; several (``devices > 1``) go through Lightning's DDP
(:mod:`fpar.engine.distributed_eval`), where every clip is still scored exactly once; both score
with :class:`fpar.engine.scoring.ClipScorer`. Multi-view
evaluation (``five``/``ten`` crops) averages the softmax scores (and the features) of the views.
The clips are read as the checkpoint's own clip settings say: no config file is needed.

A model with label heads (verb, noun; docs/models.md, "Verb and noun heads") is scored on each head,
and with both by EPIC-KITCHENS' action rule (:mod:`fpar.engine.epic_metrics`) applied to the two
heads' log-probabilities; ``epic_results`` / ``epic_submission`` write those scores as the
challenge's results file and submission JSON.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Collection, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from fpar.data import ClipDataset, load_index
from fpar.data.layouts import DatasetIndex, Instance
from fpar.data.splits import default_split, default_subjects, read_splits, split_by_clips
from fpar.engine import epic_metrics as epic
from fpar.engine.hardware import device_for
from fpar.engine.inference import InferenceSession
from fpar.engine.metric_registry import ACCURACY, TOP5
from fpar.engine.scoring import ClipResult, ClipScorer
from fpar.engine.selection import selection_record
from fpar.models.heads import ACTION
from fpar.errors import FparError
from fpar.io import check_writable, refuse_overwriting_inputs, write_text
from fpar.progress import bar as progress_bar

# frames of a batch the backbone takes at a time: `fpar eval` of a ResNet-34 at 224 px (8 clips of
# 16 frames, bf16) peaked at 1.11 GB with all 128 at once and at 0.71 GB with 32, at the same speed
FRAMES_PER_PASS = 32

# accelerators a single-process evaluation runs on without Lightning (others, e.g. mps, go through it)
IN_PROCESS_ACCELERATORS = ("auto", "cpu", "gpu", "cuda")


def score_in_process(session: InferenceSession, scorer: ClipScorer, batch_size: int, workers: int,
                     progress: bool) -> list[ClipResult]:
    """Every clip in this process, in order: a plain loop. Lightning's (:mod:`fpar.engine.distributed_eval`)
    is for several processes; importing it costs 1.5-2 s and ~120 MB, a fifth of scoring a small
    test split."""
    device = session.device
    loader = DataLoader(scorer.dataset, batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda")
    positions = iter(range(len(scorer.dataset)))
    rows: list[ClipResult] = []
    batches = progress_bar(loader, desc="scoring", unit="batch", progress=progress)
    with session.running():
        for batch in batches:
            batch = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            rows += scorer.score(batch, positions)
    return rows


def evaluate(checkpoint: str | os.PathLike, data_root: str | os.PathLike, *, split: Sequence[str] | str | None = None,
             views: str = "center", batch_size: int = 8, devices: int | None = None, accelerator: str = "auto",
             workers: int = 0, predictions_csv: str | os.PathLike | None = None, explain: Collection[str] = (),
             precision: str | None = None, progress: bool = False, epic_results: str | os.PathLike | None = None,
             epic_submission: str | os.PathLike | None = None,
             supervision: dict[str, int] | None = None) -> dict[str, Any]:
    """Score ``checkpoint`` on the ``split`` subjects of ``data_root`` (default: the subjects it was validated on).

    Returns ``accuracy``, ``top5``, ``mean_class_accuracy`` (mean over the classes present of each
    class's accuracy), ``per_class`` {class: accuracy}, ``n``, ``split``, ``views``, ``checkpoint``,
    ``classes``, ``confusion`` (rows: true class, columns: predicted), ``clips`` (one
    :class:`ClipResult` per clip, in dataset order; the clips whose ids are in ``explain`` also carry
    their inputs and explanation outputs), ``selection`` (how the checkpoint was chosen:
    :func:`fpar.engine.selection.selection_record`) and ``rank``, this process's (0 but in the processes a
    ``devices > 1`` evaluation starts: only rank 0 should print or write). ``predictions_csv``:
    also write one row per clip (id, label, prediction, one score column per class) there, names
    through :func:`printable_name`. ``precision``: as ``trainer.precision`` (``auto``: what the
    hardware runs fastest); default the precision the checkpoint was trained with (``auto`` for a
    checkpoint without a training config), so a model is scored as it was validated.

    A model with label heads adds ``heads`` ({kind: the numbers above, for that head, with
    ``per_class`` by its class names}) and, with a verb and a noun head, ``verb_noun_action``
    (``accuracy``, ``top5``: EPIC's action rule over the two heads). ``epic_results`` (``.pt`` or
    ``.npz``) and ``epic_submission`` (``.json``, with ``supervision``: ``sls_pt``, ``sls_tl``,
    ``sls_td``) write the verb and noun heads' log-probabilities in EPIC-KITCHENS-100's formats,
    one row per clip, its narration id the last part of its instance id.
    """
    devices = devices or 1
    for name, value, least in (("batch_size", batch_size, 1), ("workers", workers, 0), ("devices", devices, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise FparError(f"{name} must be an integer >= {least}, got {value!r}")
    outputs = {"predictions file": predictions_csv, "EPIC results file": epic_results,
               "EPIC submission file": epic_submission}
    for option, path in outputs.items():
        if path is not None:
            refuse_overwriting_inputs(path, checkpoint, data_root, option=option)
            check_writable(path)  # before the evaluation, not after it
    if epic_submission is not None:
        _check_supervision(supervision)
    session = InferenceSession.load(checkpoint)  # its weights are copied to channels-last
    model, info = session.model, session.contract
    heads = model.label_heads_module()
    widths = heads.widths() if heads is not None else {}
    if (epic_results or epic_submission) and widths != {"verb": epic.EPIC_VERBS, "noun": epic.EPIC_NOUNS}:
        raise FparError(f"{checkpoint}: EPIC-KITCHENS-100 results need a verb head of {epic.EPIC_VERBS} and a noun "
                        f"head of {epic.EPIC_NOUNS} classes; the model's label heads: "
                        f"{', '.join(f'{k} {n}' for k, n in widths.items()) or 'none'}")

    index = load_index(data_root)
    # each head's class names, one per output: the checkpoint's, else the dataset's, then numbers
    head_names = session.head_classes(known={ACTION: index.classes, **index.label_classes})
    classes = head_names[ACTION]
    if index.classes != classes:
        raise FparError(f"{data_root} has classes {_short(index.classes)} but {checkpoint} was trained on "
                        f"{_short(classes)}")
    subjects, instances = evaluated_clips(index, split, info.config)
    if not instances:
        raise FparError(f"{data_root}: no instances of subjects {', '.join(subjects)} "
                        f"(the dataset has {', '.join(index.subjects)})")
    label_classes = {kind: names for kind, names in head_names.items() if kind != ACTION}
    # e.g. the MS head's target, shown beside its prediction
    dataset = ClipDataset(instances, session.clip(bool(explain)), train=False, views=views, labels=label_classes)

    if devices > len(dataset):
        # a process with no clip has an empty loader, which DDP cannot run (every process must step)
        raise FparError(f"{devices} processes for {len(dataset)} clips of {', '.join(subjects)}: "
                        f"give --devices {len(dataset)} or fewer")
    # several processes: Lightning's precision plugin casts at each call and places the model
    in_process = devices == 1 and accelerator in IN_PROCESS_ACCELERATORS
    session.prepare(precision=precision, device=device_for(accelerator), frames_per_pass=FRAMES_PER_PASS,
                    autocast=in_process)
    scorer = ClipScorer(model, dataset, explain)
    if in_process:
        rank = 0
        if progress:
            session.announce()
        rows = score_in_process(session, scorer, batch_size, workers, progress)
    else:
        from fpar.engine.distributed_eval import score_distributed

        rows, rank = score_distributed(session, scorer, batch_size, workers, accelerator, devices, progress)

    if [row.position for row in rows] != list(range(len(dataset))):
        raise FparError(f"internal error: scored {len(rows)} clips for a split of {len(dataset)}")
    result = _metrics(rows, classes)
    if widths:
        result["heads"] = {kind: _head_metrics(rows, kind, label_classes[kind], widths[kind]) for kind in widths}
    if {"verb", "noun"} <= set(widths):
        result[epic.RULE_ACTION] = _verb_noun_action(rows)
    result.update(split=list(subjects), views=views, checkpoint=str(checkpoint), classes=list(classes), clips=rows,
                  rank=rank, selection=selection_record(info.config))
    if rank == 0:
        if predictions_csv is not None:
            write_text(predictions_csv, _predictions_csv(rows, classes))
        if epic_results is not None:
            epic.write_results(epic_results, epic_scores(rows))
        if epic_submission is not None:
            epic.write_submission(epic_submission, epic_scores(rows), **supervision)
    return result


def _check_supervision(supervision: dict[str, int] | None) -> None:
    lacking = [key for key in ("sls_pt", "sls_tl", "sls_td") if (supervision or {}).get(key) is None]
    if lacking:
        raise FparError(f"an EPIC submission declares its supervision levels: give {', '.join(lacking)} (0-5)")
    for key, level in supervision.items():
        if isinstance(level, bool) or not isinstance(level, int) or level not in epic.SUPERVISION_LEVELS:
            raise FparError(f"{key} must be a supervision level from 0 to 5, got {level!r}")


def narration_id(clip_id: str) -> str:
    """A clip's EPIC narration id: its instance id's last part (a tree layout's ids are
    ``participant/class/narration``, a manifest's the narration id itself)."""
    return clip_id.rsplit("/", 1)[-1]


def _log_probabilities(rows: list[ClipResult], kind: str) -> np.ndarray:
    probs = np.asarray([row.head_scores[kind] for row in rows], dtype=np.float64)
    # log of the (view-averaged) probabilities: EPIC's rule softmaxes the scores of the 100 best classes,
    # which for log-probabilities renormalises those probabilities; floored, so an underflowed one stays finite
    return np.log(np.maximum(probs, np.finfo(np.float64).tiny))


def epic_scores(rows: list[ClipResult]) -> epic.Results:
    """The verb and noun heads' log-probabilities as EPIC-KITCHENS-100 results, one row per clip."""
    ids = [narration_id(row.id) for row in rows]
    twice = sorted({nid for nid in ids if ids.count(nid) > 1}) if len(set(ids)) != len(ids) else []
    if twice:
        raise FparError(f"clips share a narration id ({', '.join(twice[:3])}): EPIC results need one row per narration")
    return epic.Results(ids, _log_probabilities(rows, "verb"), _log_probabilities(rows, "noun"))


def _head_metrics(rows: list[ClipResult], kind: str, names: list[str], width: int) -> dict[str, Any]:
    from fpar.engine.metrics import METRICS, ClassificationMetrics  # torchmetrics: once clips are scored

    metrics = ClassificationMetrics(width)
    metrics.update(torch.tensor([row.head_scores[kind] for row in rows]),
                   torch.tensor([row.head_labels[kind] for row in rows]))
    numbers = metrics.compute()
    return {**{name: float(numbers[name]) for name in METRICS},
            "per_class": {names[c]: acc for c, acc in enumerate(numbers["per_class"].tolist()) if acc == acc},
            "n": len(rows)}


def _verb_noun_action(rows: list[ClipResult]) -> dict[str, float]:
    """Top-1 and top-5 action accuracy by EPIC's rule (top-100 verbs x top-100 nouns)."""
    verbs, nouns = epic.action_top_k(_log_probabilities(rows, "verb"), _log_probabilities(rows, "noun"), k=5)
    verb_labels = np.asarray([row.head_labels["verb"] for row in rows])[:, None]
    noun_labels = np.asarray([row.head_labels["noun"] for row in rows])[:, None]
    right = (verbs == verb_labels) & (nouns == noun_labels)
    return {ACCURACY: float(right[:, 0].mean()), TOP5: float(right.any(axis=1).mean())}


def evaluated_clips(index: DatasetIndex, split: Sequence[str] | str | None,
                    config: dict[str, Any] | None) -> tuple[list[str], list[Instance]]:
    """What :func:`evaluate` scores of ``index`` for ``split`` and a model trained with ``config``:
    the split's name (its subjects, or the recorded split) and its clips, in the index's order."""
    clip_split = _clip_split(split, config, read_splits(index.root))
    if clip_split is not None:  # the test clips of a recorded split (EGTEA's split1..3)
        return [clip_split], split_by_clips(index, clip_split)[1]
    subjects = split_subjects(split, config)
    return subjects, [inst for inst in index.instances if inst.subject in subjects]


def _clip_split(split: Sequence[str] | str | None, config: dict[str, Any] | None,
                recorded: dict[str, Any]) -> str | None:
    """The recorded split whose test clips are scored: ``split`` naming one, or with none given the
    split the model was trained on (``data.split``); None to score subjects."""
    if split is None:
        return default_split(config)
    return split if isinstance(split, str) and split in recorded else None


def split_subjects(split: Sequence[str] | str | None, config: dict[str, Any] | None) -> list[str]:
    """``split`` as a list; none given: the subjects the model was validated on (imported reference
    models: the standard split's)."""
    return default_subjects(config) if split is None else _subjects(split)


def _subjects(split: Sequence[str] | str) -> list[str]:
    if not isinstance(split, (str, list, tuple)) or not all(isinstance(s, str) for s in split):
        raise FparError(f"split must name subjects, e.g. 'S2', 'S2,S4' or ['S2', 'S4']; got {split!r}")
    subjects = [s.strip() for s in split.split(",")] if isinstance(split, str) else list(split)
    if not subjects or not all(subjects):
        raise FparError(f"--split must name subjects, e.g. S2 or S2,S4; got {split!r}")
    return subjects


def _short(names: list[str]) -> str:
    return f"[{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}] ({len(names)})"


def _metrics(rows: list[ClipResult], classes: list[str]) -> dict[str, Any]:
    # torchmetrics takes ~0.6 s to import: once the clips are scored, not before the first frame
    # (docs/deployment.md, "Fast start")
    from fpar.engine.metrics import METRICS, ClassificationMetrics

    metrics = ClassificationMetrics(len(classes))
    metrics.update(torch.tensor([row.scores for row in rows]), torch.tensor([row.label for row in rows]))
    numbers = metrics.compute()
    per_class = numbers["per_class"].tolist()
    return {
        **{name: float(numbers[name]) for name in METRICS},  # every registered metric
        "per_class": {classes[c]: acc for c, acc in enumerate(per_class) if acc == acc},  # NaN: absent
        "confusion": numbers["confusion"].tolist(),
        "n": len(rows),
    }


def printable_name(name: str) -> str:
    """``name`` as text every file and terminal takes: a class or clip named by a folder whose name
    is not UTF-8 (``os.listdir`` gives its bytes surrogate-escaped) shows those bytes backslash-escaped
    (``shake_\\xff\\xfejar``); valid names are unchanged. Every file ``eval`` and ``report`` write uses it."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that no byte escape made
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _predictions_csv(rows: list[ClipResult], classes: list[str]) -> str:
    """One CSV row per clip: id, true class, predicted class, one score column per class."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    names = [printable_name(name) for name in classes]
    writer.writerow(["id", "label", "prediction", *names])
    for row in rows:
        writer.writerow([printable_name(row.id), names[row.label], names[row.prediction],
                         *(f"{p:.6f}" for p in row.scores)])
    return text.getvalue()

"""Scoring clips with a fixed model, as one process's share of a dataset: :class:`ClipScorer` turns
batches into one :class:`ClipResult` per clip. :func:`fpar.engine.evaluate.evaluate` runs it in a
plain loop (one process) or through :mod:`fpar.engine.distributed_eval` (several), so both read it
from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Iterator

import torch
from torch import nn

from fpar.data import ClipDataset
from fpar.engine.compute import channels_last_batch
from fpar.models.heads import ACTION, output_key, target_key


@dataclass
class ClipResult:
    """One scored clip. ``explanation``: the clip (no batch axis) and the model's outputs for it
    (batch of one, with the maps ``explain=True`` adds), for the clips whose ids were asked for."""

    position: int
    id: str
    label: int
    scores: list[float]
    features: list[float]
    explanation: dict[str, dict[str, Any]] | None = field(default=None, repr=False)
    # per label head (verb, noun): its probabilities and the clip's class, as ``scores`` and ``label``
    head_scores: dict[str, list[float]] = field(default_factory=dict, repr=False)
    head_labels: dict[str, int] = field(default_factory=dict)

    @property
    def prediction(self) -> int:
        return max(range(len(self.scores)), key=self.scores.__getitem__)


class ClipScorer:
    """Scores batches with a fixed model, as one process's share of a dataset; ``score`` gives one
    :class:`ClipResult` per clip, numbered by ``positions`` (the clips' indices in the dataset).
    ``model``: prepared to score (:meth:`fpar.engine.inference.InferenceSession.prepare`), run in
    the session's context (:meth:`~fpar.engine.inference.InferenceSession.running`) or Lightning's."""

    def __init__(self, model: nn.Module, dataset: ClipDataset, explain: Collection[str] = ()):
        self.model = model
        self.dataset = dataset
        self.explain = set(explain)
        self.label_kinds = list(dataset.label_ids)  # the label heads scored besides the action

    def score(self, batch: dict[str, Any], positions: Iterator[int]) -> list[ClipResult]:
        explain = bool(self.explain.intersection(batch["id"]))
        heads = [ACTION, *self.label_kinds]
        if self.dataset.views == "center":
            outputs = self.model(channels_last_batch(batch), explain=explain)
            probs = {head: outputs[output_key(head)].float().softmax(dim=1) for head in heads}
            features = outputs["features"].float()
        else:  # tensors are (B, V, ...): average the softmax (and features) of every view
            inputs = {m: batch[m] for m in self.dataset.modalities}
            num_views = next(iter(inputs.values())).shape[1]
            views = [self.model(channels_last_batch({m: x[:, v] for m, x in inputs.items()}))
                     for v in range(num_views)]
            probs = {head: torch.stack([out[output_key(head)].float().softmax(dim=1) for out in views]).mean(dim=0)
                     for head in heads}
            features = torch.stack([out["features"].float() for out in views]).mean(dim=0)
        head_labels = {kind: batch[target_key(kind)].tolist() for kind in self.label_kinds}
        rows = []
        for i, (clip_id, label) in enumerate(zip(batch["id"], batch["label"].tolist())):
            row = ClipResult(next(positions), clip_id, label, probs[ACTION][i].cpu().tolist(),
                             features[i].cpu().tolist(),
                             head_scores={kind: probs[kind][i].cpu().tolist() for kind in self.label_kinds},
                             head_labels={kind: head_labels[kind][i] for kind in self.label_kinds})
            if clip_id in self.explain and self.dataset.views == "center":
                row.explanation = {
                    "clip": {k: v[i].cpu() for k, v in batch.items() if isinstance(v, torch.Tensor)} | {"id": clip_id},
                    "outputs": {k: v[i:i + 1].detach().cpu() for k, v in outputs.items()},
                }
            rows.append(row)
        return rows

"""The training loss: the sum of the model's own named terms (:meth:`fpar.models.base.ClipModel.loss`:
cross-entropy, plus the MS head's weighted term where the model has one and ``loss.ms`` is set).
The engine only sums them and logs each."""

from __future__ import annotations

from typing import Any

import torch

from fpar.models.base import ClipModel
from fpar.models.losses import LossSettings


def total_loss(model: ClipModel, out: dict[str, torch.Tensor], batch: dict[str, Any],
               settings: LossSettings) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The sum of the model's loss terms, and the terms for logging."""
    terms = model.loss(out, batch, settings)
    loss, *rest = terms.values()
    for term in rest:
        loss = loss + term
    return loss, terms

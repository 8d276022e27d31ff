"""The training loss: cross-entropy for the action plus, for a model with an MS head, that head's
own loss (``fpar.models.ms_task``) weighted by ``loss.ms.weight``. This module only sums."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fpar.models.ms_task import MSLossSettings, ms_loss


def total_loss(out: dict[str, torch.Tensor], batch: dict[str, Any],
               ms_settings: MSLossSettings | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``CE + weight * MS``; also returns the parts for logging."""
    ce = F.cross_entropy(out["logits"], batch["label"])
    if ms_settings is None:
        return ce, {"ce": ce}
    if "ms" not in out:
        raise ValueError("loss.ms is set but the model has no MS head (build it with ms_head)")
    ms = ms_loss(out["ms"], batch["mmaps"], kind=ms_settings.kind, threshold=ms_settings.threshold,
                 regression=ms_settings.regression)
    return ce + ms_settings.weight * ms, {"ce": ce, "ms": ms}

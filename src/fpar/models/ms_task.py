"""The motion-segmentation (MS) head's task: its target, its loss family and their settings.

The MS head (``fpar.models.heads.MSHead``) predicts one raw score per cell of the backbone's
h x w feature grid for every frame, ``ms (B, T, h*w)``. Its target is the frame's motion map
``mmaps (B, T, 1, H, W)`` in [0, 1], bilinearly resized to h x w (docs/method.md) with
antialiasing, as PIL's bilinear resize does: a cell's target is then the share of moving pixels
around it. (Plain bilinear sampling would read only the few pixels nearest each cell centre and
miss a moving hand between them.)

* classification: target cell = 1 where the resized map exceeds ``threshold`` (default 0: any
  motion), per-cell binary cross-entropy on the head's logits;
* regression: ``sigmoid(ms)`` against the unthresholded target with one of
  :data:`MS_REGRESSION_LOSSES`:

  - ``mse``, ``l1``, ``smooth_l1``: the usual element-wise losses, averaged over cells;
  - ``soft_margin``: ``log(1 + exp(-y x))`` with prediction and target mapped from [0, 1] to
    [-1, 1] (``x = 2 p - 1``, ``y = 2 t - 1``), so a still cell (t = 0) pulls p down instead of
    giving the constant ``log 2`` that [0, 1] targets would;
  - ``kl``: each cell is a Bernoulli variable, target ``t`` and prediction ``p = sigmoid(ms)``;
    the loss is the mean over cells of ``KL(Bern(t) || Bern(p)) = t log(t/p) + (1-t) log((1-t)/(1-p))``,
    i.e. binary cross-entropy minus the target's entropy: zero exactly when p = t.

The reference applies a softmax over the time axis before the loss; the paper's formulation
(and this module) does not. Adding a regression loss is one entry in :data:`MS_REGRESSION_LOSSES`.

torch is imported inside the functions: the settings and the CLI read this module's vocabulary
without loading torch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import torch

MS_TASKS = ("classification", "regression")


def _mse(prob: torch.Tensor, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F
    return F.mse_loss(prob, target)


def _l1(prob: torch.Tensor, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F
    return F.l1_loss(prob, target)


def _smooth_l1(prob: torch.Tensor, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F
    return F.smooth_l1_loss(prob, target)


def _soft_margin(prob: torch.Tensor, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F
    return F.soft_margin_loss(2 * prob - 1, 2 * target - 1)


def _kl(prob: torch.Tensor, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    import torch
    import torch.nn.functional as F
    target = target.clamp(0, 1)
    entropy = -(torch.xlogy(target, target) + torch.xlogy(1 - target, 1 - target))
    # BCE on logits is the numerically stable cross-entropy term of the KL
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").sub(entropy).mean()


# name -> loss(sigmoid(ms), target, ms): the regression variant's loss family
MS_REGRESSION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mse": _mse,
    "l1": _l1,
    "smooth_l1": _smooth_l1,
    "soft_margin": _soft_margin,
    "kl": _kl,
}


class MSLossSettings(BaseModel):
    """``loss.ms`` of an experiment: how the MS head's outputs are scored; the total is ``CE + weight * MS``
    (weight 1 by default: the paper found a weighted sum no better)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[MS_TASKS] = "classification"  # type: ignore[valid-type]
    threshold: float = Field(0.0, allow_inf_nan=False)
    regression: Literal[tuple(MS_REGRESSION_LOSSES)] = "mse"  # type: ignore[valid-type]
    weight: float = Field(1.0, ge=0.0, allow_inf_nan=False)


def ms_target(mmaps: torch.Tensor, cells: int) -> torch.Tensor:
    """Motion maps ``(B, T, 1, H, W)`` -> ``(B, T, cells)`` on the head's square grid."""
    import torch.nn.functional as F

    side = math.isqrt(cells)
    if side * side != cells:
        raise ValueError(f"MS head output has {cells} cells, not a square grid")
    batch, steps = mmaps.shape[:2]
    resized = F.interpolate(mmaps.flatten(0, 1).float(), size=(side, side), mode="bilinear", align_corners=False,
                            antialias=True)
    return resized.reshape(batch, steps, cells)


def ms_loss(ms: torch.Tensor, mmaps: torch.Tensor, *, kind: str, threshold: float = 0.0,
            regression: str = "mse") -> torch.Tensor:
    """The MS loss of the head's raw outputs ``ms (B, T, h*w)`` against the motion maps."""
    import torch
    import torch.nn.functional as F

    target = ms_target(mmaps, ms.shape[-1]).to(ms.dtype)
    if kind == "classification":
        return F.binary_cross_entropy_with_logits(ms, (target > threshold).to(ms.dtype))
    if kind != "regression":
        raise ValueError(f"unknown MS loss kind {kind!r}")
    if regression not in MS_REGRESSION_LOSSES:
        raise ValueError(f"unknown MS regression loss {regression!r}")
    return MS_REGRESSION_LOSSES[regression](torch.sigmoid(ms), target, ms)

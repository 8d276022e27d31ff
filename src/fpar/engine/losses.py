"""Losses: cross-entropy for the action plus the motion-segmentation (MS) self-supervised loss.

The MS head predicts one value per cell of the backbone's h x w feature grid for every frame,
``ms (B, T, h*w)``. Its target is the frame's motion map ``mmaps (B, T, 1, H, W)`` in [0, 1],
bilinearly resized to h x w (docs/method.md §8) with antialiasing, as PIL's bilinear resize does: a
cell's target is then the share of moving pixels around it. (Plain bilinear sampling would read
only the few pixels nearest each cell centre and miss a moving hand between them.)

* classification: target cell = 1 where the resized map exceeds ``threshold`` (default 0: any
  motion), per-cell binary cross-entropy on the head's logits;
* regression: ``sigmoid(ms)`` against the unthresholded target with one of

  - ``mse``, ``l1``, ``smooth_l1``: the usual element-wise losses, averaged over cells;
  - ``soft_margin``: ``log(1 + exp(-y x))`` with prediction and target mapped from [0, 1] to
    [-1, 1] (``x = 2 p - 1``, ``y = 2 t - 1``), so a still cell (t = 0) pulls p down instead of
    giving the constant ``log 2`` that [0, 1] targets would;
  - ``kl``: each cell is a Bernoulli variable, target ``t`` and prediction ``p = sigmoid(ms)``;
    the loss is the mean over cells of ``KL(Bern(t) || Bern(p)) = t log(t/p) + (1-t) log((1-t)/(1-p))``,
    i.e. binary cross-entropy minus the target's entropy: zero exactly when p = t.

The reference applies a softmax over the time axis before the loss; the paper's formulation
(and this module) does not. The total is ``CE + weight * MS`` with weight 1 by default (the paper
found a weighted sum no better).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


def ms_target(mmaps: torch.Tensor, cells: int) -> torch.Tensor:
    """Motion maps ``(B, T, 1, H, W)`` -> ``(B, T, cells)`` on the head's square grid."""
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
    target = ms_target(mmaps, ms.shape[-1]).to(ms.dtype)
    if kind == "classification":
        return F.binary_cross_entropy_with_logits(ms, (target > threshold).to(ms.dtype))
    if kind != "regression":
        raise ValueError(f"unknown MS loss kind {kind!r}")
    prob = torch.sigmoid(ms)
    if regression == "mse":
        return F.mse_loss(prob, target)
    if regression == "l1":
        return F.l1_loss(prob, target)
    if regression == "smooth_l1":
        return F.smooth_l1_loss(prob, target)
    if regression == "soft_margin":
        return F.soft_margin_loss(2 * prob - 1, 2 * target - 1)
    if regression == "kl":
        target = target.clamp(0, 1)
        entropy = -(torch.xlogy(target, target) + torch.xlogy(1 - target, 1 - target))
        # BCE on logits is the numerically stable cross-entropy term of the KL
        return F.binary_cross_entropy_with_logits(ms, target, reduction="none").sub(entropy).mean()
    raise ValueError(f"unknown MS regression loss {regression!r}")


def total_loss(out: dict[str, torch.Tensor], batch: dict[str, Any],
               ms_config: dict[str, Any] | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``CE + weight * MS``; also returns the parts for logging."""
    ce = F.cross_entropy(out["logits"], batch["label"])
    if not ms_config:
        return ce, {"ce": ce}
    if "ms" not in out:
        raise ValueError("loss.ms is set but the model has no MS head (build it with ms_head)")
    ms = ms_loss(out["ms"], batch["mmaps"], kind=ms_config["kind"], threshold=ms_config["threshold"],
                 regression=ms_config["regression"])
    return ce + ms_config["weight"] * ms, {"ce": ce, "ms": ms}

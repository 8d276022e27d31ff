"""Two-in-one flow modulation (Zhao & Snoek, "Dance with Flow: Two-in-One Stream Action Detection",
CVPR 2019), as the report's two-in-one stream uses it (docs/method.md §9).

One x/y flow pair per RGB frame conditions the RGB backbone's first conv: a condition net turns the
flow into a 32-channel condition map at full resolution, two branches turn that into a per-pixel
``scale`` and ``shift`` at conv1's resolution, and ``conv1(rgb) * (scale + 1) + shift`` replaces
conv1's output (``+ 1`` so that a zero scale leaves conv1 as it is).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

FLOW_CHANNELS = 2
CONDITION_CHANNELS = 32
NEGATIVE_SLOPE = 0.1


def condition_net() -> nn.Sequential:
    """Flow pair (N, 2, H, W) -> condition (N, 32, H, W): three 1x1 convs, then a 3x3 one."""
    return nn.Sequential(
        nn.Conv2d(FLOW_CHANNELS, 64, kernel_size=1),
        nn.LeakyReLU(NEGATIVE_SLOPE),
        nn.Conv2d(64, 64, kernel_size=1),
        nn.LeakyReLU(NEGATIVE_SLOPE),
        nn.Conv2d(64, 64, kernel_size=1),
        nn.LeakyReLU(NEGATIVE_SLOPE),
        nn.Conv2d(64, CONDITION_CHANNELS, kernel_size=3, padding=1),
    )


def modulation_branch(out_channels: int) -> nn.Sequential:
    """Condition -> one modulation map at half resolution (conv1 has stride 2)."""
    return nn.Sequential(
        nn.Conv2d(CONDITION_CHANNELS, CONDITION_CHANNELS, kernel_size=1),
        nn.LeakyReLU(NEGATIVE_SLOPE),
        nn.Conv2d(CONDITION_CHANNELS, out_channels, kernel_size=3, stride=2, padding=1),
    )


class Modulation(NamedTuple):
    pre: torch.Tensor  # conv1(rgb), before modulation
    scale: torch.Tensor
    shift: torch.Tensor
    post: torch.Tensor  # pre * (scale + 1) + shift


class MotionModulation(nn.Module):
    """Condition net plus scale/shift branches; ``modulate`` applies them to conv1's output."""

    def __init__(self, conv1_channels: int = 64):
        super().__init__()
        self.condition = condition_net()
        self.scale = modulation_branch(conv1_channels)
        self.shift = modulation_branch(conv1_channels)

    def forward(self, pre: torch.Tensor, flow: torch.Tensor) -> Modulation:
        """``pre`` = conv1(rgb) (N, 64, H/2, W/2), ``flow`` (N, 2, H, W) of the same frames."""
        condition = self.condition(flow)
        scale, shift = self.scale(condition), self.shift(condition)
        return Modulation(pre, scale, shift, pre * (scale + 1) + shift)

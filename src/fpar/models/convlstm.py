"""Convolutional LSTM cell (Shi et al., NeurIPS 2015) as Ego-RNN uses it (REFERENCE.md §2).

Per gate g in {i, f, c, o}: a conv on the input (with bias) plus a conv on the hidden state (no
bias); ``i, f, o = sigmoid``, ``c~ = tanh``, ``c = c~ * i + c_prev * f``, ``h = o * tanh(c)``.
The four gates' convs are stacked into one input conv and one hidden conv (as ``nn.LSTM`` stacks
its gates): the same function as four separate convs, in two calls instead of eight.
"""

from __future__ import annotations

import math

import torch
from torch import nn

GATES = ("i", "f", "c", "o")  # order of the gates along the stacked convs' output channels


class ConvLSTM(nn.Module):
    """A ConvLSTM cell (``step``) and its run over a sequence from a zero state (``forward``)."""

    def __init__(self, in_channels: int, mem_size: int = 512, kernel_size: int = 3):
        super().__init__()
        self.mem_size = mem_size
        padding = kernel_size // 2
        self.input_conv = nn.Conv2d(in_channels, 4 * mem_size, kernel_size, padding=padding, bias=True)
        self.hidden_conv = nn.Conv2d(mem_size, 4 * mem_size, kernel_size, padding=padding, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        # Xavier-normal per gate conv, as if each gate had its own (mem_size-output) conv
        for conv in (self.input_conv, self.hidden_conv):
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            fan_out = self.mem_size * conv.kernel_size[0] * conv.kernel_size[1]
            with torch.no_grad():
                conv.weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)))
        nn.init.zeros_(self.input_conv.bias)

    def step(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: ``(h, c)`` from input ``x`` (N, C, h, w) and the previous ``(h, c)``."""
        hidden, cell = state
        gates = self.input_conv(x) + self.hidden_conv(hidden)
        i, f, c, o = gates.chunk(4, dim=1)
        cell = torch.tanh(c) * torch.sigmoid(i) + cell * torch.sigmoid(f)
        hidden = torch.sigmoid(o) * torch.tanh(cell)
        return hidden, cell

    def forward(self, sequence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sequence`` (B, T, C, h, w) -> final ``(h, c)``, each (B, mem_size, h, w)."""
        batch, _, _, height, width = sequence.shape
        zeros = sequence.new_zeros(batch, self.mem_size, height, width)
        state = (zeros, zeros)
        for t in range(sequence.shape[1]):
            state = self.step(sequence[:, t], state)
        return state

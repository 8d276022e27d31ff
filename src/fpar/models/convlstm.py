"""Convolutional LSTM cell (Shi et al., NeurIPS 2015) as Ego-RNN uses it (docs/method.md §6).

Per gate g in {i, f, c, o}: a conv on the input (with bias) plus a conv on the hidden state (no
bias); ``i, f, o = sigmoid``, ``c~ = tanh``, ``c = c~ * i + c_prev * f``, ``h = o * tanh(c)``.
The four gates' convs are stored stacked, as one input conv and one hidden conv (as ``nn.LSTM``
stacks its gates). Two things make the run over a sequence fast, with the same result:

* the input's share of the gates does not depend on the state, so it is computed for all time
  steps in one batched conv; only the hidden conv steps through time;
* without autograd (evaluation), each stacked conv is applied gate by gate (four convs of
  ``mem_size`` outputs, concatenated): oneDNN, PyTorch's CPU convolution, runs one conv with
  ``4 * mem_size`` outputs several times slower than four with ``mem_size`` each (measured: 2-4x
  at batch 2 on 4x4 maps), and on GPUs the split costs little; a conv whose weight a stream has
  reordered once into oneDNN's layout (``fpar.engine.packed_convolutions``) runs as one, the
  fastest then (one frame on a 7x7 map, bf16: 0.75 ms against 2.7 ms for four);
* with autograd (training) the stacked conv runs as one: the split's backward (four weight-grad
  convs, a concatenation and, under autocast, four weight casts per time step, since the
  chunks are views that autocast does not cache) is the slower one, 1.4-2x in fp32 and bf16
  (measured at batch 2 and 4 on 4x4 and 7x7 maps, forward plus backward);
* in training, ``forward`` runs :class:`fpar.models.recurrence.ConvLSTMRecurrence`, whose written-out
  backward computes each conv's weight gradient for all time steps at once (1.2-1.9x faster than
  autograd's per-step one, same gradients; in bf16 on a CPU as a matrix product, another 2x on
  those); ``step`` keeps plain autograd.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fpar.models.recurrence import ConvLSTMRecurrence

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
        if self.input_conv.weight.is_meta:  # to be given loaded weights: see ResNet._init_weights
            return
        for conv in (self.input_conv, self.hidden_conv):
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            fan_out = self.mem_size * conv.kernel_size[0] * conv.kernel_size[1]
            with torch.no_grad():
                conv.weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)))
        nn.init.zeros_(self.input_conv.bias)

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The input's share of the gate pre-activations, ``(N, 4 * mem_size, h, w)``, for any N frames."""
        return _conv_by_gate(x, self.input_conv)

    def recur(self, input_gates: torch.Tensor,
              state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step from the input's gate share and the previous ``(h, c)``."""
        hidden, cell = state
        gates = input_gates + _conv_by_gate(hidden, self.hidden_conv)
        i, f, c, o = gates.chunk(4, dim=1)
        cell = torch.tanh(c) * torch.sigmoid(i) + cell * torch.sigmoid(f)
        hidden = torch.sigmoid(o) * torch.tanh(cell)
        return hidden, cell

    def step(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: ``(h, c)`` from input ``x`` (N, C, h, w) and the previous ``(h, c)``."""
        return self.recur(self.input_gates(x), state)

    def forward(self, sequence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sequence`` (B, T, C, h, w) -> final ``(h, c)``, each (B, mem_size, h, w)."""
        batch, steps, _, height, width = sequence.shape
        if torch.is_grad_enabled() and (sequence.requires_grad or any(p.requires_grad for p in self.parameters())):
            return ConvLSTMRecurrence.apply(sequence, self.input_conv.weight, self.input_conv.bias,
                                            self.hidden_conv.weight, self.hidden_conv.padding[0])
        input_gates = self.input_gates(sequence.flatten(0, 1)).unflatten(0, (batch, steps))
        zeros = sequence.new_zeros(batch, self.mem_size, height, width)
        state = (zeros, zeros)
        for t in range(steps):
            state = self.recur(input_gates[:, t], state)
        return state


def _conv_by_gate(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)``, as one conv per gate where no gradient is wanted (see the module docstring)."""
    if torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad):
        return conv(x)
    x = without_subnormals(x)
    if hasattr(conv, "packed"):  # its weight already in oneDNN's layout (a stream's): one conv is fastest
        return conv(x)
    weights = conv.weight.chunk(len(GATES))
    biases = conv.bias.chunk(len(GATES)) if conv.bias is not None else (None,) * len(GATES)
    return torch.cat([F.conv2d(x, w, b, padding=conv.padding) for w, b in zip(weights, biases)], dim=1)


def without_subnormals(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its subnormal values (magnitude below the dtype's smallest normal, 1.2e-38 in
    fp32 and bf16) set to zero, for a state about to be convolved in inference. A saturated gate
    (``sigmoid(-88)``) makes subnormal hidden values, and a CPU computes on them 100x slower
    (measured: a 512-channel 3x3 conv at batch 4 on 7x7 maps, 3.7 ms -> 450 ms); the processor's
    flush-to-zero mode (``torch.set_flush_denormal``) covers only the thread that sets it, not
    the threads oneDNN and the BLAS compute on. No answer changes: the values dropped are below
    fp32's rounding of any normal-sized sum they enter."""
    return x.masked_fill(x.abs() < torch.finfo(x.dtype).tiny, 0)

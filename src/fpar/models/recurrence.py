"""The ConvLSTM's run over a sequence for training, with backpropagation through time written out.

Autograd differentiates the recurrence one time step at a time, so the hidden conv's weight
gradient is T separate weight-gradient convolutions over B images each: small, badly shaped
problems for oneDNN and cuBLAS (a 4x4 map at batch 2 runs at a few percent of the machine's
peak). The weight gradient is a sum over time steps, ``dW = sum_t dgates_t (x) h_{t-1}``, so it
can wait until every step's ``dgates_t`` is known and then run as one convolution over all B*T
images. Only the input gradient ``dh_{t-1}`` (a transposed conv) stays in the per-step loop.

The gate arithmetic runs in fp32 whatever the autocast dtype (it is elementwise on small
tensors, so the cost is nil, and the cell state then accumulates without bf16 rounding); the
convolutions run in the dtype autocast gives them, forward and backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gates(pre: torch.Tensor) -> tuple[torch.Tensor, ...]:
    i, f, c, o = pre.chunk(4, dim=1)
    return torch.sigmoid(i), torch.sigmoid(f), torch.tanh(c), torch.sigmoid(o)


class ConvLSTMRecurrence(torch.autograd.Function):
    """``(input_gates (B, T, 4M, h, w), hidden weight (4M, M, k, k))`` -> final ``(h, c)``, fp32."""

    @staticmethod
    def forward(ctx, input_gates: torch.Tensor, weight: torch.Tensor,
                padding: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps, channels, height, width = input_gates.shape
        mem = channels // 4
        # autocast has no say inside a Function's forward: pick the conv dtype here, once
        conv_dtype = (torch.get_autocast_dtype(input_gates.device.type)
                      if torch.is_autocast_enabled(input_gates.device.type) else weight.dtype)
        w = weight.to(conv_dtype)
        cell = input_gates.new_zeros(batch, mem, height, width, dtype=torch.float32)
        hidden = torch.zeros_like(cell)
        hiddens, cells, acts = [], [], []
        for t in range(steps):
            pre = input_gates[:, t].float()
            if t:  # h_0 = 0 adds nothing
                pre = pre + F.conv2d(hidden.to(conv_dtype), w, padding=padding).float()
            i, f, g, o = _gates(pre)
            cells.append(cell)
            cell = g * i + cell * f
            hiddens.append(hidden)
            hidden = o * torch.tanh(cell)
            acts.append(torch.cat([i, f, g, o], dim=1))
        cells.append(cell)
        ctx.padding, ctx.conv_dtype, ctx.input_dtype = padding, conv_dtype, input_gates.dtype
        ctx.save_for_backward(weight, torch.stack(hiddens, 1), torch.stack(cells, 1), torch.stack(acts, 1))
        return hidden, cell

    @staticmethod
    def backward(ctx, grad_hidden: torch.Tensor, grad_cell: torch.Tensor):
        weight, hiddens, cells, acts = ctx.saved_tensors
        steps = acts.shape[1]
        w = weight.to(ctx.conv_dtype)
        dh, dc = grad_hidden.float(), grad_cell.float()
        dgates = [None] * steps
        for t in reversed(range(steps)):
            i, f, g, o = acts[:, t].chunk(4, dim=1)
            c_prev, c = cells[:, t], cells[:, t + 1]
            tc = torch.tanh(c)
            dc = dc + dh * o * (1 - tc * tc)
            dpre = torch.cat([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g),
                              dh * tc * o * (1 - o)], dim=1)
            dgates[t] = dpre
            dc = dc * f
            if t:
                dh = F.conv_transpose2d(dpre.to(ctx.conv_dtype), w, padding=ctx.padding).float()
        grad_input = torch.stack(dgates, 1)
        grad_weight = None
        if ctx.needs_input_grad[1] and steps > 1:
            # every step's share at once: one weight-gradient conv over B*(T-1) images
            h_prev = hiddens[:, 1:].flatten(0, 1).to(ctx.conv_dtype)
            d_later = grad_input[:, 1:].flatten(0, 1).to(ctx.conv_dtype)
            grad_weight = torch.nn.grad.conv2d_weight(h_prev, weight.shape, d_later,
                                                      padding=ctx.padding).to(weight.dtype)
        elif ctx.needs_input_grad[1]:
            grad_weight = torch.zeros_like(weight)
        return grad_input.to(ctx.input_dtype), grad_weight, None

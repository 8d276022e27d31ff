"""The ConvLSTM's run over a sequence for training, with backpropagation through time written out.

Autograd differentiates the recurrence one time step at a time, so the hidden conv's weight
gradient is T separate weight-gradient convolutions over B images each: small, badly shaped
problems for oneDNN and cuBLAS (a 4x4 map at batch 2 runs at a few percent of the machine's
peak). The weight gradient is a sum over time steps, ``dW = sum_t dgates_t (x) h_{t-1}``, so it
can wait until every step's ``dgates_t`` is known and then run as one computation over all B*T
images, and so can the input conv's (``dW_in = sum_t dgates_t (x) x_t``), which is why the input
conv runs in here too. Only the input gradient ``dh_{t-1}`` (a transposed conv) stays in the
per-step loop.

A weight gradient over N maps of h x w is one matrix product, ``dgates (C_out, N*h*w) @
patches (N*h*w, C_in*k*k)``. oneDNN's bf16 weight-gradient convolution on ResNet's 7x7 maps
runs at ~30% of the CPU's bf16 matmul peak, the product at ~65% (measured: 67 ms against 32 ms
for 24 maps of 512 -> 2048 channels), so in bf16 on a CPU it is computed as that product; in
fp32 (where the convolution was the faster, 122 against 138 ms) and on GPUs, as the convolution
(:func:`weight_gradient`).

The gate arithmetic runs in fp32 whatever the autocast dtype (it is elementwise on small
tensors, so the cost is nil, and the cell state then accumulates without bf16 rounding); the
convolutions run in the dtype autocast gives them, forward and backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weight_gradient(x: torch.Tensor, grad_output: torch.Tensor, weight_shape: torch.Size,
                    padding: int) -> torch.Tensor:
    """The gradient of a stride-1 conv's weight, summed over the batch, from its input ``x`` (N, C_in,
    h, w) and the gradient of its output (N, C_out, h, w); in bf16 on a CPU as one matrix product
    (see the module docstring), elsewhere as PyTorch's weight-gradient convolution."""
    if not (x.device.type == "cpu" and x.dtype == torch.bfloat16):
        return torch.nn.grad.conv2d_weight(x, weight_shape, grad_output, padding=padding)
    out_channels, in_channels, kernel, _ = weight_shape
    patches = F.unfold(x, kernel, padding=padding).transpose(1, 2).flatten(0, 1)  # (N*h*w, C_in*k*k)
    grad = grad_output.transpose(0, 1).flatten(1)  # (C_out, N*h*w), in the same (n, y, x) order
    return (grad @ patches).view(out_channels, in_channels, kernel, kernel)


def _as(weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``grad`` in ``weight``'s dtype and memory layout (channels-last weights get channels-last
    gradients, so the optimiser's updates do not mix layouts)."""
    return torch.empty_like(weight).copy_(grad)


def _gates(pre: torch.Tensor) -> tuple[torch.Tensor, ...]:
    i, f, c, o = pre.chunk(4, dim=1)
    return torch.sigmoid(i), torch.sigmoid(f), torch.tanh(c), torch.sigmoid(o)


class ConvLSTMRecurrence(torch.autograd.Function):
    """``(sequence (B, T, C, h, w), input conv weight and bias, hidden conv weight (4M, M, k, k))``
    -> final ``(h, c)``, fp32."""

    @staticmethod
    def forward(ctx, sequence: torch.Tensor, input_weight: torch.Tensor, input_bias: torch.Tensor,
                weight: torch.Tensor, padding: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps = sequence.shape[:2]
        # autocast has no say inside a Function's forward: pick the conv dtype here, once
        conv_dtype = (torch.get_autocast_dtype(sequence.device.type)
                      if torch.is_autocast_enabled(sequence.device.type) else weight.dtype)
        frames = sequence.flatten(0, 1).to(conv_dtype)
        input_gates = F.conv2d(frames, input_weight.to(conv_dtype), input_bias.to(conv_dtype),
                               padding=padding).unflatten(0, (batch, steps))
        w = weight.to(conv_dtype)
        _, _, channels, height, width = input_gates.shape
        cell = input_gates.new_zeros(batch, channels // 4, height, width, dtype=torch.float32)
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
        ctx.padding, ctx.conv_dtype, ctx.input_dtype = padding, conv_dtype, sequence.dtype
        ctx.save_for_backward(frames, input_weight, input_bias, weight, torch.stack(hiddens, 1),
                              torch.stack(cells, 1), torch.stack(acts, 1))
        return hidden, cell

    @staticmethod
    def backward(ctx, grad_hidden: torch.Tensor, grad_cell: torch.Tensor):
        frames, input_weight, input_bias, weight, hiddens, cells, acts = ctx.saved_tensors
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
        grad_gates = torch.stack(dgates, 1)  # (B, T, 4M, h, w), fp32
        all_gates = grad_gates.flatten(0, 1).to(ctx.conv_dtype)
        grad_sequence = grad_input_weight = grad_input_bias = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_sequence = F.conv_transpose2d(all_gates, input_weight.to(ctx.conv_dtype), padding=ctx.padding)
            grad_sequence = grad_sequence.unflatten(0, grad_gates.shape[:2]).to(ctx.input_dtype)
        if ctx.needs_input_grad[1]:
            grad_input_weight = _as(input_weight, weight_gradient(frames, all_gates, input_weight.shape, ctx.padding))
        if ctx.needs_input_grad[2]:
            grad_input_bias = grad_gates.sum(dim=(0, 1, 3, 4)).to(input_bias.dtype)
        if ctx.needs_input_grad[3] and steps > 1:
            # every step's share at once: one weight gradient over B*(T-1) images
            h_prev = hiddens[:, 1:].flatten(0, 1).to(ctx.conv_dtype)
            d_later = grad_gates[:, 1:].flatten(0, 1).to(ctx.conv_dtype)
            grad_weight = _as(weight, weight_gradient(h_prev, d_later, weight.shape, ctx.padding))
        elif ctx.needs_input_grad[3]:
            grad_weight = torch.zeros_like(weight)
        return grad_sequence, grad_input_weight, grad_input_bias, grad_weight, None

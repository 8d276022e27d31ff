"""The ConvLSTM's recurrence over a window of encoded frames, for inference: what a stream runs
after each frame (docs/streaming.md, "What a push computes").

:class:`WindowRecurrence` gives a ConvLSTM model (one with ``convlstm`` and ``classify``, such as
``RGBConvLSTM``) the window's final cell state from a zero state (``window_cell``, behind
``decode_window``) and the state of the windows in flight that a stream advances one frame at a
time (``advance_windows``, ``decode_windows``).
"""

from __future__ import annotations

import torch
from torch import nn

from fpar.models.convlstm import without_subnormals


class WindowRecurrence:
    """The window recurrences of a model with a ``convlstm`` (:class:`fpar.models.convlstm.ConvLSTM`)."""

    def window_cell(self, gates: torch.Tensor) -> torch.Tensor:
        """The ConvLSTM's final cell state (B, mem_size, h, w) over ``lstm_gates`` (B, T, ...), from
        a zero state: ``ConvLSTM.forward``'s recurrence, for inference, the hidden state's conv
        being :meth:`_hidden_product`. The state is kept in at least float32 (``forward`` keeps it
        in its input's dtype: the same in fp32); the first step skips the hidden conv, whose input
        is all zeros."""
        batch, steps, _, height, width = gates.shape
        cell = gates.new_zeros(batch, self.convlstm.mem_size, height, width,
                               dtype=torch.promote_types(gates.dtype, torch.float32))
        hidden = None
        for step in range(steps):
            step_gates = gates[:, step]
            if hidden is not None:
                step_gates = step_gates + self._hidden_product(hidden)
            i, f, c, o = step_gates.chunk(4, dim=1)
            cell = torch.tanh(c) * torch.sigmoid(i) + cell * torch.sigmoid(f)
            hidden = torch.sigmoid(o) * torch.tanh(cell)
        return cell

    # --- a stream's recurrent state: every window in flight advanced by one frame at a time

    def carries_windows(self) -> bool:
        return True

    def advance_windows(self, encoded: dict[str, torch.Tensor], state: dict[str, torch.Tensor] | None,
                        start: bool = True) -> dict[str, torch.Tensor]:
        """The window ending at a frame starts from a zero state T - 1 frames before it, so
        :meth:`window_cell` over a sliding window would redo T steps per frame. The state holds
        instead the ``(h, c)`` of the windows in flight (``hidden``, ``cell``: (S, mem_size, h, w),
        oldest first) and each new frame advances them all by one step with one hidden conv over
        the S maps (:meth:`_hidden_product`: the weights read once, not S times; each window's
        arithmetic is :meth:`window_cell`'s) and, with ``start``, begins a window of its own
        (last). A state of zeros is a window not started yet: the zero hidden state adds exactly
        zero, so a fixed S (the ONNX streaming graph, docs/deployment.md) gives the same answers."""
        gates = encoded["lstm_gates"][:, -1]  # (1, 4M, h, w)
        # with the packed reduced-precision hidden conv (_hidden_product) the state is channels-last,
        # as that conv's output, so that the conv and the cell's arithmetic read every operand in
        # one order; the gates copied with that format's own strides, since torch.cat reads a
        # size-one batch's arbitrary stride as another format and would return PyTorch's default
        layout = torch.channels_last if self._packed_hidden_conv() is not None else None
        if layout is not None:
            gates = gates.clone(memory_format=layout)
        fresh = torch.zeros_like(gates[:, :self.convlstm.mem_size],
                                 dtype=torch.promote_types(gates.dtype, torch.float32),
                                 memory_format=layout or torch.contiguous_format)
        if state is None or state["hidden"].shape[0] == 0:
            pre, cell = gates, fresh
        else:
            hidden, started = state["hidden"], state["cell"]
            pre, cell = gates + self._hidden_product(hidden), started
            if start:
                pre, cell = torch.cat([pre, gates]), torch.cat([cell, fresh])
        i, f, c, o = pre.chunk(4, dim=1)
        cell = torch.tanh(c) * torch.sigmoid(i) + cell * torch.sigmoid(f)
        return {"hidden": torch.sigmoid(o) * torch.tanh(cell), "cell": cell}

    def decode_windows(self, cell: torch.Tensor, newest: dict[str, torch.Tensor],
                       batch: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        out = {name: value for name, value in newest.items() if name != "lstm_gates"}
        out["features"] = cell.mean(dim=(2, 3))  # as extract reads the final cell state
        out.update(self.classify(out["features"]))
        return out

    def _hidden_product(self, hidden: torch.Tensor) -> torch.Tensor:
        """The hidden conv of ``hidden`` (B, mem_size, h, w): (B, 4 * mem_size, h, w), its
        subnormals dropped first (:func:`~fpar.models.convlstm.without_subnormals`): the packed
        conv of :meth:`_packed_hidden_conv` where there is one, else one product of the weight
        matrix with the unfolded (C*k*k, B*h*w) neighbourhoods, the state cast to the weights'
        dtype first as autocast would cast it (on a batch of one about twice as fast as an unpacked
        conv on a CPU, and equal to float rounding)."""
        conv = self._packed_hidden_conv()
        if conv is not None:
            return conv(without_subnormals(hidden).contiguous(memory_format=torch.channels_last))
        conv = self.convlstm.hidden_conv
        matrix = self._hidden_matrix()
        count, _, height, width = hidden.shape
        columns = nn.functional.unfold(without_subnormals(hidden).to(matrix.dtype), conv.kernel_size,
                                       padding=conv.padding)
        columns = columns.transpose(0, 1).reshape(columns.shape[1], -1)
        return (matrix @ columns).view(-1, count, height, width).transpose(0, 1)

    def _packed_hidden_conv(self) -> nn.Module | None:
        """The hidden conv where a stream packed it into oneDNN's layout in bf16 (or fp16), else
        None. Measured with 15 windows in flight on this project's Xeon (docs/streaming.md,
        "What keeps a push fast"): in bf16 on AMX the packed conv on channels-last state beats
        the unfolded product (no unfold, no transposed copy: a step 13.9 -> 11.2 ms, the RGB
        stream ~7% faster); in fp32 under the AVX2 cap it wins alone (82 -> 67 ms a step) but
        little inside a stream, where the backbone's weights share the cache: the RGB stream 3%
        faster (7.42 against 7.16 frames/s), two-stream 4% slower with a longer tail (4.64 against
        4.84 frames/s, p95 272 against 228 ms; three paired runs each), so fp32 keeps MKL's product."""
        conv = self.convlstm.hidden_conv
        return conv if hasattr(conv, "packed") and conv.packed.dtype != torch.float32 else None

    def _hidden_matrix(self) -> torch.Tensor:
        """The hidden conv's weight as a (4 * mem_size, C*k*k) matrix: a view of contiguous weights,
        else a copy made once (and again if the weight changes)."""
        weight = self.convlstm.hidden_conv.weight
        cached = self.__dict__.get("_hidden_matrix_cache")
        if cached is None or cached[0] is not weight or cached[1] != weight._version:
            cached = (weight, weight._version, weight.reshape(weight.shape[0], -1))
            self.__dict__["_hidden_matrix_cache"] = cached
        return cached[2]

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
        a zero state: ``ConvLSTM.forward``'s recurrence, for inference. The hidden state's conv runs
        as one matrix product on its unfolded 3x3 neighbourhoods (a stream's batch of one on a 7x7
        grid: about twice as fast as the conv on a CPU; equal to float rounding). The state is kept
        in at least float32 (``forward`` keeps it in its input's dtype: the same in fp32); the first
        step skips the hidden conv, whose input is all zeros."""
        matrix = self._hidden_matrix()
        batch, steps, _, height, width = gates.shape
        cell = gates.new_zeros(batch, self.convlstm.mem_size, height, width,
                               dtype=torch.promote_types(gates.dtype, torch.float32))
        hidden = None
        for step in range(steps):
            step_gates = gates[:, step]
            if hidden is not None:
                step_gates = step_gates + self._hidden_product(hidden, matrix)
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
        oldest first) and each new frame advances them all by one step as one matrix product over S
        maps (the weights read once, not S times; each window's arithmetic is :meth:`window_cell`'s)
        and, with ``start``, begins a window of its own (last). A state of zeros is a window not
        started yet: the zero hidden state adds exactly zero, so a fixed S (the ONNX streaming
        graph, docs/deployment.md) gives the same answers."""
        gates = encoded["lstm_gates"][:, -1]  # (1, 4M, h, w)
        fresh = gates.new_zeros(1, self.convlstm.mem_size, *gates.shape[2:],
                                dtype=torch.promote_types(gates.dtype, torch.float32))
        if state is None or state["hidden"].shape[0] == 0:
            pre, cell = gates, fresh
        else:
            hidden, started = state["hidden"], state["cell"]
            pre, cell = gates + self._hidden_product(hidden, self._hidden_matrix()), started
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

    def _hidden_product(self, hidden: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        """The hidden conv of ``hidden`` (B, mem_size, h, w) as one product of ``matrix`` with its
        unfolded (C*k*k, B*h*w) neighbourhoods: (B, 4 * mem_size, h, w). The state is cast to the
        weights' dtype first, as autocast would cast it, and its subnormals dropped
        (:func:`~fpar.models.convlstm.without_subnormals`)."""
        conv = self.convlstm.hidden_conv
        count, _, height, width = hidden.shape
        columns = nn.functional.unfold(without_subnormals(hidden).to(matrix.dtype), conv.kernel_size,
                                       padding=conv.padding)
        columns = columns.transpose(0, 1).reshape(columns.shape[1], -1)
        return (matrix @ columns).view(-1, count, height, width).transpose(0, 1)

    def _hidden_matrix(self) -> torch.Tensor:
        """The hidden conv's weight as a (4 * mem_size, C*k*k) matrix: a view of contiguous weights,
        else a copy made once (and again if the weight changes)."""
        weight = self.convlstm.hidden_conv.weight
        cached = self.__dict__.get("_hidden_matrix_cache")
        if cached is None or cached[0] is not weight or cached[1] != weight._version:
            cached = (weight, weight._version, weight.reshape(weight.shape[0], -1))
            self.__dict__["_hidden_matrix_cache"] = cached
        return cached[2]

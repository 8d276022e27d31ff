"""``fpar.Stream``: a PyTorch model fed one frame at a time (docs/streaming.md).

The frames become the model's inputs as :class:`fpar.prepare.live.LiveInputs` makes them (the
same transform as ``fpar predict``'s clip). What the model has already computed is kept:

* a model that carries windows (``advance_windows``/``decode_windows``, see
  ``fpar.models.assembled``) encodes each new sampled frame once (backbone, attention, the ConvLSTM
  input's gates) and advances the recurrent state of every window in flight by one step, as one
  hidden conv: a push costs one frame's encoding plus one batched recurrent step, whatever T
  (with ``batch_frames``, the frames between two answers are encoded together at the answer);
* a model with only ``encode_frames``/``decode_window`` keeps the last T encodings and runs the
  recurrent part over them at each sampled frame;
* a model without the hooks still streams: its ``forward`` runs again over the kept window of
  inputs (work per frame grows with T), so a new model needs no streaming code.

Pushing the frames ``fpar predict`` reads for a clip gives the logits it computes (the tests check
this per model kind, within 1e-4 in fp32).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from typing import Any, Callable, Iterator

import numpy as np
import torch

from fpar.checkpoint import ModelContract
from fpar.engine.compute import frames_channels_last
from fpar.engine.inference import InferenceSession
from fpar.engine.packed_convolutions import pack_convolutions
from fpar.engine.stream.threads import ThreadChooser
from fpar.errors import FparError
from fpar.models.heads import output_key
from fpar.prepare.live import LiveInputs


class Stream(LiveInputs):
    """A model fed one RGB frame at a time (``push``); see the module docstring.

    ``checkpoint``: a checkpoint file or an export folder (``fpar export``). ``window``: T, the
    sampled frames the recurrent part reads (default the checkpoint's ``num_frames``); ``every``:
    sample one frame in ``every`` (the others only feed the flow); ``flow``: the flow method the
    model was trained with (``fpar.prepare.flow.FLOW_METHODS``); ``precision``: as ``fpar predict``'s
    (default the checkpoint's training precision; ``auto``: the machine's fastest). ``threads``:
    the threads a push computes with: ``"auto"`` (default) follows the cores other processes
    leave free (:class:`fpar.engine.stream.threads.ThreadChooser`), a number fixes them.
    ``answer_every``: K, answer at every K-th sampled frame once the window is full (each answer
    exact over its window, held in between; the recurrent work per frame falls from T to T / K steps).
    ``batch_frames`` (with ``answer_every`` > 1): the sampled frames between two answers are kept
    and encoded as one batch when the answer is due, not one by one as they come: the same
    answers, each frame at a batched forward's cost where one frame cannot keep the CPU's matrix
    units busy (AMX: the ResNet-34 frame 13.8 -> 7.6 ms at 8 frames), each answer later by the
    batch's time (docs/streaming.md, "Frames batched between answers").

    ``announce``: log which precision ``auto`` picked, and why.

    ``reset()`` forgets the frames seen; ``copy.copy(stream)`` is a second stream on the same
    model (the weights are shared, the kept frames copied).
    """

    def __init__(self, checkpoint: str | os.PathLike, *, window: int | None = None, every: int = 1,
                 flow: str = "tvl1", precision: str | None = None, device: str = "cpu",
                 announce: bool = False, threads: int | str = "auto", answer_every: int = 1,
                 batch_frames: bool = False) -> None:
        session = InferenceSession.load(checkpoint)
        self._start(session, window=window, every=every, flow=flow, precision=precision, device=device,
                    announce=announce, threads=threads, answer_every=answer_every, batch_frames=batch_frames)

    @classmethod
    def from_model(cls, model: torch.nn.Module, contract: ModelContract, *, window: int | None = None,
                   every: int = 1, flow: str = "tvl1", precision: str = "32", device: str = "cpu",
                   threads: int | str = "auto", answer_every: int = 1, batch_frames: bool = False) -> "Stream":
        """A stream on a model already built (benchmarks, random weights). The model is prepared for
        inference in place (batch norms folded, ...): do not train or save it afterwards."""
        stream = cls.__new__(cls)
        stream._start(InferenceSession(model, contract, model.__class__.__name__), window=window, every=every,
                      flow=flow, precision=precision, device=device, announce=False, threads=threads,
                      answer_every=answer_every, batch_frames=batch_frames)
        return stream

    def _start(self, session: InferenceSession, *, window: int | None, every: int, flow: str, precision: str | None,
               device: str, announce: bool, threads: int | str, answer_every: int, batch_frames: bool) -> None:
        if batch_frames and answer_every == 1:
            raise FparError("batching frames between answers needs answers every K > 1 frames "
                            "(--answer-every K with --batch-frames)")
        self._session = session
        self._model = session.model
        self._hooks = self._model.streams_per_frame()
        self._carries = self._hooks and self._model.carries_windows()
        self._batch_frames = batch_frames and self._hooks  # a model without hooks keeps its inputs anyway
        self._configure(session.contract.clip, window=window, every=every, flow=flow, classes=session.classes,
                        answer_every=answer_every, head_classes=session.label_classes)
        # batch norms folded, weights in the autocast dtype and channels-last (engine/compute.py):
        # measured on a ResNet-34 at 224 px, one frame in bf16, 2.4x faster than contiguous weights
        session.prepare(precision=precision, device=device, channels_last=True)
        if announce:  # the line saying which precision ``auto`` picked, and why: shown with --verbose
            session.announce()
        self._device = session.device
        # on a CPU, every convolution's weight reordered once (engine/packed_convolutions.py) by
        # the first encoding, and again for its shape by the first part that calls it: the windows'
        # first advance with a state (the ConvLSTM's hidden conv), the first answer (a flow network)
        self._unpacked = {"encode", "advance", "answer"} if self._device.type == "cpu" else set()
        self._threads = ThreadChooser.for_setting(threads) if self._device.type == "cpu" else None

    # --- state ---------------------------------------------------------------------------------

    def _forget(self) -> None:
        self._kept: deque[dict[str, torch.Tensor]] = deque(maxlen=self._window_size)  # encodings or inputs
        self._state: dict[str, torch.Tensor] | None = None  # windows in flight (models that carry them)
        self._ages: list[int] = []  # frames each window in flight has read
        self._oldest: torch.Tensor | None = None  # the oldest window's cell state, after the last frame
        self._newest: dict[str, torch.Tensor] | None = None  # the newest frame's encodings
        self._pending: list[tuple[dict[str, np.ndarray], bool]] = []  # batch_frames: inputs not encoded yet

    def _copied_from(self, other: LiveInputs) -> None:
        self._kept = deque(self._kept, maxlen=self._kept.maxlen)  # the state's tensors are never changed in place
        self._ages = list(self._ages)
        self._pending = list(self._pending)

    @property
    def uses_window_forward(self) -> bool:
        """True when the model has no streaming hooks and its forward runs over the whole window
        at each sampled frame (work per frame grows with T)."""
        return not self._hooks

    @property
    def threads(self) -> int:
        """The threads the last push computed with."""
        return self._threads.count if self._threads is not None else torch.get_num_threads()

    # --- the model's part ----------------------------------------------------------------------

    def _tensor(self, value: np.ndarray) -> torch.Tensor:
        return frames_channels_last(torch.from_numpy(value).to(self._device))

    @contextlib.contextmanager
    def _computing(self) -> Iterator[None]:
        """No autograd, the autocast dtype, the stream's threads, modality errors as one line naming
        the checkpoint, and denormal floats flushed to zero on this thread while the model runs: a
        saturated ConvLSTM gate (``sigmoid(-88)``) is a denormal, and fp32 arithmetic on denormals
        is many times slower; the threads oneDNN and MKL compute on are not covered by this mode, so
        the ConvLSTM drops its state's denormals itself (``without_subnormals``); a value below
        1.2e-38 changes no answer."""
        flushing = torch.set_flush_denormal(True)
        try:
            threads = self._threads.chosen() if self._threads is not None else contextlib.nullcontext()
            with self._session.running(), threads:
                yield
        finally:
            if flushing:  # False where the CPU cannot flush: nothing to restore
                torch.set_flush_denormal(False)

    def _take(self, entry: dict[str, np.ndarray], start: bool) -> None:
        if not self._hooks:
            self._kept.append({key: self._tensor(value) for key, value in entry.items()})
            return
        self._pending.append((entry, start))
        if not self._batch_frames:
            self._encode_pending()

    def _encode_pending(self) -> None:
        """Encode the sampled frames not encoded yet, as one batch along T, and enter each into
        the window in turn (a carrying model: the windows in flight advanced by it)."""
        if not self._pending:
            return
        entries, starts = zip(*self._pending)
        self._pending = []
        inputs = {key: self._tensor(entries[0][key] if len(entries) == 1 else  # one frame: no copy to join
                                    np.concatenate([entry[key] for entry in entries], axis=1)) for key in entries[0]}
        with self._computing():
            encoded = self._packing("encode", lambda: self._model.encode_frames(inputs))
            for index, start in enumerate(starts):
                frame = {key: value[:, index:index + 1] for key, value in encoded.items()}
                if self._carries:
                    self._advance(frame, start)
                else:
                    self._kept.append(frame)

    def _advance(self, encoded: dict[str, torch.Tensor], start: bool) -> None:
        """The windows in flight advanced by one frame's encodings; ``start``: one begins at it."""
        def advance() -> dict[str, torch.Tensor]:
            return self._model.advance_windows(encoded, self._state, start)
        state = self._packing("advance", advance) if self._state else advance()
        self._newest = {key: value for key, value in encoded.items() if key != "lstm_gates"}
        self._ages = [age + 1 for age in self._ages] + ([1] if start else [])
        self._oldest = state["cell"][:1]
        if self._ages[0] == self._window_size:  # complete: answered now, never again
            state = {key: value[1:] for key, value in state.items()}
            self._ages.pop(0)
        self._state = state

    def _packing(self, part: str, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """``compute()`` with the convolutions it calls packed: the first time a ``part`` runs it
        runs twice, once to pack, so that every push computes the same way (a packed conv rounds
        as the plain one in any layout, but the ConvLSTM's input conv then runs as one conv, not
        one per gate)."""
        if part in self._unpacked:
            self._unpacked.discard(part)
            pack_convolutions(self._model, compute)
        return compute()

    def _decode(self, stack: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self._carries:
            return self._model.decode_windows(self._oldest, self._newest, stack)
        window = {key: torch.cat([entry[key] for entry in self._kept], dim=1) for key in self._kept[0]} \
            if self._kept else {}
        return self._model.decode_window(window, stack) if self._hooks else self._model({**window, **stack})

    def _answer(self, stack: dict[str, np.ndarray]) -> tuple[Any, Any, Any, dict[str, Any]]:
        self._encode_pending()
        stack = {key: self._tensor(value) for key, value in stack.items()}
        with self._computing():
            out = self._packing("answer", lambda: self._decode(stack))
        maps = out.get("attention")
        logits = out["logits"][0].float().cpu()
        heads = {kind: out[output_key(kind)][0].float().cpu() for kind in self._head_classes if output_key(kind) in out}
        return logits, logits.softmax(dim=0), None if maps is None else maps[0, -1].float().cpu(), heads


"""A model's inputs made from frames as they arrive, one at a time: what every stream runtime
shares (PyTorch's ``fpar.Stream``, onnxruntime's ``fpar.interop.onnx_stream``; docs/streaming.md).

Frames go through the same transform as ``fpar predict``'s clip (docs/prepare.md): the short side
resized to the clip's ``resize`` (frames of another size first brought to the first frame's size),
the centre ``crop``, ImageNet normalisation. Flow is computed between consecutive pushed frames at
that resolution, coded to 8 bits and cropped, as a prepared dataset holds it:

* a flow stack (``flow_mode: stack``, flow network, two-stream) is the last L flows, the newest
  ending at the newest frame; the flow network runs once per sampled frame on that stack;
* a two-in-one model (``flow_mode: pairs``) modulates each frame with the flow from it to the
  next frame, so a frame is encoded when its successor arrives: its answers lag one frame.

:class:`LiveInputs` does that bookkeeping with numpy alone (no torch): a runtime subclasses it
with ``_take`` (a sampled frame's inputs entered into the window) and ``_answer`` (the answer over
the window and the flow stack).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from fpar.data import transforms
from fpar.data.settings import ClipSettings
from fpar.errors import FparError
from fpar.prepare.flow import DEFAULT_BOUND, FLOW_METHODS, flow_estimator, quantize_flow


@dataclass
class StreamResult:
    """The answer after one pushed frame.

    ``frame``: how many frames were pushed (this one is frame ``frame``, counted from 1; also
    ``frames_seen``). ``probabilities``/``logits``: (classes,) float32 over the current window
    (torch tensors from ``fpar.Stream``, numpy arrays from the ONNX stream), None until the window
    holds its first frame (flow models: until a flow stack is full). ``updated``: whether this
    frame changed them (one frame in ``every`` does). ``window``: sampled frames the answer covers
    (up to T; 0 for a flow network, which reads only the flow stack). ``ready``: the answer covers
    a full window (T sampled frames, and a full flow stack where the model reads one): from then on
    it reads as many frames as the clip the model was trained on. ``attention``: the newest window
    frame's attention map (h, w), when asked for and the model has one. ``heads``: a model with
    label heads (verb, noun) gives each head's scores over the same window, ``{kind: (classes,)
    logits}``, named by ``head_classes``; empty for a model with the action head only."""

    frame: int
    probabilities: Any
    logits: Any
    updated: bool
    window: int
    classes: list[str]
    attention: Any = None
    ready: bool = False
    heads: dict[str, Any] = field(default_factory=dict)
    head_classes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def frames_seen(self) -> int:
        return self.frame

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable classes with their probabilities, best first; empty before the first answer."""
        if self.probabilities is None:
            return []
        values = np.asarray(self.probabilities, dtype=np.float64)
        order = np.argsort(-values, kind="stable")[:k]
        return [(self.classes[i], float(values[i])) for i in order]


class LiveInputs:
    """Frames in (``push``), a runtime's answers out; see the module docstring. Subclasses call
    :meth:`_configure` and implement ``_take``, ``_answer`` and ``_forget``."""

    def _configure(self, clip: ClipSettings, *, window: int | None, every: int, flow: str,
                   classes: list[str], answer_every: int = 1, head_classes: dict[str, list[str]] | None = None) -> None:
        window = clip.num_frames if window is None else window
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise FparError(f"stream window must be a positive number of frames, got {window!r}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise FparError(f"stream every must be a positive number of frames, got {every!r}")
        if isinstance(answer_every, bool) or not isinstance(answer_every, int) or not 1 <= answer_every <= window:
            raise FparError(f"stream answer_every must be between 1 and the window ({window}), got {answer_every!r}")
        if flow not in FLOW_METHODS:
            raise FparError(f"unknown flow method {flow!r} (choose {', '.join(FLOW_METHODS)})")
        reads_flow = "flow" in clip.modalities
        self._clip = clip
        self._window_size, self._every, self._flow_method = window, every, flow
        self._answer_every = answer_every
        self._classes = classes
        self._head_classes = dict(head_classes or {})
        self._pairs = reads_flow and clip.flow_mode == "pairs"
        # a window of per-frame inputs (frames, two-in-one pairs); a flow network reads the stack alone
        self._per_frame = "frames" in clip.modalities or self._pairs
        self._flow_stack = clip.stack_size if reads_flow and not self._pairs else 0
        self._estimator = None  # (prev, next) -> flow; built on first use
        self.reset()

    # --- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every frame pushed: the next push starts a new stream."""
        self.frames_seen = 0
        self._shape: tuple[int, int] | None = None  # the first frame's size after resizing
        self._previous: np.ndarray | None = None  # the last frame, resized: the flow's first image
        self._waiting: dict[str, np.ndarray] | None = None  # two-in-one: a sampled frame awaiting its flow
        self._entries = 0  # sampled frames entered into the window
        self._flows: deque[np.ndarray] = deque(maxlen=max(self._flow_stack, 1))  # (2, crop, crop) each
        self._latest: tuple[Any, Any, Any, dict] | None = None  # logits, probabilities, attention map, heads
        self._forget()

    def __copy__(self):
        twin = self.__class__.__new__(self.__class__)
        twin.__dict__.update(self.__dict__)  # the shared model and settings, the immutable arrays
        twin._flows = deque(self._flows, maxlen=self._flows.maxlen)
        twin._copied_from(self)
        return twin

    def _copied_from(self, other: "LiveInputs") -> None:
        """A copy's own copies of the runtime's mutable state (default: nothing mutable)."""

    @property
    def classes(self) -> list[str]:
        return self._classes

    @property
    def window(self) -> int:
        return self._window_size

    @property
    def every(self) -> int:
        return self._every

    @property
    def answer_every(self) -> int:
        return self._answer_every

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Where the model looks in a ``height x width`` frame: ``(y, x, h, w)`` of the centre crop
        (the part the attention map covers), in that frame's pixels."""
        clip = self._clip
        scale = min(height, width) / clip.resize
        resized_h, resized_w = (round(height / scale), round(width / scale))
        y, x = transforms.crop_origin(resized_h, resized_w, clip.crop, "c")
        side = round(clip.crop * scale)
        return round(y * scale), round(x * scale), side, side

    # --- frames in, answers out ----------------------------------------------------------------

    def push(self, frame: np.ndarray, *, attention: bool = False) -> StreamResult:
        """Feed one RGB uint8 frame ``(H, W, 3)``; returns the current answer (:class:`StreamResult`)."""
        resized = self._resized(frame)
        index = self.frames_seen  # 0-based number of this frame
        self.frames_seen += 1
        sampled = index % self._every == 0
        flow = self._flow_to(resized) if self._needs_flow(index) else None
        self._previous = resized
        entry: dict[str, np.ndarray] | None = None
        if self._pairs:
            # the waiting frame's flow is the one to this frame: it is entered now
            if self._waiting is not None and flow is not None:
                entry = {**self._waiting, "flow": flow[None, None]}
            self._waiting = {"frames": self._frame_input(resized)} if sampled else None
        elif sampled and self._per_frame:
            entry = {"frames": self._frame_input(resized)}
        if flow is not None and self._flow_stack:
            self._flows.append(flow)
        due = False
        if entry is not None:
            # windows answered: the first T (filling), then every answer_every-th complete one
            index, self._entries = self._entries, self._entries + 1
            due = self._entries <= self._window_size or (self._entries - self._window_size) % self._answer_every == 0
            self._take(entry, start=index % self._answer_every == 0)
        updated = (due or (sampled and not self._per_frame)) and self._has_inputs()
        if updated:
            stack = {"flow": np.concatenate(list(self._flows))[None]} if self._flow_stack else {}
            self._latest = self._answer(stack)
        window = min(self._entries, self._window_size) if self._per_frame else 0
        ready = self._latest is not None and (not self._per_frame or window == self._window_size) and (
            not self._flow_stack or len(self._flows) == self._flow_stack)
        if self._latest is None:
            return StreamResult(self.frames_seen, None, None, False, 0, self._classes)
        logits, probabilities, maps, heads = self._latest
        return StreamResult(self.frames_seen, probabilities, logits, updated, window, self._classes,
                            maps if attention else None, ready, heads, self._head_classes)

    def run(self, frames: Iterable[np.ndarray], *, attention: bool = False) -> Iterator[StreamResult]:
        """:meth:`push` each frame in turn, yielding each answer."""
        for frame in frames:
            yield self.push(frame, attention=attention)

    # --- the runtime's part ----------------------------------------------------------------------

    def _take(self, entry: dict[str, np.ndarray], start: bool) -> None:
        """A sampled frame's inputs (``frames`` (1, 1, 3, crop, crop), two-in-one's ``flow``
        (1, 1, 2, crop, crop)), float32, enter the window; ``start``: a window that will be
        answered begins at this frame (every frame unless answers are every K-th)."""
        raise NotImplementedError

    def _answer(self, stack: dict[str, np.ndarray]) -> tuple[Any, Any, Any]:
        """``(logits, probabilities, attention map or None)`` over the window, given the flow stack
        (``{"flow": (1, 2L, crop, crop)}``, or empty)."""
        raise NotImplementedError

    def _forget(self) -> None:
        """Drop the window's state (:meth:`reset`)."""
        raise NotImplementedError

    # --- the parts of a push -------------------------------------------------------------------

    def _has_inputs(self) -> bool:
        if self._flow_stack and len(self._flows) < self._flow_stack:
            return False
        return self._entries > 0 or not self._per_frame

    def _resized(self, frame: np.ndarray) -> np.ndarray:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise FparError(f"stream: a frame must be an RGB uint8 array (H, W, 3), got {got}")
        if min(frame.shape[:2]) < 1:
            raise FparError(f"stream: frame {self.frames_seen + 1} is empty ({frame.shape[1]}x{frame.shape[0]})")
        resized = transforms.resize_like_first(frame, self._clip.resize, self._shape)  # as fpar predict's
        self._shape = self._shape or resized.shape[:2]
        return resized

    def _frame_input(self, resized: np.ndarray) -> np.ndarray:
        """The centre crop, normalised as the evaluation clip's frames: (1, 1, 3, crop, crop) float32."""
        crop = transforms.eval_views_clip(resized[None], self._clip.crop, "center")[0]
        return transforms.normalize_rgb(crop)[None]

    def _needs_flow(self, index: int) -> bool:
        """Whether the flow from the previous frame to frame ``index`` (0-based) will be read: by
        the waiting two-in-one frame, or by a flow stack at the next sampled frame."""
        if index == 0 or not (self._pairs or self._flow_stack):
            return False
        if self._pairs:
            return (index - 1) % self._every == 0
        next_sampled = math.ceil(index / self._every) * self._every
        return next_sampled - index < self._flow_stack

    def _flow_to(self, resized: np.ndarray) -> np.ndarray:
        """The flow from the previous frame to ``resized``, coded to 8 bits as a prepared dataset
        stores it, centre-cropped and normalised: (2, crop, crop) float32."""
        if self._estimator is None:
            self._estimator = flow_estimator(self._flow_method)
        field_ = self._estimator(self._previous, resized)
        crop = self._clip.crop
        planes = [transforms.eval_views_clip(plane[None], crop, "center", is_flow_x=axis == 0)[0, 0]
                  for axis, plane in enumerate(quantize_flow(field_, DEFAULT_BOUND))]
        return transforms.normalize_flow(np.stack(planes))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities of (classes,) logits, in float32."""
    shifted = np.exp(logits - logits.max())
    return (shifted / shifted.sum()).astype(np.float32)

"""The per-frame ONNX graph of a streaming model and the stream that runs it without PyTorch
(``fpar export --format onnx --stream``, ``fpar stream EXPORT SOURCE --runtime onnx``;
docs/deployment.md).

The graph takes one sampled frame and the recurrent state, and gives the answer and the next state:

* inputs: ``frames`` (1, 1, 3, crop, crop) (two-in-one also ``flow`` (1, 1, 2, crop, crop), the
  frame's flow to the next frame; two-stream also ``flow`` (1, 2L, crop, crop), the flow stack;
  a flow network only that stack), normalised as ``fpar.json``'s ``normalisation`` says, and
  ``hidden``, ``cell`` (T - 1, mem_size, h, w): the ConvLSTM state of the T - 1 windows in flight
  (``RGBConvLSTM.advance_windows``), zeros before the first frame;
* outputs: ``logits`` (and each label head's ``logits_<kind>``) (1, classes) over the window of
  the last T frames, ``attention`` (1, h, w) of this frame where the model has one, and
  ``hidden_out``, ``cell_out``: the state to feed with the next frame.

:class:`OnnxStream` is :class:`fpar.prepare.live.LiveInputs` (the frames' transform and flow, as
``fpar.Stream``) around that graph in onnxruntime; this module imports torch only to export.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fpar.data.labels import logits_key
from fpar.errors import FparError
from fpar.interop.onnx_runtime import STATE, OnnxModel
from fpar.prepare.live import LiveInputs, softmax

STREAM_GRAPH = "stream"  # fpar.json onnx.graph of a per-frame graph ("clip": a clip graph)
STATE_SUFFIX = "_out"


def stream_graph(model, name: str, window: int, crop: int) -> tuple[Any, dict[str, Any], dict[str, list[int]]]:
    """``(graph module, example inputs, input shapes)``: ``model`` as the per-frame graph of the
    module docstring, a module from a dict of inputs to a dict of outputs, for ``crop`` px inputs
    (the clip settings' crop: the sizes are fixed in the graph)."""
    import torch
    from torch import nn

    if not model.streams_per_frame():
        raise FparError(f"model '{name}' has no streaming hooks (encode_frames): export its clip graph, "
                        "without --stream")
    if window < 2:
        raise FparError(f"--stream needs a window of at least 2 frames, got {window}")
    spec = model.input_spec()
    per_frame = [key for key, shape in spec.items() if "T" in shape]
    stack = [key for key in spec if key not in per_frame]
    generator = torch.Generator().manual_seed(0)
    example = {key: torch.randn([*(1 if size in ("B", "T") else size for size in spec[key][:-2]), crop, crop],
                                generator=generator) for key in spec}
    carries = model.carries_windows()
    model.eval().requires_grad_(False)
    if carries:
        with torch.no_grad():
            gates = model.encode_frames({key: example[key] for key in per_frame})["lstm_gates"]
        channels, height, width = gates.shape[2:]
        for key in STATE:  # a state of windows in flight, as after some frames
            example[key] = 0.1 * torch.randn(window - 1, channels // 4, height, width, generator=generator)

    class StreamGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            flow_stack = {key: inputs[key] for key in stack}
            if not carries:  # a flow network: the stack alone
                return dict(self.model.decode_window({}, flow_stack))
            encoded = self.model.encode_frames({key: inputs[key] for key in per_frame})
            state = self.model.advance_windows(encoded, {key: inputs[key] for key in STATE}, True)
            newest = {key: value for key, value in encoded.items() if key != "lstm_gates"}
            out = self.model.decode_windows(state["cell"][:1], newest, flow_stack)
            result = {key: value for key, value in out.items() if key.startswith("logits")}
            if "attention" in out:
                result["attention"] = out["attention"][:, -1]
            result.update({key + STATE_SUFFIX: state[key][1:] for key in STATE})
            return result

    shapes = {key: list(value.shape) for key, value in example.items()}
    return StreamGraph().eval(), example, shapes


class OnnxStream(LiveInputs):
    """A streaming ONNX export fed one RGB frame at a time, as :class:`fpar.Stream` (``push``,
    ``run``, ``reset``, ``crop_box``): the same inputs and answers, computed by onnxruntime.
    ``window`` and ``answer_every`` are the graph's (T, 1): other values are refused."""

    def __init__(self, export: str | os.PathLike, *, window: int | None = None, every: int = 1, flow: str = "tvl1",
                 answer_every: int = 1, threads: int | None = None) -> None:
        self._graph = OnnxModel(export, threads=threads)
        entry = self._graph.info.get("onnx") or {}
        if entry.get("graph") != STREAM_GRAPH:
            raise FparError(f"{export} is a clip graph: export the checkpoint with `fpar export CHECKPOINT OUT "
                            "--format onnx --stream` to stream it with --runtime onnx")
        size = int(entry["window"])
        if window not in (None, size):
            raise FparError(f"{export}: its streaming graph reads a window of {size} frames (fixed at export); "
                            f"export again with --frames {window} for another")
        if answer_every != 1:
            raise FparError(f"{export}: the ONNX streaming graph answers every frame; drop --answer-every")
        self._stateful = STATE[0] in self._graph.inputs
        self._state_shape = self._graph.shapes.get(STATE[0])
        self._configure(self._graph.contract.clip, window=size, every=every, flow=flow, classes=self._graph.classes,
                        head_classes=self._graph.label_classes)

    def _forget(self) -> None:
        self._state = {key: np.zeros(self._state_shape, np.float32) for key in STATE} if self._stateful else {}
        self._outputs: dict[str, np.ndarray] | None = None

    def _copied_from(self, other: LiveInputs) -> None:
        """The state's arrays are replaced, never changed in place: nothing to copy."""

    def _stack(self) -> dict[str, np.ndarray]:
        """The flow stack as the graph reads it; zeros until it is full (the answer is not read
        then, but the state still advances)."""
        if not self._flow_stack:
            return {}
        if len(self._flows) < self._flow_stack:
            return {"flow": np.zeros(self._graph.shapes["flow"], np.float32)}
        return {"flow": np.concatenate(list(self._flows))[None]}

    def _take(self, entry: dict[str, np.ndarray], start: bool) -> None:
        outputs = self._graph({**entry, **self._stack(), **self._state})
        self._state = {key: outputs[key + STATE_SUFFIX] for key in STATE}
        self._outputs = outputs

    def _answer(self, stack: dict[str, np.ndarray]) -> tuple[Any, Any, Any, dict[str, Any]]:
        outputs = self._outputs if self._per_frame else self._graph(stack)
        logits = outputs["logits"][0]
        maps = outputs.get("attention")
        heads = {kind: outputs[logits_key(kind)][0] for kind in self._head_classes if logits_key(kind) in outputs}
        return logits, softmax(logits), None if maps is None else maps[0], heads

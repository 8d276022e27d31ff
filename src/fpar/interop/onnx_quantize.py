"""Static int8 ONNX graphs calibrated on clips of a dataset (``fpar export --format onnx --quantize
int8 --calibrate DATA``; docs/deployment.md), and the accuracy change they cause.

Static quantisation fixes each activation's int8 scale from what it takes on real inputs: the
calibration clips are ``count`` clips of DATA that ``fpar eval`` does *not* score the checkpoint
on by default, read as ``fpar eval`` reads them (centre view). A clip graph is
fed each clip; a streaming graph is fed each clip's frames one at a time with the state the fp32
graph carries, so the recurrent state's scales are calibrated too. The accuracy change is the
top-1 accuracy of the int8 graph minus the fp32 graph's, both in onnxruntime on the CPU, on the
clips ``fpar eval`` scores by default (the run's validation subjects, or the test clips of the
recorded split it trained on; the same frame numbers): a clip graph on the clip, a streaming graph
on the answer after the clip's last frame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from fpar.checkpoint import ModelContract
from fpar.progress import bar

CALIBRATION_CLIPS = 8  # default number of calibration clips
Clips = list[tuple[dict[str, np.ndarray], int]]
RUNTIME = "onnxruntime CPU"  # where the accuracies are measured (OnnxGraph's provider)


def dataset_clips(contract: ModelContract, data_root: str | os.PathLike, *, evaluated: bool,
                  limit: int | None = None) -> tuple[str, Clips]:
    """``(split, clips)``: ``(inputs, label)`` per clip, inputs (1, ...) float32 as the clip graph
    takes them, of the clips ``fpar eval`` scores the checkpoint on by default (``evaluated``;
    :func:`fpar.data.splits.default_evaluation`: the same clips, frame numbers and centre view) or
    of the others; at most ``limit``, spread over them. ``split`` names the evaluated side (``S2``)."""
    from fpar.data import ClipDataset, load_index
    from fpar.data.splits import default_evaluation

    split, scored, others = default_evaluation(load_index(data_root), contract.config)
    instances = scored if evaluated else others
    if limit is not None and len(instances) > limit:
        instances = [instances[round(i * (len(instances) - 1) / max(limit - 1, 1))] for i in range(limit)]
    dataset = ClipDataset(instances, contract.clip, train=False, views="center")
    clips = []
    for k in range(len(dataset)):
        item = dataset[k]
        inputs = {key: item[key].numpy()[None] for key in contract.clip.modalities if key in ("frames", "flow")}
        clips.append((inputs, int(item["label"])))
    return split, clips


def _stream_feeds(graph: Any, inputs: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """The per-frame feeds of one clip through a streaming graph, the state carried by ``graph``
    (an :class:`fpar.interop.onnx_runtime.OnnxGraph`)."""
    from fpar.interop.onnx_stream import STATE, STATE_SUFFIX

    state = {key: np.zeros(graph.shapes[key], np.float32) for key in STATE if key in graph.inputs}
    frames = inputs.get("frames")
    pairs = "flow" in inputs and inputs["flow"].ndim == 5
    steps = frames.shape[1] if frames is not None else 1
    for t in range(steps):
        feed = {**state}
        if frames is not None:
            feed["frames"] = frames[:, t:t + 1]
        if "flow" in inputs:
            feed["flow"] = inputs["flow"][:, t:t + 1] if pairs else inputs["flow"]
        yield feed
        out = graph(feed)
        state = {key: out[key + STATE_SUFFIX] for key in state}


def graph_logits(graph: Any, inputs: dict[str, np.ndarray], stream: bool) -> np.ndarray:
    """The graph's logits on one clip (a streaming graph: after the clip's last frame)."""
    if not stream:
        return graph(inputs)["logits"][0]
    feeds = list(_stream_feeds(graph, inputs))
    return graph(feeds[-1])["logits"][0]


def quantize_static_int8(source: Path, target: Path, clips: Clips, stream: bool, excluded: list[str],
                         progress: bool | None = None) -> None:
    """``target``: ``source`` with int8 weights and activations (QDQ, per-channel weights), its
    scales from ``clips``; nodes ``excluded`` (convs whose weights are computed) stay fp32.
    ``progress``: as :func:`fpar.progress.bar`, per calibration clip."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from fpar.interop.onnx_runtime import OnnxGraph

    fp32 = OnnxGraph(source)
    calibrating = bar(total=len(clips), desc="int8 calibration", unit="clip", progress=progress)

    def feeds() -> Iterator[dict[str, np.ndarray]]:
        # made as the quantiser asks: a streaming graph's feeds carry the fp32 graph's state
        for inputs, _ in clips:
            yield from _stream_feeds(fp32, inputs) if stream else [inputs]
            calibrating.update()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rest = feeds()

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.rest, None)

    with calibrating:
        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded)


def accuracy(graph: Any, clips: Clips, stream: bool, *, desc: str = "scoring",
             progress: bool | None = None) -> float:
    """Top-1 accuracy of ``graph`` on ``clips``; ``progress``: as :func:`fpar.progress.bar`."""
    scored = bar(clips, desc=desc, unit="clip", progress=progress)
    hits = sum(int(np.argmax(graph_logits(graph, inputs, stream)) == label) for inputs, label in scored)
    return hits / len(clips)


def accuracy_change(fp32: float, int8: float, *, clips: int, data: str | os.PathLike, split: str,
                    runtime: str = RUNTIME) -> dict[str, Any]:
    """The record of an int8 graph's accuracy change (``fpar.json``'s ``onnx.int8_accuracy``, the bench's
    rows): both top-1 accuracies, the change in points and what they were measured on."""
    return {"fp32_top1": fp32, "int8_top1": int8, "change_points": 100 * (int8 - fp32), "clips": clips,
            "data": str(data), "split": split, "views": "center", "runtime": runtime}


def accuracy_line(record: dict[str, Any]) -> str:
    """``int8: accuracy 80.6% -> 79.2% (-1.4 points) on 36 clips of DATA split S2, onnxruntime CPU``."""
    return (f"int8: accuracy {100 * record['fp32_top1']:.1f}% -> {100 * record['int8_top1']:.1f}% "
            f"({record['change_points']:+.1f} points) on {record['clips']} clips of {record['data']} "
            f"split {record['split']}, {record['runtime']}")

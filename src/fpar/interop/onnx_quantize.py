"""Static int8 ONNX graphs calibrated on clips of a dataset (``fpar export --format onnx --quantize
int8 --calibrate DATA``; docs/deployment.md), and the accuracy change they cause.

Static quantisation fixes each activation's int8 scale from what it takes on real inputs: the
calibration clips are ``count`` clips of DATA's subjects that the checkpoint was *not* validated
on (the evaluation clips, read as ``fpar eval`` reads them, with the centre view). A clip graph is
fed each clip; a streaming graph is fed each clip's frames one at a time with the state the fp32
graph carries, so the recurrent state's scales are calibrated too. The accuracy change is the
top-1 accuracy of the int8 graph minus the fp32 graph's on the validated subjects' clips (a clip
graph on the clip, a streaming graph on the answer after the clip's last frame).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from fpar.checkpoint import ModelContract
from fpar.errors import FparError

CALIBRATION_CLIPS = 8  # default number of calibration clips


def dataset_clips(contract: ModelContract, data_root: str | os.PathLike, *, validated: bool,
                  limit: int | None = None) -> list[tuple[dict[str, np.ndarray], int]]:
    """``(inputs, label)`` per clip, inputs (1, ...) float32 as the clip graph takes them, of the
    subjects the checkpoint was validated on (``validated``) or the others; at most ``limit``,
    spread over the dataset."""
    from fpar.data import ClipDataset, load_index
    from fpar.data.settings import DataSettings

    index = load_index(data_root)
    held_out = (contract.config or {}).get("data", {}).get("val_subjects") or DataSettings().val_subjects
    instances = [inst for inst in index.instances if (inst.subject in held_out) == validated]
    if not instances:
        which = "validation" if validated else "calibration (non-validation)"
        raise FparError(f"{data_root}: no {which} clips (validation subjects {', '.join(held_out)}; "
                        f"the dataset has {', '.join(index.subjects)})")
    if limit is not None and len(instances) > limit:
        instances = [instances[round(i * (len(instances) - 1) / max(limit - 1, 1))] for i in range(limit)]
    dataset = ClipDataset(instances, contract.clip, train=False, views="center")
    clips = []
    for k in range(len(dataset)):
        item = dataset[k]
        inputs = {key: item[key].numpy()[None] for key in contract.clip.modalities if key in ("frames", "flow")}
        clips.append((inputs, int(item["label"])))
    return clips


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


def quantize_static_int8(source: Path, target: Path, clips: list[tuple[dict[str, np.ndarray], int]],
                         stream: bool, excluded: list[str]) -> None:
    """``target``: ``source`` with int8 weights and activations (QDQ, per-channel weights), its
    scales from ``clips``; nodes ``excluded`` (convs whose weights are computed) stay fp32."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from fpar.interop.onnx_runtime import OnnxGraph

    feeds: list[dict[str, np.ndarray]] = []
    fp32 = OnnxGraph(source)
    for inputs, _ in clips:
        feeds += list(_stream_feeds(fp32, inputs)) if stream else [inputs]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rest = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.rest, None)

    quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded)


def accuracy(graph: Any, clips: list[tuple[dict[str, np.ndarray], int]], stream: bool) -> float:
    """Top-1 accuracy of ``graph`` on ``clips``."""
    hits = sum(int(np.argmax(graph_logits(graph, inputs, stream)) == label) for inputs, label in clips)
    return hits / len(clips)

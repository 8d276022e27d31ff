"""A video's evaluation clip as numpy arrays, without PyTorch: the frames it reads decoded, resized
and cropped, flow and motion maps computed for the pairs it reads (docs/deployment.md).

:class:`DecodedFrames` is the frame source ``fpar predict`` gives its :class:`~fpar.data.ClipDataset`
(:mod:`fpar.engine.predict`); :func:`clip_arrays` assembles the same clip from it without the
dataset, for runtimes that take numpy (``--runtime onnx``): the same frame numbers
(:func:`fpar.data.sampling.eval_frame_numbers`, the rule the dataset samples an evaluation clip
with) and the same transforms and normalisation (:mod:`fpar.data.transforms`). This module
imports no torch (TV-L1 flow does, when it is the method asked for).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from fpar.data import sampling, transforms
from fpar.data.settings import ClipSettings
from fpar.errors import FparError
from fpar.data.frames import FLOW_BOUND, quantize_flow
from fpar.prepare.flow import DEFAULT_FLOW_METHOD, pair_flows
from fpar.prepare.motion import motion_map
from fpar.prepare.video import count_frames, iter_frames_at


def clip_arrays(video: str | os.PathLike, settings: ClipSettings, *, flow: str = DEFAULT_FLOW_METHOD,
                max_frames: int | None = None, strict: bool = False) -> dict[str, np.ndarray]:
    """The evaluation clip (centre view) of ``video`` as float32 arrays, no batch axis: the values
    :func:`fpar.engine.predict.read_clip` gives as tensors (ARCHITECTURE.md, "Dataset item")."""
    video = Path(video)
    n = count_frames(video, max_frames, strict=strict)  # strict: a video that ends early is refused
    needs = frames_needed(settings)
    if n < needs:
        raise FparError(f"{video}: {n} frame(s) are too few for this model (it needs at least {needs})")
    numbers = sampling.eval_frame_numbers(n, settings)
    frames = DecodedFrames(video, numbers, n, settings.resize, flow=flow)
    def load(kind: str) -> np.ndarray:
        return frames.clip(None, kind, numbers[kind], None, settings.crop, "center")[0]

    clip: dict[str, np.ndarray] = {}
    if "frames" in settings.modalities:
        clip["frames"] = transforms.normalize_rgb(load("rgb"))
    if "flow_x" in numbers:
        pairs = np.stack([load("flow_x"), load("flow_y")], axis=1)  # (T, 2, h, w)
        if settings.flow_mode == "stack":
            pairs = pairs.reshape(-1, *pairs.shape[2:])  # x1, y1, x2, y2, ...
        clip["flow"] = transforms.normalize_flow(pairs)
    if "mmaps" in numbers:
        clip["mmaps"] = transforms.scale_unit(load("mmaps"))[:, None]
    return clip


def frames_needed(settings: ClipSettings) -> int:
    """The fewest frames a video needs for a clip: a flow stack ``stack_size`` (the layout has one
    flow per frame), any other flow (pairs, motion maps) 2, RGB alone 1."""
    if "flow" in settings.modalities and settings.flow_mode == "stack":
        return max(2, settings.stack_size)
    return 2 if {"flow", "mmaps"} & set(settings.modalities) else 1



class DecodedFrames:
    """The frames one evaluation clip reads, decoded from a video and resized to ``resize``; flow
    and motion maps computed for the pairs read. A frame source for :meth:`ClipDataset.use_store`."""

    def __init__(self, video: Path, numbers: dict[str, list[int]], n: int, resize: int, *, flow: str) -> None:
        self.path, self.resize, self.kinds = video, resize, tuple(numbers)
        self._shape: tuple[int, int] | None = None
        # flow k is frames k -> k+1; the last frame has no successor and repeats flow n-1
        pair = {k: min(k, n - 1) for kind in ("flow_x", "flow_y", "mmaps") for k in numbers.get(kind, ())}
        starts = sorted(set(pair.values()))
        decode = set(numbers.get("rgb", ())) | set(starts) | {s + 1 for s in starts}
        frames = {number: self._resized(frame) for number, frame in iter_frames_at(video, decode)}
        fields = dict(zip(starts, _flows(frames, starts, flow)))
        self._frames: dict[str, dict[int, np.ndarray]] = {}
        if "rgb" in numbers:
            self._frames["rgb"] = {k: frames[k] for k in numbers["rgb"]}
        if "flow_x" in numbers:
            coded = {k: quantize_flow(fields[pair[k]], FLOW_BOUND) for k in numbers["flow_x"]}
            self._frames["flow_x"] = {k: xy[0] for k, xy in coded.items()}
            self._frames["flow_y"] = {k: xy[1] for k, xy in coded.items()}
        if "mmaps" in numbers:
            self._frames["mmaps"] = {k: motion_map(fields[pair[k]]) for k in numbers["mmaps"]}

    def _resized(self, frame: np.ndarray) -> np.ndarray:
        frame = transforms.resize_like_first(frame, self.resize, self._shape)
        self._shape = self._shape or frame.shape[:2]
        return frame

    def clip(self, inst: object, kind: str, numbers: Sequence[int], draw: transforms.TrainDraw | None,
             crop: int, views: str) -> np.ndarray:
        """As :meth:`fpar.data.store.FrameStore.clip`, for evaluation clips (``draw`` is None):
        uint8 ``(V, T, h, w[, 3])``."""
        stacked = np.stack([self._frames[kind][k] for k in numbers])
        return transforms.eval_views_clip(stacked, crop, views, is_flow_x=kind == "flow_x")


def _flows(frames: dict[int, np.ndarray], starts: list[int], method: str) -> list[np.ndarray]:
    """Flow from frame ``s`` to ``s + 1`` for each of ``starts`` (sorted): one ``pair_flows`` call per
    run of consecutive pairs, so a flow stack is one batch."""
    runs: list[list[int]] = []
    for start in starts:
        if runs and start == runs[-1][-1] + 1:
            runs[-1].append(start)
        else:
            runs.append([start])
    fields = []
    for run in runs:
        sequence = [frames[k] for k in (*run, run[-1] + 1)]
        fields.extend(pair_flows(sequence, method=method))
    return fields

"""Predictions and explanations on any video: one clip, sampled and transformed exactly as the
model's evaluation does it.

Memory and time follow the clip, not the video: the frames are counted without decoding their
pictures, the :class:`~fpar.data.ClipDataset` the evaluation uses says which frame numbers its
evaluation clip reads, and only those frames are decoded (streaming), resized to the checkpoint's
clip settings as they arrive. Flow is computed only when the model reads it (or its motion maps),
only for the pairs read: flow ``k`` is frame ``k`` to ``k + 1`` and the last frame repeats the
flow before it, as in the processed layout (docs/method.md §2). The same dataset then reads
its clip from these frames, so RGB clips equal what ``fpar eval`` reads from the prepared
video. Flow is computed at the model's resolution (short side = the clip's ``resize``), as a
dataset prepared at that size holds it, and coded to 8 bits as a prepared dataset stores it.

Frames of mixed sizes (a folder of images) are each brought to the first frame's size at that
resolution, so every modality has one shape per clip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fpar.data import ClipDataset
from fpar.data.layouts import Instance
from fpar.data.settings import ClipSettings
from fpar.engine.inference import InferenceSession
from fpar.engine.video_clip import DecodedFrames, frames_needed
from fpar.errors import FparError
from fpar.prepare.flow import DEFAULT_FLOW_METHOD
from fpar.prepare.video import count_frames

# frames of one clip the backbone takes at a time: measured on a ResNet-34 at 224 px (bf16, T=25),
# 5 keeps the forward's activations near 20 MB at the same speed as all 25 at once
FRAMES_PER_PASS = 5


@dataclass
class VideoPrediction:
    """One video's clip as the model saw it, the model's outputs, and the class names."""

    clip: dict[str, torch.Tensor]  # dataset item (no batch axis)
    outputs: dict[str, torch.Tensor]  # model outputs for that clip (batch of one)
    classes: list[str]
    model_name: str
    # the label heads' class names (verb, noun), for a model that has them
    label_classes: dict[str, list[str]] = field(default_factory=dict)

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        probs = self.outputs["logits"][0].float().softmax(dim=0)
        values, indices = probs.topk(min(k, probs.numel()))
        return [(self.classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]

    def head_tops(self, k: int = 5) -> dict[str, list[dict]]:
        """Each label head's ``k`` best classes and, with verb and noun, EPIC's action rule
        (:func:`fpar.engine.epic_metrics.head_tops`); {} for a model with the action head only."""
        from fpar.engine.epic_metrics import head_tops
        from fpar.models.heads import output_key

        logits = {kind: self.outputs[output_key(kind)][0].float().numpy() for kind in self.label_classes
                  if output_key(kind) in self.outputs}
        return head_tops(logits, self.label_classes, k)


def predict_video(checkpoint: str | os.PathLike, video: str | os.PathLike, *, flow: str = DEFAULT_FLOW_METHOD,
                  max_frames: int | None = None, explain: bool = False, precision: str | None = None,
                  announce: bool = False, device: str = "cpu", strict: bool = False) -> VideoPrediction:
    """Run ``checkpoint``'s model on ``video`` (file, GIF or image folder), centre view, reading the
    clip as the checkpoint's clip settings say, on ``device`` (``cpu``, ``cuda``, ``cuda:N``; the
    outputs come back on the CPU).

    ``flow`` is the optical-flow method for models that read flow (use the one the model was
    trained on; TV-L1 for the reference's data). ``explain``: also the maps the explanation
    pictures show (motion maps for an MS head, two-in-one modulation). ``precision``: as
    ``fpar eval``'s (default the checkpoint's training precision; ``auto``: the CPU's fastest);
    ``announce`` prints the one line saying which precision ``auto`` picked, and why. ``strict``:
    a video whose frames end before its container says is refused (otherwise a warning line).
    """
    session = InferenceSession.load(checkpoint)
    # One clip: weights in the autocast dtype and the frames a few at a time keep the peak memory
    # near what importing torch and holding the weights cost (docs/prepare.md, `fpar predict`).
    session.prepare(precision=precision, device=device, channels_last=False, frames_per_pass=FRAMES_PER_PASS)
    clip = read_clip(video, session.clip(explain), flow=flow, max_frames=max_frames, strict=strict)
    batch = {m: clip[m].unsqueeze(0).to(session.device) for m in session.contract.clip.modalities}
    if announce:  # once the video has proved readable: an unreadable one is one line, the error
        session.announce()
    with session.running():
        outputs = session.model(batch, explain=explain)
    if session.device.type != "cpu":
        outputs = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in outputs.items()}
    return VideoPrediction(clip, outputs, session.classes, session.contract.model["name"], session.label_classes)


def read_clip(video: str | os.PathLike, settings: ClipSettings, *, flow: str = DEFAULT_FLOW_METHOD,
              max_frames: int | None = None, strict: bool = False) -> dict[str, torch.Tensor | str]:
    """The evaluation clip (centre view) of ``video`` as ``settings`` read it, decoding only its frames."""
    video = Path(video)
    n = count_frames(video, max_frames, strict=strict)
    needs = frames_needed(settings)
    if n < needs:
        raise FparError(f"{video}: {n} frame(s) are too few for this model (it needs at least {needs})")
    # One instance whose every frame "file" is the video: the dataset only counts them here.
    files = (video,) * n
    instance = Instance("S0", "unknown", 0, video.name, rgb=files, mmaps=files, flow_x=files, flow_y=files)
    dataset = ClipDataset([instance], settings, train=False)
    dataset.use_store(DecodedFrames(video, dataset.frame_numbers(0), n, settings.resize, flow=flow))
    return dataset[0]

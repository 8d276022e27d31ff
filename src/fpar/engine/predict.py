"""Predictions and explanations on any video: one clip, sampled and transformed exactly as the
model's evaluation does it.

The video is decoded, written as one instance of the processed layout in a temporary folder
(with real optical flow and motion maps, :mod:`fpar.prepare`) and read back by the same
:class:`~fpar.data.ClipDataset` evaluation uses, so a prediction here equals what ``fpar eval``
would give for that clip.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
import torch

from fpar.checkpoint import load_model
from fpar.data import ClipDataset, load_index
from fpar.errors import FparError
from fpar.prepare.layout_writer import write_instance
from fpar.prepare.video import read_video


@dataclass
class VideoPrediction:
    """One video's clip as the model saw it, the model's outputs, and the class names."""

    clip: dict[str, torch.Tensor]  # dataset item (no batch axis)
    outputs: dict[str, torch.Tensor]  # model outputs for that clip (batch of one)
    classes: list[str]
    model_name: str

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        probs = self.outputs["logits"][0].float().softmax(dim=0)
        values, indices = probs.topk(min(k, probs.numel()))
        return [(self.classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]


def predict_video(checkpoint: str | os.PathLike, video: str | os.PathLike, *, flow: str = "tvl1",
                  max_frames: int | None = None, explain: bool = False) -> VideoPrediction:
    """Run ``checkpoint``'s model on ``video`` (file, GIF or image folder), centre view, reading the
    clip as the checkpoint's clip settings say.

    ``flow`` is the optical-flow method for models that read flow (use the one the model was
    trained on; TV-L1 for the reference's data). ``explain``: also the maps the explanation
    pictures show (motion maps for an MS head, two-in-one modulation).
    """
    model, info = load_model(checkpoint)
    settings = info.clip
    if explain and getattr(model, "ms_head", None) is not None:
        settings = settings.with_modality("mmaps")  # the MS head's target, to show beside its prediction
    frames = read_video(video, max_frames).frames
    reads_flow = "flow" in settings.modalities
    needs = settings.stack_size if reads_flow else 2  # a flow stack needs L frames, flow itself 2
    if len(frames) < needs:
        raise FparError(f"{video}: {len(frames)} frame(s) are too few for this model (it needs at least {needs})")
    # Models that read no flow get the cheapest flow: it is written but never read.
    method = flow if reads_flow else "dis"
    with tempfile.TemporaryDirectory(prefix="fpar-video-") as tmp:
        write_instance(frames, tmp, subject="S0", class_name="unknown", instance_id="clip", flow=method)
        instance = load_index(tmp, "processed", min_frames=needs).instances[0]
        clip = ClipDataset([instance], settings, train=False)[0]
    batch = {m: clip[m].unsqueeze(0) for m in info.clip.modalities}
    with torch.inference_mode():
        outputs = model(batch, explain=explain)
    num_classes = outputs["logits"].shape[1]
    names = info.classes or []
    classes = [names[i] if i < len(names) else f"class {i}" for i in range(num_classes)]
    return VideoPrediction(clip, outputs, classes, info.model["name"])

"""The reference's way of computing (Ego-RNN, FPAR), written once for every ``fpar bench`` row:

* :func:`reference_forward`: the backbone one time step at a time on B frames, CAM attention and
  the MS head per step, each ConvLSTM gate as an input conv plus a hidden conv; the same weights
  and result as the fpar model it is given;
* :func:`reference_frame`: one frame file opened with PIL and transformed on its own;
* :func:`reference_predictions`: a stand-alone evaluation, every clip alone (batch 1), run as
  ``python -m fpar.bench reference-eval`` by the process row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fpar.data import transforms
from fpar.data.normalization import FLOW_MEAN, FLOW_STD, RGB_MEAN, RGB_STD
from fpar.models.assembled import RGBConvLSTM
from fpar.models.flow_stream import FlowResNet
from fpar.models.two_stream import TwoStream
from fpar.models.attention import class_activation_attention


def _reference_rgb(model: RGBConvLSTM, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Ego-RNN's loop: per time step, the backbone on B frames, CAM attention, the MS head, then
    four gates each as an input conv plus a hidden conv. Same weights and result as ``model``."""
    lstm = model.convlstm
    w_in, b_in = lstm.input_conv.weight.chunk(4), lstm.input_conv.bias.chunk(4)
    w_hid = lstm.hidden_conv.weight.chunk(4)
    pad = lstm.input_conv.padding
    frames = batch["frames"]
    hidden = cell = None
    ms = []
    for t in range(frames.shape[1]):
        if model.motion is not None:
            modulation = model.motion(model.backbone.conv1(frames[:, t]), batch["flow"][:, t])
            out = model.backbone.forward_from_conv1(modulation.post)
        else:
            out = model.backbone(frames[:, t])
        if model.attention:
            attention = class_activation_attention(out.logits, out.features, model.backbone.fc.weight)
            x = out.features_nobn * attention.unsqueeze(1)
        else:
            x = out.features
        if model.ms_head is not None:
            ms.append(model.ms_head(out.features))
        if hidden is None:
            hidden = cell = x.new_zeros(x.shape[0], lstm.mem_size, *x.shape[2:])
        i, f, c, o = (F.conv2d(x, w_in[g], b_in[g], padding=pad) + F.conv2d(hidden, w_hid[g], padding=pad)
                      for g in range(4))
        cell = torch.tanh(c) * torch.sigmoid(i) + cell * torch.sigmoid(f)
        hidden = torch.sigmoid(o) * torch.tanh(cell)
    result = {"features": cell.mean(dim=(2, 3))}
    if ms:
        result["ms"] = torch.stack(ms, dim=1)
    return result


def reference_forward(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any fpar model's output computed the reference's way (the flow stream has no time loop)."""
    if isinstance(model, FlowResNet):
        return model(batch)
    if isinstance(model, TwoStream):
        rgb = _reference_rgb(model.rgb_model, batch)
        features = torch.cat([model.flow_model.extract(batch)["features"], rgb["features"]], dim=1)
        return {"logits": model.classifier(features)}
    out = _reference_rgb(model, batch)
    out["logits"] = model.classifier(out["features"])
    return out


def reference_rgb_forward(model: RGBConvLSTM, frames: torch.Tensor) -> torch.Tensor:
    """The RGB model's logits for ``frames`` (B, T, 3, H, W), computed the reference's way."""
    return reference_forward(model, {"frames": frames})["logits"]


def reference_frame(path: str | Path, kind: str, resize: int, crop: int,
                    draw: transforms.TrainDraw | None = None) -> np.ndarray:
    """One frame file of ``kind`` (``rgb``, ``flow_x``, ``flow_y``, ``mmaps``) read the reference's
    way: opened with PIL, its short side resized to ``resize``; for training (``draw`` given)
    flipped (x-flow inverted), a square of ``draw.scale`` cropped at ``draw.position`` and resized
    to ``crop``, for evaluation the centre ``crop``. Float32, normalised as the dataset's items:
    RGB ``(3, crop, crop)``, flow and motion maps ``(crop, crop)``."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = im.convert("RGB" if kind == "rgb" else "L")
        w, h = im.size
        im = im.resize((int(resize * w / h), resize) if w > h else (resize, int(resize * h / w)), Image.BILINEAR)
        if draw is None:
            left, top = (im.width - crop) // 2, (im.height - crop) // 2
            im = im.crop((left, top, left + crop, top + crop))
        else:
            if draw.flip:
                im = ImageOps.mirror(im)
                if kind == "flow_x":
                    im = ImageOps.invert(im)
            side = int(min(im.size) * draw.scale)
            y, x = transforms.crop_origin(im.height, im.width, side, draw.position)
            im = im.crop((x, y, x + side, y + side)).resize((crop, crop), Image.BILINEAR)
        values = np.asarray(im, np.float32) / 255.0
    if kind == "rgb":
        return np.moveaxis((values - RGB_MEAN) / RGB_STD, -1, 0)
    if kind == "mmaps":
        return values
    return (values - FLOW_MEAN) / FLOW_STD


def reference_predictions(checkpoint: str, root: str, split: str, device: str) -> list[str]:
    """The predicted class name of every clip of ``split`` (subjects, comma-separated) of the dataset
    at ``root``, evaluated the reference's way: every clip alone (batch 1), each frame read by
    :func:`reference_frame`, the model's per-time-step forward in fp32. The clips and frame
    numbers are those ``fpar eval`` scores."""
    from fpar.checkpoint import load_model
    from fpar.data import ClipDataset, load_index

    model, contract = load_model(checkpoint)
    model.to(device)
    clip = contract.clip
    index = load_index(root)
    classes = contract.classes or index.classes
    instances = [inst for inst in index.instances if inst.subject in split.split(",")]
    sampling = ClipDataset(instances, clip, train=False)  # only for the frame numbers: the same clips
    predictions = []
    for i, inst in enumerate(instances):
        files = inst.frames("rgb")
        frames = [torch.from_numpy(reference_frame(files[number - 1], "rgb", clip.resize, clip.crop))
                  for number in sampling.frame_numbers(i)["rgb"]]
        with torch.no_grad():
            logits = reference_forward(model, {"frames": torch.stack(frames)[None].to(device)})["logits"]
        predictions.append(classes[int(logits.argmax(dim=1))])
    return predictions

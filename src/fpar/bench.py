"""``fpar bench``: fpar's way of computing against the reference's, on this machine, in one run.

Each benchmark times the two ways on the same inputs (and, where they compute the same thing,
checks that they agree) and reports the speed-up ``reference time / fpar time``:

* ``rgb-attention forward``: the reference runs the backbone one time step at a time and the
  ConvLSTM's input and hidden convolutions per step; fpar runs the backbone and the ConvLSTM's
  input convolutions on all B*T frames in one call each, and steps only the hidden convolution.
* ``clip loading``: the reference opens every PNG with PIL and transforms it anew each epoch;
  fpar decodes with OpenCV once, caches the decoded frames and crops by slicing.
* ``optical flow``: TV-L1 (the reference's flow) against DIS (fpar's fast option); these compute
  different flows, so this row is a cost comparison, not an equivalence.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from fpar.models.assembled import RGBConvLSTM
from fpar.models.attention import class_activation_attention


def _compare(reference: Callable[[], object], ours: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of each, timed alternately so that load from other processes hits both alike."""
    reference(), ours()  # warm-up: allocator, caches, lazy initialisation
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((reference, times[0]), (ours, times[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def reference_rgb_forward(model: RGBConvLSTM, frames: torch.Tensor) -> torch.Tensor:
    """Ego-RNN's loop: per time step, the backbone on B frames, CAM attention, then four gates each
    as an input conv plus a hidden conv. Same weights and result as ``model``, computed its way."""
    lstm = model.convlstm
    w_in = lstm.input_conv.weight.chunk(4)
    b_in = lstm.input_conv.bias.chunk(4)
    w_hid = lstm.hidden_conv.weight.chunk(4)
    pad = lstm.input_conv.padding
    hidden = cell = None
    for t in range(frames.shape[1]):
        out = model.backbone(frames[:, t])
        attention = class_activation_attention(out.logits, out.features, model.backbone.fc.weight)
        x = out.features_nobn * attention.unsqueeze(1)
        if hidden is None:
            hidden = cell = x.new_zeros(x.shape[0], lstm.mem_size, *x.shape[2:])
        i, f, c, o = (F.conv2d(x, w_in[g], b_in[g], padding=pad) + F.conv2d(hidden, w_hid[g], padding=pad)
                      for g in range(4))
        cell = torch.tanh(c) * torch.sigmoid(i) + cell * torch.sigmoid(f)
        hidden = torch.sigmoid(o) * torch.tanh(cell)
    return model.classifier(cell.mean(dim=(2, 3)))


def bench_forward(arch: str, size: int, batch: int, steps: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = RGBConvLSTM(num_classes=61, arch=arch, input_size=size).eval()
    frames = torch.randn(batch, steps, 3, size, size)
    with torch.inference_mode():
        ours = model({"frames": frames})["logits"]
        theirs = reference_rgb_forward(model, frames)
        error = float((ours - theirs).norm() / theirs.norm())
        t_ref, t_ours = _compare(lambda: reference_rgb_forward(model, frames), lambda: model({"frames": frames}),
                                 repeats)
    return {"name": f"rgb-attention forward ({arch}, {batch}x{steps} frames {size}px)", "reference_s": t_ref,
            "fpar_s": t_ours, "speedup": t_ref / t_ours, "agreement": f"rel. error {error:.1e}"}


def bench_loading(size: int, frames: int, repeats: int) -> dict:
    """Clip loading on a synthetic dataset written to a temporary folder."""
    from PIL import Image

    from fpar.data import ClipDataset, ClipSettings, load_index
    from fpar.data.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), subjects=1, classes=4, videos_per_class=2, frames=frames, seed=0)
        instances = load_index(tmp).instances
        resize, crop = size, size * 7 // 8
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)

        def reference_epoch() -> None:
            # PIL open -> resize short side -> centre crop -> to float -> normalise, every epoch
            for inst in instances:
                n = len(inst.rgb)
                for k in np.floor(np.linspace(1, n, 16, endpoint=False)).astype(int):
                    with Image.open(inst.rgb[k - 1]) as im:
                        im = im.convert("RGB")
                        w, h = im.size
                        im = im.resize((int(resize * w / h), resize) if w > h else (resize, int(resize * h / w)),
                                       Image.BILINEAR)
                        left, top = (im.width - crop) // 2, (im.height - crop) // 2
                        im = im.crop((left, top, left + crop, top + crop))
                        _ = (np.asarray(im, np.float32) / 255.0 - mean) / std

        dataset = ClipDataset(instances, ClipSettings(num_frames=16, resize=resize, crop=crop), cache=True)

        def fpar_epoch() -> None:
            for i in range(len(dataset)):
                dataset[i]

        t_ref, t_ours = _compare(reference_epoch, fpar_epoch, repeats)
    return {"name": f"clip loading ({len(instances)} clips x 16 frames, {crop}px, epoch 2+)", "reference_s": t_ref,
            "fpar_s": t_ours, "speedup": t_ref / t_ours, "agreement": "same sampling and crops"}


def bench_flow(repeats: int) -> dict:
    import cv2

    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur((rng.random((240, 320)) * 255).astype(np.uint8), (0, 0), 2)
    moved = np.roll(texture, 2, axis=1)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    t_ref, t_ours = _compare(lambda: tvl1.calc(texture, moved, None), lambda: dis.calc(texture, moved, None), repeats)
    return {"name": "optical flow per 320x240 frame (TV-L1 vs DIS)", "reference_s": t_ref, "fpar_s": t_ours,
            "speedup": t_ref / t_ours, "agreement": "different methods: a cost comparison"}


def run_benchmarks(quick: bool = True, repeats: int = 3) -> list[dict]:
    """All benchmarks; ``quick`` uses ResNet-18 at 112px, otherwise the paper's ResNet-34 at 224px."""
    arch, size = ("resnet18", 112) if quick else ("resnet34", 224)
    return [
        bench_forward(arch, size, batch=2, steps=8 if quick else 16, repeats=repeats),
        bench_loading(size=128 if quick else 256, frames=24, repeats=repeats),
        bench_flow(repeats=repeats),
    ]


def format_table(rows: list[dict]) -> str:
    head = f"{'benchmark':58s} {'reference':>11s} {'fpar':>11s} {'speed-up':>9s}  check"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['name']:58s} {r['reference_s'] * 1000:9.1f}ms {r['fpar_s'] * 1000:9.1f}ms "
                     f"{r['speedup']:8.2f}x  {r['agreement']}")
    return "\n".join(lines)

"""``fpar bench``: fpar's way of computing against the reference's, on this machine, in one run.

Every row times both ways on the same inputs and the same weights, alternately (so load from
other processes hits both alike), and reports rates, the speed-up, each way's share of the
machine's limit and its peak memory:

* **evaluation forward** (frames/s): the RGB-attention model on B clips of T frames.
* **training step** (clips/s) for every stage: forward, loss, backward, optimiser step, with the
  stage's frozen parts frozen.

The two ways:

* *reference*: the backbone one time step at a time on B frames, CAM attention and the MS head
  per step, each ConvLSTM gate as an input conv plus a hidden conv; fp32, contiguous (NCHW)
  tensors, autograd on (for evaluation: the reference's volatile inputs, i.e. no graph).
* *fpar*: the backbone and the ConvLSTM's input convolutions on all B*T frames in one call each
  (only the hidden conv steps through time), weights and inputs channels-last, autocast in the
  precision :mod:`fpar.engine.hardware` picks, frozen backbones without autograd.

**Share of the limit**: the model's FLOPs per clip (``torch.utils.flop_counter``, forward and,
for training, backward) times the rate, over the machine's matmul peak in the precision used
(the best of several large ``torch.mm``): convolutions and matmuls dominate these models, so
the peak of a large GEMM is the ceiling a perfect implementation would reach.

**Peak memory**: on a CPU the process's peak resident set over one call (``VmHWM``, reset before
the call through ``/proc/self/clear_refs``, or ``ru_maxrss`` where that is unavailable, which
never goes down); on a GPU ``torch.cuda.max_memory_allocated``.

Other rows (``LOADING_ROWS``), on the CPU with one thread as a DataLoader worker or a flow job has:

* **loading** (clips/s): two-stream and two-in-one training clips, the reference's PIL per frame
  against the image tree (first epoch, later epochs with the frame cache) and the store
  (:mod:`fpar.data.store_bench`), with each way's peak memory over one epoch;
* **flow** (pairs/s): TV-L1 per 320x240 frame pair, OpenCV's (the reference's flow) against fpar's
  PyTorch solver, checked by the mean end-point error between them; on a GPU the batched solver;
  and warp flow's camera homography per pair (no reference way: its cost next to a TV-L1 pair);
* **process** (runs/s): ``fpar eval`` as a whole process (start-up, loading, compute) against a
  reference-style evaluation script on the same clips and checkpoint, checked by their predictions.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from fpar.engine.compute import cache_frozen_backbone, channels_last_batch, prepare_for_inference, prepare_model
from fpar.engine.hardware import Hardware, autocast_dtype, choose_precision, detect
from fpar.engine.losses import total_loss
from fpar.engine.module import adam
from fpar.engine.stages import configure_stage, set_train_mode
from fpar.errors import FparError
from fpar.models import build_model
from fpar.models.assembled import FlowResNet, RGBConvLSTM, TwoStream
from fpar.models.attention import class_activation_attention
from fpar.models.ms_task import MSLossSettings

CLASSES = 61
STACK = 5  # flow pairs per flow-stream input
MS_LOSS = MSLossSettings(kind="classification")
# training stage -> (registry model, build options, MS loss)
STAGE_MODELS: dict[str, tuple[str, dict[str, Any], MSLossSettings | None]] = {
    "rgb_stage1": ("rgb_attention", {}, None),
    "rgb_stage2": ("rgb_ms", {"ms_head": "classification"}, MS_LOSS),
    "flow": ("flow_resnet", {"stack_size": STACK}, None),
    "two_stream": ("two_stream", {"stack_size": STACK}, None),
    "two_in_one_stage3": ("two_in_one", {"ms_head": "classification"}, MS_LOSS),
}


# --- the reference's way of computing ----------------------------------------------------------

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


# --- measuring -----------------------------------------------------------------------------------

def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _compare(reference: Callable[[], object], ours: Callable[[], object], repeats: int,
             device: str = "cpu") -> tuple[float, float]:
    """Median seconds of each, timed alternately so that load from other processes hits both alike."""
    reference(), ours()  # warm-up: allocator, oneDNN primitive caches, lazy initialisation
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((reference, times[0]), (ours, times[1])):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def _seconds(fn: Callable[[], object], repeats: int, device: str = "cpu") -> float:
    """Median seconds of ``fn`` after one warm-up call: for rows with no reference way."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(device: str, dtype: torch.dtype, repeats: int = 3) -> float:
    """The machine's dense-arithmetic peak in ``dtype``, FLOP/s: the better of a large square
    ``torch.mm`` and a large 1x1 convolution (a plain GEMM inside oneDNN/cuDNN, no algorithmic
    shortcut), each the best of ``repeats`` runs.

    Both, because the two go to different libraries: on AMD CPUs MKL's fp32 GEMM (``torch.mm``)
    does not use AVX-512 while oneDNN's convolutions do (measured 90 against 183 GFLOP/s on two
    EPYC cores), so ``torch.mm`` alone would put the models' convolutions above 100% of "the peak".
    """
    size, batch = (8192, 64) if device == "cuda" else (1536, 4)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    x = torch.randn(batch, 1024, 28, 28, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(1024, 1024, 1, 1, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    candidates = ((lambda: torch.mm(a, b), 2 * size**3), (lambda: F.conv2d(x, w), 2 * batch * 28 * 28 * 1024 * 1024))
    best = 0.0
    with torch.inference_mode():
        for fn, flops in candidates:
            fn()
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                best = max(best, flops / (time.perf_counter() - start))
    return best


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def peak_memory(fn: Callable[[], object], device: str) -> int:
    """Peak bytes over one call of ``fn`` (see the module docstring for what is measured)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        fn()
        return torch.cuda.max_memory_allocated()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        fn()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    fn()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise FparError("/proc/self/status has no VmHWM line")


def _relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.float() - theirs.float()).norm() / theirs.float().norm().clamp_min(1e-12))


# --- the two ways, set up on the same weights and inputs -------------------------------------------

class Setting:
    """Where and in what precision fpar computes; the reference is always fp32."""

    def __init__(self, device: str, precision: str, hardware: Hardware, reason: str):
        self.device = device
        self.precision = precision
        self.hardware = hardware
        self.reason = reason
        self.dtype = autocast_dtype(precision)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device, self.dtype or torch.float32, enabled=self.dtype is not None)


def make_batch(stage: str, batch: int, steps: int, size: int, device: str) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    out: dict[str, torch.Tensor] = {"label": torch.randint(0, CLASSES, (batch,), generator=generator)}
    if stage != "flow":
        out["frames"] = torch.randn(batch, steps, 3, size, size, generator=generator)
    if stage in ("flow", "two_stream"):
        out["flow"] = torch.randn(batch, 2 * STACK, size, size, generator=generator)
    if stage == "two_in_one_stage3":
        out["flow"] = torch.randn(batch, steps, 2, size, size, generator=generator)
    if STAGE_MODELS[stage][2] is not None:
        out["mmaps"] = torch.rand(batch, steps, 1, size, size, generator=generator)
    return {key: value.to(device) for key, value in out.items()}


def calibrate_batch_norms(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> None:
    """Set every BN's running statistics to ``batch``'s, as training would have moved them.

    With freshly initialised statistics (mean 0, variance 1) an eval-mode ResNet-34 does not
    normalise at all: activations grow block after block, the CAM's softmax becomes a hard
    argmax and any rounding flips it, so the two ways' agreement would say nothing about a
    trained model's. Calibrated statistics keep activations at a trained network's scale.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1.0  # running statistics := this batch's
    model.train()
    with torch.no_grad():
        model(batch)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _models(stage: str, arch: str, size: int, inputs: dict[str, torch.Tensor], device: str,
            train: bool, dtype: torch.dtype | None = None) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(reference model, fpar model): the same weights, the stage's frozen parts frozen; an fpar
    model that only scores is prepared as ``fpar eval`` prepares it for autocast to ``dtype``."""
    torch.manual_seed(0)
    name, options, _ = STAGE_MODELS[stage]
    reference = build_model(name, num_classes=CLASSES, backbone=arch, input_size=size, **options).to(device)
    calibrate_batch_norms(reference, inputs)
    configure_stage(reference, stage)
    if train:
        reference.train()
        set_train_mode(reference, stage)
    else:
        reference.eval()
    ours = copy.deepcopy(reference)
    return reference, prepare_model(ours) if train else prepare_for_inference(ours, dtype=dtype)


def _row(name: str, unit: str, per_call: int, t_ref: float, t_ours: float, flops: int, setting: Setting,
         memory: tuple[int, int], agreement: str, **extra: Any) -> dict[str, Any]:
    """One result row; rates are ``per_call`` units (frames or clips) per second. The shares of
    the peak are filled in by ``run_benchmarks`` once the peak is known."""
    return {"name": name, "unit": unit, **extra, "precision": setting.precision,
            "reference_s": t_ref, "fpar_s": t_ours, "reference_rate": per_call / t_ref, "fpar_rate": per_call / t_ours,
            "speedup": t_ref / t_ours, "flops_per_unit": flops / per_call,
            "reference_peak_fraction": None, "fpar_peak_fraction": None,
            "reference_peak_memory": memory[0], "fpar_peak_memory": memory[1], "agreement": agreement}


def bench_eval(arch: str, size: int, batch: int, steps: int, repeats: int, setting: Setting) -> dict[str, Any]:
    """Evaluation forward of the RGB-attention model."""
    inputs = make_batch("rgb_stage1", batch, steps, size, setting.device)
    reference, ours = _models("rgb_stage1", arch, size, inputs, setting.device, train=False, dtype=setting.dtype)

    def run_reference() -> torch.Tensor:
        with torch.no_grad():
            return reference_forward(reference, inputs)["logits"]

    def run_ours() -> torch.Tensor:
        with torch.inference_mode(), setting.autocast():
            return ours(channels_last_batch(inputs))["logits"]

    error = _relative_error(run_ours(), run_reference())
    t_ref, t_ours = _compare(run_reference, run_ours, repeats, setting.device)
    with torch.inference_mode(), setting.autocast():
        flops = count_flops(lambda: ours(inputs))
    memory = peak_memory(run_reference, setting.device), peak_memory(run_ours, setting.device)
    return _row("evaluation forward, rgb_attention", "frames/s", batch * steps, t_ref, t_ours, flops, setting, memory,
                f"logits rel. error {error:.1e}", kind="eval", stage=None, arch=arch, size=size, batch=batch,
                frames=steps)


def bench_train(stage: str, arch: str, size: int, batch: int, steps: int, repeats: int,
                setting: Setting) -> dict[str, Any]:
    """One optimisation step of ``stage`` (Adam, the stage's trainable parameters)."""
    inputs = make_batch(stage, batch, steps, size, setting.device)
    reference, ours = _models(stage, arch, size, inputs, setting.device, train=True)
    cache_frozen_backbone(ours, setting.precision)  # as a training run starts
    ms_loss = STAGE_MODELS[stage][2]
    optimisers = [make([{"params": [p for p in model.parameters() if p.requires_grad]}], lr=1e-8)
                  for make, model in ((torch.optim.Adam, reference), (adam, ours))]

    def reference_loss() -> torch.Tensor:
        return total_loss(reference_forward(reference, inputs), inputs, ms_loss)[0]

    def our_loss() -> torch.Tensor:
        prepared = channels_last_batch(inputs)
        with setting.autocast():
            return total_loss(ours(prepared), prepared, ms_loss)[0]

    def step(loss_fn: Callable[[], torch.Tensor], optimiser: torch.optim.Optimizer) -> Callable[[], None]:
        def run() -> None:
            loss_fn().backward()
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
        return run

    # dropout draws differ between calls: compare the losses with the same generator state
    torch.manual_seed(1)
    theirs = reference_loss().detach()
    torch.manual_seed(1)
    error = _relative_error(our_loss().detach(), theirs)
    run_reference, run_ours = step(reference_loss, optimisers[0]), step(our_loss, optimisers[1])
    t_ref, t_ours = _compare(run_reference, run_ours, repeats, setting.device)
    flops = count_flops(lambda: our_loss().backward())
    optimisers[1].zero_grad(set_to_none=True)
    memory = peak_memory(run_reference, setting.device), peak_memory(run_ours, setting.device)
    return _row(f"training step, {stage}", "clips/s", batch, t_ref, t_ours, flops, setting, memory,
                f"loss rel. error {error:.1e}", kind="train", stage=stage, arch=arch, size=size, batch=batch,
                frames=None if stage == "flow" else steps)


# --- data rows: loading, optical flow, whole processes ---------------------------------------------
# Rows that time something other than the model's arithmetic. Each row has name, kind, unit,
# reference_s and fpar_s (seconds per unit), the rates, speedup, the peak memories (None where not
# measured) and agreement; a new storage format or data path adds its maker to LOADING_ROWS.

def data_row(name: str, kind: str, unit: str, t_ref: float | None, t_ours: float, agreement: str,
             memory: tuple[int | None, int | None] = (None, None), **extra: Any) -> dict[str, Any]:
    """A row of seconds per unit (clip, frame pair, run); ``t_ref`` None: no reference way to compare with."""
    return {"name": name, "kind": kind, "unit": unit, **extra, "reference_s": t_ref, "fpar_s": t_ours,
            "reference_rate": 1 / t_ref if t_ref else None, "fpar_rate": 1 / t_ours,
            "speedup": t_ref / t_ours if t_ref else None, "reference_peak_memory": memory[0],
            "fpar_peak_memory": memory[1], "agreement": agreement}


def bench_loading(resize: int, crop: int, repeats: int) -> list[dict[str, Any]]:
    """Two-stream and two-in-one training clips per DataLoader worker (one thread): the reference's
    PIL per frame against the image tree's first epoch, its later epochs (cached) and the store
    (:mod:`fpar.data.store_bench`, on a synthetic dataset of 320x240 frames)."""
    from fpar.data.store_bench import bench_clip_loading

    rows = bench_clip_loading(resize=resize, crop=crop, size=(320, 240), repeats=repeats,
                              peak_memory=lambda fn: peak_memory(fn, "cpu"))
    return [data_row(f"loading {r['clip']}, {r['way']}", "loading", "clips/s", r["reference_s"], r["fpar_s"],
                     f"{resize}px/{crop}, {r['agreement']}", (r["reference_peak_memory"], r["fpar_peak_memory"]),
                     clip=r["clip"], way=r["way"], clips=r["clips"]) for r in rows]


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One torch and one OpenCV thread inside (a worker's share of the machine), restored after."""
    import cv2

    saved = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        cv2.setNumThreads(saved[1])


FLOW_SHIFT = (1.6, -0.7)  # px (x, y): the camera's motion between the two synthetic frames


def textured_pair(width: int = 320, height: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two grey frames like consecutive video frames: texture at several scales (edges, blobs,
    flat areas), the whole view moved by :data:`FLOW_SHIFT` (sub-pixel, as a turning head) and one
    square patch (a hand) moving its own way, with a little sensor noise on each."""
    import cv2

    rng = np.random.default_rng(seed)
    texture = np.zeros((height + 40, width + 40), np.float32)
    for sigma, weight in ((1.0, 0.3), (3.0, 0.5), (8.0, 1.0)):
        texture += weight * cv2.GaussianBlur(rng.standard_normal(texture.shape).astype(np.float32), (0, 0), sigma)
    texture = (texture - texture.min()) / (texture.max() - texture.min()) * 255

    def view(dx: float, dy: float) -> np.ndarray:
        shift = np.float32([[1, 0, 20 - dx], [0, 1, 20 - dy]])  # output(x) = texture(x + 20 - d)
        return cv2.warpAffine(texture, shift, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)

    first, second = view(0, 0), view(*FLOW_SHIFT)
    side = min(width, height) // 4
    patch = texture[:side, :side] * 0.6 + 60
    first[height // 3:height // 3 + side, width // 3:width // 3 + side] = patch
    second[height // 3 + 3:height // 3 + 3 + side, width // 3 - 4:width // 3 - 4 + side] = patch
    noisy = [np.clip(f + rng.normal(0, 1.0, f.shape), 0, 255).astype(np.uint8) for f in (first, second)]
    return noisy[0], noisy[1]


def bench_flow(repeats: int, setting: Setting, width: int = 320, height: int = 240,
               batch: int = 32) -> list[dict[str, Any]]:
    """TV-L1 per frame pair on one core: OpenCV's (the reference's flow) against fpar's PyTorch
    solver of the same algorithm, with the mean end-point error between the two as the check;
    on a GPU, fpar's batched pairs/s; and the cost of warp flow's camera-motion estimate."""
    import cv2

    from fpar.prepare.tvl1 import tvl1_flow
    from fpar.prepare.warp import camera_homography

    first, second = textured_pair(width, height)
    where = f"{width}x{height}"
    rows = []
    opencv = cv2.optflow.DualTVL1OpticalFlow_create() if hasattr(cv2, "optflow") else None
    with single_thread():
        ours_flow = tvl1_flow(first, second).numpy()
        ours_fn = lambda: tvl1_flow(first, second)  # noqa: E731
        if opencv is not None:
            theirs_flow = opencv.calc(first, second, None)
            epe = float(np.linalg.norm(ours_flow - theirs_flow, axis=-1).mean())
            # the background's flow is the camera's shift: the median ignores the patch
            off = float(np.hypot(*(np.median(ours_flow.reshape(-1, 2), axis=0) - FLOW_SHIFT)))
            t_ref, t_ours = _compare(lambda: opencv.calc(first, second, None), ours_fn, repeats)
            rows.append(data_row(f"TV-L1 flow {where}, 1 core", "flow", "pairs/s", t_ref, t_ours,
                                 f"EPE to OpenCV's {epe:.3f}px; median off the true shift {off:.2f}px",
                                 method="tvl1", device="cpu", batch=1, epe_px=epe, shift_error_px=off))
        else:
            t_ref, t_ours = None, _seconds(ours_fn, repeats)
            rows.append(data_row(f"TV-L1 flow {where}, 1 core", "flow", "pairs/s", None, t_ours,
                                 "no OpenCV TV-L1 here (opencv-contrib missing)", method="tvl1", device="cpu",
                                 batch=1))
        t_warp = _seconds(lambda: camera_homography(first, second), repeats)
        homography = camera_homography(first, second)
        shift = homography[:2, 2] / homography[2, 2]
        error = float(np.hypot(shift[0] - FLOW_SHIFT[0], shift[1] - FLOW_SHIFT[1]))
        rows.append(data_row(f"warp flow: camera homography {where}", "flow", "pairs/s", None, t_warp,
                             f"+{100 * t_warp / t_ours:.0f}% on a TV-L1 pair; shift error {error:.2f}px",
                             method="homography", device="cpu", batch=1, shift_error_px=error))
    if setting.device == "cuda":
        pairs = [textured_pair(width, height, seed) for seed in range(batch)]  # pair 0 is the one above
        firsts = torch.from_numpy(np.stack([pair[0] for pair in pairs])).cuda()
        seconds = torch.from_numpy(np.stack([pair[1] for pair in pairs])).cuda()
        gpu = lambda: tvl1_flow(firsts, seconds)  # noqa: E731
        epe = float((gpu()[0].cpu() - torch.from_numpy(ours_flow)).norm(dim=-1).mean())
        t_gpu = _seconds(gpu, repeats, "cuda") / batch
        against = t_ref if t_ref is not None else t_ours
        rows.append(data_row(f"TV-L1 flow {where}, cuda, {batch} pairs/batch", "flow", "pairs/s", against, t_gpu,
                             f"against {'OpenCV' if t_ref is not None else 'fpar'} on 1 core; EPE to CPU {epe:.3f}px",
                             method="tvl1", device="cuda", batch=batch, epe_px=epe))
    return rows


def _reference_eval(checkpoint: str, root: str, split: str, device: str) -> None:
    """A stand-alone evaluation the reference's way, run as ``python -m fpar.bench reference-eval``:
    every clip alone (batch 1), each frame opened with PIL and transformed on its own, the model's
    per-time-step forward in fp32. Prints one JSON line: the predicted class name of every clip."""
    import json

    from PIL import Image

    from fpar.checkpoint import load_model
    from fpar.data import ClipDataset, load_index
    from fpar.data.transforms import RGB_MEAN, RGB_STD

    model, contract = load_model(checkpoint)
    model.to(device)
    clip = contract.clip
    index = load_index(root)
    classes = contract.classes or index.classes
    instances = [inst for inst in index.instances if inst.subject in split.split(",")]
    sampling = ClipDataset(instances, clip, train=False)  # only for the frame numbers: the same clips
    predictions = []
    for i, inst in enumerate(instances):
        frames = []
        for number in sampling._frame_numbers(inst, np.random.default_rng(0))["rgb"]:
            with Image.open(inst.frames("rgb")[number - 1]) as im:
                im = im.convert("RGB")
                w, h = im.size
                im = im.resize((int(clip.resize * w / h), clip.resize) if w > h else
                               (clip.resize, int(clip.resize * h / w)), Image.BILINEAR)
                left, top = (im.width - clip.crop) // 2, (im.height - clip.crop) // 2
                im = im.crop((left, top, left + clip.crop, top + clip.crop))
                values = (np.asarray(im, np.float32) / 255.0 - RGB_MEAN) / RGB_STD
                frames.append(torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1))))
        with torch.no_grad():
            logits = reference_forward(model, {"frames": torch.stack(frames)[None].to(device)})["logits"]
        predictions.append(classes[int(logits.argmax(dim=1))])
    print(json.dumps({"predictions": predictions}))


_PEAK_LINE = "fpar-bench-peak-bytes"
# Runs ``python -m MODULE ARGS`` and prints the process's own peak resident memory on stderr at
# exit. Not the rusage the parent gets: that counts the parent's memory the child started with
# (before its exec), and the parent holds the benchmarks' data.
_MEASURED_MODULE = f"""
import atexit, resource, runpy, sys
def peak():
    try:
        with open("/proc/self/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("{_PEAK_LINE}", kb * 1024, file=sys.stderr, flush=True)
atexit.register(peak)
module, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def bench_process(arch: str, size: int, classes: int, videos_per_class: int, frames: int, repeats: int,
                  device: str = "cpu") -> dict[str, Any]:
    """``fpar eval`` as a whole process (start-up, loading, compute) against a reference-style
    evaluation script, on the same synthetic clips (320x240 frames) and the same RGB attention +
    MS head checkpoint; the check is that both predict the same class for every clip."""
    import csv
    import json
    import subprocess
    import sys

    from fpar.checkpoint import save_checkpoint
    from fpar.data import ClipSettings
    from fpar.data.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "data", subjects=1, classes=classes, videos_per_class=videos_per_class,
                        frames=frames, size=(320, 240), seed=0)
        clip = ClipSettings(modalities=["frames"], num_frames=frames, resize=size * 8 // 7, crop=size)
        torch.manual_seed(0)
        model = build_model("rgb_ms", num_classes=classes, backbone=arch, pretrained=None, input_size=size,
                            ms_head="classification")
        checkpoint = Path(tmp) / "model.ckpt"
        save_checkpoint(checkpoint, model_state=model.state_dict(), model=model.build_spec, clip=clip)
        predictions = Path(tmp) / "predictions.csv"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent.parent),
                                                                          os.environ.get("PYTHONPATH")]))}
        ours = [sys.executable, "-c", _MEASURED_MODULE, "fpar", "eval", str(checkpoint), "--data", str(root),
                "--split", "S1", "--json", "--predictions", str(predictions),
                "--accelerator", "gpu" if device == "cuda" else "cpu"]
        theirs = [sys.executable, "-c", _MEASURED_MODULE, "fpar.bench", "reference-eval", str(checkpoint), str(root),
                  "S1", device]

        def run(command: list[str]) -> tuple[float, str, int]:
            """Seconds, standard output and peak resident memory (bytes) of one process."""
            with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
                start = time.perf_counter()
                returncode = subprocess.run(command, stdout=out, stderr=err, text=True, env=env).returncode
                seconds = time.perf_counter() - start
                out.seek(0), err.seek(0)
                errors = err.read().splitlines()
                if returncode != 0:
                    raise FparError(f"{' '.join(command[3:5])} failed: {errors[-1:]}")
                peak = next(int(line.split()[1]) for line in reversed(errors) if line.startswith(_PEAK_LINE))
                return seconds, out.read(), peak

        # no warm-up run: a process starts cold each time anyway (the dataset just written is in
        # the page cache for both); the first, alternating pair of runs is also the check
        runs: tuple[list[tuple[float, str, int]], list[tuple[float, str, int]]] = ([], [])
        for _ in range(repeats):
            runs[0].append(run(theirs))
            runs[1].append(run(ours))
        reference_predictions = json.loads(runs[0][0][1].splitlines()[-1])["predictions"]
        with open(predictions, newline="") as f:
            fpar_predictions = [row["prediction"] for row in csv.DictReader(f)]
        agree = sum(a == b for a, b in zip(reference_predictions, fpar_predictions))
        t_ref, t_ours = (statistics.median(r[0] for r in way) for way in runs)
        memory = (max(r[2] for r in runs[0]), max(r[2] for r in runs[1]))
    clips = classes * videos_per_class
    return data_row(f"fpar eval process, {arch} {size}px, {clips} clips", "process", "runs/s", t_ref, t_ours,
                    f"{agree}/{clips} same predictions", memory, arch=arch, size=size, clips=clips, frames=frames,
                    device=device, same_predictions=agree)


LOADING_ROWS: dict[str, Callable[[bool, int, Setting], list[dict[str, Any]]]] = {
    "loading": lambda quick, repeats, setting: bench_loading(*((128, 112) if quick else (256, 224)), repeats),
    "flow": lambda quick, repeats, setting: bench_flow(repeats, setting),
    "process": lambda quick, repeats, setting: [
        bench_process("resnet18", 112, 3, 2, 7, repeats, setting.device) if quick else
        bench_process("resnet34", 224, 6, 4, 16, repeats, setting.device)],
}

# --- the whole run ---------------------------------------------------------------------------------

ROW_KINDS = ("eval", "train", *LOADING_ROWS)


def setting_for(device: str, precision: str = "auto") -> Setting:
    if device == "cuda" and not torch.cuda.is_available():
        raise FparError("--device cuda: no CUDA device is available to torch here")
    if device not in ("cpu", "cuda"):
        raise FparError(f"unknown device '{device}': choose cpu or cuda")
    hardware = detect(device)
    chosen, reason = choose_precision(hardware, precision)
    return Setting(device, "32-true" if chosen == "32" else chosen, hardware, reason)


def machine_info(setting: Setting, peaks: dict[str, float]) -> dict[str, Any]:
    hw = setting.hardware
    cpu = hw if hw.device == "cpu" else detect("cpu")  # loading and flow rows run on the CPU anyway
    return {"device": setting.device, "name": hw.name, "isa": hw.isa, "cuda_capability": hw.cuda_capability,
            "cpu": cpu.name, "cpu_isa": cpu.isa,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "precision": setting.precision, "precision_reason": setting.reason,
            "matmul_peak_flops": peaks}


def run_benchmarks(quick: bool = True, repeats: int = 3, frames: tuple[int, ...] = (7,), batch: int | None = None,
                   size: int | None = None, stages: tuple[str, ...] = tuple(STAGE_MODELS),
                   rows: tuple[str, ...] = ROW_KINDS,
                   device: str = "cpu", precision: str = "auto") -> dict[str, Any]:
    """All benchmarks: ``{"machine": {...}, "rows": [...]}``.

    ``quick`` uses ResNet-18 at 112px and 2 clips per batch, otherwise the paper's ResNet-34 at
    224px and 4 clips; ``frames`` are the clip lengths T to run the model rows at; ``batch`` and
    ``size`` (input side, px) override the defaults.
    """
    unknown = sorted(set(rows) - set(ROW_KINDS)) + sorted(set(stages) - set(STAGE_MODELS))
    if unknown:
        raise FparError(f"unknown benchmark {unknown}: rows are {list(ROW_KINDS)}, stages {list(STAGE_MODELS)}")
    setting = setting_for(device, precision)
    arch, default_size = ("resnet18", 112) if quick else ("resnet34", 224)
    size = size or default_size
    batch = batch or (2 if quick else 4)
    model_rows = "eval" in rows or "train" in rows
    peaks = {"32-true": matmul_peak(device, torch.float32)} if model_rows else {}
    if model_rows and setting.dtype is not None:
        peaks[setting.precision] = matmul_peak(device, setting.dtype)
    results = []
    for steps in frames:
        if "eval" in rows:
            results.append(bench_eval(arch, size, batch, steps, repeats, setting))
        if "train" in rows:
            for stage in stages:
                if stage != "flow" or steps == frames[0]:  # the flow stream has no time axis
                    results.append(bench_train(stage, arch, size, batch, steps, repeats, setting))
    for kind, make in LOADING_ROWS.items():
        if kind in rows:
            results += make(quick, repeats, setting)
    if any("flops_per_unit" in row for row in results):
        # measured again at the end, keeping the better: load from other processes during either
        # measurement would otherwise inflate every row's share of the peak
        for name in peaks:
            dtype = setting.dtype if name == setting.precision else torch.float32
            peaks[name] = max(peaks[name], matmul_peak(device, dtype))
        for row in results:
            if "flops_per_unit" in row:
                row["reference_peak_fraction"] = row["flops_per_unit"] * row["reference_rate"] / peaks["32-true"]
                row["fpar_peak_fraction"] = row["flops_per_unit"] * row["fpar_rate"] / peaks[setting.precision]
    return {"machine": machine_info(setting, peaks), "rows": results}


def _gib(value: int | None) -> str:
    return f"{value / 2**30:.2f}G" if value is not None else "-"


def _pct(value: float | None) -> str:
    return f"{100 * value:.0f}%" if value is not None else "-"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:10.2f}" if value >= 0.1 else f"{value:10.4f}"


def format_table(result: dict[str, Any]) -> str:
    m = result["machine"]
    peaks = ", ".join(f"{name} {flops / 1e9:.0f}" for name, flops in m["matmul_peak_flops"].items()) or "-"
    cpu = f"{m.get('cpu', m['name'])} [{' '.join(m.get('cpu_isa', m['isa']))}]"
    where = cpu if m["device"] == "cpu" else f"{m['name']} (sm {m['cuda_capability']}); cpu: {cpu}"
    lines = [f"{m['device']}: {where}, {m['threads']} threads, torch {m['torch']}",
             f"fpar precision: {m['precision']} ({m['precision_reason']}); matmul peak GFLOP/s: {peaks}",
             "reference: per-frame fp32 NCHW, autograd on; %peak = achieved FLOP/s over the matmul peak of "
             "the precision used; loading and flow rows: one worker, one thread", ""]
    head = (f"{'benchmark':44s} {'B':>3s} {'T':>3s} {'reference':>10s} {'fpar':>10s} {'unit':9s} {'speed-up':>8s} "
            f"{'%peak':>11s} {'peak memory':>13s}  check")
    lines += [head, "-" * len(head)]
    for r in result["rows"]:
        speedup = f"{r['speedup']:7.2f}x" if r.get("speedup") is not None else f"{'-':>8s}"
        lines.append(f"{r['name'][:44]:44s} {r.get('batch') or '-':>3} {r.get('frames') or '-':>3} "
                     f"{_rate(r.get('reference_rate')):>10s} {_rate(r.get('fpar_rate')):>10s} {r.get('unit', ''):9s} "
                     f"{speedup} {_pct(r.get('reference_peak_fraction')):>5s}/{_pct(r.get('fpar_peak_fraction')):>5s} "
                     f"{_gib(r.get('reference_peak_memory')):>6s}/{_gib(r.get('fpar_peak_memory')):>6s}  "
                     f"{r['agreement']}")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m fpar.bench reference-eval CHECKPOINT ROOT SPLIT DEVICE (bench_process)
    import sys

    if len(sys.argv) != 6 or sys.argv[1] != "reference-eval":
        sys.exit("usage: python -m fpar.bench reference-eval CHECKPOINT ROOT SPLIT DEVICE")
    _reference_eval(*sys.argv[2:])

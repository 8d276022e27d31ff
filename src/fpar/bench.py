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

Other rows: **clip loading** (PIL per frame each epoch against OpenCV decoding once and cropping
by slicing) and **optical flow** (TV-L1 against DIS: different methods, a cost comparison).
"""

from __future__ import annotations

import copy
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from fpar.engine.compute import channels_last_batch, prepare_model
from fpar.engine.hardware import Hardware, autocast_dtype, choose_precision, detect
from fpar.engine.losses import total_loss
from fpar.engine.stages import configure_stage, set_train_mode
from fpar.errors import FparError
from fpar.models import build_model
from fpar.models.assembled import FlowResNet, RGBConvLSTM, TwoStream
from fpar.models.attention import class_activation_attention

CLASSES = 61
STACK = 5  # flow pairs per flow-stream input
MS_LOSS = {"kind": "classification", "threshold": 0.0, "regression": "mse", "weight": 1.0}
# training stage -> (registry model, build options, MS loss)
STAGE_MODELS: dict[str, tuple[str, dict[str, Any], dict[str, Any] | None]] = {
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
            train: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(reference model, fpar model): the same weights, the stage's frozen parts frozen."""
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
    return reference, prepare_model(copy.deepcopy(reference))


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
    reference, ours = _models("rgb_stage1", arch, size, inputs, setting.device, train=False)

    def run_reference() -> torch.Tensor:
        with torch.no_grad():
            return reference_forward(reference, inputs)["logits"]

    def run_ours() -> torch.Tensor:
        with torch.inference_mode(), setting.autocast():
            return ours(channels_last_batch(inputs))["logits"]

    error = _relative_error(run_ours(), run_reference())
    t_ref, t_ours = _compare(run_reference, run_ours, repeats, setting.device)
    with torch.inference_mode():
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
    ms_loss = STAGE_MODELS[stage][2]
    optimisers = [torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-8)
                  for model in (reference, ours)]

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


# --- data rows: loading and flow -----------------------------------------------------------------
# Rows about getting clips into memory. Each returns a dict with at least name, reference_s,
# fpar_s, speedup and agreement; a new storage format adds its row to LOADING_ROWS.

def bench_loading(size: int, frames: int, repeats: int) -> dict[str, Any]:
    """Clip loading from PNG frames on a synthetic dataset written to a temporary folder."""
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
    return {"name": f"clip loading, PNG ({len(instances)} clips x 16 frames, {crop}px, epoch 2+)", "kind": "loading",
            "reference_s": t_ref, "fpar_s": t_ours, "speedup": t_ref / t_ours, "agreement": "same sampling and crops"}


def bench_flow(repeats: int) -> dict[str, Any]:
    import cv2

    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur((rng.random((240, 320)) * 255).astype(np.uint8), (0, 0), 2)
    moved = np.roll(texture, 2, axis=1)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    t_ref, t_ours = _compare(lambda: tvl1.calc(texture, moved, None), lambda: dis.calc(texture, moved, None), repeats)
    return {"name": "optical flow per 320x240 frame (TV-L1 vs DIS)", "kind": "flow", "reference_s": t_ref,
            "fpar_s": t_ours, "speedup": t_ref / t_ours, "agreement": "different methods: a cost comparison"}


LOADING_ROWS: dict[str, Callable[[bool, int], dict[str, Any]]] = {
    "loading": lambda quick, repeats: bench_loading(size=128 if quick else 256, frames=24, repeats=repeats),
    "flow": lambda quick, repeats: bench_flow(repeats),
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
    return {"device": setting.device, "name": hw.name, "isa": hw.isa, "cuda_capability": hw.cuda_capability,
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
    peaks = {"32-true": matmul_peak(device, torch.float32)}
    if setting.dtype is not None:
        peaks[setting.precision] = matmul_peak(device, setting.dtype)
    results = []
    for steps in frames:
        if "eval" in rows:
            results.append(bench_eval(arch, size, batch, steps, repeats, setting))
        if "train" in rows:
            for stage in stages:
                if stage != "flow" or steps == frames[0]:  # the flow stream has no time axis
                    results.append(bench_train(stage, arch, size, batch, steps, repeats, setting))
    results += [make(quick, repeats) for kind, make in LOADING_ROWS.items() if kind in rows]
    if any("fpar_rate" in row for row in results):
        # measured again at the end, keeping the better: load from other processes during either
        # measurement would otherwise inflate every row's share of the peak
        for name in peaks:
            dtype = setting.dtype if name == setting.precision else torch.float32
            peaks[name] = max(peaks[name], matmul_peak(device, dtype))
        for row in results:
            if "fpar_rate" in row:
                row["reference_peak_fraction"] = row["flops_per_unit"] * row["reference_rate"] / peaks["32-true"]
                row["fpar_peak_fraction"] = row["flops_per_unit"] * row["fpar_rate"] / peaks[setting.precision]
    return {"machine": machine_info(setting, peaks), "rows": results}


def _gib(value: int | None) -> str:
    return f"{value / 2**30:.2f}G" if value is not None else "-"


def _pct(value: float | None) -> str:
    return f"{100 * value:.0f}%" if value is not None else "-"


def format_table(result: dict[str, Any]) -> str:
    m = result["machine"]
    peaks = ", ".join(f"{name} {flops / 1e9:.0f}" for name, flops in m["matmul_peak_flops"].items())
    where = (f"{m['name']} [{' '.join(m['isa'])}]" if m["device"] == "cpu"
             else f"{m['name']} (sm {m['cuda_capability']})")
    lines = [f"{m['device']}: {where}, {m['threads']} threads, torch {m['torch']}",
             f"fpar precision: {m['precision']} ({m['precision_reason']}); matmul peak GFLOP/s: {peaks}",
             "reference: per-frame fp32 NCHW, autograd on; %peak = achieved FLOP/s over the matmul peak of "
             "the precision used", ""]
    head = (f"{'benchmark':44s} {'B':>3s} {'T':>3s} {'reference':>10s} {'fpar':>10s} {'unit':9s} {'speed-up':>8s} "
            f"{'%peak':>11s} {'peak memory':>13s}  check")
    lines += [head, "-" * len(head)]
    for r in result["rows"]:
        if "fpar_rate" in r:
            lines.append(f"{r['name']:44s} {r['batch']:3d} {r['frames'] or '-':>3} {r['reference_rate']:10.2f} "
                         f"{r['fpar_rate']:10.2f} {r['unit']:9s} {r['speedup']:7.2f}x "
                         f"{_pct(r['reference_peak_fraction']):>5s}/{_pct(r['fpar_peak_fraction']):>5s} "
                         f"{_gib(r['reference_peak_memory']):>6s}/{_gib(r['fpar_peak_memory']):>6s}  {r['agreement']}")
        else:
            lines.append(f"{r['name'][:44]:44s} {'':3s} {'':3s} {r['reference_s'] * 1000:8.1f}ms "
                         f"{r['fpar_s'] * 1000:8.1f}ms {'':9s} {r['speedup']:7.2f}x {'':11s} {'':13s}  "
                         f"{r['agreement']}")
    return "\n".join(lines)

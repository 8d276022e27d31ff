"""``fpar bench``'s model rows: fpar's way of computing against the reference's on the same
weights and inputs (:mod:`fpar.bench.reference`), timed alternately.

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
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch

from fpar.bench.measure import Setting, compare, count_flops, peak_memory, relative_error
from fpar.bench.reference import reference_forward
from fpar.engine.compute import channels_last_batch, prepare_for_inference, prepare_model
from fpar.engine.losses import total_loss
from fpar.engine.module import adam
from fpar.engine.stages import configure_stage, set_train_mode
from fpar.models import ClipModel, build_model, example_batch
from fpar.models.losses import LossSettings
from fpar.models.ms_task import MSLossSettings

# --- the model each stage's rows train: registry name, build options, loss settings -------------

CLASSES = 61
STACK = 5  # flow pairs per flow-stream input
MS_LOSS = LossSettings(ms=MSLossSettings(kind="classification"))
STAGE_MODELS: dict[str, tuple[str, dict[str, Any], LossSettings]] = {
    "rgb_stage1": ("rgb_attention", {}, LossSettings()),
    "rgb_stage2": ("rgb_ms", {"ms_head": "classification"}, MS_LOSS),
    "flow": ("flow_resnet", {"stack_size": STACK}, LossSettings()),
    "two_stream": ("two_stream", {"stack_size": STACK}, LossSettings()),
    "two_in_one_stage3": ("two_in_one", {"ms_head": "classification"}, MS_LOSS),
}


def make_batch(model: ClipModel, loss: LossSettings, batch: int, steps: int, device: str) -> dict[str, torch.Tensor]:
    """Random inputs of the shapes ``model`` reads (its ``input_spec``: B clips of T frames) and the
    targets its loss reads (labels; motion maps (B, T, 1, H, W) for an MS head)."""
    generator = torch.Generator().manual_seed(0)
    num_classes = model.build_spec["num_classes"]
    out = {"label": torch.randint(0, num_classes, (batch,), generator=generator),
           **example_batch(model, batch, steps, generator)}
    if "mmaps" in model.loss_inputs(loss):
        height, width = out["frames"].shape[-2:]
        out["mmaps"] = torch.rand(batch, steps, 1, height, width, generator=generator)
    return {key: value.to(device) for key, value in out.items()}


# --- the two ways, set up on the same weights and inputs -------------------------------------------

def calibrate_batch_norms(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> None:
    """Set every BN's running statistics to ``batch``'s, as training would have moved them.

    With freshly initialised statistics (mean 0, variance 1) an eval-mode ResNet-34 does not
    normalise at all: activations grow block after block, the CAM's softmax becomes a hard
    argmax and any rounding flips it, so the two ways' agreement would say nothing about a
    trained model's. Calibrated statistics keep activations at a trained network's scale.
    """
    kinds = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    norms = [m for m in model.modules() if isinstance(m, kinds)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1.0  # running statistics := this batch's
    model.train()
    with torch.no_grad():
        model(batch)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _models(stage: str, arch: str, size: int, batch: int, steps: int, device: str, train: bool,
            dtype: torch.dtype | None = None) -> tuple[ClipModel, ClipModel, dict[str, torch.Tensor]]:
    """(reference model, fpar model, inputs): the same weights, the stage's frozen parts frozen; an
    fpar model that only scores is prepared as ``fpar eval`` prepares it for autocast to ``dtype``."""
    torch.manual_seed(0)
    name, options, loss = STAGE_MODELS[stage]
    reference = build_model(name, num_classes=CLASSES, backbone=arch, input_size=size, **options).to(device)
    inputs = make_batch(reference, loss, batch, steps, device)
    calibrate_batch_norms(reference, inputs)
    configure_stage(reference, stage)
    if train:
        reference.train()
        set_train_mode(reference, stage)
    else:
        reference.eval()
    ours = copy.deepcopy(reference)
    return reference, prepare_model(ours) if train else prepare_for_inference(ours, dtype=dtype), inputs


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
    reference, ours, inputs = _models("rgb_stage1", arch, size, batch, steps, setting.device, train=False,
                                      dtype=setting.dtype)

    def run_reference() -> torch.Tensor:
        with torch.no_grad():
            return reference_forward(reference, inputs)["logits"]

    def run_ours() -> torch.Tensor:
        with torch.inference_mode(), setting.autocast():
            return ours(channels_last_batch(inputs))["logits"]

    error = relative_error(run_ours(), run_reference())
    t_ref, t_ours = compare(run_reference, run_ours, repeats, setting.device)
    with torch.inference_mode(), setting.autocast():
        flops = count_flops(lambda: ours(inputs))
    memory = peak_memory(run_reference, setting.device), peak_memory(run_ours, setting.device)
    return _row("evaluation forward, rgb_attention", "frames/s", batch * steps, t_ref, t_ours, flops, setting, memory,
                f"logits rel. error {error:.1e}", kind="eval", stage=None, arch=arch, size=size, batch=batch,
                frames=steps)


def bench_train(stage: str, arch: str, size: int, batch: int, steps: int, repeats: int,
                setting: Setting) -> dict[str, Any]:
    """One optimisation step of ``stage`` (Adam, the stage's trainable parameters)."""
    reference, ours, inputs = _models(stage, arch, size, batch, steps, setting.device, train=True)
    ours.begin_training(setting.dtype or torch.float32)  # as a training run starts
    loss = STAGE_MODELS[stage][2]
    optimisers = [make([{"params": [p for p in model.parameters() if p.requires_grad]}], lr=1e-8)
                  for make, model in ((torch.optim.Adam, reference), (adam, ours))]

    def reference_loss() -> torch.Tensor:
        return total_loss(reference, reference_forward(reference, inputs), inputs, loss)[0]

    def our_loss() -> torch.Tensor:
        prepared = channels_last_batch(inputs)
        with setting.autocast():
            return total_loss(ours, ours(prepared), prepared, loss)[0]

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
    error = relative_error(our_loss().detach(), theirs)
    run_reference, run_ours = step(reference_loss, optimisers[0]), step(our_loss, optimisers[1])
    t_ref, t_ours = compare(run_reference, run_ours, repeats, setting.device)
    flops = count_flops(lambda: our_loss().backward())
    optimisers[1].zero_grad(set_to_none=True)
    memory = peak_memory(run_reference, setting.device), peak_memory(run_ours, setting.device)
    return _row(f"training step, {stage}", "clips/s", batch, t_ref, t_ours, flops, setting, memory,
                f"loss rel. error {error:.1e}", kind="train", stage=stage, arch=arch, size=size, batch=batch,
                frames=None if stage == "flow" else steps)

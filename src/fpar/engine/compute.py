"""How fpar lays out a model and its inputs for speed, without changing what it computes.

* **channels_last**: oneDNN (CPU) and cuDNN (GPU) run convolutions natively on NHWC tensors; an
  NCHW tensor is reordered on entry to and exit from every conv (on GPUs, tensor cores only take
  NHWC). The model's 4-d weights are stored channels-last once (``prepare_model``) and each batch's
  frames are laid out channels-last once, on arrival (``channels_last_batch``), so every conv after
  that reads and writes NHWC without reorders. State-dict keys and values do not change, only the
  strides, so checkpoints load either way.
* **folded batch norms** (``prepare_for_inference``): a model that only scores folds every BN
  into the conv before it (``ResNet.fold_batch_norms``), one memory pass over each activation
  less: ~15% faster evaluation, equal in fp32 to ~1e-6 relative. Training keeps them (the state
  dict would change). The fold writes into the weights in place, so a checkpoint's memory-mapped
  weights are not held twice.
* **a frozen backbone** (stage 1) trains as a folded copy whose weights are already in the
  dtype the convolutions run in (the model's ``begin_training``, ``RGBConvLSTM.cache_frozen_backbone``):
  no BN passes and no per-step weight casts; the model's own weights stay what the state dict saves.
* **weights in the autocast dtype** (``store_convolutions_in``): a model that only scores under
  bf16 (or fp16) autocast keeps its convolutions' weights in that dtype, the values autocast
  would cast them to anyway: the same outputs, half the weights' memory.
* **frames per pass** (inference): the per-frame part of a clip model runs on a few frames at a
  time, so a 25-frame clip's activations do not all live at once (``fpar predict``).
* ``torch.compile`` is opt-in (``trainer.compile``): the convolutions that dominate the time are
  oneDNN calls it does not speed up. Measured on the project's 2-core CPU, the evaluation forward
  of a ResNet-34 + ConvLSTM (bf16, B=4, T=7) took 33 s to compile and then ran 3% faster (76.6
  against 74.4 frames/s): repaid only after ~20 minutes of scoring.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# inputs that are images (one per frame): (B, T, C, H, W) clips or (B, C, H, W) stacks
IMAGE_KEYS = ("frames", "flow")


def frames_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` with every image channels-last; a (B, T, C, H, W) clip is laid out as (B, T, H, W, C),
    so that the models' ``flatten(0, 1)`` gives a channels-last (B*T, C, H, W) view, not a copy."""
    if x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    if x.dim() == 5:
        return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    return x


def channels_last_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with its image tensors channels-last (others as they are): one copy per batch."""
    return {key: frames_channels_last(value) if key in IMAGE_KEYS and isinstance(value, torch.Tensor) else value
            for key, value in batch.items()}


def prepare_model(model: nn.Module, compile_model: bool = False) -> nn.Module:
    """Channels-last weights, and ``torch.compile`` in place (same module, same state-dict keys)."""
    model.to(memory_format=torch.channels_last)
    if compile_model:
        model.compile()
    return model


def prepare_for_inference(model: nn.Module, *, channels_last: bool = True, dtype: torch.dtype | None = None,
                          frames_per_pass: int | None = None) -> nn.Module:
    """``model`` (in eval mode, never saved again) made ready to score, in place:

    * no weight takes a gradient (autocast would otherwise keep a cast copy of every weight);
    * the model's own preparation (:meth:`fpar.models.base.ClipModel.prepare_for_inference`: the
      paper's models fold their batch norms), with ``frames_per_pass``: models that read frames
      run their per-frame part on that many frames at a time, bounding the activations' memory;
    * channels-last weights unless ``channels_last=False``: a copy of every conv weight, worth it
      for batches of clips (evaluation), not for one clip (``fpar predict``);
    * with ``dtype``, the autocast dtype it will run under, its convolutions' weights and biases
      stored in that dtype (:func:`store_convolutions_in`).

    Feed it :func:`channels_last_batch` batches either way."""
    model.requires_grad_(False)
    model.prepare_for_inference(frames_per_pass)
    if channels_last:
        prepare_model(model)
    if dtype is not None:
        store_convolutions_in(model, dtype)
    return model


def store_convolutions_in(model: nn.Module, dtype: torch.dtype) -> None:
    """Every convolution's weight and bias in ``dtype``: the values autocast would cast them to at
    every call, so the outputs under autocast to ``dtype`` do not change, and a bf16 model's
    convolution weights take half the memory. The model must then run under that autocast.
    Other weights (batch norms, linear layers: the CAM reads the ImageNet ``fc`` in fp32) stay
    as they are. Each fp32 original is freed as its copy is made, unless something else holds
    it (a memory-mapped checkpoint holds its whole file: load with ``mmap=False``)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight = nn.Parameter(module.weight.to(dtype), requires_grad=False)
                if module.bias is not None:
                    module.bias = nn.Parameter(module.bias.to(dtype), requires_grad=False)

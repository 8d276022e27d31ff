"""Convolution weights reordered once for one-frame inference on a CPU (a stream's push).

PyTorch's CPU convolution (oneDNN) takes its weights in PyTorch's layout and reorders them into
oneDNN's blocked layout at every call. A batched evaluation forward pays that once per batch of
clips; a stream pays it at every frame, for every weight of the backbone, and on a 7x7 map at
batch one the reorder costs more than the convolution. :func:`pack_convolutions` reorders each
convolution's weight once, for the input shape it is called with, and calls oneDNN with it: the
same kernel on the same operands, so the outputs are identical (measured: bit for bit in fp32 and
bf16). Measured on the project's 2-core Xeon, one 512-channel 3x3 conv on a 7x7 frame: bf16
0.63 -> 0.17 ms, fp32 1.14 -> 0.73 ms; a ResNet-34 backbone's frame in the figures of
docs/streaming.md ("Speed").

The reordered weight is oneDNN's own tensor type: the model is for inference on this CPU only
(not saved, moved or exported afterwards), which is what a stream's model is.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch
from torch import nn

Result = TypeVar("Result")


class PackedConv2d(nn.Module):
    """``conv`` with its weight reordered for inputs of ``input_size`` (None: oneDNN's default
    layout). ``weight``, ``bias`` and the shape attributes stay readable as the conv's (code that
    reads a conv's weight still works); inputs are cast to the weight's dtype, as autocast casts
    a conv's inputs."""

    def __init__(self, conv: "nn.Conv2d | PackedConv2d", input_size: tuple[int, ...] | None) -> None:
        super().__init__()
        self.input_size = input_size
        self.weight, self.bias = conv.weight, conv.bias
        self.in_channels, self.out_channels, self.kernel_size = conv.in_channels, conv.out_channels, conv.kernel_size
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.packed = torch.ops.mkldnn._reorder_convolution_weight(
            conv.weight.detach(), list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups,
            None if input_size is None else list(input_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(
            x.to(self.packed.dtype), self.packed, self.bias, list(self.padding), list(self.stride),
            list(self.dilation), self.groups, "none", [], "")


def packable(module: nn.Module) -> bool:
    """A plain 2-d convolution with zero padding given as numbers, on the CPU: what oneDNN runs."""
    return (type(module) is nn.Conv2d and module.padding_mode == "zeros" and not isinstance(module.padding, str)
            and module.weight.device.type == "cpu")


def shapeless(module: nn.Module) -> bool:
    """A :class:`PackedConv2d` packed before anything called it: oneDNN's default layout."""
    return isinstance(module, PackedConv2d) and module.input_size is None


def pack_convolutions(model: nn.Module, run: Callable[[], Result]) -> Result:
    """``run()``'s result, after which every plain convolution of ``model`` is a
    :class:`PackedConv2d`, for the input shape ``run`` called it with (oneDNN picks the layout
    for that shape). A conv ``run`` did not call as a module gets oneDNN's default layout: one the
    model applies itself, such as the ConvLSTM's input conv, or one a later part runs (a stream's
    flow network, called by its answers), which a later call packs again for its shape. Where
    oneDNN cannot reorder (no oneDNN in this build of PyTorch, or bf16 weights on a CPU without
    bf16 conversion instructions) the model is left as it was: slower, not different."""
    shapes: dict[nn.Module, tuple[int, ...]] = {}

    def record(conv: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        shapes.setdefault(conv, tuple(args[0].shape))

    hooks = [module.register_forward_pre_hook(record) for module in model.modules()
             if packable(module) or shapeless(module)]
    try:
        result = run()
    finally:
        for hook in hooks:
            hook.remove()
    if not torch.backends.mkldnn.is_available():
        return result
    replacements = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if packable(child) or (shapeless(child) and child in shapes):
                try:
                    replacements.append((parent, name, PackedConv2d(child, shapes.get(child))))
                except RuntimeError:  # oneDNN refuses this dtype on this CPU: leave every conv as it is
                    return result
    for parent, name, packed in replacements:
        setattr(parent, name, packed)
    return result

"""Every registry model at small sizes (ResNet-18, 5 classes, 112x112, T=3, a small ConvLSTM) and
random batches for it: what the model, stage, pretrained-weight and interop tests build."""

from __future__ import annotations

import torch

from fpar.models import build_model

B, T, SIZE, CLASSES = 2, 3, 112, 5
GRID = 4  # layer4's map for a 112x112 input
MEM = 32  # a small ConvLSTM keeps these tests fast; the parity tests cover the 512 default
SMALL = {"backbone": "resnet18", "num_classes": CLASSES, "input_size": SIZE}


def small_model(name: str, **kwargs):
    """ResNet-18, 5 classes, 112x112 and a small ConvLSTM wherever the model has one."""
    memory = {} if name == "flow_resnet" else {"mem_size": MEM}
    return build_model(name, **{**SMALL, **memory, **kwargs})


def make_batch(name: str, stack_size: int = 5, size: int = SIZE, steps: int = T) -> dict[str, torch.Tensor]:
    batch = {"frames": torch.randn(B, steps, 3, size, size)}
    if name == "two_in_one":
        batch["flow"] = torch.randn(B, steps, 2, size, size)
    elif name in ("flow_resnet", "two_stream"):
        batch["flow"] = torch.randn(B, 2 * stack_size, size, size)
    return batch

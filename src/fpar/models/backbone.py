"""ResNet-18/34 backbones with torchvision's state-dict keys and Ego-RNN's two layer4 outputs.

He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), as torchvision builds it,
so torchvision's published ImageNet weights load key for key. Besides the 1000 ImageNet logits
(Ego-RNN keeps the ImageNet head: the attention reads it) the backbone hands on two maps from
layer4's last block (docs/method.md §5):

* ``features``: the block's output after its last BN, the residual sum and ReLU (``f``);
* ``features_nobn``: conv2's output plus the residual, with neither BN nor ReLU (``f_nobn``).

The flow variant takes ``2L`` input channels and has no ImageNet head (its classifier lives in the
flow model).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from fpar.errors import FparError
from fpar.models.vocabulary import BLOCKS_PER_STAGE

IMAGENET_CLASSES = 1000
FEATURE_CHANNELS = 512


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Make ``conv`` compute ``bn(conv(x))`` (``bn`` in eval mode), in place: ``bn`` is then
    ``x * a + b`` per channel, with ``a = gamma / sqrt(var + eps)`` and ``b = beta - mean * a``, so
    the conv's weights are scaled by ``a`` and it gains the bias ``b``. In place rather than as a
    new conv (PyTorch's ``fuse_conv_bn_eval``) so that weights memory-mapped from a checkpoint are
    changed page by page (copy on write) instead of held twice."""
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        bias = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            bias += conv.bias * scale
        conv.bias = nn.Parameter(bias, requires_grad=conv.weight.requires_grad)


def feature_grid(input_size: int) -> int:
    """Side of layer4's map for a square input: conv1, maxpool and three strided stages each halve it
    (rounding up), so 224 -> 7 and 112 -> 4."""
    side = input_size
    for _ in range(5):
        side = (side + 1) // 2
    return side


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34's block)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward_with_nobn(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output and Ego-RNN's ``f_nobn`` (conv2 output + residual, no BN, no ReLU)."""
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        # bn2 must not run in place: f_nobn needs the raw conv2 output as well
        return self.relu(self.bn2(out) + residual), out + residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)

    def fold_batch_norms(self, keep_bn2: bool = False) -> None:
        """See :meth:`ResNet.fold_batch_norms`; ``keep_bn2``: the block must still give ``f_nobn``,
        conv2's output before its BN."""
        fold_batch_norm(self.conv1, self.bn1)
        self.bn1 = nn.Identity()
        if not keep_bn2:
            fold_batch_norm(self.conv2, self.bn2)
            self.bn2 = nn.Identity()
        if self.downsample is not None:
            fold_batch_norm(*self.downsample)
            self.downsample = self.downsample[:1]


class BackboneOutput(NamedTuple):
    logits: torch.Tensor | None  # (N, 1000) ImageNet logits; None without the ImageNet head
    pooled: torch.Tensor  # (N, 512) average of ``features`` over positions
    features: torch.Tensor  # (N, 512, h, w) ``f``
    features_nobn: torch.Tensor  # (N, 512, h, w) ``f_nobn``


class ResNet(nn.Module):
    """torchvision-keyed ResNet (``conv1, bn1, layer1..4, fc``) that also returns layer4's maps.

    ``in_channels=2L`` gives the flow variant; ``imagenet_head=False`` drops ``fc``.
    The pooling is adaptive, so any input size works (a 112x112 input gives a 4x4 map).
    """

    def __init__(self, arch: str = "resnet34", in_channels: int = 3, imagenet_head: bool = True):
        super().__init__()
        if arch not in BLOCKS_PER_STAGE:
            raise FparError(f"unknown backbone '{arch}': choose one of {sorted(BLOCKS_PER_STAGE)}")
        self.arch = arch
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        blocks = BLOCKS_PER_STAGE[arch]
        self.layer1 = self._make_stage(64, 64, blocks[0], stride=1)
        self.layer2 = self._make_stage(64, 128, blocks[1], stride=2)
        self.layer3 = self._make_stage(128, 256, blocks[2], stride=2)
        self.layer4 = self._make_stage(256, FEATURE_CHANNELS, blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(FEATURE_CHANNELS, IMAGENET_CLASSES) if imagenet_head else None
        self._init_weights()

    @staticmethod
    def _make_stage(in_channels: int, channels: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_channels, channels, stride)]
        layers += [BasicBlock(channels, channels) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        # torchvision's initialisation, so a model trained from scratch starts where theirs does
        if self.conv1.weight.is_meta:
            # built without memory to be given loaded weights (checkpoint.load_model): random
            # draws on meta tensors would only import torch's compiler stack (~80 MB, ~1 s)
            return
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def fold_batch_norms(self, stem: bool = True) -> None:
        """Fold every frozen batch norm into the convolution before it (:func:`fold_batch_norm`),
        in place, for inference: the same function (in fp32 to ~1e-6 relative) with one memory
        pass over every activation less, so evaluation runs ~15% faster. The state dict changes
        (BN keys go, convs gain biases), so only a model that is not saved any more is folded.
        Kept: layer4's last ``bn2`` (``f_nobn`` reads conv2's raw output) and, with
        ``stem=False``, ``bn1`` (the two-in-one model modulates conv1's output before its BN).
        """
        if self.training:
            raise FparError("batch norms fold only in eval mode (their running statistics are then fixed)")
        if stem:
            fold_batch_norm(self.conv1, self.bn1)
            self.bn1 = nn.Identity()
        last = self.layer4[-1]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                block.fold_batch_norms(keep_bn2=block is last)

    def forward_from_conv1(self, x: torch.Tensor) -> BackboneOutput:
        """Everything after conv1, for callers that change conv1's output (two-in-one modulation)."""
        x = self.maxpool(self.relu(self.bn1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        for block in self.layer4[:-1]:
            x = block(x)
        features, features_nobn = self.layer4[-1].forward_with_nobn(x)
        pooled = self.avgpool(features).flatten(1)
        logits = self.fc(pooled) if self.fc is not None else None
        return BackboneOutput(logits, pooled, features, features_nobn)

    def forward(self, x: torch.Tensor) -> BackboneOutput:
        return self.forward_from_conv1(self.conv1(x))

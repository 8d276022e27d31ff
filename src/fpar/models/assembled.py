"""The paper's models, assembled from the blocks (docs/method.md §5-§9).

Every model takes a batch-first dict and returns a dict: ``logits`` (B, classes), ``features``
(the vector the classifier reads) and, where the model has them, ``attention`` (B, T, h, w),
``ms`` (B, T, h*w) and the two-in-one modulation tensors. The backbone sees all B*T frames in one
call (for inference, ``frames_per_pass`` at a time); only the ConvLSTM steps through time.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from fpar.models.attention import class_activation_attention
from fpar.models.backbone import FEATURE_CHANNELS, ResNet, feature_grid
from fpar.models.convlstm import ConvLSTM
from fpar.models.heads import MSHead, classifier
from fpar.models.motion import FLOW_CHANNELS, MotionModulation


class RGBConvLSTM(nn.Module):
    """Ego-RNN's RGB stream and its descendants (Sudhakaran & Lanz, BMVC 2018; the report §3-§7).

    ResNet -> [CAM attention] -> ConvLSTM -> average of the final cell state -> Dropout + Linear.
    Options switch on the report's additions: the MS self-supervised head on ``f`` and the
    two-in-one flow modulation of conv1 (``motion``), which then also reads ``batch["flow"]``
    (B, T, 2, H, W).
    """

    def __init__(self, num_classes: int, arch: str = "resnet34", mem_size: int = 512, attention: bool = True,
                 ms_head: str | None = None, ms_input_sigmoid: bool = False, input_size: int = 224,
                 dropout: float = 0.7, motion: bool = False, return_modulation: bool = False):
        super().__init__()
        self.attention = attention
        self.return_modulation = return_modulation
        self.backbone = ResNet(arch)
        self.motion = MotionModulation(self.backbone.conv1.out_channels) if motion else None
        self.convlstm = ConvLSTM(FEATURE_CHANNELS, mem_size)
        self.ms_head = MSHead(FEATURE_CHANNELS, feature_grid(input_size), ms_input_sigmoid) if ms_head else None
        self.classifier = classifier(mem_size, num_classes, dropout)
        # frames the per-frame part (backbone, attention, MS head) takes at a time; None: all B*T
        # at once. For inference only (engine.compute.prepare_for_inference): with autograd every
        # activation is kept for backward whatever the slicing.
        self.frames_per_pass: int | None = None

    def fold_batch_norms(self) -> None:
        """For inference: see :meth:`ResNet.fold_batch_norms`. The two-in-one model keeps conv1's BN,
        which reads the modulated conv1 output."""
        self.backbone.fold_batch_norms(stem=self.motion is None)

    def cache_frozen_backbone(self, dtype: torch.dtype) -> None:
        """While the backbone is frozen (stage 1), run a copy of it whose batch norms are folded
        (:meth:`ResNet.fold_batch_norms`) and whose weights are stored in ``dtype``, the dtype
        the convolutions run in (autocast's): the same function without converting ~85 MB of
        weights and normalising every activation again at each step (~4% of a stage-1 step here).
        The copy is not a submodule, so the state dict, checkpoints and optimiser keep the
        model's own weights; it is used only while the backbone stays frozen and the convs run
        in ``dtype``. Make it after the weights are final (loaded, restored)."""
        copy_ = copy.deepcopy(self.backbone).eval()
        copy_.fold_batch_norms(stem=self.motion is None)
        self.__dict__["_frozen_backbone"] = copy_.to(dtype)

    def drop_frozen_backbone(self) -> None:
        self.__dict__.pop("_frozen_backbone", None)

    def _backbone_now(self) -> ResNet:
        """The backbone to run: the frozen copy where it computes what ``backbone`` would."""
        frozen = self.__dict__.get("_frozen_backbone")
        if frozen is None or self.backbone_trains():
            return self.backbone
        device = frozen.conv1.weight.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
        return frozen if dtype == frozen.conv1.weight.dtype else self.backbone

    def backbone_trains(self) -> bool:
        """Whether any backbone (or motion) weight takes a gradient."""
        parts = [self.backbone] if self.motion is None else [self.backbone, self.motion]
        return any(p.requires_grad for part in parts for p in part.parameters())

    def extract(self, batch: dict[str, torch.Tensor], explain: bool = False) -> dict[str, torch.Tensor]:
        """Everything but the logits: ``features`` (B, mem_size) and the per-frame extras; with
        ``explain`` (or built with ``return_modulation``) also the two-in-one modulation maps."""
        frames = batch["frames"]
        batch_size, steps = frames.shape[:2]
        frames = frames.flatten(0, 1)
        flow = batch["flow"].flatten(0, 1) if self.motion is not None else None
        # Everything before the ConvLSTM is per frame, so it may run on a few frames at a time
        # (frames_per_pass, set for inference): the same outputs, with the activations of one
        # slice alive instead of all B*T frames' (conv1's alone are 3.2 MB per frame in fp32).
        # Unsliced, the frame count is never turned into a Python int: an exported graph keeps its batch
        # axis dynamic (docs/deployment.md, ONNX export).
        per_pass = self.frames_per_pass
        slices = [self._per_frame(frames, flow, explain)] if per_pass is None else [
            self._per_frame(frames[i:i + per_pass], None if flow is None else flow[i:i + per_pass], explain)
            for i in range(0, frames.shape[0], per_pass)]
        per_frame = slices[0] if len(slices) == 1 else {key: torch.cat([part[key] for part in slices])
                                                         for key in slices[0]}
        lstm_input = per_frame.pop("lstm_input")
        out = {name: value.unflatten(0, (batch_size, steps)) for name, value in per_frame.items()}
        _, cell = self.convlstm(lstm_input.unflatten(0, (batch_size, steps)))
        # the classifier reads the final cell state c, not h (docs/method.md §6)
        out["features"] = cell.mean(dim=(2, 3))
        return out

    def _per_frame(self, frames: torch.Tensor, flow: torch.Tensor | None, explain: bool) -> dict[str, torch.Tensor]:
        """For N frames (N, 3, H, W): the ConvLSTM's input (``lstm_input``) and the per-frame outputs
        (``attention``, ``ms``, the modulation maps), each with N first."""
        out: dict[str, torch.Tensor] = {}
        backbone = self._backbone_now()
        # A frozen backbone (stage 1) runs without autograd: nothing is recorded for backward, so
        # each activation is freed as soon as the next layer has read it.
        with contextlib.nullcontext() if frames.requires_grad or self.backbone_trains() else torch.no_grad():
            if self.motion is not None:
                modulation = self.motion(backbone.conv1(frames), flow)
                backbone_out = backbone.forward_from_conv1(modulation.post)
                if self.return_modulation or explain:
                    out.update(modulation._asdict())
            else:
                backbone_out = backbone(frames)

        if self.attention:
            attention = class_activation_attention(backbone_out.logits, backbone_out.features, self.backbone.fc.weight)
            # Ego-RNN weights the un-normalised map: the ConvLSTM reads f_nobn, not f
            out["lstm_input"] = backbone_out.features_nobn * attention.unsqueeze(1)
            out["attention"] = attention
        else:
            out["lstm_input"] = backbone_out.features
        if self.ms_head is not None:
            out["ms"] = self.ms_head(backbone_out.features)
        return out

    def forward(self, batch: dict[str, torch.Tensor], explain: bool = False) -> dict[str, torch.Tensor]:
        out = self.extract(batch, explain)
        out["logits"] = self.classifier(out["features"])
        return out


class FlowResNet(nn.Module):
    """Temporal stream: ResNet on a stack of L flow pairs (2L channels, x1,y1,x2,y2,...)
    -> average pool -> Dropout + Linear (Simonyan & Zisserman 2014, as Ego-RNN trains it)."""

    def __init__(self, num_classes: int, arch: str = "resnet34", stack_size: int = 5, dropout: float = 0.5):
        super().__init__()
        self.backbone = ResNet(arch, in_channels=FLOW_CHANNELS * stack_size, imagenet_head=False)
        self.classifier = classifier(FEATURE_CHANNELS, num_classes, dropout)

    def fold_batch_norms(self) -> None:
        """For inference: see :meth:`ResNet.fold_batch_norms`."""
        self.backbone.fold_batch_norms()

    def extract(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"features": self.backbone(batch["flow"]).pooled}

    def forward(self, batch: dict[str, torch.Tensor], explain: bool = False) -> dict[str, torch.Tensor]:
        # ``explain``: the flow network has no maps beyond its outputs
        out = self.extract(batch)
        out["logits"] = self.classifier(out["features"])
        return out


class TwoStream(nn.Module):
    """Late fusion of the flow and RGB-attention streams: cat[flow 512, RGB mem_size] (flow first)
    -> Dropout + Linear. The streams' own classifiers are kept (so trained stream checkpoints load
    as they are) but not used."""

    def __init__(self, num_classes: int, arch: str = "resnet34", mem_size: int = 512, stack_size: int = 5,
                 dropout: float = 0.5):
        super().__init__()
        self.flow_model = FlowResNet(num_classes, arch, stack_size)
        self.rgb_model = RGBConvLSTM(num_classes, arch, mem_size, attention=True)
        self.classifier = classifier(FEATURE_CHANNELS + mem_size, num_classes, dropout)

    def fold_batch_norms(self) -> None:
        """For inference: see :meth:`ResNet.fold_batch_norms`."""
        self.flow_model.fold_batch_norms()
        self.rgb_model.fold_batch_norms()

    def forward(self, batch: dict[str, torch.Tensor], explain: bool = False) -> dict[str, torch.Tensor]:
        rgb = self.rgb_model.extract(batch, explain)
        features = torch.cat([self.flow_model.extract(batch)["features"], rgb["features"]], dim=1)
        return {"logits": self.classifier(features), "features": features, "attention": rgb["attention"]}

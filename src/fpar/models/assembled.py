"""The paper's models, assembled from the blocks (docs/method.md §5-§9): the RGB ConvLSTM family
(attention, MS head, two-in-one motion modulation) here, one file per other family: the flow
stream (:mod:`fpar.models.flow_stream`) and their late fusion (:mod:`fpar.models.two_stream`).

Every model takes a batch-first dict and returns a dict: ``logits`` (B, classes), ``features``
(the vector the classifier reads) and, where the model has them, ``attention`` (B, T, h, w),
``ms`` (B, T, h*w) and the two-in-one modulation tensors. The backbone sees all B*T frames in one
call (for inference, ``frames_per_pass`` at a time); only the ConvLSTM steps through time.

Each model also says what the engine needs to know of it (:class:`fpar.models.base.ClipModel`):
its inputs, what trains in each stage of docs/method.md §10, its loss terms, and how it prepares
for inference.

| stage | trains |
|---|---|
| ``rgb_stage1`` | ConvLSTM, classifier (backbone frozen, eval) |
| ``rgb_stage2`` | + conv1/conv2 of layer4's blocks (BNs frozen), backbone ``fc.weight`` (with attention), MS head |
| ``two_in_one_stage3`` | the ``rgb_stage2`` set + motion condition/modulation (+ conv1 with ``train_conv1``) |
| ``flow`` | the whole flow network |
| ``two_stream`` | fusion classifier; RGB ConvLSTM, layer4 convs, ``fc.weight``; flow layer4 (group ``flow_layer4``) |

Two-in-one models train stages 1 and 2 with the RGB rules: their motion layers stay frozen.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch
from torch import nn

from fpar.models.attention import class_activation_attention
from fpar.models.backbone import FEATURE_CHANNELS, ResNet, feature_grid
from fpar.models.base import ClipModel, Shape
from fpar.models.convlstm import ConvLSTM
from fpar.models.heads import MSHead, classifier
from fpar.models.losses import LossSettings
from fpar.models.motion import FLOW_CHANNELS, MotionModulation
from fpar.models.windows import WindowRecurrence


def _layer4_convs(backbone: ResNet) -> list[nn.Module]:
    """conv1/conv2 of every layer4 block: the shortcut's conv and all BNs stay frozen."""
    return [conv for block in backbone.layer4 for conv in (block.conv1, block.conv2)]


def _params(*parts: nn.Module | nn.Parameter) -> list[nn.Parameter]:
    return [p for part in parts for p in ([part] if isinstance(part, nn.Parameter) else part.parameters())]


class RGBConvLSTM(WindowRecurrence, ClipModel):
    """Ego-RNN's RGB stream and its descendants (Sudhakaran & Lanz, BMVC 2018; the report §3-§7).

    ResNet -> [CAM attention] -> ConvLSTM -> average of the final cell state -> Dropout + Linear.
    Options switch on the report's additions: the MS self-supervised head on ``f`` and the
    two-in-one flow modulation of conv1 (``motion``), which then also reads ``batch["flow"]``
    (B, T, 2, H, W).
    """

    def __init__(self, num_classes: int, arch: str = "resnet34", mem_size: int = 512, attention: bool = True,
                 ms_head: str | None = None, ms_input_sigmoid: bool = False, input_size: int = 224,
                 dropout: float = 0.7, motion: bool = False, return_modulation: bool = False,
                 heads: dict[str, int] | None = None):
        super().__init__()
        self.attention = attention
        self.input_size = input_size
        self.return_modulation = return_modulation
        self.backbone = ResNet(arch)
        self.motion = MotionModulation(self.backbone.conv1.out_channels) if motion else None
        self.convlstm = ConvLSTM(FEATURE_CHANNELS, mem_size)
        self.ms_head = MSHead(FEATURE_CHANNELS, feature_grid(input_size), ms_input_sigmoid) if ms_head else None
        self.classifier = classifier(mem_size, num_classes, dropout)
        self.add_label_heads(mem_size, heads, dropout)
        # frames the per-frame part (backbone, attention, MS head) takes at a time; None: all B*T
        # at once. For inference only (prepare_for_inference): with autograd every activation is
        # kept for backward whatever the slicing.
        self.frames_per_pass: int | None = None

    def input_spec(self) -> dict[str, Shape]:
        size = self.input_size
        spec: dict[str, Shape] = {"frames": ("B", "T", 3, size, size)}
        if self.motion is not None:
            spec["flow"] = ("B", "T", FLOW_CHANNELS, size, size)
        return spec

    # --- training ----------------------------------------------------------------------------

    def training_stages(self) -> tuple[str, ...]:
        stages = ("rgb_stage1", "rgb_stage2")
        return stages if self.motion is None else (*stages, "two_in_one_stage3")

    def stage_parameters(self, stage: str, train_conv1: bool = False, **options: Any) -> dict[str, list[nn.Parameter]]:
        self.check_stage(stage)
        parts: list[nn.Module | nn.Parameter] = [self.convlstm, *self.classification_heads()]
        if stage != "rgb_stage1":
            parts += _layer4_convs(self.backbone)
            if self.attention:
                # fc matters only through the attention, which reads its weight rows (not the bias,
                # and the argmax passes no gradient): a parameter without gradient would stall DDP
                parts.append(self.backbone.fc.weight)
            if self.ms_head is not None:
                parts.append(self.ms_head)
        if stage == "two_in_one_stage3":
            parts.append(self.motion)
            if train_conv1:
                parts.append(self.backbone.conv1)
        return {"main": _params(*parts)}

    def set_stage_mode(self, stage: str, **options: Any) -> None:
        # the backbone's BNs are never trained in these stages: keep their ImageNet statistics
        self.backbone.eval()
        if self.motion is not None and stage != "two_in_one_stage3":
            self.motion.eval()

    def loss_inputs(self, settings: LossSettings) -> tuple[str, ...]:
        if settings.ms is None:
            return self.classification_inputs()
        if self.ms_head is None:
            return super().loss_inputs(settings)
        return (*self.classification_inputs(), "mmaps")

    def loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any],
             settings: LossSettings) -> dict[str, torch.Tensor]:
        terms = super().loss(out, batch, settings)
        if settings.ms is not None:
            terms["ms"] = self.ms_head.loss(out["ms"], batch["mmaps"], settings.ms)
        return terms

    def begin_training(self, compute_dtype: torch.dtype) -> None:
        if not self.backbone_trains():
            self.cache_frozen_backbone(compute_dtype)

    def end_training(self) -> None:
        self.__dict__.pop("_frozen_backbone", None)

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

    # --- inference ---------------------------------------------------------------------------

    def explanation_inputs(self) -> tuple[str, ...]:
        return ("mmaps",) if self.ms_head is not None else ()

    def prepare_for_inference(self, frames_per_pass: int | None = None) -> None:
        """Batch norms folded (:meth:`ResNet.fold_batch_norms`; the two-in-one model keeps conv1's
        BN, which reads the modulated conv1 output) and the per-frame part sliced."""
        self.backbone.fold_batch_norms(stem=self.motion is None)
        self.frames_per_pass = frames_per_pass

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
        per_frame = self._per_frame_sliced(frames, flow, explain)
        lstm_input = per_frame.pop("lstm_input")
        out = {name: value.unflatten(0, (batch_size, steps)) for name, value in per_frame.items()}
        _, cell = self.convlstm(lstm_input.unflatten(0, (batch_size, steps)))
        # the classifier reads the final cell state c, not h (docs/method.md §6)
        out["features"] = cell.mean(dim=(2, 3))
        return out

    def _per_frame_sliced(self, frames: torch.Tensor, flow: torch.Tensor | None,
                          explain: bool) -> dict[str, torch.Tensor]:
        """:meth:`_per_frame` on all N frames. Everything before the ConvLSTM is per frame, so it may
        run on a few frames at a time (``frames_per_pass``, set for inference): the same outputs,
        with the activations of one slice alive instead of all N frames' (conv1's alone are 3.2 MB
        per frame in fp32). Unsliced, the frame count is never turned into a Python int: an exported
        graph keeps its batch axis dynamic (docs/deployment.md, ONNX export)."""
        per_pass = self.frames_per_pass
        if per_pass is None:
            return self._per_frame(frames, flow, explain)
        slices = [self._per_frame(frames[i:i + per_pass], None if flow is None else flow[i:i + per_pass], explain)
                  for i in range(0, frames.shape[0], per_pass)]
        return {key: torch.cat([part[key] for part in slices]) for key in slices[0]}

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
        out.update(self.classify(out["features"]))
        return out

    # --- streaming (docs/streaming.md): forward(batch) == decode_window(encode_frames(batch), batch)

    def streams_per_frame(self) -> bool:
        return True

    def encode_frames(self, batch: dict[str, torch.Tensor], explain: bool = False) -> dict[str, torch.Tensor]:
        """The per-frame part of :meth:`forward` (for inference: no autograd) on the batch's frames
        (B, T, 3, H, W) (two-in-one: and their flow pairs (B, T, 2, H, W)): ``lstm_gates``, the
        ConvLSTM input's share of its gates (it does not depend on the state), and the per-frame
        outputs (``attention``, ``ms``, the modulation maps), each (B, T, ...). Frames are
        independent here, so a stream encodes each new frame once and keeps the last T encodings."""
        frames = batch["frames"]
        batch_size, steps = frames.shape[:2]
        frames = frames.flatten(0, 1)
        flow = batch["flow"].flatten(0, 1) if self.motion is not None else None
        encoded = self._per_frame_sliced(frames, flow, explain)
        encoded["lstm_gates"] = self.convlstm.input_gates(encoded.pop("lstm_input"))
        return {name: value.unflatten(0, (batch_size, steps)) for name, value in encoded.items()}

    def decode_window(self, encoded: dict[str, torch.Tensor],
                      batch: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The recurrent part of :meth:`forward` over a window of :meth:`encode_frames` outputs
        (B, T, ...), returning what ``forward`` returns. ``batch`` (the inputs without a time
        axis) is not read: everything this model reads is per frame."""
        out = {name: value for name, value in encoded.items() if name != "lstm_gates"}
        out["features"] = self.window_cell(encoded["lstm_gates"]).mean(dim=(2, 3))  # as extract reads it
        out.update(self.classify(out["features"]))
        return out


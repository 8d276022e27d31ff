"""Late fusion of the flow and RGB-attention streams (docs/method.md §5, the ``two_stream`` stage)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fpar.models.assembled import RGBConvLSTM, _layer4_convs, _params
from fpar.models.backbone import FEATURE_CHANNELS
from fpar.models.base import ClipModel, Shape
from fpar.models.flow_stream import FlowResNet
from fpar.models.heads import classifier


class TwoStream(ClipModel):
    """Late fusion of the flow and RGB-attention streams: cat[flow 512, RGB mem_size] (flow first)
    -> Dropout + Linear. The streams' own classifiers are kept (so trained stream checkpoints load
    as they are) but not used."""

    def __init__(self, num_classes: int, arch: str = "resnet34", mem_size: int = 512, stack_size: int = 5,
                 dropout: float = 0.5, input_size: int = 224, heads: dict[str, int] | None = None):
        super().__init__()
        self.flow_model = FlowResNet(num_classes, arch, stack_size, input_size=input_size)
        self.rgb_model = RGBConvLSTM(num_classes, arch, mem_size, attention=True, input_size=input_size)
        self.classifier = classifier(FEATURE_CHANNELS + mem_size, num_classes, dropout)
        self.add_label_heads(FEATURE_CHANNELS + mem_size, heads, dropout)

    def input_spec(self) -> dict[str, Shape]:
        return {**self.rgb_model.input_spec(), **self.flow_model.input_spec()}

    def training_stages(self) -> tuple[str, ...]:
        return ("two_stream",)

    def stage_parameters(self, stage: str, **options: Any) -> dict[str, list[nn.Parameter]]:
        self.check_stage(stage)
        rgb = self.rgb_model
        return {"main": _params(*self.classification_heads(), rgb.convlstm, *_layer4_convs(rgb.backbone),
                                rgb.backbone.fc.weight),
                "flow_layer4": _params(self.flow_model.backbone.layer4)}

    def set_stage_mode(self, stage: str, **options: Any) -> None:
        self.rgb_model.eval()
        self.flow_model.eval()
        self.flow_model.backbone.layer4.train()  # trained as a whole, BNs included

    def prepare_for_inference(self, frames_per_pass: int | None = None) -> None:
        self.flow_model.prepare_for_inference(frames_per_pass)
        self.rgb_model.prepare_for_inference(frames_per_pass)

    def forward(self, batch: dict[str, torch.Tensor], explain: bool = False) -> dict[str, torch.Tensor]:
        rgb = self.rgb_model.extract(batch, explain)
        features = torch.cat([self.flow_model.extract(batch)["features"], rgb["features"]], dim=1)
        return {**self.classify(features), "features": features, "attention": rgb["attention"]}

    # --- streaming (docs/streaming.md): forward(batch) == decode_window(encode_frames(batch), batch)

    def streams_per_frame(self) -> bool:
        return True

    def encode_frames(self, batch: dict[str, torch.Tensor], explain: bool = False) -> dict[str, torch.Tensor]:
        """The RGB stream's per-frame part (:meth:`RGBConvLSTM.encode_frames`); the flow stream
        reads a whole stack, in :meth:`decode_window`."""
        return self.rgb_model.encode_frames(batch, explain)

    def decode_window(self, encoded: dict[str, torch.Tensor],
                      batch: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The RGB stream's ConvLSTM over the window's encodings and the flow stream on
        ``batch["flow"]`` (the last L flow pairs, B x 2L x H x W), fused as :meth:`forward` fuses them."""
        flow = self.flow_model.extract(batch or {})["features"]
        features = torch.cat([flow, self.rgb_model.window_cell(encoded["lstm_gates"]).mean(dim=(2, 3))], dim=1)
        return {**self.classify(features), "features": features, "attention": encoded["attention"]}

    def carries_windows(self) -> bool:
        return True

    def advance_windows(self, encoded: dict[str, torch.Tensor], state: dict[str, torch.Tensor] | None,
                        start: bool = True) -> dict[str, torch.Tensor]:
        """The RGB stream's windows (:meth:`RGBConvLSTM.advance_windows`)."""
        return self.rgb_model.advance_windows(encoded, state, start)

    def decode_windows(self, cell: torch.Tensor, newest: dict[str, torch.Tensor],
                       batch: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """As :meth:`decode_window`, with the RGB stream's final cell state ``cell`` given."""
        flow = self.flow_model.extract(batch or {})["features"]
        features = torch.cat([flow, cell.mean(dim=(2, 3))], dim=1)
        return {**self.classify(features), "features": features, "attention": newest["attention"]}

"""The temporal stream: a ResNet on a stack of flow pairs (docs/method.md §5, the ``flow`` stage)."""

from __future__ import annotations

import torch

from fpar.models.backbone import FEATURE_CHANNELS, ResNet
from fpar.models.base import ClipModel, Shape
from fpar.models.heads import classifier
from fpar.models.motion import FLOW_CHANNELS


class FlowResNet(ClipModel):
    """Temporal stream: ResNet on a stack of L flow pairs (2L channels, x1,y1,x2,y2,...)
    -> average pool -> Dropout + Linear (Simonyan & Zisserman 2014, as Ego-RNN trains it)."""

    def __init__(self, num_classes: int, arch: str = "resnet34", stack_size: int = 5, dropout: float = 0.5,
                 input_size: int = 224, heads: dict[str, int] | None = None):
        super().__init__()
        self.input_size = input_size
        self.stack_size = stack_size
        self.backbone = ResNet(arch, in_channels=FLOW_CHANNELS * stack_size, imagenet_head=False)
        self.classifier = classifier(FEATURE_CHANNELS, num_classes, dropout)
        self.add_label_heads(FEATURE_CHANNELS, heads, dropout)

    def input_spec(self) -> dict[str, Shape]:
        return {"flow": ("B", FLOW_CHANNELS * self.stack_size, self.input_size, self.input_size)}

    def training_stages(self) -> tuple[str, ...]:
        return ("flow",)

    def prepare_for_inference(self, frames_per_pass: int | None = None) -> None:
        """Batch norms folded (:meth:`ResNet.fold_batch_norms`)."""
        self.backbone.fold_batch_norms()

    def extract(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"features": self.backbone(batch["flow"]).pooled}

    def forward(self, batch: dict[str, torch.Tensor], explain: bool = False) -> dict[str, torch.Tensor]:
        # ``explain``: the flow network has no maps beyond its outputs
        out = self.extract(batch)
        out.update(self.classify(out["features"]))
        return out

    # --- streaming (docs/streaming.md): forward(batch) == decode_window(encode_frames(batch), batch)

    def streams_per_frame(self) -> bool:
        return True

    def encode_frames(self, batch: dict[str, torch.Tensor], explain: bool = False) -> dict[str, torch.Tensor]:
        """No per-frame part: the network reads a whole flow stack at once (in :meth:`decode_window`)."""
        return {}

    def decode_window(self, encoded: dict[str, torch.Tensor],
                      batch: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """:meth:`forward` on ``batch["flow"]``, the stack of the last L flow pairs (B, 2L, H, W)."""
        return self.forward(batch or {})


"""Class-activation-map spatial attention (Sudhakaran & Lanz, "Attention is all we need", BMVC 2018).

docs/method.md §5: ``c*`` is the argmax of the backbone's ImageNet logits; ``cam = w_fc[c*] . f`` at
every position (no bias: only the class's direction matters); a softmax over the positions turns
it into a map that sums to one per frame.
"""

from __future__ import annotations

import torch


def class_activation_attention(logits: torch.Tensor, features: torch.Tensor, fc_weight: torch.Tensor) -> torch.Tensor:
    """Attention map (N, h, w) for ``features`` (N, C, h, w) from the winning class's ``fc`` row.

    ``fc_weight`` (classes, C) is the backbone's own ``fc.weight``, so training ``fc`` (stage 2)
    moves the attention.
    """
    batch, channels, height, width = features.shape
    class_weights = fc_weight[logits.argmax(dim=1)]  # (N, C)
    # In fp32 even under autocast: the softmax turns the CAM's absolute rounding error into a
    # relative error of the map (bf16's 0.4% of a CAM of 100 would scale weights by e^0.4);
    # a 1 x C by C x hw product per frame costs nothing next to the backbone.
    with torch.autocast(features.device.type, enabled=False):
        cam = torch.bmm(class_weights.float().unsqueeze(1), features.float().reshape(batch, channels, height * width))
        return torch.softmax(cam.squeeze(1), dim=1).reshape(batch, height, width)

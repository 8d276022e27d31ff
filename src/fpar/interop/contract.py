"""What each reference model kind is and reads: the fpar model it becomes and its input clips.

A reference ``.pth`` holds weights only. The model it becomes is :data:`KINDS`; the clips it was
trained on (which modalities, flow stacked or paired with frames) are :func:`reference_clip`, the
contract ``fpar import-reference`` writes into the checkpoint beside the weights, read from the
model's own input spec. This module
imports no torch: the CLI offers :data:`KINDS` as choices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fpar.data.settings import ClipSettings

if TYPE_CHECKING:
    from fpar.models.base import ClipModel

# reference kind -> (registry model, options the kind implies)
KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "rgb_convlstm": ("rgb_convlstm", {}),
    "rgb_attention": ("rgb_attention", {}),
    "flow_resnet34": ("flow_resnet", {}),
    "two_stream": ("two_stream", {}),
    # ego-rnn-ms-task squashes f with a sigmoid before its MS head; the imported model does too
    "rgb_ms_task": ("rgb_ms", {"ms_input_sigmoid": True}),
    "two_in_one": ("two_in_one", {}),
}

def reference_clip(model: ClipModel) -> ClipSettings:
    """The clip settings a converted reference model is evaluated with: the reference's sampling
    and crop (fpar's defaults) with the inputs the model reads (its ``input_spec``)."""
    from fpar.models.base import clip_inputs

    spec = model.build_spec
    modalities, flow_mode = clip_inputs(model.input_spec())
    stack = {"stack_size": spec["stack_size"]} if "stack_size" in spec else {}
    return ClipSettings(modalities=modalities, flow_mode=flow_mode, crop=spec.get("input_size", 224), **stack)

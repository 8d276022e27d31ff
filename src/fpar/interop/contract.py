"""What each reference model kind is and reads: the fpar model it becomes and its input clips.

A reference ``.pth`` holds weights only. The model it becomes is :data:`KINDS`; the clips it was
trained on (which modalities, flow stacked or paired with frames) are :func:`reference_clip`, the
contract ``fpar import-reference`` writes into the checkpoint beside the weights. This module
imports no torch: the CLI offers :data:`KINDS` as choices.
"""

from __future__ import annotations

from typing import Any

from fpar.data.settings import ClipSettings

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

# registry model -> (modalities, flow mode) of the reference's training clips; RGB models read frames
_INPUTS = {
    "flow_resnet": (["flow"], "stack"),
    "two_stream": (["frames", "flow"], "stack"),
    "two_in_one": (["frames", "flow"], "pairs"),
}


def reference_clip(spec: dict[str, Any]) -> ClipSettings:
    """The clip settings a converted reference model (build ``spec``) is evaluated with: the
    reference's sampling and crop (fpar's defaults) with the inputs the model reads."""
    modalities, flow_mode = _INPUTS.get(spec["name"], (["frames"], "stack"))
    stack = {"stack_size": spec["stack_size"]} if "stack_size" in spec else {}
    return ClipSettings(modalities=modalities, flow_mode=flow_mode, crop=spec.get("input_size", 224), **stack)

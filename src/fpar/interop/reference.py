"""Reference checkpoints (FPAR-NET/FPAR and Ego-RNN state dicts) -> fpar models.

The reference names its parts ``resNet``, ``lstm_cell``, ``fc``/``classifier.1``, ``ms_task``,
``resNet.condNet``/``resNet.sft`` (two-in-one), ``fc_action`` (flow) and ``flowModel``/
``frameModel``/``fc2`` (two-stream), and reaches some tensors under two names (``weight_softmax``
is ``resNet.fc.weight``; ``classifier.1`` is ``fc``). Ego-RNN's own checkpoints may lack the
second names, and files from before PyTorch 0.4.1 lack the BN step counters: both are accepted.

Conversion is a table of prefix renames plus one structural change: the reference's eight
per-gate ConvLSTM convs become fpar's two stacked convs (gate order i, f, c, o). The expected
reference keys are derived from the built model through the same table, so unknown and missing
keys are reported in the reference's own names.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from fpar.errors import FparError
from fpar.interop.contract import KINDS
from fpar.models import build_model
from fpar.models.vocabulary import BLOCKS_PER_STAGE
from fpar.models.convlstm import GATES

# (reference prefix, fpar prefix); the first match wins, so longer prefixes come first
RGB_RENAMES = [
    ("resNet.condNet.", "motion.condition."),
    ("resNet.sft.SFT_scale_conv0.", "motion.scale.0."),
    ("resNet.sft.SFT_scale_conv1.", "motion.scale.2."),
    ("resNet.sft.SFT_shift_conv0.", "motion.shift.0."),
    ("resNet.sft.SFT_shift_conv1.", "motion.shift.2."),
    ("resNet.", "backbone."),
    ("ms_task.", "ms_head."),
    ("fc.", "classifier.1."),
]
FLOW_RENAMES = [("fc_action.", "classifier.1."), ("", "backbone.")]
RGB_ALIASES = {"weight_softmax": "resNet.fc.weight", "classifier.1.weight": "fc.weight", "classifier.1.bias": "fc.bias"}


def _prefixed(table, ref_prefix: str, fpar_prefix: str):
    return [(ref_prefix + ref, fpar_prefix + ours) for ref, ours in table]


# per kind: prefix renames, (reference, fpar) prefixes of ConvLSTMs, aliases (alias -> canonical name)
LAYOUTS: dict[str, dict[str, Any]] = {
    "rgb": {"renames": RGB_RENAMES, "lstms": [("", "")], "aliases": RGB_ALIASES},
    "flow": {"renames": FLOW_RENAMES, "lstms": [], "aliases": {}},
    "two_stream": {
        "renames": [("fc2.", "classifier.1.")]
        + _prefixed(FLOW_RENAMES, "flowModel.", "flow_model.")
        + _prefixed(RGB_RENAMES, "frameModel.", "rgb_model."),
        "lstms": [("frameModel.", "rgb_model.")],
        "aliases": {"frameModel." + k: "frameModel." + v for k, v in RGB_ALIASES.items()}
        | {"classifier.1.weight": "fc2.weight", "classifier.1.bias": "fc2.bias"},
    },
}
KIND_LAYOUT = {"flow_resnet34": "flow", "two_stream": "two_stream"}

LSTM_KEY = re.compile(r"^(?P<prefix>.*)lstm_cell\.conv_(?P<gate>[ifco])_(?P<source>xx|hh)\.(?P<param>weight|bias)$")
LSTM_SOURCES = {"xx": "input_conv", "hh": "hidden_conv"}  # reference suffix -> fpar conv
LSTM_SUFFIXES = {conv: suffix for suffix, conv in LSTM_SOURCES.items()}


def _layout(kind: str) -> dict[str, Any]:
    return LAYOUTS[KIND_LAYOUT.get(kind, "rgb")]


def _rename(key: str, renames, to_fpar: bool) -> str | None:
    for ref, ours in renames:
        source, target = (ref, ours) if to_fpar else (ours, ref)
        if key.startswith(source):
            return target + key[len(source):]
    return None


def _as_tensors(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    tensors = {key: torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
               for key, value in state_dict.items()}
    if tensors and all(key.startswith("module.") for key in tensors):  # saved from nn.DataParallel
        tensors = {key[len("module."):]: value for key, value in tensors.items()}
    return tensors


def _resolve_aliases(state: dict[str, torch.Tensor], aliases: dict[str, str]) -> dict[str, torch.Tensor]:
    """Keep one name per tensor; an alias whose tensor differs from its twin means a broken file."""
    state = dict(state)
    for alias, canonical in aliases.items():
        if alias not in state:
            continue
        value = state.pop(alias)
        if canonical in state and not torch.equal(state[canonical], value):
            raise FparError(f"reference keys '{alias}' and '{canonical}' should hold the same tensor but differ")
        state.setdefault(canonical, value)
    return state


def _list(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "")


def _shape(state: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise FparError(f"reference state dict has no '{key}' (missing keys: {key})")
    return tuple(state[key].shape)


def _arch(state: dict[str, torch.Tensor], layer3_prefix: str) -> str:
    blocks = {int(m.group(1)) for key in state if (m := re.match(re.escape(layer3_prefix) + r"(\d+)\.", key))}
    for arch, stages in BLOCKS_PER_STAGE.items():
        if len(blocks) == stages[2]:
            return arch
    raise FparError(f"cannot tell the ResNet depth: '{layer3_prefix}' has {len(blocks)} blocks "
                    f"(expected {sorted({s[2] for s in BLOCKS_PER_STAGE.values()})})")


def _rgb_kwargs(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, Any]:
    kwargs = {
        "backbone": _arch(state, prefix + "resNet.layer3."),
        "num_classes": _shape(state, prefix + "fc.weight")[0],
        "mem_size": _shape(state, prefix + "lstm_cell.conv_i_xx.weight")[0],
    }
    if prefix + "ms_task.fc.weight" in state:
        grid = round(_shape(state, prefix + "ms_task.fc.weight")[0] ** 0.5)
        # any input size whose layer4 grid is `grid` builds the same head; 32 * grid is the natural one
        kwargs["input_size"] = 32 * grid
        kwargs["ms_head"] = "classification"
    return kwargs


def _flow_kwargs(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, Any]:
    return {
        "backbone": _arch(state, prefix + "layer3."),
        "num_classes": _shape(state, prefix + "fc_action.weight")[0],
        "stack_size": _shape(state, prefix + "conv1.weight")[1] // 2,
    }


def infer_build_kwargs(kind: str, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Build keywords read off the tensors' shapes (canonical reference names, aliases resolved)."""
    if kind == "flow_resnet34":
        kwargs = _flow_kwargs(state)
    elif kind == "two_stream":
        flow, rgb = _flow_kwargs(state, "flowModel."), _rgb_kwargs(state, "frameModel.")
        kwargs = {"backbone": rgb["backbone"], "num_classes": _shape(state, "fc2.weight")[0],
                  "mem_size": rgb["mem_size"], "stack_size": flow["stack_size"]}
    else:
        kwargs = _rgb_kwargs(state)
        if kind in ("rgb_convlstm", "rgb_attention") and "ms_head" in kwargs:
            raise FparError(f"reference kind '{kind}' has no MS head, but the state dict holds 'ms_task.*': "
                            "import it as rgb_ms_task or two_in_one")
    return kwargs


def reference_state_dict(kind: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s weights under the reference's canonical key names (no aliases)."""
    layout = _layout(kind)
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        for ref_prefix, fpar_prefix in layout["lstms"]:
            conv = f"{fpar_prefix}convlstm."
            if key.startswith(conv):
                source, param = key[len(conv):].split(".")
                suffix = LSTM_SUFFIXES[source]
                for gate, chunk in zip(GATES, value.chunk(len(GATES), dim=0)):
                    out[f"{ref_prefix}lstm_cell.conv_{gate}_{suffix}.{param}"] = chunk.clone()
                break
        else:
            out[_rename(key, layout["renames"], to_fpar=False)] = value
    return out


def _to_fpar(kind: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    layout = _layout(kind)
    lstm_prefixes = dict(layout["lstms"])
    out: dict[str, torch.Tensor] = {}
    gate_parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        match = LSTM_KEY.match(key)
        if match and match["prefix"] in lstm_prefixes:
            target = f"{lstm_prefixes[match['prefix']]}convlstm.{LSTM_SOURCES[match['source']]}.{match['param']}"
            gate_parts.setdefault(target, {})[match["gate"]] = value
        else:
            out[_rename(key, layout["renames"], to_fpar=True)] = value
    for target, parts in gate_parts.items():
        out[target] = torch.cat([parts[gate] for gate in GATES], dim=0)
    return out


def from_reference(kind: str, state_dict: Mapping[str, Any], **overrides: Any) -> nn.Module:
    """Build the fpar model for reference ``kind`` with ``state_dict``'s weights, in eval mode.

    Class count, memory size, flow stack, backbone depth and MS head (with its grid) are read off
    the tensors' shapes; ``overrides`` are further build keywords (e.g. ``ms_head="regression"``,
    ``attention=False`` for a two-in-one "ConvLSTM" row). ``state_dict`` values may be tensors or
    numpy arrays. Unknown, missing or misshapen keys raise :class:`FparError` naming them.
    """
    if kind not in KINDS:
        raise FparError(f"unknown reference kind '{kind}': choose one of {list(KINDS)}")
    name, implied = KINDS[kind]
    state = _resolve_aliases(_as_tensors(state_dict), _layout(kind)["aliases"])
    kwargs = {**infer_build_kwargs(kind, state), **implied, **overrides, "pretrained": None}
    model = build_model(name, **kwargs)

    expected = reference_state_dict(kind, model)
    for key, value in expected.items():
        # checkpoints from before PyTorch 0.4.1 have no BN step counters; eval-mode BN ignores them
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    unknown, missing = set(state) - set(expected), set(expected) - set(state)
    if unknown or missing:
        problems = [f"unknown keys: {_list(unknown)}" if unknown else "", f"missing keys: {_list(missing)}" if missing else ""]
        raise FparError(f"state dict does not fit reference kind '{kind}' ({'; '.join(p for p in problems if p)})")
    misshapen = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if state[k].shape != v.shape]
    if misshapen:
        raise FparError(f"state dict does not fit reference kind '{kind}' with {kwargs}: wrong shapes: {_list(misshapen)}")

    converted = _to_fpar(kind, state)
    model_state = model.state_dict()
    model.load_state_dict({key: converted[key].to(model_state[key].dtype) for key in model_state})
    return model.eval()

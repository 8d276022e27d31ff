"""Which parameters each training stage trains, and which modules stay in eval mode (docs/method.md §10).

``configure_stage(model, stage, **options)`` sets ``requires_grad`` on every parameter and returns
the optimiser's parameter groups, each with a ``name`` the experiment config can give its own
learning rate (the two-stream stage trains the flow stream's layer4 at 1e-4 in group
``flow_layer4``). ``set_train_mode(model, stage, **options)``, called after ``model.train()``, puts
the frozen parts back in eval mode so their batch-norm statistics stay the ImageNet ones.

| stage | trains |
|---|---|
| ``rgb_stage1`` | ConvLSTM, classifier (backbone frozen, eval) |
| ``rgb_stage2`` | + conv1/conv2 of layer4's blocks (BNs frozen), backbone ``fc.weight`` (with attention), MS head |
| ``flow`` | the whole flow network |
| ``two_stream`` | fusion classifier; RGB ConvLSTM, layer4 convs, ``fc.weight``; flow layer4 (group ``flow_layer4``) |
| ``two_in_one_stage3`` | the ``rgb_stage2`` set + motion condition/modulation (+ conv1 with ``train_conv1``) |

Two-in-one models train stages 1 and 2 with the RGB rules: their motion layers stay frozen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from fpar.errors import FparError

if TYPE_CHECKING:
    from torch import nn

    from fpar.models.assembled import RGBConvLSTM

# The stage vocabulary: experiment settings and the CLI read it from here, so this module imports
# torch and the models only inside its functions.
STAGES = ("rgb_stage1", "rgb_stage2", "flow", "two_stream", "two_in_one_stage3")
STAGE_OPTIONS = {"two_in_one_stage3": {"train_conv1"}}


def _model_type(stage: str) -> type:
    from fpar.models.assembled import FlowResNet, RGBConvLSTM, TwoStream

    return {"flow": FlowResNet, "two_stream": TwoStream}.get(stage, RGBConvLSTM)


def _check(model: nn.Module, stage: str, options: dict[str, Any]) -> None:
    if stage not in STAGES:
        raise FparError(f"unknown training stage '{stage}': choose one of {list(STAGES)}")
    unknown = sorted(set(options) - STAGE_OPTIONS.get(stage, set()))
    if unknown:
        raise FparError(f"stage '{stage}' takes no option {unknown}")
    if not isinstance(model, _model_type(stage)):
        raise FparError(f"stage '{stage}' does not apply to a {type(model).__name__} model")
    if stage == "two_in_one_stage3" and model.motion is None:
        raise FparError("stage 'two_in_one_stage3' needs a two_in_one model (one with motion modulation)")


def _layer4_convs(backbone: nn.Module) -> list[nn.Module]:
    """conv1/conv2 of every layer4 block: the shortcut's conv and all BNs stay frozen."""
    return [conv for block in backbone.layer4 for conv in (block.conv1, block.conv2)]


def _rgb_parts(model: RGBConvLSTM, fine_tune: bool) -> list[nn.Module | nn.Parameter]:
    parts: list[nn.Module | nn.Parameter] = [model.convlstm, model.classifier]
    if fine_tune:
        parts += _layer4_convs(model.backbone)
        if model.attention:
            # fc matters only through the attention, which reads its weight rows (not the bias, and
            # the argmax passes no gradient): a parameter without gradient would stall DDP
            parts.append(model.backbone.fc.weight)
        if model.ms_head is not None:
            parts.append(model.ms_head)
    return parts


def _params(parts: Iterable[nn.Module | nn.Parameter]) -> list[nn.Parameter]:
    from torch import nn

    return [p for part in parts for p in ([part] if isinstance(part, nn.Parameter) else part.parameters())]


def configure_stage(model: nn.Module, stage: str, **options: Any) -> list[dict[str, Any]]:
    """Freeze everything the stage does not train; return ``[{"name", "params"}, ...]`` groups."""
    _check(model, stage, options)
    groups: dict[str, list[nn.Parameter]] = {"main": []}
    if stage in ("rgb_stage1", "rgb_stage2"):
        groups["main"] = _params(_rgb_parts(model, fine_tune=stage == "rgb_stage2"))
    elif stage == "two_in_one_stage3":
        parts = _rgb_parts(model, fine_tune=True) + [model.motion]
        if options.get("train_conv1"):
            parts.append(model.backbone.conv1)
        groups["main"] = _params(parts)
    elif stage == "flow":
        groups["main"] = list(model.parameters())
    elif stage == "two_stream":
        rgb = model.rgb_model
        groups["main"] = _params([model.classifier, rgb.convlstm, *_layer4_convs(rgb.backbone),
                                  rgb.backbone.fc.weight])
        groups["flow_layer4"] = list(model.flow_model.backbone.layer4.parameters())

    trained = {id(p) for params in groups.values() for p in params}
    for param in model.parameters():
        param.requires_grad_(id(param) in trained)
    return [{"name": name, "params": params} for name, params in groups.items()]


def set_train_mode(model: nn.Module, stage: str, **options: Any) -> None:
    """After ``model.train()``: frozen backbones (and their BNs) back to eval mode."""
    _check(model, stage, options)
    if stage in ("rgb_stage1", "rgb_stage2", "two_in_one_stage3"):
        # the backbone's BNs are never trained in these stages: keep their ImageNet statistics
        model.backbone.eval()
        if model.motion is not None and stage != "two_in_one_stage3":
            model.motion.eval()
    elif stage == "two_stream":
        model.rgb_model.eval()
        model.flow_model.eval()
        model.flow_model.backbone.layer4.train()  # trained as a whole, BNs included

"""The training stages of docs/method.md §10: their vocabulary and how the engine applies one.

Which parameters a stage trains, and which modules stay in eval mode meanwhile, is each model's
own rule (:meth:`fpar.models.base.ClipModel.stage_parameters` and ``set_stage_mode``; the paper's
models list theirs in ``fpar.models.assembled``). This module declares the names and their options,
freezes what the model's groups leave out, and returns the optimiser's groups, each with a
``name`` the experiment config can give its own learning rate (``optimizer.group_lr``).

| stage | for |
|---|---|
| ``rgb_stage1`` | RGB models: ConvLSTM and classifier on a frozen backbone |
| ``rgb_stage2`` | RGB models: stage 1 + layer4 convs, attention weights, MS head |
| ``flow`` | the flow network |
| ``two_stream`` | the fusion of a trained flow and RGB stream |
| ``two_in_one_stage3`` | two-in-one models: stage 2 + the motion modulation (option ``train_conv1``) |
| ``full`` | any model: every parameter |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fpar.errors import FparError

if TYPE_CHECKING:
    from fpar.models.base import ClipModel

# The stage vocabulary: experiment settings and the CLI read it from here, so this module imports
# neither torch nor the models.
STAGES = ("rgb_stage1", "rgb_stage2", "flow", "two_stream", "two_in_one_stage3", "full")
STAGE_OPTIONS = {"two_in_one_stage3": {"train_conv1"}}


def _check(model: ClipModel, stage: str, options: dict[str, Any]) -> None:
    if stage not in STAGES:
        raise FparError(f"unknown training stage '{stage}': choose one of {list(STAGES)}")
    unknown = sorted(set(options) - STAGE_OPTIONS.get(stage, set()))
    if unknown:
        raise FparError(f"stage '{stage}' takes no option {unknown}")
    model.check_stage(stage)


def configure_stage(model: ClipModel, stage: str, **options: Any) -> list[dict[str, Any]]:
    """Freeze everything the stage does not train; return ``[{"name", "params"}, ...]`` groups."""
    _check(model, stage, options)
    groups = model.stage_parameters(stage, **options)
    trained = {id(p) for params in groups.values() for p in params}
    for param in model.parameters():
        param.requires_grad_(id(param) in trained)
    return [{"name": name, "params": params} for name, params in groups.items()]


def set_train_mode(model: ClipModel, stage: str, **options: Any) -> None:
    """After ``model.train()``: the parts the stage keeps frozen back in eval mode."""
    _check(model, stage, options)
    model.set_stage_mode(stage, **options)

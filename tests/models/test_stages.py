"""Gradient flow per training stage (REFERENCE.md §3): which parameters get gradients, which stay
frozen, and which modules stay in eval mode so their batch-norm statistics do not move."""

import re

import pytest
import torch
from torch import nn

from fpar.engine.stages import STAGES, configure_stage, set_train_mode
from fpar.errors import FparError
from helpers import small_models
from helpers.small_models import make_batch

# gradients only need the wiring, not the sizes: 64x64 inputs (a 2x2 map) and two time steps
SIZE, STEPS = 64, 2


def small_model(name, **kwargs):
    return small_models.small_model(name, input_size=SIZE, **kwargs)

LAYER4_CONVS = r"backbone\.layer4\.\d\.conv[12]\.weight"
RGB_STAGE1 = [r"convlstm\..*", r"classifier\..*"]
RGB_STAGE2 = RGB_STAGE1 + [LAYER4_CONVS, r"backbone\.fc\.weight"]  # the attention reads no bias
MS = [r"ms_head\..*"]
MOTION = [r"motion\..*"]


def train_step(model, stage, **options):
    """One stage-configured training step; returns the groups and the names that got gradients."""
    groups = configure_stage(model, stage, **options)
    model.train()
    set_train_mode(model, stage, **options)
    out = model(make_batch(model.build_spec["name"], size=SIZE, steps=STEPS))
    loss = out["logits"].logsumexp(dim=1).sum() + (out["ms"].square().sum() if "ms" in out else 0)
    loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    return groups, with_grad


def names_matching(model, patterns):
    return {n for n, _ in model.named_parameters() if any(re.fullmatch(p, n) for p in patterns)}


def group_names(model, groups, name):
    ids = {id(p) for g in groups if g["name"] == name for p in g["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def check_trained_exactly(model, groups, with_grad, patterns):
    expected = names_matching(model, patterns)
    assert expected, patterns
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    in_groups = {n for g in groups for n in group_names(model, groups, g["name"])}
    assert trainable == expected
    assert in_groups == expected
    assert with_grad == expected


def batchnorms(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("name, stage, patterns", [
    ("rgb_attention", "rgb_stage1", RGB_STAGE1),
    ("rgb_ms", "rgb_stage1", RGB_STAGE1),  # the MS head joins in stage 2
    ("two_in_one", "rgb_stage1", RGB_STAGE1),  # motion layers frozen
    ("rgb_attention", "rgb_stage2", RGB_STAGE2),
    ("rgb_ms", "rgb_stage2", RGB_STAGE2 + MS),
    ("two_in_one", "rgb_stage2", RGB_STAGE2),
    ("two_in_one", "two_in_one_stage3", RGB_STAGE2 + MOTION),
    ("rgb_convlstm", "rgb_stage2", RGB_STAGE1 + [LAYER4_CONVS]),  # no attention reads fc
])
def test_rgb_stages(name, stage, patterns):
    model = small_model(name)
    groups, with_grad = train_step(model, stage)
    assert [g["name"] for g in groups] == ["main"]
    check_trained_exactly(model, groups, with_grad, patterns)
    # the backbone, its BNs included, stays in eval mode; the classifier's dropout trains
    assert not any(m.training for m in model.backbone.modules())
    assert model.classifier.training and model.convlstm.training
    if model.motion is not None:
        assert model.motion.training == (stage == "two_in_one_stage3")


def test_stage2_keeps_layer4_batchnorm_statistics():
    model = small_model("rgb_attention")
    before = [bn.running_mean.clone() for bn in batchnorms(model.backbone.layer4)]
    train_step(model, "rgb_stage2")
    for bn, mean in zip(batchnorms(model.backbone.layer4), before):
        assert not bn.training
        assert not bn.weight.requires_grad and not bn.bias.requires_grad
        assert torch.equal(bn.running_mean, mean)


def test_two_in_one_stage3_with_conv1():
    model = small_model("two_in_one", ms_head="regression")
    groups, with_grad = train_step(model, "two_in_one_stage3", train_conv1=True)
    check_trained_exactly(model, groups, with_grad, RGB_STAGE2 + MS + MOTION + [r"backbone\.conv1\.weight"])


def test_flow_stage_trains_everything():
    model = small_model("flow_resnet")
    before = batchnorms(model.backbone)[0].running_mean.clone()
    groups, with_grad = train_step(model, "flow")
    check_trained_exactly(model, groups, with_grad, [r".*"])
    assert all(m.training for m in model.modules())
    assert not torch.equal(batchnorms(model.backbone)[0].running_mean, before)


def test_two_stream_stage():
    model = small_model("two_stream")
    groups, with_grad = train_step(model, "two_stream")
    assert [g["name"] for g in groups] == ["main", "flow_layer4"]
    main = [r"classifier\..*", r"rgb_model\.convlstm\..*", r"rgb_model\." + LAYER4_CONVS, r"rgb_model\.backbone\.fc\.weight"]
    assert group_names(model, groups, "main") == names_matching(model, main)
    assert group_names(model, groups, "flow_layer4") == names_matching(model, [r"flow_model\.backbone\.layer4\..*"])
    check_trained_exactly(model, groups, with_grad, main + [r"flow_model\.backbone\.layer4\..*"])
    # flow layer4 trains whole, BNs in train mode; the RGB backbone and the rest of the flow net stay in eval
    assert all(bn.training for bn in batchnorms(model.flow_model.backbone.layer4))
    assert not any(bn.training for bn in batchnorms(model.flow_model.backbone.layer3))
    assert not any(m.training for m in model.rgb_model.backbone.modules())
    assert model.classifier.training


def test_stages_can_follow_each_other():
    """Stage 2 after stage 1 unfreezes what stage 1 froze."""
    model = small_model("rgb_attention")
    configure_stage(model, "rgb_stage1")
    configure_stage(model, "rgb_stage2")
    assert model.backbone.layer4[-1].conv2.weight.requires_grad
    assert not model.backbone.layer4[-1].bn2.weight.requires_grad


def test_stage_names():
    assert STAGES == ("rgb_stage1", "rgb_stage2", "flow", "two_stream", "two_in_one_stage3", "full")


@pytest.mark.parametrize("name, stage, options, message", [
    ("rgb_attention", "rgb_stage3", {}, "unknown training stage"),
    ("rgb_attention", "rgb_stage2", {"train_conv1": True}, "takes no option"),
    ("rgb_attention", "two_in_one_stage3", {}, "does not apply to a RGBConvLSTM model"),
    ("flow_resnet", "rgb_stage1", {}, "does not apply"),
    ("rgb_attention", "two_stream", {}, "does not apply"),
])
def test_stage_errors(name, stage, options, message):
    model = small_model(name)
    with pytest.raises(FparError, match=message):
        configure_stage(model, stage, **options)
    with pytest.raises(FparError, match=message):
        set_train_mode(model, stage, **options)

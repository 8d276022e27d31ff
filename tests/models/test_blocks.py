"""The building blocks against their written definitions (REFERENCE.md §2)."""

import math

import pytest
import torch
from torch import nn

from fpar.models.attention import class_activation_attention
from fpar.models.backbone import ResNet, feature_grid
from fpar.models.convlstm import ConvLSTM
from fpar.models.recurrence import weight_gradient
from fpar.models.heads import MSHead
from fpar.models.motion import MotionModulation


@pytest.mark.parametrize("size, grid", [(224, 7), (112, 4), (128, 4), (64, 2)])
def test_feature_grid_matches_the_backbone(size, grid):
    assert feature_grid(size) == grid
    out = ResNet("resnet18").eval()(torch.randn(1, 3, size, size))
    assert out.features.shape == (1, 512, grid, grid)


def test_backbone_outputs():
    backbone = ResNet("resnet18").eval()
    for bn in [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]:
        bn.running_mean.normal_()  # non-trivial statistics, so "with" and "without BN" differ
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 64, 64)
    out = backbone(x)
    last = backbone.layer4[-1]
    with torch.no_grad():
        hidden = backbone.layer4[:-1](backbone.layer3(backbone.layer2(backbone.layer1(
            backbone.maxpool(torch.relu(backbone.bn1(backbone.conv1(x))))))))
        conv2 = last.conv2(torch.relu(last.bn1(last.conv1(hidden))))
        torch.testing.assert_close(out.features_nobn, conv2 + hidden)
        torch.testing.assert_close(out.features, torch.relu(last.bn2(conv2) + hidden))
        torch.testing.assert_close(out.pooled, out.features.mean(dim=(2, 3)))
        torch.testing.assert_close(out.logits, backbone.fc(out.pooled))
    assert out.logits.shape == (2, 1000)


def test_convlstm_step_follows_the_equations():
    lstm = ConvLSTM(4, mem_size=3)
    x, h, c = torch.randn(2, 4, 5, 5), torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    gate = {}
    for index, name in enumerate("ifco"):
        rows = slice(3 * index, 3 * index + 3)
        gate[name] = (nn.functional.conv2d(x, lstm.input_conv.weight[rows], lstm.input_conv.bias[rows], padding=1)
                      + nn.functional.conv2d(h, lstm.hidden_conv.weight[rows], padding=1))
    cell = torch.tanh(gate["c"]) * torch.sigmoid(gate["i"]) + c * torch.sigmoid(gate["f"])
    hidden = torch.sigmoid(gate["o"]) * torch.tanh(cell)
    new_hidden, new_cell = lstm.step(x, (h, c))
    torch.testing.assert_close(new_cell, cell)
    torch.testing.assert_close(new_hidden, hidden)


def test_convlstm_runs_from_zero_state():
    lstm = ConvLSTM(4, mem_size=3)
    sequence = torch.randn(2, 3, 4, 5, 5)
    zeros = torch.zeros(2, 3, 5, 5)
    state = (zeros, zeros)
    for t in range(3):
        state = lstm.step(sequence[:, t], state)
    for got, want in zip(lstm(sequence), state):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("steps", [1, 4])
def test_convlstm_training_recurrence_gives_autograds_gradients(steps):
    """The written-out backpropagation through time (one batched weight gradient) is autograd's."""
    torch.manual_seed(0)
    lstm = ConvLSTM(4, mem_size=3)
    sequence = torch.randn(2, steps, 4, 5, 5, requires_grad=True)
    weights = torch.randn(2, 3, 5, 5)

    def gradients(outputs):
        hidden, cell = outputs
        loss = (cell * weights).sum() + hidden.square().sum()
        return [g.clone() for g in torch.autograd.grad(loss, [sequence, *lstm.parameters()])]

    zeros = torch.zeros(2, 3, 5, 5)
    state = (zeros, zeros)
    for t in range(steps):  # autograd through the per-step cell
        state = lstm.step(sequence[:, t], state)
    for got, want in zip(gradients(lstm(sequence)), gradients(state)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_convlstm_training_recurrence_under_bf16_autocast():
    torch.manual_seed(0)
    lstm = ConvLSTM(8, mem_size=8)
    sequence = torch.randn(2, 3, 8, 4, 4)
    plain = lstm(sequence)[1]
    with torch.autocast("cpu", torch.bfloat16):
        cell = lstm(sequence)[1]
    cell.sum().backward()
    assert lstm.hidden_conv.weight.grad.dtype == torch.float32
    assert float((cell.detach().float() - plain.detach()).norm() / plain.detach().norm()) < 2e-2


def test_convlstm_initialisation():
    lstm = ConvLSTM(512, mem_size=512)
    assert torch.count_nonzero(lstm.input_conv.bias) == 0
    assert lstm.hidden_conv.bias is None
    xavier_std = math.sqrt(2.0 / (512 * 9 + 512 * 9))  # per gate conv: fan_out = 512 * 9
    assert lstm.input_conv.weight.std().item() == pytest.approx(xavier_std, rel=0.02)


def test_attention_is_a_softmax_of_the_winning_class_map():
    logits = torch.tensor([[0.0, 3.0, 1.0]])
    fc_weight = torch.randn(3, 8)
    features = torch.randn(1, 8, 2, 2)
    attention = class_activation_attention(logits, features, fc_weight)
    cam = torch.einsum("c,chw->hw", fc_weight[1], features[0])
    torch.testing.assert_close(attention[0], torch.softmax(cam.flatten(), 0).reshape(2, 2))


@pytest.mark.parametrize("input_sigmoid", [False, True])
def test_ms_head_flattens_channel_major(input_sigmoid):
    head = MSHead(8, grid=3, input_sigmoid=input_sigmoid)
    features = torch.randn(2, 8, 3, 3)
    squashed = torch.sigmoid(features) if input_sigmoid else features
    hidden = head.conv(squashed)  # (2, 100, 3, 3)
    expected = hidden.reshape(2, -1) @ head.fc.weight.T + head.fc.bias
    torch.testing.assert_close(head(features), expected)


def test_motion_modulation_shapes_and_identity_start():
    motion = MotionModulation()
    pre, flow = torch.randn(2, 64, 16, 16), torch.randn(2, 2, 32, 32)
    modulation = motion(pre, flow)
    assert modulation.scale.shape == modulation.shift.shape == pre.shape
    for branch in (motion.scale, motion.shift):
        nn.init.zeros_(branch[2].weight)
        nn.init.zeros_(branch[2].bias)
    torch.testing.assert_close(motion(pre, flow).post, pre)  # zero scale and shift leave conv1 as it is


def test_weight_gradient_as_a_matrix_product_is_the_convolutions():
    torch.manual_seed(0)
    x, grad = torch.randn(6, 8, 5, 5).bfloat16(), torch.randn(6, 12, 5, 5).bfloat16()
    shape = torch.Size((12, 8, 3, 3))
    want = torch.nn.grad.conv2d_weight(x.float(), shape, grad.float(), padding=1)  # same inputs, in fp32
    got = weight_gradient(x.contiguous(memory_format=torch.channels_last), grad, shape, padding=1)
    assert got.dtype == torch.bfloat16 and got.shape == shape
    assert float((got.float() - want).norm() / want.norm()) < 5e-3  # bf16 rounding of the result
    # fp32 keeps PyTorch's convolution
    torch.testing.assert_close(weight_gradient(x.float(), grad.float(), shape, padding=1), want)


def test_convlstm_training_recurrence_gradients_under_bf16_autocast():
    torch.manual_seed(0)
    lstm = ConvLSTM(16, mem_size=8)
    sequence = torch.randn(2, 4, 16, 5, 5, requires_grad=True)

    def gradients(run):
        with torch.autocast("cpu", torch.bfloat16):
            hidden, cell = run()
        loss = cell.float().square().sum() + hidden.float().sum()
        return [g.float() for g in torch.autograd.grad(loss, [sequence, *lstm.parameters()])]

    def per_step():
        state = (torch.zeros(2, 8, 5, 5), torch.zeros(2, 8, 5, 5))
        for t in range(4):
            state = lstm.step(sequence[:, t], state)
        return state

    for got, want in zip(gradients(lambda: lstm(sequence)), gradients(per_step)):
        assert float((got - want).norm() / want.norm()) < 3e-2

"""Cross-entropy + motion-segmentation loss (docs/method.md)."""

import pytest
import torch
import torch.nn.functional as F

from fpar.engine.losses import total_loss
from fpar.errors import FparError
from fpar.models import build_model
from fpar.models.losses import LossSettings
from fpar.models.ms_task import MS_REGRESSION_LOSSES, MSLossSettings, ms_loss, ms_target

REGRESSIONS = ("mse", "l1", "smooth_l1", "soft_margin", "kl")


def test_the_ms_task_declares_every_regression_loss():
    assert tuple(MS_REGRESSION_LOSSES) == REGRESSIONS


def test_target_is_the_map_bilinearly_resized_to_the_grid():
    mmaps = torch.zeros(2, 3, 1, 8, 8)
    mmaps[..., :4, :] = 1.0  # top half moves
    target = ms_target(mmaps, 4)
    assert target.shape == (2, 3, 4)
    top, bottom = target[..., :2], target[..., 2:]
    assert (top > 0.8).all() and (bottom < 0.2).all()
    assert torch.allclose(top, 1 - bottom)  # the filter blurs the edge symmetrically
    with pytest.raises(ValueError, match="square"):
        ms_target(mmaps, 5)


def test_target_counts_thin_motion_between_cell_centres():
    """A one-pixel-wide moving stroke away from the sampling points still shows in its cell."""
    mmaps = torch.zeros(1, 1, 1, 32, 32)
    mmaps[..., 2, :16] = 1.0  # a thin horizontal line in the top-left cell, far from its centre row
    target = ms_target(mmaps, 4).reshape(2, 2)
    assert target[0, 0] > 0.02 and target[1].sum() == 0


def test_classification_thresholds_any_motion_by_default():
    mmaps = torch.full((1, 1, 1, 4, 4), 0.01)  # faint motion everywhere
    logits = torch.zeros(1, 1, 4)
    expected = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    assert torch.isclose(ms_loss(logits, mmaps, kind="classification"), expected)
    # with threshold 0.5 the same map is "no motion"
    expected_still = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
    assert torch.isclose(ms_loss(logits, mmaps, kind="classification", threshold=0.5), expected_still)


@pytest.mark.parametrize("regression", ["mse", "l1", "smooth_l1", "kl"])
def test_regression_pulls_sigmoid_outputs_towards_the_target(regression):
    torch.manual_seed(0)
    mmaps = torch.rand(2, 3, 1, 2, 2)  # already on the 2x2 grid: the target is the map itself
    logits = torch.zeros(2, 3, 4, requires_grad=True)
    optimizer = torch.optim.SGD([logits], lr=50.0)
    start = (torch.sigmoid(logits) - ms_target(mmaps, 4)).abs().mean().item()
    for _ in range(100):
        optimizer.zero_grad()
        ms_loss(logits, mmaps, kind="regression", regression=regression).backward()
        optimizer.step()
    end = (torch.sigmoid(logits) - ms_target(mmaps, 4)).abs().mean().item()
    assert end < 0.5 * start


def test_soft_margin_separates_moving_from_still_cells():
    mmaps = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1, 1)
    logits = torch.zeros(1, 2, 1, requires_grad=True)
    ms_loss(logits, mmaps, kind="regression", regression="soft_margin").backward()
    assert logits.grad[0, 0, 0] > 0 > logits.grad[0, 1, 0]  # still cell pushed down, moving cell up


def test_kl_is_the_bernoulli_kl_per_cell():
    target = torch.tensor([0.0, 0.25, 0.5, 1.0])
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5])
    p = torch.sigmoid(logits)
    expected = (torch.xlogy(target, target / p) + torch.xlogy(1 - target, (1 - target) / (1 - p))).mean()
    mmaps = target.view(1, 4, 1, 1, 1).expand(1, 4, 1, 2, 2)  # 4 frames of constant maps, grid 1x1
    got = ms_loss(logits.view(1, 4, 1), mmaps, kind="regression", regression="kl")
    assert torch.isclose(got, expected, atol=1e-6)
    # zero where prediction equals target
    exact = torch.logit(torch.tensor([0.25, 0.5])).view(1, 2, 1)
    mm = torch.tensor([0.25, 0.5]).view(1, 2, 1, 1, 1)
    assert ms_loss(exact, mm, kind="regression", regression="kl").abs() < 1e-6


@pytest.mark.parametrize("kind, regression", [("classification", "mse"), *(("regression", r) for r in REGRESSIONS)])
def test_frames_are_independent_no_softmax_over_time(kind, regression):
    """The reference's softmax over the time axis couples frames; the paper's loss does not."""
    torch.manual_seed(1)
    logits, mmaps = torch.randn(2, 3, 4), torch.rand(2, 3, 1, 4, 4)
    whole = ms_loss(logits, mmaps, kind=kind, regression=regression)
    per_frame = torch.stack([ms_loss(logits[:, t:t + 1], mmaps[:, t:t + 1], kind=kind, regression=regression)
                             for t in range(3)]).mean()
    assert torch.isclose(whole, per_frame, atol=1e-6)


def test_the_ms_head_owns_its_weighted_term_and_the_engine_sums():
    torch.manual_seed(2)
    model = build_model("rgb_ms", num_classes=5, backbone="resnet18", mem_size=8, input_size=64)  # 2x2 grid
    out = {"logits": torch.randn(2, 5), "ms": torch.randn(2, 3, 4)}
    batch = {"label": torch.tensor([1, 4]), "mmaps": torch.rand(2, 3, 1, 8, 8)}
    ce = F.cross_entropy(out["logits"], batch["label"])
    assert torch.isclose(total_loss(model, out, batch, LossSettings())[0], ce)
    config = MSLossSettings(kind="regression", regression="mse", weight=1.0)
    ms = ms_loss(out["ms"], batch["mmaps"], kind="regression")
    total, terms = total_loss(model, out, batch, LossSettings(ms=config))
    assert torch.isclose(total, ce + ms) and torch.isclose(terms["ms"], ms) and set(terms) == {"ce", "ms"}
    half = LossSettings(ms=config.model_copy(update={"weight": 0.5}))
    assert torch.isclose(total_loss(model, out, batch, half)[0], ce + 0.5 * ms)
    assert model.loss_inputs(half) == ("label", "mmaps")
    without_head = build_model("rgb_attention", num_classes=5, backbone="resnet18", mem_size=8, input_size=64)
    with pytest.raises(FparError, match="loss.ms needs a model with an MS head; 'rgb_attention' has none"):
        without_head.loss_inputs(half)

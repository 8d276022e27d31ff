"""Speed-only changes compute the same thing: channels-last layout, the frozen backbone without autograd."""

import copy

import torch

from fpar.engine.compute import (channels_last_batch, frames_channels_last, prepare_for_inference,
                                 prepare_model)
from fpar.engine.stages import configure_stage, set_train_mode
from fpar.models import build_model


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_clip_flattens_to_a_channels_last_view():
    clip = torch.randn(2, 3, 3, 16, 16)
    laid_out = frames_channels_last(clip)
    assert torch.equal(laid_out, clip)
    frames = laid_out.flatten(0, 1)
    assert frames.is_contiguous(memory_format=torch.channels_last)
    assert frames.data_ptr() == laid_out.data_ptr()  # a view: the batch is copied once, on arrival
    stack = frames_channels_last(torch.randn(2, 10, 16, 16))
    assert stack.is_contiguous(memory_format=torch.channels_last)
    batch = channels_last_batch({"frames": clip, "label": torch.tensor([1, 2]), "name": ["a", "b"]})
    assert batch["label"].tolist() == [1, 2] and batch["name"] == ["a", "b"]


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    model = build_model("two_in_one", num_classes=5, backbone="resnet18", mem_size=16, input_size=64,
                        ms_head="classification").eval()
    fast = prepare_model(copy.deepcopy(model))
    assert fast.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.state_dict().keys() == model.state_dict().keys()
    batch = {"frames": torch.randn(2, 3, 3, 64, 64), "flow": torch.randn(2, 3, 2, 64, 64)}
    with torch.no_grad():
        plain, ours = model(batch), fast(channels_last_batch(batch))
    for key in ("logits", "ms"):
        assert relative_error(ours[key], plain[key]) < 1e-4, key


def test_frozen_backbone_without_autograd_gives_the_same_gradients(monkeypatch):
    torch.manual_seed(0)
    model = build_model("rgb_attention", num_classes=5, backbone="resnet18", mem_size=16, input_size=64)
    configure_stage(model, "rgb_stage1")
    model.train()
    set_train_mode(model, "rgb_stage1")
    assert not model.backbone_trains()
    batch = {"frames": torch.randn(2, 3, 3, 64, 64)}

    def run() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same dropout mask
        logits = model(batch)["logits"]
        logits.square().sum().backward()
        return logits.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}

    logits, grads = run()
    monkeypatch.setattr(type(model), "backbone_trains", lambda self: True)  # the plain path, with autograd
    plain_logits, plain_grads = run()
    assert torch.equal(logits, plain_logits)
    assert grads.keys() == plain_grads.keys() and grads
    assert all(not name.startswith("backbone.") for name in grads)
    for name in grads:
        assert torch.equal(grads[name], plain_grads[name]), name


def test_stage2_backbone_keeps_autograd():
    model = build_model("rgb_ms", num_classes=5, backbone="resnet18", mem_size=16, input_size=64,
                        ms_head="classification")
    configure_stage(model, "rgb_stage2")
    assert model.backbone_trains()


def test_compile_is_in_place_and_keeps_checkpoint_keys():
    model = build_model("rgb_attention", num_classes=5, backbone="resnet18", mem_size=16, input_size=64)
    keys = list(model.state_dict())
    assert prepare_model(model, compile_model=True) is model  # compiled lazily, on the first forward
    assert list(model.state_dict()) == keys


def test_a_frozen_backbone_trains_as_a_folded_copy_that_computes_the_same():
    torch.manual_seed(0)
    model = build_model("two_in_one", num_classes=5, backbone="resnet18", mem_size=16, input_size=64,
                        ms_head="classification")
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # statistics worth folding
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    configure_stage(model, "rgb_stage1")
    model.train()
    set_train_mode(model, "rgb_stage1")
    batch = {"frames": torch.randn(2, 3, 3, 64, 64), "flow": torch.randn(2, 3, 2, 64, 64)}
    keys = model.state_dict().keys()

    def logits(precision: str | None = None) -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout mask
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16-mixed"):
            return model(batch)["logits"].detach().float()

    plain, plain_bf16 = logits(), logits("bf16-mixed")
    model.begin_training(torch.float32)
    assert model.state_dict().keys() == keys  # checkpoints save the model's own weights
    assert relative_error(logits(), plain) < 1e-5
    model.begin_training(torch.bfloat16)
    cached_bf16 = logits("bf16-mixed")
    assert not torch.equal(cached_bf16, plain_bf16)  # the folded bf16 copy ran ...
    assert relative_error(cached_bf16, plain_bf16) < 2e-2  # ... and computes the same within bf16 rounding
    assert torch.equal(logits(), plain)  # convs in fp32: the bf16 copy is not used
    configure_stage(model, "rgb_stage2")  # the backbone trains again: its own weights run
    assert torch.equal(logits(), plain)


def test_inference_by_slices_of_frames_gives_the_same_outputs():
    """``frames_per_pass`` (fpar predict) slices the per-frame part; every output, the explanation
    maps included, is what one pass over all B*T frames gives."""
    torch.manual_seed(0)
    model = build_model("two_in_one", num_classes=5, backbone="resnet18", mem_size=16, input_size=64,
                        ms_head="classification").eval()
    batch = {"frames": torch.randn(2, 5, 3, 64, 64), "flow": torch.randn(2, 5, 2, 64, 64)}
    whole = prepare_for_inference(copy.deepcopy(model), channels_last=False)
    sliced = prepare_for_inference(copy.deepcopy(model), channels_last=False, frames_per_pass=3)  # 10 = 3+3+3+1
    with torch.inference_mode():
        expected, ours = whole(batch, explain=True), sliced(batch, explain=True)
    assert ours.keys() == expected.keys() and {"attention", "ms", "scale"} <= ours.keys()
    for key in ours:
        assert ours[key].shape == expected[key].shape, key
        assert relative_error(ours[key], expected[key]) < 1e-5, key


def test_weights_stored_in_the_autocast_dtype_give_what_autocast_gives():
    """Under bf16 autocast, conv weights cast once (``dtype``) compute what autocast's per-call
    casts compute, in half the weights' memory; the CAM keeps reading an fp32 ``fc``."""
    torch.manual_seed(0)
    model = build_model("rgb_attention", num_classes=5, backbone="resnet18", mem_size=16, input_size=64,
                        ms_head="classification").eval()
    batch = {"frames": torch.randn(2, 3, 3, 64, 64)}
    plain = prepare_for_inference(copy.deepcopy(model))
    stored = prepare_for_inference(copy.deepcopy(model), dtype=torch.bfloat16)
    assert stored.backbone.layer1[0].conv1.weight.dtype == torch.bfloat16
    assert stored.convlstm.hidden_conv.weight.dtype == torch.bfloat16
    assert stored.backbone.fc.weight.dtype == torch.float32
    assert not any(p.requires_grad for p in stored.parameters())
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
        expected, ours = plain(channels_last_batch(batch)), stored(channels_last_batch(batch))
    for key in ("logits", "attention", "ms"):
        assert torch.equal(ours[key], expected[key]), key

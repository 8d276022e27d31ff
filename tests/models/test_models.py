"""Every registry model at small sizes (ResNet-18, 112x112, T=3): output shapes, options, build specs."""

import json

import pytest
import torch

from fpar.errors import FparError
from fpar.models import build_model, list_models
from helpers.small_models import B, CLASSES, MEM, SIZE, T, make_batch, small_model

GRID = 4  # layer4's map for a 112x112 input


def run(model, batch):
    with torch.no_grad():
        return model.eval()(batch)


def test_registry_names():
    assert list_models() == ["rgb_convlstm", "rgb_attention", "flow_resnet", "two_stream", "rgb_ms", "two_in_one"]


@pytest.mark.parametrize("name, keys, feature_size", [
    ("rgb_convlstm", {"logits", "features"}, MEM),
    ("rgb_attention", {"logits", "features", "attention"}, MEM),
    ("flow_resnet", {"logits", "features"}, 512),
    ("two_stream", {"logits", "features", "attention"}, 512 + MEM),  # flow first
    ("rgb_ms", {"logits", "features", "attention", "ms"}, MEM),
    ("two_in_one", {"logits", "features", "attention"}, MEM),
])
def test_output_shapes(name, keys, feature_size):
    out = run(small_model(name), make_batch(name))
    assert set(out) == keys
    assert out["logits"].shape == (B, CLASSES)
    assert out["features"].shape == (B, feature_size)
    if "attention" in out:
        assert out["attention"].shape == (B, T, GRID, GRID)
        # a softmax over the positions of each frame
        torch.testing.assert_close(out["attention"].sum(dim=(2, 3)), torch.ones(B, T))
    if "ms" in out:
        assert out["ms"].shape == (B, T, GRID * GRID)


@pytest.mark.parametrize("input_size, grid", [(112, 4), (224, 7), (96, 3)])
def test_ms_grid_follows_the_feature_map(input_size, grid):
    model = small_model("rgb_ms", input_size=input_size)
    assert model.ms_head.fc.out_features == grid * grid
    assert model.ms_head.fc.in_features == 100 * grid * grid


def test_memory_size_sets_the_feature_size():
    out = run(small_model("rgb_attention", mem_size=24), make_batch("rgb_attention"))
    assert out["features"].shape == (B, 24)


def test_flow_stack_size_sets_conv1_channels():
    model = small_model("flow_resnet", stack_size=3)
    assert model.backbone.conv1.in_channels == 6
    assert model.backbone.fc is None  # the flow network has no ImageNet head
    assert run(model, make_batch("flow_resnet", stack_size=3))["logits"].shape == (B, CLASSES)


def test_two_in_one_modulation_outputs():
    model = small_model("two_in_one", ms_head="regression", return_modulation=True)
    out = run(model, make_batch("two_in_one"))
    conv1_map = (B, T, 64, SIZE // 2, SIZE // 2)
    for name in ("pre", "scale", "shift", "post"):
        assert out[name].shape == conv1_map, name
    torch.testing.assert_close(out["post"], out["pre"] * (out["scale"] + 1) + out["shift"])
    assert out["ms"].shape == (B, T, GRID * GRID)


def test_two_in_one_flow_changes_the_prediction():
    model = small_model("two_in_one").eval()
    batch = make_batch("two_in_one")
    still = {**batch, "flow": torch.zeros_like(batch["flow"])}
    assert not torch.allclose(run(model, batch)["logits"], run(model, still)["logits"])


def test_two_in_one_without_attention():
    out = run(small_model("two_in_one", attention=False), make_batch("two_in_one"))
    assert "attention" not in out and out["logits"].shape == (B, CLASSES)


def test_frames_are_independent_of_the_batch():
    """The backbone sees all B*T frames at once: each clip's output must not depend on the others."""
    model = small_model("rgb_ms").eval()
    batch = make_batch("rgb_ms")
    together = run(model, batch)
    alone = run(model, {"frames": batch["frames"][1:]})
    for name in ("logits", "ms", "attention"):
        torch.testing.assert_close(together[name][1:], alone[name], rtol=1e-4, atol=1e-5)


def test_time_order_matters():
    """Only the ConvLSTM steps through time, but it does: reversing the frames changes the output."""
    model = small_model("rgb_attention").eval()
    batch = make_batch("rgb_attention")
    reversed_batch = {"frames": batch["frames"].flip(1)}
    assert not torch.allclose(run(model, batch)["features"], run(model, reversed_batch)["features"])


@pytest.mark.parametrize("name", ["rgb_convlstm", "rgb_attention", "flow_resnet", "two_stream", "rgb_ms", "two_in_one"])
def test_build_spec_rebuilds_the_same_model(name):
    model = small_model(name)
    spec = json.loads(json.dumps(model.build_spec))  # plain values only
    assert spec["name"] == name and spec["num_classes"] == CLASSES
    rebuilt = build_model(spec.pop("name"), **spec)
    original, copy = model.state_dict(), rebuilt.state_dict()
    assert {k: v.shape for k, v in original.items()} == {k: v.shape for k, v in copy.items()}


def test_stable_submodule_names():
    rgb = dict(small_model("two_in_one", ms_head="classification").named_children())
    assert {"backbone", "convlstm", "classifier", "ms_head", "motion"} <= set(rgb)
    fused = dict(small_model("two_stream").named_children())
    assert set(fused) == {"flow_model", "rgb_model", "classifier"}
    keys = small_model("rgb_attention").state_dict()
    assert {"backbone.conv1.weight", "backbone.bn1.running_var", "backbone.layer4.1.conv2.weight",
            "backbone.fc.weight", "classifier.1.weight"} <= set(keys)


def test_dropout_defaults_follow_the_reference():
    assert small_model("rgb_attention").classifier[0].p == 0.7
    assert small_model("flow_resnet").classifier[0].p == 0.5
    assert small_model("two_stream").classifier[0].p == 0.5


@pytest.mark.parametrize("name, kwargs, message", [
    ("no_such_model", {}, "unknown model"),
    ("flow_resnet", {"mem_size": 256}, "does not take"),
    ("rgb_attention", {"backbone": "resnet50"}, "unknown backbone"),
    ("rgb_ms", {"ms_head": "segmentation"}, "unknown ms_head"),
    ("rgb_ms", {"ms_head": None}, "needs ms_head"),
    ("rgb_attention", {"num_classes": 0}, "positive integer"),
    ("rgb_attention", {"dropout": 1.5}, "dropout"),
])
def test_bad_build_arguments(name, kwargs, message):
    with pytest.raises(FparError, match=message):
        build_model(name, **kwargs)

"""from_reference beyond the parity cases: aliases, old and wrapped files, errors that name the keys,
and a round trip through the reference naming for every kind at ResNet-18 size."""

import pytest
import torch

from fpar.errors import FparError
from fpar.interop import KINDS, from_reference, reference_state_dict
from interop.parity_cases import load_case, reference_weights
from helpers.small_models import make_batch, small_model


@pytest.fixture(scope="module")
def attention_weights():
    """The rgb_attention fixture's reference state dict (ResNet-34, with the reference's aliases)."""
    return {key: torch.from_numpy(value) for key, value in reference_weights(load_case("rgb_attention")).items()}


@pytest.fixture(scope="module")
def attention_model(attention_weights):
    return from_reference("rgb_attention", attention_weights)


def assert_same_weights(model, other):
    theirs = other.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, theirs[key]), key


def test_stacked_convlstm_gates_in_order(attention_model, attention_weights):
    conv = attention_model.convlstm.input_conv.weight
    for index, gate in enumerate("ifco"):
        assert torch.equal(conv[512 * index:512 * (index + 1)], attention_weights[f"lstm_cell.conv_{gate}_xx.weight"])
    assert torch.equal(attention_model.backbone.fc.weight, attention_weights["weight_softmax"])
    assert torch.equal(attention_model.classifier[1].bias, attention_weights["fc.bias"])


def test_ego_rnn_files_without_aliases(attention_model, attention_weights):
    plain = {k: v for k, v in attention_weights.items() if k not in ("weight_softmax", "classifier.1.weight", "classifier.1.bias")}
    assert_same_weights(attention_model, from_reference("rgb_attention", plain))


def test_alias_alone_is_enough(attention_model, attention_weights):
    only_alias = {k: v for k, v in attention_weights.items() if k not in ("resNet.fc.weight", "fc.weight")}
    assert_same_weights(attention_model, from_reference("rgb_attention", only_alias))


def test_old_and_data_parallel_files(attention_model, attention_weights):
    old = {"module." + k: v for k, v in attention_weights.items() if not k.endswith("num_batches_tracked")}
    assert_same_weights(attention_model, from_reference("rgb_attention", old))


def test_unknown_keys_are_named(attention_weights):
    extra = {**attention_weights, "lstm_cell.conv_z_xx.weight": torch.zeros(1), "spare.bias": torch.zeros(1)}
    with pytest.raises(FparError, match=r"unknown keys: lstm_cell\.conv_z_xx\.weight, spare\.bias"):
        from_reference("rgb_attention", extra)


def test_missing_keys_are_named(attention_weights):
    gone = ("lstm_cell.conv_f_hh.weight", "resNet.layer2.1.bn1.running_var")
    partial = {k: v for k, v in attention_weights.items() if k not in gone}
    with pytest.raises(FparError, match=r"missing keys: lstm_cell\.conv_f_hh\.weight, resNet\.layer2\.1\.bn1\.running_var"):
        from_reference("rgb_attention", partial)


def test_missing_shape_key_is_named(attention_weights):
    partial = {k: v for k, v in attention_weights.items() if k not in ("fc.weight", "classifier.1.weight")}
    with pytest.raises(FparError, match=r"fc\.weight"):
        from_reference("rgb_attention", partial)


def test_aliases_that_differ_are_refused(attention_weights):
    broken = {**attention_weights, "weight_softmax": attention_weights["weight_softmax"] + 1}
    with pytest.raises(FparError, match="weight_softmax"):
        from_reference("rgb_attention", broken)


def test_wrong_kind_or_override(attention_weights):
    with pytest.raises(FparError, match="unknown reference kind"):
        from_reference("rgb_attention34", attention_weights)
    with pytest.raises(FparError, match="wrong shapes"):
        from_reference("rgb_attention", attention_weights, num_classes=10)
    with pytest.raises(FparError, match="unknown keys"):
        from_reference("flow_resnet34", {"conv1.weight": torch.zeros(64, 10, 7, 7), "fc_action.weight": torch.zeros(5, 512),
                                         **{f"layer3.{i}.conv1.weight": torch.zeros(1) for i in range(6)},
                                         "weight_softmax": torch.zeros(1)})


def test_ms_task_keys_need_an_ms_kind():
    model = small_model("rgb_ms")
    with pytest.raises(FparError, match="rgb_ms_task or two_in_one"):
        from_reference("rgb_attention", reference_state_dict("rgb_ms_task", model))


@pytest.mark.parametrize("kind, name, extra", [
    ("rgb_convlstm", "rgb_convlstm", {}),
    ("rgb_attention", "rgb_attention", {"mem_size": 24}),
    ("flow_resnet34", "flow_resnet", {"stack_size": 3}),
    ("two_stream", "two_stream", {"mem_size": 24, "stack_size": 3}),
    ("rgb_ms_task", "rgb_ms", {"ms_input_sigmoid": True}),
    ("two_in_one", "two_in_one", {"ms_head": "classification"}),
])
def test_round_trip_through_reference_names(kind, name, extra):
    """fpar -> reference names -> fpar gives the same model; ResNet-18, memory, stack and the MS grid
    are all read back from the shapes."""
    model = small_model(name, input_size=64, **extra).eval()
    reference = reference_state_dict(kind, model)
    assert not any(key.startswith(("backbone.", "convlstm.", "rgb_model.", "flow_model.")) for key in reference)
    imported = from_reference(kind, reference)
    assert_same_weights(model, imported)
    for key, value in extra.items():
        assert imported.build_spec[key] == value
    assert imported.build_spec["backbone"] == "resnet18"
    if "ms_head" in imported.build_spec:
        assert (imported.ms_head is None) == (model.ms_head is None)
    stack = extra.get("stack_size", 5)
    batch = make_batch(name, stack_size=stack, size=64)
    with torch.no_grad():
        expected, actual = model(batch), imported(batch)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)


def test_every_kind_is_covered():
    assert set(KINDS) == {"rgb_convlstm", "rgb_attention", "flow_resnet34", "two_stream", "rgb_ms_task", "two_in_one"}


def test_overrides_reach_the_model(attention_weights):
    model = from_reference("rgb_attention", attention_weights, dropout=0.2)
    assert model.classifier[0].p == 0.2 and model.build_spec["dropout"] == 0.2

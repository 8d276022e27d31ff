"""The fpar models compute the reference's functions: every fixture output at relative error < 1e-4.

The fixtures were produced by running the FPAR-NET/FPAR reference code on synthetic weights; the
weights are rebuilt here from the key names (synth.py), converted with from_reference, and the
converted model is run in eval mode, float32, on the same inputs.
"""

import pytest
import torch

from fpar.engine.compute import channels_last_batch, prepare_for_inference
from fpar.errors import FparError
from fpar.interop import from_reference
from interop.parity_cases import CASES, batch_from_case, expected_outputs, load_case, reference_weights, relative_error

TOLERANCE = 1e-4

# what from_reference reads off the tensors' shapes (and, for the MS heads, off the kind)
COMMON = {"backbone": "resnet34", "num_classes": 61, "pretrained": None}
RGB = {**COMMON, "mem_size": 512, "input_size": 224, "ms_head": None, "ms_input_sigmoid": False}
MS = {"ms_head": "classification", "input_size": 224}
EXPECTED_SPECS = {
    "rgb_convlstm": {"name": "rgb_convlstm", **RGB},
    "rgb_attention": {"name": "rgb_attention", **RGB},
    "flow_resnet34": {"name": "flow_resnet", **COMMON, "stack_size": 5},
    "two_stream": {"name": "two_stream", **COMMON, "mem_size": 512, "stack_size": 5},
    # the ms-task reference squashes f with a sigmoid before its MS head, the two-in-one one does not
    "rgb_ms_task": {"name": "rgb_ms", **RGB, **MS, "ms_input_sigmoid": True},
    "two_in_one": {"name": "two_in_one", **RGB, **MS, "attention": True, "return_modulation": False},
}

# after folding: layer4's last bn2 (f_nobn reads conv2's raw output) per ResNet with that map, and
# the two-in-one's conv1 BN (it reads the modulated conv1 output)
BATCH_NORMS_KEPT = {"rgb_convlstm": 1, "rgb_attention": 1, "flow_resnet34": 1, "two_stream": 2, "rgb_ms_task": 1,
                    "two_in_one": 2}


@pytest.mark.parametrize("case_name", CASES)
def test_outputs_match_reference(case_name):
    case = load_case(case_name)
    expected = expected_outputs(case_name)
    assert set(expected) == set(case["outputs"])
    model = from_reference(case_name, reference_weights(case))
    assert not model.training
    spec = model.build_spec
    assert {key: spec[key] for key in EXPECTED_SPECS[case_name]} == EXPECTED_SPECS[case_name]
    with torch.no_grad():
        out = model(batch_from_case(case))
    for name, ref in expected.items():
        assert tuple(out[name].shape) == ref.shape, name
        assert out[name].dtype == torch.float32
        error = relative_error(out[name], ref)
        assert error < TOLERANCE, f"{case_name}.{name}: relative error {error:.2e}"


@pytest.mark.parametrize("case_name", CASES)
def test_inference_preparation_keeps_the_reference_function(case_name):
    # what `fpar eval` and `fpar predict` run: batch norms folded into their convs, channels-last
    case = load_case(case_name)
    model = prepare_for_inference(from_reference(case_name, reference_weights(case)))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == BATCH_NORMS_KEPT[case_name]
    with torch.inference_mode():
        out = model(channels_last_batch(batch_from_case(case)))
    for name, ref in expected_outputs(case_name).items():
        error = relative_error(out[name], ref)
        assert error < TOLERANCE, f"{case_name}.{name}: relative error {error:.2e}"


def test_batch_norms_fold_only_in_eval_mode():
    model = from_reference("flow_resnet34", reference_weights(load_case("flow_resnet34"))).train()
    with pytest.raises(FparError, match="eval mode"):
        prepare_for_inference(model)

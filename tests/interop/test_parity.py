"""The fpar models compute the reference's functions: every fixture output at relative error < 1e-4.

The fixtures were produced by running the FPAR-NET/FPAR reference code on synthetic weights; the
weights are rebuilt here from the key names (synth.py), converted with from_reference, and the
converted model is run in eval mode, float32, on the same inputs.
"""

import pytest
import torch

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

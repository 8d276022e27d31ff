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


@pytest.mark.parametrize("case_name", CASES)
def test_outputs_match_reference(case_name):
    case = load_case(case_name)
    expected = expected_outputs(case_name)
    assert set(expected) == set(case["outputs"])
    model = from_reference(case_name, reference_weights(case))
    assert not model.training
    with torch.no_grad():
        out = model(batch_from_case(case))
    for name, ref in expected.items():
        assert tuple(out[name].shape) == ref.shape, name
        assert out[name].dtype == torch.float32
        error = relative_error(out[name], ref)
        assert error < TOLERANCE, f"{case_name}.{name}: relative error {error:.2e}"

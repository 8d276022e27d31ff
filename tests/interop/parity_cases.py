"""Load the reference-parity fixtures in tests/fixtures/parity (copies of ../shared/parity)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

PARITY = Path(__file__).parents[1] / "fixtures" / "parity"
CASES = ("rgb_convlstm", "rgb_attention", "flow_resnet34", "two_stream", "rgb_ms_task", "two_in_one")

_spec = importlib.util.spec_from_file_location("parity_synth", PARITY / "synth.py")
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)


def load_case(case: str) -> dict:
    return json.loads((PARITY / f"{case}.json").read_text())


def reference_weights(case: dict) -> dict[str, np.ndarray]:
    """The reference-named state dict the case's outputs were computed with."""
    return synth.state_dict_from_spec(case["state_dict"])


def expected_outputs(case_name: str) -> dict[str, np.ndarray]:
    with np.load(PARITY / f"{case_name}.npz") as arrays:
        return {key: arrays[key] for key in arrays.files}


def batch_from_case(case: dict) -> dict[str, torch.Tensor]:
    """The case's inputs in fpar's batch-first layout (the reference puts time first)."""
    batch = {}
    for name, spec in case["inputs"].items():
        x = torch.from_numpy(synth.input_from_spec(spec))
        time_first = name == "frames" or (name == "flow" and x.ndim == 5)
        batch[name] = x.transpose(0, 1).contiguous() if time_first else x
    return batch


def relative_error(out: torch.Tensor, ref: np.ndarray) -> float:
    out = out.detach().numpy().astype(np.float64)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))

"""Reference (FPAR-NET/FPAR, Ego-RNN) checkpoints -> fpar models."""

from fpar.interop.reference import KINDS, from_reference, reference_state_dict

__all__ = ["KINDS", "from_reference", "reference_state_dict"]

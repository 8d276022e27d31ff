"""Models of the paper: backbones, ConvLSTM, attention, MS head, motion modulation, the registry."""

from fpar.models.registry import build_model, describe_model, list_models

__all__ = ["build_model", "describe_model", "list_models"]

"""An experiment's ``model`` section: a registry model's name and its build arguments.

The argument set differs per model, so the section admits any key the named model's builder
takes (``fpar.models.registry``) and refuses the rest, naming them. The registry (and with it
torch) is imported only when a section is validated: the CLI reads :data:`BLOCKS_PER_STAGE`
without it.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# residual blocks per stage of each backbone the models can be built on
BLOCKS_PER_STAGE = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


class ModelSettings(BaseModel):
    """``build_model(name, **arguments)``; ``num_classes`` null: the dataset's class count."""

    # extra keys are the named model's own build arguments, checked against its signature below
    model_config = ConfigDict(extra="allow", strict=True)

    name: str = Field(min_length=1)
    backbone: Literal[tuple(BLOCKS_PER_STAGE)] = "resnet34"  # type: ignore[valid-type]
    pretrained: Optional[str] = Field(None, min_length=1)
    num_classes: Optional[int] = Field(None, ge=1, le=1_000_000)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        from fpar.models.registry import MODELS

        if name not in MODELS:
            raise ValueError(f"unknown model '{name}' (choose one of {', '.join(MODELS)})")
        return name

    @model_validator(mode="after")
    def _arguments_of_the_named_model(self) -> "ModelSettings":
        from fpar.models.registry import MODELS

        if "input_size" in (self.model_extra or {}):
            raise ValueError("input_size is filled from data.crop; set data.crop instead")
        takes = [key for key in inspect.signature(MODELS[self.name]).parameters if key != "input_size"]
        unknown = sorted(set(self.model_extra or {}) - set(takes))
        if unknown:
            raise ValueError(f"unknown key {', '.join(unknown)}: model '{self.name}' takes {', '.join(takes)}")
        return self

    def build_arguments(self, num_classes: int, input_size: int) -> dict[str, Any]:
        """``build_model`` keywords: class count from the dataset unless set, input size from the crop."""
        return {**self.model_dump(), "num_classes": self.num_classes or num_classes, "input_size": input_size}

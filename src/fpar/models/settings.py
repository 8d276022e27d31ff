"""An experiment's ``model`` section: a registry model's name and its build arguments.

The argument set differs per model, so the section admits any key the named model's builder
takes (``fpar.models.registry``) and refuses the rest, naming them. The registry (and with it
torch) is imported only when a section is validated.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fpar.data.labels import LABEL_KINDS
from fpar.data.settings import ClipSettings
from fpar.errors import FparError
from fpar.models.vocabulary import BLOCKS_PER_STAGE

LabelKind = Literal[LABEL_KINDS]  # type: ignore[valid-type]



class ModelSettings(BaseModel):
    """``build_model(name, **arguments)``; ``num_classes`` null: the dataset's class count."""

    # extra keys are the named model's own build arguments, checked against its signature below
    model_config = ConfigDict(extra="allow", strict=True)

    name: str = Field(min_length=1)
    backbone: Literal[tuple(BLOCKS_PER_STAGE)] = "resnet34"  # type: ignore[valid-type]
    pretrained: Optional[str] = Field(None, min_length=1)
    num_classes: Optional[int] = Field(None, ge=1, le=1_000_000)
    # label heads beside the action head (docs/models.md, "Verb and noun heads"): a list of label
    # kinds (their class counts: the dataset's), or {kind: classes} (e.g. EPIC's {verb: 97, noun: 300})
    heads: Optional[Union[list[LabelKind], dict[LabelKind, Annotated[int, Field(ge=1, le=1_000_000)]]]] = None

    @field_validator("heads")
    @classmethod
    def _heads_once_each(cls, heads: Any) -> Any:
        if isinstance(heads, list) and len(set(heads)) != len(heads):
            raise ValueError("must name each label kind once")
        return heads

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        from fpar.models.registry import MODELS

        if name not in MODELS:
            raise ValueError(f"unknown model '{name}' (choose one of {', '.join(MODELS)})")
        return name

    @model_validator(mode="after")
    def _arguments_of_the_named_model(self) -> "ModelSettings":
        if "input_size" in (self.model_extra or {}):
            raise ValueError("input_size is filled from data.crop; set data.crop instead")
        takes = [key for key in _builder_keywords(self.name) if key != "input_size"]
        given = set(self.model_extra or {}) | (self.model_fields_set - {"name", "num_classes"})
        if not self.heads:
            given.discard("heads")
        unknown = sorted(given - set(takes))
        if unknown:
            raise ValueError(f"unknown key {', '.join(unknown)}: model '{self.name}' takes {', '.join(takes)}")
        from fpar.models.registry import check_values

        try:  # the values a build would refuse, refused now (--dry-run shows only what a run accepts)
            check_values({key: value for key, value in self.model_dump().items()
                          if key in takes and key not in ("heads", "num_classes")})
        except FparError as exc:
            raise ValueError(str(exc)) from None
        return self

    def build_arguments(self, num_classes: int, input_size: int,
                        label_classes: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """``build_model`` keywords: class count from the dataset unless set, input size from the crop,
        label heads' class counts from the dataset's label classes (``label_classes``: {kind: names})
        unless set; the section's defaults (``backbone``, ``pretrained``) only where the model takes them."""
        takes = _builder_keywords(self.name)
        arguments = {key: value for key, value in self.model_dump().items() if key in takes or key == "name"}
        if self.heads:
            arguments["heads"] = self.head_widths(label_classes or {})
        return {**arguments, "num_classes": self.num_classes or num_classes, "input_size": input_size}

    def check_reads(self, clip: ClipSettings) -> None:
        """``ValueError`` naming the model's key and the data's when clips read with ``clip`` are not
        what the model's ``input_spec`` reads (a modality missing, another flow stack or mode)."""
        from fpar.models.registry import input_spec_of

        takes = _builder_keywords(self.name)
        arguments = {key: value for key, value in self.model_dump().items()
                     if key in takes and key not in ("name", "num_classes", "heads", "pretrained")}
        spec = input_spec_of(self.name, **arguments, num_classes=1, input_size=clip.crop)
        given = clip.batch_shapes()
        for key, shape in spec.items():
            if key not in given:
                raise ValueError(f"model '{self.name}' (model.name) reads {key}, which data.modalities "
                                 f"[{', '.join(clip.modalities)}] does not read: add {key} to data.modalities")
            if tuple(shape) != given[key]:
                raise ValueError(self._mismatch(key, tuple(shape), given[key], clip))

    def _mismatch(self, key: str, wanted: tuple, given: tuple, clip: ClipSettings) -> str:
        model = f"model '{self.name}' (model.name)"
        if key == "flow" and (len(wanted) == 4) != (clip.flow_mode == "stack"):
            reads = "a stack of flow pairs (stack)" if len(wanted) == 4 else "one flow pair per frame (pairs)"
            return f"{model} reads {reads} but data.flow_mode is {clip.flow_mode}"
        if key == "flow" and len(wanted) == 4 and wanted[1] != given[1]:
            stack = wanted[1] // 2
            if "stack_size" in _builder_keywords(self.name):
                return (f"model.stack_size is {stack} but data.stack_size is {clip.stack_size}: the model reads "
                        f"stacks of model.stack_size flow pairs; set both to the same value")
            return f"{model} reads stacks of {stack} flow pairs but data.stack_size is {clip.stack_size}"
        return f"{model} reads {key} of shape {wanted}, data gives {given} (data.crop, data.stack_size)"

    def head_widths(self, label_classes: dict[str, list[str]]) -> dict[str, int]:
        """{kind: classes} of the label heads: the counts given, or the dataset's."""
        widths = {}
        for kind in self.heads or ():
            known = label_classes.get(kind)
            if known is None:
                raise FparError(f"model.heads: the dataset has no {kind} labels (a labels.csv, or class names "
                                "<verb>_<objects>; docs/data.md, \"Verb and noun labels\")")
            given = self.heads[kind] if isinstance(self.heads, dict) else len(known)
            if given < len(known):
                raise FparError(f"model.heads.{kind} is {given} but the dataset has {len(known)} {kind} classes")
            widths[kind] = given
        return widths


def _builder_keywords(name: str) -> list[str]:
    from fpar.models.registry import MODELS

    return list(inspect.signature(MODELS[name]).parameters)

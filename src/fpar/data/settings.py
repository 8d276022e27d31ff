"""What the data layer needs to know, as typed settings validated where they enter.

* :class:`ClipSettings`: how a clip is sampled and transformed, i.e. a model's input contract.
  It travels in every checkpoint, and it is the only way a :class:`~fpar.data.ClipDataset` is
  built (``ClipDataset.from_settings``), for training, evaluation, prediction and reports alike.
* :class:`DataSettings`: an experiment's ``data`` section: the clip settings plus where the
  dataset is, how it is split and how it is loaded.

The modality and flow-mode vocabularies are declared here (the dataset implements them); views
come from :mod:`fpar.data.transforms`, layouts from :mod:`fpar.data.layouts` (its registry). This module
imports neither torch nor OpenCV.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from fpar.data.layouts import layout_names
from fpar.errors import FparError

MODALITIES = ("frames", "flow", "mmaps")
# stack: L flow pairs stacked as channels (temporal stream); pairs: one flow pair per RGB frame (two-in-one)
FLOW_MODES = ("stack", "pairs")

Modality = Literal[MODALITIES]  # type: ignore[valid-type]


# Sane maxima, checked before anything is allocated (docs/reliability.md): a frame's short side, and
# the pixels of one clip's crops (frames x crop x crop; 2**28 is 3 GiB of float32 RGB, 64 frames at 2048)
MAX_RESIZE = 8192
MAX_CLIP_PIXELS = 1 << 28


def resize_for(crop: int) -> int:
    """The short side frames are resized to before a crop of side ``crop``, in the paper's ratio
    (256 for 224): for clips read without a config (benchmarks, streams of synthetic video)."""
    return crop * 8 // 7


class _Checked(type(BaseModel)):
    """Settings made in Python code (``fpar.ClipSettings(num_frames=-1)``) report a bad value as a
    config file does: one :class:`~fpar.errors.FparError` line naming the field, not pydantic's
    multi-line error. Only a direct call goes through here: configs are validated with
    ``model_validate`` (nested sections too), whose errors name the dotted key (fpar/engine/config.py)."""

    def __call__(cls, *args: Any, **values: Any) -> Any:
        try:
            return super().__call__(*args, **values)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(part) for part in error["loc"]) or "value"
            said = error["type"] in ("missing", "extra_forbidden") or f"{error['input']!r}" in error["msg"]
            got = "" if said else f" (got {error['input']!r})"
            raise FparError(f"{cls.__name__}: {key}: {error['msg']}{got}") from None


class CheckedSettings(BaseModel, metaclass=_Checked):
    """A settings section whose direct construction reports errors as :class:`FparError` (:class:`_Checked`)."""


class ClipSettings(CheckedSettings):
    """How one clip is read: which modalities, how many frames, flow stacking, resize and crop."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # a tuple from Python code is as good as a YAML list
    modalities: Annotated[list[Modality], BeforeValidator(lambda v: list(v) if isinstance(v, tuple) else v)] = Field(
        default_factory=lambda: ["frames"], min_length=1)
    num_frames: int = Field(16, ge=1, le=1024)
    stack_size: int = Field(5, ge=1, le=1024)
    flow_mode: Literal[FLOW_MODES] = "stack"  # type: ignore[valid-type]
    resize: int = Field(256, ge=1, le=MAX_RESIZE)
    crop: int = Field(224, ge=1, le=MAX_RESIZE)

    @field_validator("modalities")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("must name each modality once")
        return value

    @model_validator(mode="after")
    def _crop_fits(self) -> "ClipSettings":
        if self.crop > self.resize:
            raise ValueError(f"crop ({self.crop}) must not exceed resize ({self.resize})")
        frames = max(self.num_frames, self.stack_size)
        if frames * self.crop * self.crop > MAX_CLIP_PIXELS:
            raise ValueError(f"{frames} frames of {self.crop}x{self.crop} are more than the {MAX_CLIP_PIXELS} pixels "
                             "a clip may hold; use fewer frames or a smaller crop")
        return self

    def batch_shapes(self) -> dict[str, tuple]:
        """Per modality read, the shape of a batch of these clips as a model's ``input_spec`` states
        it (``B``, ``T``: the batch and time axes; ARCHITECTURE.md, "Dataset item")."""
        side = self.crop
        flow = ("B", 2 * self.stack_size, side, side) if self.flow_mode == "stack" else ("B", "T", 2, side, side)
        shapes = {"frames": ("B", "T", 3, side, side), "flow": flow, "mmaps": ("B", "T", 1, side, side)}
        return {modality: shapes[modality] for modality in self.modalities}

    def with_modality(self, modality: str) -> "ClipSettings":
        """These settings, also reading ``modality`` (e.g. motion maps to show beside an MS head)."""
        if modality in self.modalities:
            return self
        return self.model_copy(update={"modalities": [*self.modalities, modality]})


MAX_AUTO_WORKERS = 4  # docs/data.md, "ClipDataset"


def default_workers() -> int:
    """Loader workers for ``data.workers: auto``: one per CPU core this process may use, at most
    :data:`MAX_AUTO_WORKERS`, so PyTorch never warns that there are more workers than cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity outside Linux
        cores = os.cpu_count() or 1
    return min(MAX_AUTO_WORKERS, cores)


def _auto_workers(value):
    return default_workers() if value == "auto" else value


class DataSettings(ClipSettings):
    """An experiment's ``data`` section."""

    model_config = ConfigDict(extra="forbid", strict=True)

    root: Optional[str] = Field(None, min_length=1)
    # ``auto`` or a registered layout (fpar.data.layouts.registry: a new layout is one module)
    layout: str = Field("auto", min_length=1, description="auto, or a registered dataset layout",
                        json_schema_extra={"examples": ["auto", *layout_names()]})
    train_subjects: list[str] = Field(default_factory=lambda: ["S1", "S3", "S4"], min_length=1)
    val_subjects: list[str] = Field(default_factory=lambda: ["S2"], min_length=1)
    # one subject held out for validation, the rest trained on (overrides the two lists)
    fold: Optional[str] = Field(None, min_length=1)
    # an instance-level split the dataset records (splits.json; EGTEA's split1..3): its train clips
    # train, its test clips are the test set (overrides the subject lists and fold)
    split: Optional[str] = Field(None, min_length=1)
    # loader processes; auto (the default): :func:`default_workers`, what this machine has
    workers: Annotated[int, BeforeValidator(_auto_workers, json_schema_input_type=Union[Literal["auto"], int])] = \
        Field(default_factory=lambda: default_workers(), ge=0, le=256)
    cache: bool = False
    # the decoded-frame store (docs/data.md, "Dataset store"): true for the default folder beside the
    # dataset, a path for another; built on first use
    store: Union[bool, Annotated[str, Field(min_length=1)]] = False
    # loader workers live for the whole run (their dataset copies keep their open store and cache)
    persistent_workers: bool = True
    # batches each worker loads ahead of the one in use; None: PyTorch's default (2)
    prefetch: Optional[int] = Field(None, ge=1, le=64)
    # the dataset returns uint8 clips and the device converts and normalises them (4x less to copy)
    normalize_on_device: bool = False

    @field_validator("layout")
    @classmethod
    def _registered_layout(cls, value: str) -> str:
        if value != "auto" and value not in layout_names():
            raise ValueError(f"must be one of auto, {', '.join(layout_names())} (got {value!r})")
        return value

    @model_validator(mode="after")
    def _prefetch_needs_workers(self) -> "DataSettings":
        if self.prefetch is not None and self.workers == 0:
            raise ValueError("prefetch needs workers > 0 (with none, batches are loaded when needed)")
        return self

    @property
    def clip(self) -> ClipSettings:
        """The part of these settings a trained model's input depends on."""
        return ClipSettings(**{key: getattr(self, key) for key in ClipSettings.model_fields})

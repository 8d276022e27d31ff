"""An experiment's settings: typed, validated by pydantic where they enter, one class per section.

:class:`ExperimentSettings` composes what each layer owns: ``data`` (:class:`fpar.data.settings.DataSettings`,
whose clip part is the model's input contract), ``model`` (:class:`fpar.models.settings.ModelSettings`),
``loss`` (the models' :class:`fpar.models.losses.LossSettings`) and, owned here, the
stage, optimiser, scheduler and trainer. Files, ``_base_`` inheritance, overrides and error lines
are :mod:`fpar.engine.config`'s job. This module imports neither torch nor Lightning.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from fpar.data.settings import CheckedSettings, DataSettings
from fpar.engine.loggers import LOGGERS
from fpar.engine.selection import Selection, SelectionSettings
from fpar.engine.stages import STAGE_OPTIONS, STAGES
from fpar.models.losses import LossSettings
from fpar.models.settings import ModelSettings

PRECISIONS = ("auto", "32", "32-true", "16-mixed", "bf16-mixed")  # auto: what the hardware runs fastest (engine/hardware.py)
OPTIMIZERS = ("adam", "sgd")
SCHEDULERS = ("multistep", "step", "none")
MAX_SEED = 2**32 - 1


def _yaml_number(value: Any) -> Any:
    # YAML 1.1 reads "1e-4" (no dot) as a string; accept it as the number it obviously is.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


Number = Annotated[float, BeforeValidator(_yaml_number), Field(allow_inf_nan=False)]
PositiveNumber = Annotated[float, BeforeValidator(_yaml_number), Field(gt=0.0, allow_inf_nan=False)]
NonNegativeNumber = Annotated[float, BeforeValidator(_yaml_number), Field(ge=0.0, allow_inf_nan=False)]
# An experiment name becomes a folder under --out: one plain path component, never a way out of it.
def _plain_name(value: str) -> str:
    if value in (".", "..") or not all(c.isalnum() or c in "_.+=-" for c in value):
        raise ValueError("must be a plain name (letters, digits, _ . + = -), not a path")
    return value


PlainName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_plain_name)]


class Section(CheckedSettings):
    model_config = ConfigDict(extra="forbid", strict=True)


class StageSettings(Section):
    """Which training stage's rules (``fpar.engine.stages``) decide what trains."""

    name: Literal[STAGES]  # type: ignore[valid-type]
    options: dict[str, bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _options_of_the_stage(self) -> "StageSettings":
        unknown = sorted(set(self.options) - STAGE_OPTIONS.get(self.name, set()))
        if unknown:
            raise ValueError(f"stage '{self.name}' takes no option {', '.join(unknown)}")
        return self


class OptimizerSettings(Section):
    name: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    lr: PositiveNumber = 1.0e-4
    weight_decay: NonNegativeNumber = 4.0e-5
    eps: NonNegativeNumber = 1.0e-4
    momentum: NonNegativeNumber = 0.9
    # parameter group (see the stage rules) -> its own learning rate
    group_lr: dict[str, PositiveNumber] = Field(default_factory=dict)


class SchedulerSettings(Section):
    name: Literal[SCHEDULERS] = "multistep"  # type: ignore[valid-type]
    milestones: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [25, 75])
    gamma: NonNegativeNumber = 0.1
    step_size: int = Field(1, ge=1)

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if value != sorted(value):
            raise ValueError("milestones must be increasing")
        return value


def _precision_text(value: Any) -> Any:
    # `precision: 32` in YAML is an int
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class TrainerSettings(Section):
    epochs: int = Field(150, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1, le=65_536)
    val_every: int = Field(5, ge=1)
    precision: Annotated[Literal[PRECISIONS], BeforeValidator(_precision_text)] = "auto"  # type: ignore[valid-type]
    compile: bool = False  # torch.compile the model (engine/compute.py); opt-in: not measured to pay on CPU
    # keep last.ckpt (weights + optimiser state: the resume point) once all epochs are done; false
    # frees its disk space, and the finished run can then no longer be continued
    keep_last: bool = True
    accelerator: str = Field("auto", min_length=1)
    devices: Union[Annotated[int, Field(ge=1, le=4096)], Literal["auto"]] = Field(
        1, description="an integer >= 1 or auto")
    num_nodes: int = Field(1, ge=1, le=4096)
    strategy: str = Field("auto", min_length=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    deterministic: bool = True
    log_every_n_steps: int = Field(10, ge=1)
    logger: Union[Literal[tuple(LOGGERS)], list[Literal[tuple(LOGGERS)]]] = Field(  # type: ignore[valid-type]
        "tensorboard", description=f"one of {', '.join(LOGGERS)}, or a list of them ([] for none)")

    @property
    def loggers(self) -> list[str]:
        """``logger`` as a list without repeats."""
        names = [self.logger] if isinstance(self.logger, str) else self.logger
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _validate_at_least_once(self) -> "TrainerSettings":
        # A run shorter than the validation period still validates (at its end), so it has a best.ckpt
        # for the next stage of a recipe; the resolved config.yaml records the value used.
        if self.val_every > self.epochs:
            self.val_every = self.epochs
        return self


InitFrom = Union[None, Annotated[str, Field(min_length=1)], dict[str, Annotated[str, Field(min_length=1)]]]


class ExperimentSettings(Section):
    """One experiment: what a run directory's ``config.yaml`` and a checkpoint's ``fpar.config`` hold."""

    experiment: PlainName
    model: ModelSettings
    data: DataSettings = Field(default_factory=DataSettings)
    stage: StageSettings
    # the weights to start from; paths are relative to --out
    init_from: InitFrom = Field(None, description="null, a checkpoint path or a mapping {submodule: checkpoint path}")
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    loss: LossSettings = Field(default_factory=LossSettings)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    # how best.ckpt is chosen (fpar/engine/selection.py): holdout (default), last or test
    selection: Selection = Field(default_factory=SelectionSettings,
                                 description="holdout, last or test, or a mapping {method, fraction, seed}")
    # a record, not a setting: the key=value overrides a sweep made this run's config with, in full
    # (its folder name holds a short form; fpar/workflows/run_names.py)
    overrides: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="the key=value overrides a sweep made this config with (a record)")

    @model_validator(mode="after")
    def _data_gives_what_the_model_reads(self) -> "ExperimentSettings":
        # checked here, when the config loads: before any data is read, also for --dry-run
        self.model.check_reads(self.data.clip)
        return self

    def as_dict(self) -> dict[str, Any]:
        """Plain values (YAML- and ``weights_only``-safe), every key present."""
        return self.model_dump(mode="json")

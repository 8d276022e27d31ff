"""How a run chooses the checkpoint it keeps as ``best.ckpt`` (docs/protocols.md, "Checkpoint selection").

* ``holdout`` (the default): a validation part carved from the *training* subjects (``fraction`` of
  their clips, seeded, stratified by class) is held out of training and picks the best epoch; the
  test subjects (``data.val_subjects``) are never looked at while training.
* ``last``: the last epoch's weights, whatever any validation says; the training subjects all
  train, and validation (on the test subjects) only draws the curves.
* ``test``: the best epoch on the test subjects themselves, the paper's way (and Ego-RNN's); its
  numbers are optimistic, and every output that carries one says so.

The vocabulary and settings live here; the split is :func:`selection_split` (used by the
DataModule), ``last`` is :class:`fpar.engine.callbacks.BestWeights`. No torch is imported.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Annotated, Any, Literal, Optional, Sequence, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from fpar.errors import FparError

SELECTIONS = ("holdout", "last", "test")
DEFAULT_FRACTION = 0.2


def _from_name(value: Any) -> Any:
    # `selection: test` (or `selection=last` on the command line) names the method alone
    return {"method": value} if isinstance(value, str) else value


class SelectionSettings(BaseModel):
    """An experiment's ``selection`` section."""

    model_config = ConfigDict(extra="forbid", strict=True)

    method: Literal[SELECTIONS] = "holdout"  # type: ignore[valid-type]
    # share of the training subjects' clips held out to select on (holdout)
    fraction: Annotated[float, BeforeValidator(lambda v: float(v) if isinstance(v, int) and not isinstance(v, bool)
                                               else v)] = Field(DEFAULT_FRACTION, gt=0.0, lt=1.0)
    # the carve's seed; null: the run's trainer.seed (so the runs of several seeds carve differently)
    seed: Optional[int] = Field(None, ge=0, le=2**32 - 1)


# the JSON schema shows both spellings, so editors take `selection: test` too
Selection = Annotated[SelectionSettings, BeforeValidator(
    _from_name, json_schema_input_type=Union[Literal[SELECTIONS], SelectionSettings])]  # type: ignore[valid-type]


def carve(instances: Sequence[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """(kept, held out): ``round(fraction * len)`` instances held out, spread over the classes
    (``class_id``) in proportion to their sizes (largest remainders first, seeded tie order), each
    class keeping at least one instance to train on; the instances inside a class drawn with ``seed``."""
    by_class: dict[int, list[int]] = defaultdict(list)
    for position, inst in enumerate(instances):
        by_class[inst.class_id].append(position)
    rng = random.Random(seed)
    classes = sorted(by_class)
    quota = {c: fraction * len(by_class[c]) for c in classes}
    take = {c: min(int(quota[c]), len(by_class[c]) - 1) for c in classes}
    wanted = min(round(fraction * len(instances)), sum(len(by_class[c]) - 1 for c in classes))
    order = sorted(classes, key=lambda c: (-(quota[c] - int(quota[c])), rng.random()))
    for c in order * 2:  # a second pass: classes that already took their share take one more if needed
        if sum(take.values()) >= wanted:
            break
        if take[c] < len(by_class[c]) - 1:
            take[c] += 1
    held: set[int] = set()
    for c in classes:
        members = list(by_class[c])
        rng.shuffle(members)
        held.update(members[:take[c]])
    return ([inst for p, inst in enumerate(instances) if p not in held],
            [inst for p, inst in enumerate(instances) if p in held])


def selection_split(train: Sequence[Any], test: Sequence[Any], selection: SelectionSettings,
                    seed: int) -> tuple[list[Any], list[Any]]:
    """(instances to train on, instances to validate on) for ``selection``; ``seed``: the run's."""
    if selection.method == "holdout":
        kept, held = carve(train, selection.fraction, selection.seed if selection.seed is not None else seed)
        if not held:
            raise FparError(f"selection: holdout of {selection.fraction:g} of {len(train)} training clips leaves none to "
                            "select on (every class has one clip): use a larger fraction, or selection: last")
        return kept, held
    return list(train), list(test)


def selection_subjects(selection: dict[str, Any], train_subjects: Sequence[str],
                       test_subjects: Sequence[str]) -> list[str]:
    """The subjects whose clips chose the checkpoint (none for ``last``)."""
    return {"holdout": list(train_subjects), "last": [], "test": list(test_subjects)}[selection["method"]]


# a run trained before fpar had selections validated, and chose best.ckpt, on its test subjects
BEFORE_SELECTIONS = {"method": "test"}


def selection_record(config: dict[str, Any] | None) -> dict[str, Any]:
    """How a checkpoint's model was chosen, from its training config (``fpar.config``): the
    ``selection`` settings, ``subjects`` (those whose clips chose it) and ``text`` (one line for
    tables); a checkpoint without a training config (an imported reference model): ``method`` null."""
    if config is None:
        return {"method": None, "subjects": [], "text": "not recorded (a model not trained by fpar)"}
    selection = config.get("selection") or BEFORE_SELECTIONS
    data = config["data"]
    subjects = selection_subjects(selection, data["train_subjects"], data["val_subjects"]) \
        if data.get("fold") is None and data.get("split") is None else None
    return {**selection, "subjects": subjects, "text": describe(selection, config["trainer"]["seed"])}


def short(config: dict[str, Any]) -> str:
    """The selection in a table's cell, from a training config (``config.yaml``, ``fpar.config``):
    ``holdout 20%``, ``last`` or ``test S2`` (the subjects that chose the checkpoint)."""
    selection = config.get("selection") or BEFORE_SELECTIONS
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    return short_text(selection, [data["fold"]] if data.get("fold") else data.get("val_subjects") or [])


def short_text(selection: Any, test_subjects: Sequence[str] | None = ()) -> str:
    """``holdout 20%``, ``last``, ``test S2`` for ``selection`` (settings or :func:`selection_record`);
    ``-`` where none is recorded."""
    if not isinstance(selection, dict) or selection.get("method") not in SELECTIONS:
        return "-"
    if selection["method"] == "holdout":
        return f"holdout {100 * selection.get('fraction', DEFAULT_FRACTION):g}%"
    return " ".join(["test", *map(str, test_subjects or [])]) if selection["method"] == "test" else "last"


def describe(selection: dict[str, Any], seed: int | None = None) -> str:
    """One line for every output that carries a number: how its checkpoint was chosen."""
    method = selection["method"]
    if method == "holdout":
        carve_seed = selection.get("seed") if selection.get("seed") is not None else seed
        return (f"best epoch on {100 * selection['fraction']:g}% of the training subjects' clips, held out of "
                f"training (stratified by class, seed {carve_seed if carve_seed is not None else 'of each run'})")
    if method == "last":
        return "last epoch (no selection)"
    return "best epoch on the test subjects (the paper's way: optimistic)"

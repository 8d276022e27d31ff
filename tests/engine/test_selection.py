"""Checkpoint selection: the holdout part is carved from the training subjects (stated fraction,
seeded, stratified by class), ``last`` keeps the last epoch, ``test`` validates on the test subjects,
and evaluation says which."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import pytest
import torch

from helpers.tiny import tiny_config
from fpar.engine.config import validate_config
from fpar.engine.selection import carve, selection_record
from fpar.errors import FparError


@dataclass
class Clip:
    class_id: int
    name: str


def clips(per_class: dict[int, int]) -> list[Clip]:
    return [Clip(c, f"{c}-{i}") for c, n in per_class.items() for i in range(n)]


def test_carve_holds_out_the_fraction_stratified_by_class_and_seeded():
    instances = clips({0: 10, 1: 5, 2: 5, 3: 1})
    kept, held = carve(instances, 0.2, seed=3)
    assert len(held) == round(0.2 * 21) and len(kept) + len(held) == 21
    assert not {c.name for c in kept} & {c.name for c in held}
    per_class = Counter(c.class_id for c in held)
    assert per_class[0] == 2 and per_class[1] + per_class[2] == 2 and per_class[3] == 0  # 1 clip: kept to train
    assert [c.name for c in carve(instances, 0.2, seed=3)[1]] == [c.name for c in held]
    assert any([c.name for c in carve(instances, 0.2, seed=s)[1]] != [c.name for c in held] for s in range(4, 8))


def test_every_class_keeps_a_clip_to_train_on():
    kept, held = carve(clips({0: 2, 1: 2, 2: 3}), 0.9, seed=0)
    assert Counter(c.class_id for c in kept) == {0: 1, 1: 1, 2: 1}


def test_selection_settings_take_a_name_or_a_mapping():
    assert validate_config(tiny_config(selection="last")).selection.method == "last"
    assert validate_config(tiny_config(selection={"fraction": 0.3})).selection.method == "holdout"
    with pytest.raises(FparError, match="selection.method"):
        validate_config(tiny_config(selection="best"))
    with pytest.raises(FparError, match="selection.fraction"):
        validate_config(tiny_config(selection={"method": "holdout", "fraction": 0}))


def test_the_holdout_validates_on_training_subjects_only(tiny_data):
    from fpar.engine.datamodule import FparDataModule

    for selection, subjects in (({"method": "holdout", "fraction": 0.25}, {"S1", "S3"}), ("test", {"S2"}),
                                ("last", {"S2"})):
        module = FparDataModule(validate_config(tiny_config(selection=selection)), str(tiny_data))
        train, val = module._split
        assert {inst.subject for inst in val} <= subjects
        assert "S2" not in {inst.subject for inst in train}
        if selection in ("test", "last"):
            assert {inst.subject for inst in val} == {"S2"} and {inst.subject for inst in train} == {"S1", "S3"}
        else:
            assert len(val) == 3 and Counter(inst.class_id for inst in val) == {0: 1, 1: 1, 2: 1}
            assert not {(i.subject, i.instance_id) for i in val} & {(i.subject, i.instance_id) for i in train}
            assert len(train) + len(val) == 12  # S1 and S3: 2 videos x 3 classes each


def test_last_keeps_the_last_epoch_and_eval_says_so(tiny_data, tmp_path, one_thread):
    from fpar.checkpoint import load_checkpoint
    from fpar.engine.evaluate import evaluate
    from fpar.engine.train import train

    config = tiny_config(experiment="last", selection="last", trainer={"logger": [], "epochs": 2, "val_every": 1})
    result = train(config, data_root=tiny_data, out_dir=tmp_path, progress=False)
    best, last = load_checkpoint(result["best_ckpt"]), load_checkpoint(result["last_ckpt"])
    assert best["epoch"] == last["epoch"] == 1
    assert all(torch.equal(best["state_dict"][k], last["state_dict"][k]) for k in best["state_dict"])
    assert result["best_val_accuracy"] == result["metrics"][-1]["val_accuracy"]
    scored = evaluate(result["best_ckpt"], tiny_data)
    assert scored["selection"]["method"] == "last" and scored["selection"]["subjects"] == []
    assert scored["selection"]["text"] == "last epoch (no selection)"
    json.dumps(scored["selection"])


def test_selection_record_of_each_kind():
    config = validate_config(tiny_config(selection={"method": "holdout", "fraction": 0.25})).as_dict()
    record = selection_record(config)
    assert record["subjects"] == ["S1", "S3"] and "25% of the training subjects' clips" in record["text"]
    assert "seed 0" in record["text"]
    paper = selection_record(validate_config(tiny_config(selection="test")).as_dict())
    assert paper["subjects"] == ["S2"] and "the paper's way" in paper["text"]
    older = {key: value for key, value in config.items() if key != "selection"}
    assert selection_record(older)["method"] == "test"  # trained before selections: validated on its test subject
    assert selection_record(None)["method"] is None

"""Experiment configs: inheritance, overrides, defaults, and one-line errors naming the file and the key."""

import re
from pathlib import Path

import pytest
import yaml

from fpar.engine.config import dump_config, json_schema, load_config, parse_override, validate_config
from fpar.engine.settings import SchedulerSettings
from fpar.errors import FparError

from helpers.tiny import tiny_config


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def configs(tmp_path):
    write(tmp_path / "_base_" / "data.yaml", {"data": {"num_frames": 7, "crop": 112}, "trainer": {"epochs": 9}})
    write(tmp_path / "_base_" / "model.yaml", {"model": {"name": "rgb_attention", "mem_size": 64},
                                                "stage": {"name": "rgb_stage1"}})
    return write(tmp_path / "rows" / "my-row.yaml", {
        "_base_": ["../_base_/data.yaml", "../_base_/model.yaml"],
        "trainer": {"epochs": 11},
        "optimizer": {"lr": "1e-3"},  # YAML 1.1 reads this as a string
    })


def test_bases_merge_in_order_and_the_file_wins(configs):
    config = load_config(configs)
    assert config.experiment == "my-row"
    assert config.data.num_frames == 7 and config.data.crop == 112
    assert config.model.model_dump()["mem_size"] == 64 and config.stage.name == "rgb_stage1"
    assert config.trainer.epochs == 11
    assert config.optimizer.lr == pytest.approx(1e-3)
    # everything else from the defaults
    assert config.scheduler == SchedulerSettings()
    assert config.data.val_subjects == ["S2"]


def test_overrides_are_yaml_values_and_may_open_sections(configs):
    config = load_config(configs, ["trainer.epochs=3", "data.train_subjects=[S1, S4]", "loss.ms.kind=regression",
                                   "optimizer.group_lr.main=1.0e-5", "trainer.precision=bf16-mixed", "experiment=x"])
    assert config.trainer.epochs == 3
    assert config.data.train_subjects == ["S1", "S4"]
    assert config.loss.ms.model_dump() == {"kind": "regression", "threshold": 0.0, "regression": "mse", "weight": 1.0}
    assert config.optimizer.group_lr == {"main": 1e-5}
    assert config.trainer.precision == "bf16-mixed"
    assert config.experiment == "x"


def test_integer_precision_is_normalised(configs):
    assert load_config(configs, ["trainer.precision=32"]).trainer.precision == "32"


def test_dump_round_trips(configs, tmp_path):
    config = load_config(configs)
    path = tmp_path / "resolved.yaml"
    dump_config(config, path)
    assert load_config(path) == config
    assert validate_config(yaml.safe_load(dump_config(config))) == config
    assert yaml.safe_load(path.read_text()) == config.as_dict()


@pytest.mark.parametrize("override, message", [
    ("trainer.epoch=3", "trainer.epoch: unknown key"),
    ("optimiser.lr=1", "optimiser: unknown key"),
    ("data.subjects=[S1]", "data.subjects: unknown key"),
    ("loss.ms.wieght=2", "loss.ms.wieght: unknown key"),
    ("model.mem=3", "model: unknown key mem"),
])
def test_unknown_key_is_named(configs, override, message):
    with pytest.raises(FparError, match=rf"^my-row.yaml: {message}"):
        load_config(configs, [override])


def test_a_run_shorter_than_the_validation_period_still_validates(configs):
    config = load_config(configs, ["trainer.epochs=3", "trainer.val_every=5"])
    assert config.trainer.val_every == 3


@pytest.mark.parametrize("override, key", [
    ("trainer.epochs=ten", "trainer.epochs"),
    ("trainer.epochs=2.5", "trainer.epochs"),
    ("trainer.deterministic=1", "trainer.deterministic"),
    ("trainer.precision=8", "trainer.precision"),
    ("optimizer.lr=true", "optimizer.lr"),
    ("optimizer.name=rmsprop", "optimizer.name"),
    ("data.modalities=[rgb]", "data.modalities"),
    ("data.modalities=[]", "data.modalities"),
    ("data.train_subjects=S1", "data.train_subjects"),
    ("data.crop=512", "data: crop"),
    ("data.workers=-1", "data.workers"),
    ("scheduler.milestones=[75, 25]", "scheduler.milestones"),
    ("stage.name=stage3", "stage.name"),
    ("model.name=resnet", "model.name"),
    ("model.input_size=112", "model: input_size"),
    ("optimizer.lr=.nan", "optimizer.lr"),
    ("optimizer.lr=0", "optimizer.lr"),
    ("optimizer.lr=-1e-3", "optimizer.lr"),
    ("optimizer.group_lr.main=.inf", "optimizer.group_lr.main"),
    ("trainer.seed=-1", "trainer.seed"),
    ("trainer.seed=4294967296", "trainer.seed"),
    ("trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.epochs=0", "trainer.epochs"),
    ("experiment=../escape", "experiment"),
    ("experiment=/abs/path", "experiment"),
    ("experiment=a/b", "experiment"),
    ("experiment=..", "experiment"),
    ("loss.ms.regression=huber", "loss.ms.regression"),
    ("loss.ms=mse", "loss.ms"),
    ("init_from=3", "init_from"),
    ("data=3", "data"),
])
def test_wrong_type_or_value_is_named(configs, override, key):
    with pytest.raises(FparError, match=rf"^my-row.yaml: {re.escape(key)}[:. ]") as error:
        load_config(configs, [override])
    assert "\n" not in str(error.value)


def test_errors_read_as_one_line_with_the_bound(configs):
    with pytest.raises(FparError, match=r"^my-row.yaml: trainer.epochs: must be >= 1 \(got 0\)$"):
        load_config(configs, ["trainer.epochs=0"])
    assert load_config(configs, ["trainer.seed=4294967295"]).trainer.seed == 2**32 - 1


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("experiment: caf\xe9\n".encode("latin-1"))
    with pytest.raises(FparError, match=r"latin1.yaml is not UTF-8"):
        load_config(path)


def test_the_schema_describes_every_section():
    schema = json_schema()
    assert set(schema["properties"]) >= {"experiment", "model", "data", "stage", "optimizer", "scheduler", "loss",
                                         "trainer", "_base_"}
    assert schema["additionalProperties"] is False


def test_missing_model_name_is_named():
    config = tiny_config()
    del config["model"]["name"]
    with pytest.raises(FparError, match="^config: model.name: is required"):
        validate_config(config)


def test_override_syntax_and_bad_bases(tmp_path):
    with pytest.raises(FparError, match="key.sub=value"):
        parse_override("trainer.epochs")
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    write(tmp_path / "a.yaml", {"_base_": "b.yaml"})
    write(tmp_path / "b.yaml", {"_base_": "a.yaml"})
    with pytest.raises(FparError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    write(tmp_path / "c.yaml", {"_base_": "nope.yaml"})
    with pytest.raises(FparError, match="nope.yaml"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(FparError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_loader_workers_default_to_what_the_machine_has(monkeypatch):
    # data.workers: auto (the default, and the packaged gtea61 configs'): one per usable core, at most
    # 4, so a 2-core machine gets 2 and PyTorch's "more workers than cores" warning never shows
    import os

    from fpar.data.settings import MAX_AUTO_WORKERS, default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert default_workers() == 2
    assert validate_config(tiny_config(data={"workers": "auto"})).data.workers == 2
    packaged = load_config("gtea61/rgb-attention_r34_16f_stage1")
    assert packaged.data.workers == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert default_workers() == MAX_AUTO_WORKERS
    assert validate_config(tiny_config(data={"workers": 0})).data.workers == 0
    data_schema = json_schema()["$defs"]["DataSettings"]["properties"]["workers"]
    assert {"const": "auto", "type": "string"} in data_schema["anyOf"] or "auto" in str(data_schema)


@pytest.mark.parametrize("overrides, message", [
    (["model.stack_size=3"], "model.stack_size is 3 but data.stack_size is 5"),
    (["data.stack_size=3"], "model.stack_size is 5 but data.stack_size is 3"),
    (["data.modalities=[frames]"], "model 'flow_resnet' (model.name) reads flow, which data.modalities [frames] "
                                   "does not read"),
    (["data.flow_mode=pairs"], "model 'flow_resnet' (model.name) reads a stack of flow pairs (stack) but "
                               "data.flow_mode is pairs"),
])
def test_a_model_and_data_that_disagree_are_one_line_before_any_data_is_read(overrides, message, tmp_path, capsys):
    from fpar.cli import main

    with pytest.raises(FparError, match=re.escape(message)):
        load_config("synthetic/flow_r18_5s_scratch", overrides)
    missing = tmp_path / "no-data"  # never opened: the config is refused first
    for extra in (["--dry-run"], ["--data", str(missing), "--out", str(tmp_path / "runs")]):
        capsys.readouterr()
        code = main(["train", "synthetic/flow_r18_5s_scratch", *overrides, *extra])
        err = capsys.readouterr().err.strip()
        assert code != 0 and err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_each_models_reads_are_its_input_spec():
    """Two-in-one reads flow pairs beside the frames; two-stream a flow stack beside them."""
    assert load_config("synthetic/flow_r18_5s_scratch", ["model.stack_size=3", "data.stack_size=3"])
    base = {"experiment": "x", "stage": {"name": "two_stream"},
            "model": {"name": "two_stream", "backbone": "resnet18", "stack_size": 2}}
    with pytest.raises(FparError, match=r"reads flow, which data.modalities \[frames\] does not read"):
        validate_config({**base, "data": {"modalities": ["frames"], "stack_size": 2}})
    validate_config({**base, "data": {"modalities": ["frames", "flow"], "stack_size": 2}})
    pairs = {"experiment": "x", "stage": {"name": "two_in_one_stage3"}, "model": {"name": "two_in_one"}}
    with pytest.raises(FparError, match=r"reads one flow pair per frame \(pairs\) but data.flow_mode is stack"):
        validate_config({**pairs, "data": {"modalities": ["frames", "flow"]}})
    validate_config({**pairs, "data": {"modalities": ["frames", "flow"], "flow_mode": "pairs"}})

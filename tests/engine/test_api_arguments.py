"""The Python API checks its arguments as the CLI does: one FparError line, never an
AttributeError or a pydantic error from inside; and ``--dry-run`` shows only settings a run accepts."""

import pytest

import fpar
from fpar.cli import main

from helpers.tiny import tiny_config, write_config


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tiny.yaml", tiny_config())


@pytest.mark.parametrize("overrides, message", [
    ("trainer.epochs=1", "got the string 'trainer.epochs=1': write ['trainer.epochs=1']"),
    ([1], "got 1 (int)"),
    (5, "got int"),
])
def test_load_config_refuses_overrides_that_are_no_list_of_strings(config_file, overrides, message):
    with pytest.raises(fpar.FparError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        fpar.load_config(config_file, overrides)


def test_train_takes_a_config_path_and_refuses_other_things(config_file, tmp_path):
    with pytest.raises(fpar.FparError, match="nowhere: no such file or directory"):  # read, then run on no data
        fpar.train(str(config_file), data_root=tmp_path / "nowhere", out_dir=tmp_path / "runs")
    with pytest.raises(fpar.FparError, match="train\\(\\) takes settings"):
        fpar.train(5, out_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_clip_settings_made_in_code_give_one_fpar_error():
    with pytest.raises(fpar.FparError, match=r"^ClipSettings: num_frames: Input should be greater than or equal to 1 "
                                              r"\(got -1\)$"):
        fpar.ClipSettings(num_frames=-1)


def test_evaluate_and_stream_refuse_arguments_of_the_wrong_kind(trained_run, tiny_data):
    with pytest.raises(fpar.FparError, match="split must name subjects"):
        fpar.evaluate(trained_run["best_ckpt"], tiny_data, split=5)
    with pytest.raises(fpar.FparError, match="stream window must be a positive number of frames, got True"):
        fpar.Stream(trained_run["best_ckpt"], window=True)


@pytest.mark.parametrize("override, message", [
    ("model.dropout=nan", "model: dropout must be a number in [0, 1), got 'nan'"),
    ("model.dropout=.nan", "model: dropout must be a number in [0, 1), got nan"),
    ("model.dropout=1.5", "model: dropout must be a number in [0, 1), got 1.5"),
    ("model.mem_size=0", "model: mem_size must be a positive integer, got 0"),
])
def test_dry_run_refuses_what_the_run_would_refuse(config_file, capsys, override, message):
    assert main(["train", str(config_file), override, "--dry-run"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"fpar: error: tiny.yaml: {message}\n"

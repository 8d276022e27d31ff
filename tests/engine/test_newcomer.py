"""What a new user meets first: resuming without retyping, hints for typos, one --device option,
train.log in every run folder, fpar runs."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from fpar.cli import build_parser, main

from helpers.tiny import flow_config, write_config

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "


def copy_run(trained_run, tmp_path) -> Path:
    """The shared two-epoch run, copied (resuming it must not change the session's fixture)."""
    run = tmp_path / "runs" / "flow-tiny"
    shutil.copytree(trained_run["run_dir"], run)
    return run


# ---------------------------------------------------------------------------- resume


def test_resume_from_the_run_folder_needs_no_override_of_the_first_call(trained_run, tiny_data, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path)
    # the first call's settings live in config.yaml only: a changed lr, say, is not retyped
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert main(["train", str(run), "--resume", "--data", str(tiny_data), "--no-progress",
                 "trainer.epochs=3"]) == 0
    rows = json.loads((run / "metrics.json").read_text())
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    resumed = yaml.safe_load((run / "config.yaml").read_text())
    assert resumed["trainer"]["epochs"] == 3 and resumed["optimizer"] == saved["optimizer"]
    assert "flow-tiny: finished after 3 epochs, best validation accuracy " in capsys.readouterr().out

    log = (run / "train.log").read_text().splitlines()
    assert any(re.fullmatch(TIME + r"resuming flow-tiny in .*", line) for line in log)
    assert re.fullmatch(TIME + r"epoch 3/3  train loss .*", log[-2])
    assert re.fullmatch(TIME + r"finished after 3 epochs; best validation accuracy \d+\.\d%", log[-1])


def test_resume_with_a_config_reads_the_saved_settings(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path)
    # the config file says lr 0.5; the run was trained with the fixture's lr, which --resume keeps
    config = write_config(tmp_path / "flow.yaml", flow_config(experiment="flow-tiny", optimizer={"lr": 0.5}))
    assert main(["train", str(config), "--resume", "--out", str(run.parent), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"# run folder {run} (finished: --resume continues it from last.ckpt)")
    assert yaml.safe_load(printed)["optimizer"]["lr"] == trained_run["config"]["optimizer"]["lr"]


def test_resume_refuses_overrides_of_what_cannot_change_and_lists_them(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path)
    assert main(["train", str(run), "--resume", "optimizer.lr=0.5", "trainer.batch_size=2",
                 "trainer.epochs=4"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "these cannot change: optimizer.lr, trainer.batch_size (may change: " in err
    assert "trainer.epochs" in err.split("may change:")[1]  # epochs may change, so is not listed as refused


def test_a_run_folder_without_resume_says_to_add_it(trained_run, capsys):
    assert main(["train", trained_run["run_dir"]]) == 1
    assert "is a run folder: add --resume" in capsys.readouterr().err


# ---------------------------------------------------------------------------- train.log, fpar runs


def test_every_run_folder_has_a_timed_log_of_its_console_lines(trained_run):
    lines = (Path(trained_run["run_dir"]) / "train.log").read_text().splitlines()
    assert all(re.match(TIME, line) for line in lines)
    bodies = [line[20:] for line in lines]
    assert bodies[0].startswith("training flow-tiny in ")
    assert [b.split("  ")[0] for b in bodies if b.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]
    assert bodies[-1].startswith("finished after 2 epochs; best validation accuracy ")


def test_fpar_runs_lists_state_epochs_and_best_score(trained_run, tmp_path, capsys):
    finished = copy_run(trained_run, tmp_path)
    killed = tmp_path / "runs" / "killed"
    shutil.copytree(finished, killed)
    log = killed / "train.log"  # killed after epoch 1: its log ends with an epoch line
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines()[:-2]))
    failed = tmp_path / "runs" / "failed"
    failed.mkdir()
    shutil.copy(finished / "config.yaml", failed)
    (failed / "train.log").write_text("2026-01-01 00:00:00 training failed in x\n"
                                      "2026-01-01 00:00:01 failed: corrupt frame\n")
    older = tmp_path / "runs" / "older"  # an error's line as fpar wrote it before the states' words
    shutil.copytree(failed, older)
    (older / "train.log").write_text((older / "train.log").read_text().replace("failed:", "stopped:"))

    assert main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    runs = {Path(run["run"]).name: run for run in json.loads(capsys.readouterr().out)}
    assert {name: run["state"] for name, run in runs.items()} == {
        "flow-tiny": "finished", "killed": "interrupted", "failed": "failed", "older": "failed"}
    assert runs["flow-tiny"]["model"] == "flow_resnet" and runs["flow-tiny"]["stage"] == "flow"
    assert (runs["flow-tiny"]["epochs"], runs["flow-tiny"]["of"]) == (2, 2)
    assert runs["flow-tiny"]["best_val_accuracy"] == pytest.approx(trained_run["best_val_accuracy"])
    assert main(["runs", str(tmp_path / "runs")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["run", "model", "stage", "selection", "epochs", "best", "val", "state"]
    assert len(table) == 5


# ---------------------------------------------------------------------------- hints


@pytest.mark.parametrize("override, hint", [
    ("trainer.max_epochs=3", "trainer.max_epochs: unknown key; fpar calls it trainer.epochs"),
    ("max_epochs=3", "max_epochs: unknown key; fpar calls it trainer.epochs"),
    ("trainer.epoch=3", "trainer.epoch: unknown key; did you mean trainer.epochs?"),
    ("trainer.batchsize=3", "did you mean trainer.batch_size?"),
    ("trainer.lr=0.1", "trainer.lr: unknown key; fpar calls it optimizer.lr"),
    ("data.subjects=[S1]", "did you mean data.val_subjects or data.train_subjects?"),
])
def test_an_unknown_key_names_the_closest_one(override, hint, capsys):
    assert main(["configs", "show", "synthetic/rgb-attention_r18_8f_stage2", override]) == 1
    assert hint in capsys.readouterr().err


def test_a_mistyped_config_name_gets_the_closest_names(capsys):
    assert main(["configs", "show", "rgb-atention_r18_8f_stage2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fpar: error: config not found: ")
    assert "did you mean synthetic/rgb-attention_r18_8f_stage2" in err


def test_a_missing_recipe_is_also_config_not_found(capsys):
    assert main(["configs", "show", "recipes/no-such"]) == 1
    assert "config not found" in capsys.readouterr().err


@pytest.mark.parametrize("argv, hint", [
    (["trian"], "invalid choice: 'trian'; did you mean 'train'?"),
    (["configs", "shwo"], "invalid choice: 'shwo'; did you mean 'show'?"),
    (["flow", "v.mp4", "--out", "f.gif", "--method", "dsi"], "did you mean 'dis'?"),
])
def test_a_mistyped_command_or_choice_gets_the_closest(argv, hint, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and hint in capsys.readouterr().err


# ---------------------------------------------------------------------------- --device

# every command that computes, with its required arguments
COMPUTING = {
    "train": ["train", "c.yaml"], "eval": ["eval", "best.ckpt", "--data", "d"],
    "predict": ["predict", "best.ckpt", "v.mp4"], "cam": ["cam", "best.ckpt", "v.mp4"],
    "report": ["report", "runs/x", "--data", "d"], "run": ["run", "recipe"], "sweep": ["sweep", "c", "a=1,2"],
    "prepare": ["prepare", "v.mp4", "--out", "d"], "prepare-gtea": ["prepare-gtea", "raw", "--out", "d"],
    "flow": ["flow", "v.mp4", "--out", "f.gif"], "bench": ["bench"],
}


@pytest.mark.parametrize("command", sorted(COMPUTING))
def test_every_computing_command_reads_one_device_option(command, capsys):
    parser = build_parser()
    for text, value in (("cpu", "cpu"), ("cuda", "cuda"), ("CUDA:1", "cuda:1")):
        assert parser.parse_args([*COMPUTING[command], "--device", text]).device == value
    for wrong in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(SystemExit):
            parser.parse_args([*COMPUTING[command], "--device", wrong])
        assert "not a device" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no abbreviations: --dev is neither --device nor --devices
        parser.parse_args([*COMPUTING[command], "--dev", "cpu"])


def test_train_device_is_not_read_as_devices():
    args = build_parser().parse_args(["train", "c.yaml", "--device", "cuda", "--devices", "2"])
    assert (args.device, args.devices) == ("cuda", 2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="refusal of CUDA where there is none")
def test_cuda_where_there_is_none_is_refused_once_before_any_work(tmp_path, capsys):
    videos = [tmp_path / f"v{i}.gif" for i in range(3)]
    for video in videos:
        video.write_bytes(b"GIF89a")
    assert main(["prepare", *map(str, videos), "--out", str(tmp_path / "d"), "--subject", "S1", "--class", "c",
                 "--device", "cuda"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fpar: error: --device cuda: this PyTorch "
                   f"({torch.__version__}) sees no CUDA GPU here; use --device cpu"]
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------------------- quiet, readable


def test_a_file_its_writer_replaced_gets_the_usual_permissions(tmp_path):
    import os

    from fpar.io import atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "model.safetensors") as tmp:
            tmp.unlink()  # as safetensors does: a new file (0600 from its own temporary) in its place
            fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
    finally:
        os.umask(old)
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == 0o644


def test_precision_line_only_with_verbose(tmp_path, capsys):
    from fpar.cli import show_log_lines
    from fpar.engine.hardware import Hardware, resolve_precision
    import logging

    hardware = Hardware(device="cpu", name="test CPU", cpu_flags=frozenset())
    for verbose in (False, True):
        show_log_lines(verbose)
        resolve_precision("auto", "cpu", hardware=hardware, announce=logging.getLogger("fpar.engine.evaluate").info)
        assert ("precision 32-true on cpu" in capsys.readouterr().err) == verbose
    show_log_lines(False)


def test_eval_takes_a_run_folder(trained_run, tiny_data, capsys):
    assert main(["eval", trained_run["run_dir"], "--data", str(tiny_data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"] == str(Path(trained_run["run_dir"]) / "best.ckpt")


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_shell_completion_knows_every_command(shell, capsys):
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for command in ("train", "eval", "runs", "configs", "prepare-gtea", "--device", "--resume"):
        assert command in script


def test_the_flow_picture_carries_its_colour_key():
    import numpy as np

    from fpar.prepare.flow import colour_wheel, flow_to_rgb

    wheel = colour_wheel(33)
    # right of the centre is flow pointing right, below it flow pointing down: the colours flow_to_rgb gives them
    assert np.abs(wheel[16, 32].astype(int) - flow_to_rgb(np.array([[[16.0, 0.0]]], np.float32), 16.5)[0, 0]).max() < 40
    assert np.abs(wheel[32, 16].astype(int) - flow_to_rgb(np.array([[[0.0, 16.0]]], np.float32), 16.5)[0, 0]).max() < 40
    assert wheel[0, 0].tolist() == [255, 255, 255] and wheel[16, 16].max() < 40  # outside white, still centre dark

"""Other commands' outputs and numbers: a read-only or misplaced --out and a bad number are one
line (or argparse's usage error), never a traceback."""

import pytest
import torch

from fpar.cli import main
from fpar.engine.train import train

from helpers.tiny import tiny_config


@pytest.fixture(scope="module")
def attention_ckpt(tiny_data, module_tmp) -> str:
    torch.set_num_threads(1)
    result = train(tiny_config(experiment="attention", trainer={"epochs": 1}), data_root=tiny_data,
                   out_dir=module_tmp("runs"), progress=False)
    return result["best_ckpt"]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err[-3000:]
    return err.strip()


def test_cam_into_a_file_or_a_read_only_folder_is_one_line(attention_ckpt, tiny_data, tmp_path, read_only_dir, capsys):
    video = tiny_data / "processed_frames" / "S1" / "close_red" / "1" / "rgb"
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("keep me")
    assert main(["cam", attention_ckpt, str(video), "--out", str(not_a_folder)]) == 1
    assert error_line(capsys) == (f"fpar: error: cannot write {not_a_folder}/cam.gif: {not_a_folder}: "
                                  "a file is in the way")
    assert not_a_folder.read_text() == "keep me"
    assert main(["cam", attention_ckpt, str(video), "--out", str(read_only_dir / "cam")]) == 1
    assert error_line(capsys).startswith(f"fpar: error: cannot write {read_only_dir}/cam/cam.gif: ")
    assert main(["cam", attention_ckpt, str(video), "--out", str(tmp_path / "cam"), "--fps", "2.5"]) == 0
    assert (tmp_path / "cam" / "cam.gif").is_file()


# 1e-300 used to overflow into a traceback and an empty output folder
@pytest.mark.parametrize("fps", ["0", "-3", "nan", "inf", "x", "1e-300", "0.05", "1000"])
def test_cam_frame_rate_is_checked_where_it_enters(fps, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["cam", "model.ckpt", "video.mp4", "--fps", fps])
    assert exited.value.code == 2 and "argument --fps: " in capsys.readouterr().err


def test_synth_into_a_read_only_folder_is_one_line(read_only_dir, capsys):
    assert main(["synth", str(read_only_dir / "ds"), "--subjects", "1", "--classes", "1", "--frames", "5"]) == 1
    assert error_line(capsys).startswith(f"fpar: error: cannot write {read_only_dir / 'ds'}")


@pytest.mark.parametrize("args, message", [
    (["synth", "ds", "--subjects", "-1"], "argument --subjects: must be at least 1"),
    (["synth", "ds", "--videos-per-class", "0"], "argument --videos-per-class: must be at least 1"),
    (["synth", "ds", "--seed", "-5"], "argument --seed: must be at least 0"),
    (["synth", "ds", "--size", "0x10"], "argument --size: width and height must be between 1 and 4096"),
    (["report", "model.ckpt", "--data", "ds", "--clips", "-1"], "argument --clips: must be at least 0"),
    (["models", "--num-classes", "0"], "argument --num-classes: must be at least 1"),
    (["sweep", "c.yaml", "a=1,2", "--num-nodes", "0"], "argument --num-nodes: must be at least 1"),
    (["bench", "--repeats", "0"], "argument --repeats: must be at least 1"),
])
def test_numbers_of_other_commands_are_checked_where_they_enter(args, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2 and message in capsys.readouterr().err

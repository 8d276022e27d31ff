"""Inputs that end early: a video whose frames stop before its container says is a warning line
(``--strict`` refuses it), and a camera index no camera can have is one line."""

import cv2
import numpy as np
import pytest

from fpar.cli import main


@pytest.fixture
def truncated_video(tmp_path):
    """An MJPG AVI whose header declares 20 frames, cut in half (as a broken copy or download is)."""
    whole = tmp_path / "whole.avi"
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(20):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    return cut


def test_a_video_that_ends_early_is_a_warning_and_strict_refuses_it(trained_run, truncated_video, capsys):
    argv = ["predict", trained_run["best_ckpt"], str(truncated_video), "--flow", "dis", "--top", "1"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith("1. ")
    assert "of the 20 frames its container declares could be decoded (the file ends early); using those" in err
    assert main([*argv, "--strict"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.rstrip().endswith("refused (--strict)"), err


def test_a_camera_index_too_large_for_any_camera_is_one_line(trained_run, capsys):
    assert main(["stream", trained_run["best_ckpt"], "99999999999999999999"]) == 1
    err = capsys.readouterr().err
    assert err == "fpar: error: 99999999999999999999: not a camera index (too large) nor a video file or folder\n"


def test_a_stream_of_a_video_that_ends_early_warns_once_and_answers_its_frames(trained_run, truncated_video, capsys):
    assert main(["stream", trained_run["best_ckpt"], str(truncated_video), "--flow", "dis", "--json"]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if "its container declares" in line]
    assert len(warnings) == 1 and "(the file ends early); using those" in warnings[0], err
    frames = int(warnings[0].rsplit(" ", 1)[1])
    assert 0 < frames < 19 and out.count('"frames_seen"') == frames

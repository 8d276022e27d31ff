"""A checkpoint or a dataset that is missing or is not one: every command that takes it answers with
one line naming the path, writes nothing, and never gets as far as loading a model."""

import pytest

from fpar.cli import main

from helpers.output import one_line_error

BAD_CHECKPOINTS = {
    "missing": ("gone.ckpt", "checkpoint not found: {path}"),
    "an empty folder": ("folder", "{path}"),
    "an empty file": ("empty.ckpt", "{path} is not a readable checkpoint"),
    "a text file": ("text.ckpt", "{path} is not a readable checkpoint"),
}
CHECKPOINT_COMMANDS = {
    "eval": lambda ckpt, tmp: ["eval", ckpt, "--data", str(tmp)],
    "predict": lambda ckpt, tmp: ["predict", ckpt, str(tmp / "frames")],
    "cam": lambda ckpt, tmp: ["cam", ckpt, str(tmp / "frames"), "--out", str(tmp / "out" / "cam.gif")],
    "export": lambda ckpt, tmp: ["export", ckpt, str(tmp / "out")],
    "stream": lambda ckpt, tmp: ["stream", ckpt, str(tmp / "frames")],
}


def _bad_checkpoint(tmp_path, kind: str) -> str:
    name, _ = BAD_CHECKPOINTS[kind]
    path = tmp_path / name
    if kind == "an empty folder":
        path.mkdir()
    elif kind == "an empty file":
        path.write_bytes(b"")
    elif kind == "a text file":
        path.write_text("hello")
    return str(path)


@pytest.mark.parametrize("kind", BAD_CHECKPOINTS)
@pytest.mark.parametrize("command", CHECKPOINT_COMMANDS)
def test_a_checkpoint_that_is_missing_or_not_one_is_one_line_naming_it(tmp_path, capsys, command, kind):
    import cv2
    import numpy as np

    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "0001.png"), np.zeros((32, 32, 3), np.uint8))
    checkpoint = _bad_checkpoint(tmp_path, kind)
    assert main(CHECKPOINT_COMMANDS[command](checkpoint, tmp_path)) != 0
    assert BAD_CHECKPOINTS[kind][1].format(path=checkpoint) in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


DATA_COMMANDS = {
    "train": lambda data, tmp: ["train", "synthetic/rgb-attention_r18_8f_stage2", "--data", data,
                                "--out", str(tmp / "out")],
    "data check": lambda data, tmp: ["data", "check", data],
    "cache": lambda data, tmp: ["cache", data],
    "protocol": lambda data, tmp: ["protocol", "synthetic/rgb-attention_r18_8f_stage2", "--data", data,
                                   "--protocol", "loso", "--out", str(tmp / "out")],
}


@pytest.mark.parametrize("kind, message", [("missing", "no such file or directory"), ("a file", "not a dataset")])
@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_a_dataset_that_is_missing_or_not_one_is_one_line_naming_it(tmp_path, capsys, command, kind, message):
    data = tmp_path / "data"
    if kind == "a file":
        data.write_text("x")
    assert main(DATA_COMMANDS[command](str(data), tmp_path)) != 0
    assert f"{data}: {message}" in one_line_error(capsys)
    out = tmp_path / "out"
    assert not out.exists() or [p.name for p in out.iterdir()] in ([], [".locks"])  # no run folder
    assert data.exists() == (kind == "a file")

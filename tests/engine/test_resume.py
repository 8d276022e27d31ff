"""kill -9 + --resume equals an uninterrupted run; checkpoints are atomic and load without running code."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fpar.checkpoint import load_checkpoint
from fpar.engine.callbacks import AtomicCheckpointIO
from fpar.engine.train import train
from fpar.errors import FparError

from helpers.tiny import subprocess_env, tiny_config, write_config

DRIVER = Path(__file__).with_name("resume_driver.py")


def config(workers: int, epochs: int = 3) -> dict:
    """RGB stage 2: random clips, dropout, frozen BNs, a multistep lr; ``workers`` loading workers."""
    return tiny_config(data={"workers": workers}, trainer={"epochs": epochs, "val_every": 1},
                       scheduler={"name": "multistep", "milestones": [2]})


def fpar_train(config: Path, data: Path, out: Path, *extra: str, kill_at: int | None = None) -> int:
    env = subprocess_env()
    if kill_at is not None:
        env["FPAR_TEST_KILL_AT_STEP"] = str(kill_at)
    cmd = [sys.executable, str(DRIVER), "train", str(config), "--data", str(data), "--out", str(out),
           "--no-progress", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300).returncode


@pytest.fixture(scope="module")
def uninterrupted(module_tmp, tiny_data):
    """The 3-epoch run that never stopped, loading in the main process (``data.workers: 0``)."""
    out = module_tmp("whole")
    train(config(0), data_root=tiny_data, out_dir=out, progress=False)
    return out / "tiny"


def assert_same_run(whole: Path, resumed: Path) -> None:
    for name in ("last.ckpt", "best.ckpt"):
        a, b = load_checkpoint(whole / name), load_checkpoint(resumed / name)
        assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for key, value in a["state_dict"].items():
            assert torch.equal(value, b["state_dict"][key]), key
        if name == "last.ckpt":  # best.ckpt is model-only: the optimiser state lives in last.ckpt
            for sa, sb in zip(a["optimizer_states"][0]["state"].values(),
                              b["optimizer_states"][0]["state"].values()):
                assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    assert load_checkpoint(whole / "last.ckpt")["epoch"] == 2
    rows = json.loads((whole / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[-1]["lr"] < rows[0]["lr"]
    assert json.loads((resumed / "metrics.json").read_text()) == rows
    assert (resumed / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()


# Without workers the train loader starts its iteration at the first batch, with workers when it is
# made (while Lightning restores a resumed run): both must draw the clips of the same epoch.
@pytest.mark.parametrize("workers", [0, 1, 2])
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_data, uninterrupted, workers):
    path = write_config(tmp_path / "tiny.yaml", config(workers))
    # 3 steps per epoch: step 4 is the second batch of epoch 1, after epoch 0's last.ckpt
    assert fpar_train(path, tiny_data, tmp_path / "killed", kill_at=4) == -9
    assert load_checkpoint(tmp_path / "killed" / "tiny" / "last.ckpt")["epoch"] == 0
    train(config(workers), data_root=tiny_data, out_dir=tmp_path / "killed", resume=True, progress=False)
    assert_same_run(uninterrupted, tmp_path / "killed" / "tiny")


def test_a_finished_run_extended_to_more_epochs_equals_the_longer_run(tmp_path, tiny_data, uninterrupted):
    train(config(0, epochs=1), data_root=tiny_data, out_dir=tmp_path, progress=False)
    train(config(0, epochs=3), data_root=tiny_data, out_dir=tmp_path, resume=True, progress=False)
    assert_same_run(uninterrupted, tmp_path / "tiny")


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["truncated", "foreign", "runs code"])
def test_bad_checkpoint_is_one_clear_error(tmp_path, tiny_data, kind):
    run = tmp_path / "tiny"
    run.mkdir()
    last = run / "last.ckpt"
    marker = tmp_path / "code-ran"
    if kind == "truncated":
        torch.save({"state_dict": {"model.w": torch.ones(1000)}, "fpar": {}}, last)
        last.write_bytes(last.read_bytes()[:500])
        message = "not a readable checkpoint"
    elif kind == "foreign":
        torch.save({"weights": torch.ones(3)}, last)
        message = "not an fpar checkpoint"
    else:
        payload = RunsCode()
        payload.marker = marker
        last.write_bytes(pickle.dumps({"state_dict": payload, "fpar": {}}, protocol=2))
        message = "refusing to load"
    with pytest.raises(FparError, match=message):
        train(tiny_config(), data_root=tiny_data, out_dir=tmp_path, resume=True, progress=False)
    assert not marker.exists()


def test_checkpoint_writes_are_atomic(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"model.w": torch.ones(2)}, "fpar": {"model": {"name": "x"}}}, path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        io.save_checkpoint({"state_dict": {"model.w": torch.zeros(2)}, "unpicklable": lambda: 0}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["model.w"], torch.ones(2))

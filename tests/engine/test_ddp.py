"""Two CPU processes (DDP, gloo): every validation clip is scored exactly once, and the accuracy
equals one process's on the same checkpoint."""

import csv
import json
import subprocess
import sys

import pytest

from fpar.checkpoint import load_checkpoint
from fpar.engine.evaluate import evaluate

from helpers.tiny import subprocess_env, tiny_config, write_config

VAL_CLIPS = 7  # odd: a padding sampler would count one clip twice on 2 processes


def fpar(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "fpar", *args], env=subprocess_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_process_evaluation_equals_one_process(trained_run, tiny_data, tmp_path):
    common = ["eval", trained_run["best_ckpt"], "--data", str(tiny_data), "--json", "--accelerator", "cpu",
              "--batch-size", "2"]
    one = json.loads(fpar(*common, "--predictions", str(tmp_path / "one.csv")).stdout)
    two = json.loads(fpar(*common, "--devices", "2", "--predictions", str(tmp_path / "two.csv")).stdout)
    assert one["n"] == two["n"] == VAL_CLIPS
    for key in ("accuracy", "top5", "mean_class_accuracy", "per_class"):
        assert two[key] == pytest.approx(one[key]), key
    rows_one = list(csv.DictReader((tmp_path / "one.csv").open()))
    rows_two = list(csv.DictReader((tmp_path / "two.csv").open()))
    assert [r["id"] for r in rows_two] == [r["id"] for r in rows_one]
    for a, b in zip(rows_one, rows_two):
        assert a["prediction"] == b["prediction"]


def test_two_process_training_validates_every_clip_once(tiny_data, tmp_path):
    # RGB stage 2: a frozen backbone, so DDP must see the stage's trainable set when it wraps the model
    config = write_config(tmp_path / "ddp.yaml", tiny_config(experiment="ddp", trainer={"epochs": 1}))
    fpar("train", str(config), "--data", str(tiny_data), "--out", str(tmp_path), "--devices", "2", "--no-progress",
         "trainer.strategy=ddp", "trainer.accelerator=cpu")
    run = tmp_path / "ddp"
    (row,) = json.loads((run / "metrics.json").read_text())
    assert row["step"] == 2  # each process took half of the 12 training clips: 2 batches of 4, not 3
    assert load_checkpoint(run / "best.ckpt")["epoch"] == 0
    # val accuracy logged by 2 processes == a 1-process evaluation of the same weights
    single = evaluate(run / "best.ckpt", tiny_data)
    assert single["n"] == VAL_CLIPS
    assert row["val_accuracy"] == pytest.approx(single["accuracy"])

"""What training shows while and after it runs: progress that suits where it goes, the chosen
loggers with learning rate, top-5 and mean-class accuracy and pictures, and the metrics themselves."""

import csv
import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fpar.cli import main
from fpar.engine.evaluate import evaluate
from fpar.engine.loggers import LOGGERS
from fpar.engine.metrics import ClassificationMetrics

from helpers.tiny import subprocess_env, tiny_config, write_config


def test_mean_class_accuracy_averages_the_classes_present():
    metrics = ClassificationMetrics(4)
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 3, 1, 2, 0, 3])  # class 3 is predicted but absent from the split
    metrics.update(torch.nn.functional.one_hot(predicted, 4).float(), labels)
    numbers = metrics.compute()
    assert float(numbers["accuracy"]) == pytest.approx(3 / 6)
    assert float(numbers["mean_class_accuracy"]) == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    assert torch.isnan(numbers["per_class"][3])
    assert numbers["confusion"][2].tolist() == [1, 0, 1, 1]
    assert float(numbers["top5"]) == 1.0  # four classes: all within the top five


def test_redirected_training_logs_one_line_per_epoch_and_feeds_the_chosen_loggers(tiny_data, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(trainer={"epochs": 3, "logger": ["tensorboard", "csv"]}))
    out = tmp_path / "runs"
    with open(tmp_path / "stdout", "wb") as stdout, open(tmp_path / "stderr", "wb") as stderr:
        subprocess.run([sys.executable, "-m", "fpar", "train", str(config), "--data", str(tiny_data), "--out", str(out)],
                       stdout=stdout, stderr=stderr, env=subprocess_env(), check=True, timeout=600)
    logged = (tmp_path / "stdout").read_bytes() + (tmp_path / "stderr").read_bytes()
    assert b"\r" not in logged
    epochs = [line for line in (tmp_path / "stderr").read_text().splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert all("val acc" in line and "mean class" in line for line in epochs)
    assert ["lr 1.00e-03" in epochs[1], "lr 1.00e-04" in epochs[2]] == [True, True]  # the rate each epoch used
    assert "best validation accuracy" in (tmp_path / "stdout").read_text()

    run = out / "tiny"
    assert (run / "metrics.csv").is_file() and (run / "metrics.json").is_file()
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    assert {"lr-Adam/main", "val/acc", "val/top5", "val/mean_class_acc"} <= set(rows[0])
    validations = [row for row in rows if row["val/acc"]]
    assert len(validations) == 3
    assert [float(row["lr-Adam/main"]) for row in rows if row["lr-Adam/main"]] == [1e-3, 1e-3, 1e-4]  # milestone 2: from the third epoch
    # the logged numbers are evaluate's numbers for the checkpoint kept
    best = max(validations, key=lambda row: float(row["val/acc"]))
    result = evaluate(run / "best.ckpt", tiny_data)
    assert result["accuracy"] == pytest.approx(float(best["val/acc"]), abs=1e-6)
    assert result["mean_class_accuracy"] == pytest.approx(float(best["val/mean_class_acc"]), abs=1e-6)

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"val/confusion", "val/attention"} <= set(events.Tags()["images"])
    assert len(events.Images("val/confusion")) == 3
    assert {"val/top5", "val/mean_class_acc"} <= set(events.Tags()["scalars"])


def test_logger_choices_and_missing_extras_are_one_line(tiny_data, tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", tiny_config())
    assert main(["train", str(config), "trainer.logger=visdom", "--data", str(tiny_data), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "trainer.logger" in err and all(name in err for name in LOGGERS) and "\n" not in err
    for name, package in LOGGERS.items():
        if package is None:
            continue
        try:
            __import__(package)
            continue  # installed here: nothing to report
        except ImportError:
            pass
        assert main(["train", str(config), f"trainer.logger=[csv, {name}]", "--data", str(tiny_data),
                     "--out", str(tmp_path / name)]) == 1
        err = capsys.readouterr().err.strip()
        assert f"pip install {package}" in err and "\n" not in err
        assert not (tmp_path / name / "tiny" / "last.ckpt").exists()


def test_a_resumed_run_may_log_elsewhere(tiny_data, tmp_path):
    from fpar.engine.train import train

    config = tiny_config(trainer={"epochs": 1, "logger": "csv"})
    train(config, data_root=tiny_data, out_dir=tmp_path, progress=False)
    config["trainer"].update(epochs=2, logger=[])
    result = train(config, data_root=tiny_data, out_dir=tmp_path, resume=True, progress=False)
    assert result["epochs_done"] == 2 and len(result["metrics"]) == 2
    assert len((tmp_path / "tiny" / "csv" / "metrics.csv").read_text().splitlines()) > 1
    assert not (tmp_path / "tiny" / "tensorboard").exists()

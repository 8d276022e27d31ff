"""docs/units.md: text shows accuracies as percentages with one decimal, machine outputs carry
fractions in [0, 1] under keys that name them; one number, the same in both."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fpar.cli import main
from fpar.engine.metrics import validation_numbers

PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


def percents(text: str) -> list[str]:
    return PERCENT.findall(text)


def assert_one_decimal(text: str) -> None:
    found = percents(text)
    assert found and all(re.fullmatch(r"\d+\.\d", p) for p in found), found


def test_eval_runs_and_run_files_follow_the_unit_rule(trained_run, tiny_data, capsys):
    run = Path(trained_run["run_dir"])
    checkpoint = str(run / "best.ckpt")

    assert main(["eval", checkpoint, "--data", str(tiny_data), "--json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    assert main(["eval", checkpoint, "--data", str(tiny_data)]) == 0
    text = capsys.readouterr().out
    assert_one_decimal(text)
    for key in ("accuracy", "top5", "mean_class_accuracy"):
        assert 0.0 <= numbers[key] <= 1.0
        assert f"{100 * numbers[key]:.1f}%" in text

    assert main(["runs", str(run.parent), "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert "best" not in listed and 0.0 <= listed["best_val_accuracy"] <= 1.0
    assert main(["runs", str(run.parent)]) == 0
    table = capsys.readouterr().out
    assert_one_decimal(table)
    assert f"{100 * listed['best_val_accuracy']:.1f}%" in table

    # the run's files: every accuracy a fraction under its vocabulary name; the log's lines in percent
    columns = {column for _, column, _ in validation_numbers()}
    for row in json.loads((run / "metrics.json").read_text()):
        accuracies = {key: value for key, value in row.items() if key in columns}
        assert {"val_accuracy", "val_top5", "val_mean_class_accuracy"} <= accuracies.keys()
        assert all(0.0 <= value <= 1.0 for value in accuracies.values())
        assert set(row) - columns == {"epoch", "step", "lr", "train_loss", "val_loss"}
    assert_one_decimal((run / "train.log").read_text())

"""A metric defined here, in the test file alone, and registered through the metric registry, is
logged by training (``metrics.csv``), returned by evaluation (``fpar eval --json`` and its text),
summarised by a protocol (``protocol.json`` and its table) and given a column by ``fpar report`` as
fpar's own metrics are: nothing under ``src/`` knows it (ARCHITECTURE.md, "How to add a metric")."""

from __future__ import annotations

import csv
import json
import statistics

import pytest
from torchmetrics.classification import MulticlassConfusionMatrix

from helpers.tiny import tiny_config, write_config
from fpar.cli import main
from fpar.engine.metric_registry import register_metric, unregister_metric
from fpar.errors import FparError
from fpar.workflows.protocol import compare, compare_text


class WorstClassAccuracy(MulticlassConfusionMatrix):
    """The accuracy of the worst-recognised class present in the split."""

    def compute(self):
        confusion = super().compute()
        support = confusion.sum(dim=1)
        present = support > 0
        return (confusion.diagonal()[present].float() / support[present].float()).min()


@pytest.fixture
def worst_class():
    metric = register_metric("worst_class_accuracy", WorstClassAccuracy, logged="worst_class_acc",
                             words="worst class", title="worst class", short="worst_class")
    yield metric
    unregister_metric(metric.name)


def test_a_registered_metric_reaches_training_evaluation_and_the_protocol(worst_class, tiny_data, tmp_path, capsys,
                                                                           one_thread):
    config = tiny_config(experiment="tiny-metric", trainer={"epochs": 1, "batch_size": 6, "logger": []},
                         selection={"method": "holdout", "fraction": 0.25})
    out = tmp_path / "out"
    assert main(["protocol", str(write_config(tmp_path / "tiny.yaml", config)), "--data", str(tiny_data),
                 "--protocol", "loso", "--seeds", "1", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    summary = json.loads((out / "protocol.json").read_text())
    runs = summary["runs"]
    assert len(runs) == 3 and all(0 <= run["worst_class"] <= run["mean_class"] for run in runs)
    assert summary["worst_class"]["n"] == 3
    assert summary["worst_class"]["mean"] == pytest.approx(statistics.mean(run["worst_class"] for run in runs))
    assert "worst class %" in (out / "protocol.md").read_text().splitlines()[0]
    paired = compare(out, out)  # fpar protocol compare pairs it too
    assert paired["worst_class"]["mean"] == 0 and "worst class" in compare_text(paired)

    run_dir = out / runs[0]["run_dir"]
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 0 <= float(rows[-1]["val_worst_class_accuracy"]) <= 1  # training's validation logged it

    assert main(["eval", str(run_dir / "best.ckpt"), "--data", str(tiny_data), "--split", runs[0]["fold"],
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["worst_class_accuracy"] == pytest.approx(min(result["per_class"].values()))
    assert result["worst_class_accuracy"] == pytest.approx(runs[0]["worst_class"])  # the protocol's own scoring
    assert main(["eval", str(run_dir / "best.ckpt"), "--data", str(tiny_data), "--split", runs[0]["fold"]]) == 0
    assert f"{'worst class':<12} {100 * result['worst_class_accuracy']:5.1f}%" in capsys.readouterr().out

    # fpar report: a column of the comparison table (report.md, index.html), a row of each run's table
    report = out / "report"
    assert main(["report", *(str(out / run["run_dir"]) for run in runs[:2]), "--data", str(tiny_data),
                 "--out", str(report), "--clips", "0", "--quiet"]) == 0
    assert "worst class" in capsys.readouterr().out  # the summary line of each run
    numbers = json.loads((report / "report.json").read_text())["runs"]
    assert [run["worst_class_accuracy"] for run in numbers] == pytest.approx([run["worst_class"] for run in runs[:2]])
    table = (report / "report.md").read_text().splitlines()
    heading = table[table.index("# Comparison") + 2].split(" | ")
    assert heading[1:5] == ["top-1", "top-5", "mean class", "worst class"]
    first = table[table.index("# Comparison") + 4].split(" | ")
    assert first[4] == f"{100 * runs[0]['worst_class']:.1f}%"
    assert f"| worst class | {100 * runs[1]['worst_class']:.1f}% |" in table
    assert "<th>worst class</th>" in (report / "index.html").read_text()


def test_a_metric_name_is_registered_once(worst_class):
    with pytest.raises(FparError, match="worst_class_accuracy"):
        register_metric("worst_class_accuracy", WorstClassAccuracy)
    with pytest.raises(FparError, match="top1"):
        register_metric("first_choice", WorstClassAccuracy, short="top1")

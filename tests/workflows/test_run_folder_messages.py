"""Run folders damaged by hand: ``fpar runs`` lists the good runs beside one whose metrics.json is
corrupt, and ``fpar configs show|diff`` name the run whose config.yaml they cannot use."""

import json
import shutil

import pytest
import yaml

from fpar.cli import main

from helpers.tiny import tiny_config

BAD_METRICS = {"not JSON": "{{{", "epoch text": '[{"epoch": "x"}]', "epoch a list": '[{"epoch": [1]}]',
               "epoch infinite": '[{"epoch": 1e400}]', "epoch NaN": '[{"epoch": NaN}]',
               "accuracy NaN": '[{"epoch": 1, "val_accuracy": NaN}]', "accuracy text": '[{"epoch": 1, "val_accuracy": "a"}]'}


def run_folder(path, accuracy=0.5):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    (path / "metrics.json").write_text(json.dumps([{"epoch": 1, "val_accuracy": accuracy}]))
    return path


@pytest.mark.parametrize("kind", list(BAD_METRICS))
def test_runs_lists_the_good_runs_beside_one_with_a_corrupt_metrics_json(tmp_path, capsys, kind):
    run_folder(tmp_path / "good")
    (run_folder(tmp_path / "bad") / "metrics.json").write_text(BAD_METRICS[kind])
    assert main(["runs", str(tmp_path), "--json"]) == 0
    runs = {row["run"].rsplit("/", 1)[-1]: row for row in json.loads(capsys.readouterr().out)}
    assert runs["good"]["best_val_accuracy"] == 0.5 and runs["good"]["epochs"] == 1
    assert runs["bad"]["best_val_accuracy"] is None and runs["bad"]["epochs"] == 0


def test_configs_show_and_diff_take_a_run_folder_and_name_it(tmp_path, capsys):
    good, bad = run_folder(tmp_path / "good"), run_folder(tmp_path / "bad")
    assert main(["configs", "show", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# {good / 'config.yaml'} (run folder {good})\n") and "experiment: tiny" in out
    (bad / "config.yaml").write_text("")
    for argv in (["configs", "show", str(bad)], ["configs", "diff", str(good), str(bad)]):
        assert main(argv) == 1
        out, err = capsys.readouterr()
        assert out == "" and err == f"fpar: error: run folder {bad}: config.yaml: model: is required\n", err
    shutil.rmtree(bad)

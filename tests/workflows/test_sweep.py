"""Sweeps: grid expansion, run names, skipping finished runs, the results table (train() faked)."""


import pytest
import yaml

from fpar.workflows import recipe, sweep
from fpar.engine.config import CONFIG_DIR
from fpar.errors import FparError
from fpar.workflows.run_names import MAX_RUN_NAME, legacy_run_name, run_name

from helpers.fake_train import FakeTrain

CONFIG = CONFIG_DIR / "gtea61" / "rgb-ms-cls_r34_16f_stage2.yaml"


def test_axis_values_split_at_top_level_commas():
    assert sweep.parse_axis("optimizer.lr=1e-3,1e-4") == ("optimizer.lr", ["1e-3", "1e-4"])
    assert sweep.parse_axis("scheduler.milestones=[25, 75],[50,100]") == (
        "scheduler.milestones", ["[25, 75]", "[50,100]"])
    for bad in ("optimizer.lr", "optimizer.lr=", "x=[1,2", "x=1,,2", "x=1,1"):
        with pytest.raises(FparError):
            sweep.parse_axis(bad)


def test_grid_is_every_combination_in_order():
    grid = sweep.expand_grid(["trainer.batch_size=16,32", "trainer.epochs=50,100,150"])
    assert len(grid) == 6
    assert grid[0] == [("trainer.batch_size", "16"), ("trainer.epochs", "50")]
    assert grid[-1] == [("trainer.batch_size", "32"), ("trainer.epochs", "150")]
    with pytest.raises(FparError, match="twice"):
        sweep.expand_grid(["trainer.epochs=1,2", "trainer.epochs=3"])


def test_run_names_are_short_readable_and_stable():
    name = run_name("exp", [("optimizer.lr", "1e-4"), ("scheduler.milestones", "[50, 100]")])
    assert name.startswith("exp__lr=1e-4_milestones=50-100__")
    # the same overrides however they are spelled; others never alike, even where the cut hides them
    assert run_name("exp", [("optimizer.lr", "1e-4"), ("scheduler.milestones", "[50,100]")]) == name
    assert run_name("exp", [("optimizer.lr", "1e-5"), ("scheduler.milestones", "[50,100]")]) != name
    many = [("trainer.batch_size", "4"), ("data.crop", "32"), ("scheduler.milestones", "[25,75]"),
            ("optimizer.weight_decay", "1e-4"), ("optimizer.lr", "1e-3"), ("loss.ms.threshold", "0.5")]
    names = {run_name("rgb-attention_r18_8f_stage2" * 3, many[:-1] + [(many[-1][0], v)]) for v in ("0.5", "0.6")}
    assert len(names) == 2 and all(len(n) <= MAX_RUN_NAME for n in names)


def test_a_five_axis_sweep_writes_short_folders_with_the_overrides_in_config(tmp_path, monkeypatch, capsys):
    from fpar.cli import main
    from fpar.workflows.runs import describe_run

    monkeypatch.setattr(recipe, "_train", FakeTrain())
    axes = ["trainer.batch_size=4,8", "data.crop=32", "scheduler.milestones=[25,75]", "optimizer.weight_decay=1e-4",
            "optimizer.lr=1e-3,1e-4"]
    assert main(["sweep", str(CONFIG), *axes, "--out", str(tmp_path)]) == 0
    folders = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 4 and all(len(p.name) <= MAX_RUN_NAME for p in folders)
    for folder in folders:
        saved = yaml.safe_load((folder / "config.yaml").read_text())
        assert saved["overrides"][1:4] == ["data.crop=32", "scheduler.milestones=[25,75]",
                                           "optimizer.weight_decay=1e-4"]
        assert describe_run(folder)["overrides"] == saved["overrides"]


def test_a_run_named_in_full_by_an_older_sweep_is_found_again(tmp_path, monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(recipe, "_train", fake)
    combo = [("trainer.batch_size", "16")]
    old = tmp_path / legacy_run_name("rgb-ms-cls_r34_16f_stage2", combo)
    assert old.name == "rgb-ms-cls_r34_16f_stage2__trainer.batch_size=16"
    old.mkdir()
    [config] = sweep.sweep_configs(CONFIG, [combo], out_dir=tmp_path)
    assert config.experiment == old.name


def test_sweep_trains_each_combination_once_and_tabulates(tmp_path, monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(recipe, "_train", fake)
    axes = ["trainer.batch_size=16,32", "scheduler.milestones=[25,75],[50,100]"]
    rows = sweep.run_sweep(CONFIG, axes, out_dir=tmp_path, log=lambda _: None)
    assert len(fake.calls) == 4 and len(rows) == 4
    assert rows[1]["run"].startswith("rgb-ms-cls_r34_16f_stage2__batch_size=16_milestones=50-100__")
    assert rows[1]["scheduler.milestones"] == "[50,100]"
    assert (tmp_path / rows[1]["run"] / "best.ckpt").is_file()

    fake.calls.clear()
    assert sweep.run_sweep(CONFIG, axes, out_dir=tmp_path, log=lambda _: None) == rows
    assert fake.calls == []
    csv = (tmp_path / "rgb-ms-cls_r34_16f_stage2__sweep.csv").read_text().splitlines()
    assert csv[0] == "run,trainer.batch_size,scheduler.milestones,best_val_accuracy,epochs_done" and len(csv) == 5
    markdown = (tmp_path / "rgb-ms-cls_r34_16f_stage2__sweep.md").read_text()
    assert markdown.startswith("| trainer.batch_size | scheduler.milestones | best_val_accuracy |")


def test_a_bad_value_fails_before_any_run(tmp_path, monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(recipe, "_train", fake)
    with pytest.raises(FparError, match="optimizer.name"):
        sweep.run_sweep(CONFIG, ["optimizer.name=adam,adamw"], out_dir=tmp_path, log=lambda _: None)
    assert fake.calls == []


def test_fpar_sweep_command(tmp_path, monkeypatch, capsys):
    from fpar.cli import main

    fake = FakeTrain()
    monkeypatch.setattr(recipe, "_train", fake)
    assert main(["sweep", str(CONFIG), "trainer.epochs=2,3", "--out", str(tmp_path), "--set", "optimizer.lr=1e-3",
                 "loss.ms.threshold=0.0,0.5"]) == 0
    assert len(fake.calls) == 4
    assert "| trainer.epochs | loss.ms.threshold | best_val_accuracy | epochs_done |" in capsys.readouterr().out


def test_table_marks_the_best_and_shows_unvalidated_runs():
    rows = [{"run": "a", "x": "1", "best_val_accuracy": 0.5, "epochs_done": 2},
            {"run": "b", "x": "2", "best_val_accuracy": None, "epochs_done": 1},
            {"run": "c", "x": "3", "best_val_accuracy": 0.75, "epochs_done": 2}]
    assert sweep.results_markdown(rows).splitlines()[2:] == [
        "| 1 | 50.0% | 2 |", "| 2 | - | 1 |", "| 3 | **75.0%** | 2 |"]


def test_a_data_root_axis_with_data_is_refused_before_any_run(tmp_path, monkeypatch, capsys):
    """`data.root=A,B --data C` trained both runs on C and labelled them A and B."""
    from fpar.cli import main

    fake = FakeTrain()
    monkeypatch.setattr(recipe, "_train", fake)
    assert main(["sweep", str(CONFIG), f"data.root={tmp_path / 'A'},{tmp_path / 'B'}", "--data", str(tmp_path / "C"),
                 "--out", str(tmp_path / "runs")]) == 1
    assert "the sweep axis data.root and --data both name the dataset" in capsys.readouterr().err
    assert fake.calls == [] and not (tmp_path / "runs").exists()

"""``fpar protocol``: every fold x seed trained and scored, selection kept off the test subject, the
summary the mean/std of the runs, resuming, pairing two folders, and the t quantile it rests on."""

from __future__ import annotations

import json
import math
import shutil
import statistics

import pytest
import yaml

from helpers.tiny import tiny_config, write_config
from fpar.cli import main
from fpar.errors import FparError
from fpar.workflows import protocol


@pytest.mark.parametrize("dof, expected", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452),
                                           (1000, 1.9623)])
def test_t_quantile_matches_the_tables(dof, expected):
    assert protocol.t_quantile(0.975, dof) == pytest.approx(expected, abs=1e-4)


def test_t_quantile_at_other_levels():
    assert protocol.t_quantile(0.95, 5) == pytest.approx(2.0150, abs=1e-4)
    assert protocol.t_quantile(0.995, 3) == pytest.approx(5.8409, abs=1e-4)


def test_summary_is_mean_sample_std_and_t_interval():
    values = [0.5, 0.7, 0.6, 0.9]
    summary = protocol.summarise(values)
    half = 3.1824 * statistics.stdev(values) / 2  # t(0.975, 3) = 3.1824
    assert summary["n"] == 4 and summary["mean"] == pytest.approx(0.675)
    assert summary["std"] == pytest.approx(statistics.stdev(values))
    assert summary["ci95"] == pytest.approx([0.675 - half, 0.675 + half], abs=1e-4)
    assert protocol.summarise([0.4]) == {"mean": 0.4, "std": None, "ci95": None, "n": 1}


@pytest.fixture(scope="module")
def loso_run(tiny_data, module_tmp):
    """The tiny dataset (S1, S2, S3) under loso, 2 seeds, 1 epoch, best.ckpt chosen by holdout."""
    folder = module_tmp("protocol")
    config = tiny_config(experiment="tiny-proto", trainer={"epochs": 1, "batch_size": 6, "logger": []},
                         selection={"method": "holdout", "fraction": 0.25})
    config_path = write_config(folder / "tiny.yaml", config)
    out = folder / "out"
    args = ["protocol", str(config_path), "--data", str(tiny_data), "--protocol", "loso", "--seeds", "2",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    return {"args": args, "out": out, "config": config_path, "data": tiny_data}


def test_loso_runs_every_fold_and_seed_and_never_selects_on_the_test_subject(loso_run):
    result = json.loads((loso_run["out"] / "protocol.json").read_text())
    assert result["protocol"] == "loso" and result["selection"]["method"] == "holdout"
    assert [(run["fold"], run["seed"]) for run in result["runs"]] == [
        ("S1", 0), ("S1", 1), ("S2", 0), ("S2", 1), ("S3", 0), ("S3", 1)]
    for run in result["runs"]:
        assert run["test_subjects"] == [run["fold"]]
        assert run["selection_subjects"] and not set(run["selection_subjects"]) & set(run["test_subjects"])
        trained = yaml.safe_load((loso_run["out"] / run["run_dir"] / "config.yaml").read_text())
        assert trained["data"]["val_subjects"] == [run["fold"]] and run["fold"] not in trained["data"]["train_subjects"]
        assert trained["trainer"]["seed"] == run["seed"]
    for metric in ("top1", "mean_class"):
        values = [run[metric] for run in result["runs"]]
        summary = result[metric]
        assert summary["n"] == 6
        assert summary["mean"] == pytest.approx(statistics.mean(values))
        assert summary["std"] == pytest.approx(statistics.stdev(values))
        half = protocol.t_quantile(0.975, 5) * summary["std"] / math.sqrt(6)
        assert summary["ci95"] == pytest.approx([summary["mean"] - half, summary["mean"] + half])
    table = (loso_run["out"] / "protocol.md").read_text()
    assert table.count("\n| S") == 6 and "Checkpoint selection: best epoch on 25% of the training" in table
    assert "<table>" in (loso_run["out"] / "protocol.html").read_text()


def test_protocol_again_skips_finished_runs_and_refuses_other_settings(loso_run, capsys):
    before = {p: p.stat().st_mtime_ns for p in loso_run["out"].rglob("best.ckpt")}
    capsys.readouterr()
    assert main(loso_run["args"]) == 0
    assert {p: p.stat().st_mtime_ns for p in loso_run["out"].rglob("best.ckpt")} == before
    assert main([*loso_run["args"], "optimizer.lr=0.5"]) == 1
    assert "optimizer.lr" in capsys.readouterr().err


def test_protocol_records_what_it_depends_on(loso_run):
    result = json.loads((loso_run["out"] / "protocol.json").read_text())
    assert result["data_root"] == str(loso_run["data"].resolve()) and len(result["dataset"]) == 64
    assert result["overrides"] == [] and result["fpar_version"] and result["seeds"] == 2
    assert all(run["n"] > 0 and run["stage"] == "tiny-proto" and run["init_from"] == [] for run in result["runs"])
    assert list(result["stages"]) == ["tiny-proto"] and result["top1"] == result["stages"]["tiny-proto"]["top1"]
    assert "dataset digest" in (loso_run["out"] / "protocol.md").read_text()


def test_protocol_refuses_what_it_controls_and_another_dataset(loso_run, tmp_path, capsys):
    for override, reason in (("trainer.seed=5", "--seeds"), ("data.val_subjects=[S1]", "folds choose the subjects")):
        capsys.readouterr()
        assert main([*loso_run["args"], override]) == 1
        err = capsys.readouterr().err
        assert override.split("=")[0] in err and reason in err and len(err.strip().splitlines()) == 1
    other = tmp_path / "other-data"
    shutil.copytree(loso_run["data"], other)
    for tree in ("processed_frames", "flow_x_processed", "flow_y_processed"):  # one clip of S1 less
        shutil.rmtree(other / tree / "S1" / "close_red" / "1")
    args = list(loso_run["args"])
    args[args.index("--data") + 1] = str(other)
    before = (loso_run["out"] / "protocol.json").read_bytes()
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "another dataset" in err and str(other.resolve()) in err and len(err.strip().splitlines()) == 1
    assert main([*loso_run["args"], "--seeds", "3"]) == 1
    assert "--seeds 2 -> 3" in capsys.readouterr().err
    assert (loso_run["out"] / "protocol.json").read_bytes() == before


def test_a_copied_protocol_folder_runs_again_in_the_copy(loso_run, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(loso_run["out"], copy)
    monkeypatch.chdir(tmp_path)  # another working directory, the folder named relatively
    args = list(loso_run["args"])
    args[args.index("--out") + 1] = "copy"
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("best.ckpt")}
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("best.ckpt")} == before  # nothing retrained
    result = json.loads((copy / "protocol.json").read_text())
    assert all((copy / run["run_dir"] / "best.ckpt").is_file() for run in result["runs"])
    args[args.index("--out") + 1] = str(copy.resolve())  # the same folder named absolutely
    assert main(args) == 0
    assert json.loads((copy / "protocol.json").read_text())["runs"] == result["runs"]


@pytest.mark.parametrize("edit, message", [
    (lambda runs: runs[0].update(top1=float("nan")), "top1 is nan, not a finite number"),
    (lambda runs: runs[0].update(top1="0.5"), "top1 is '0.5', not a number"),
    (lambda runs: runs.append(dict(runs[0])), "is listed twice"),
])
def test_compare_refuses_runs_it_cannot_pair(loso_run, tmp_path, edit, message):
    result = json.loads((loso_run["out"] / "protocol.json").read_text())
    edit(result["runs"])
    (tmp_path / "protocol.json").write_text(json.dumps(result))
    with pytest.raises(FparError, match=message):
        protocol.compare(loso_run["out"], tmp_path)


def test_compare_pairs_the_runs(loso_run, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    result = json.loads((loso_run["out"] / "protocol.json").read_text())
    for run in result["runs"]:
        run["top1"] -= 0.1 if run["seed"] == 0 else 0.2
    (other / "protocol.json").write_text(json.dumps(result))
    diff = protocol.compare(loso_run["out"], other)
    assert diff["pairs"] == 6 and diff["top1"]["mean"] == pytest.approx(0.15)
    assert diff["top1"]["std"] == pytest.approx(statistics.stdev([0.1, 0.2] * 3))
    assert diff["top1"]["ci95"][0] > 0 and diff["mean_class"]["mean"] == pytest.approx(0)
    assert main(["protocol", "compare", str(loso_run["out"]), str(other)]) == 0
    assert "A better" in capsys.readouterr().out
    result["runs"] = result["runs"][:-1]
    (other / "protocol.json").write_text(json.dumps(result))
    with pytest.raises(FparError, match="unpaired: fold S3 seed 1"):
        protocol.compare(loso_run["out"], other)


def test_protocols_that_need_other_subjects_say_so(tiny_data, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", tiny_config())
    for name, message in (("gtea61-s2", "needs the subjects S1, S2, S3, S4"), ("egtea", "clip lists"),
                          ("epic100", "subjects 'train' and 'validation'")):
        with pytest.raises(FparError, match=message):
            protocol.run_protocol(config, data_root=tiny_data, protocol=name, seeds=1, out_dir=tmp_path / name)


def test_the_paper_figure_comes_from_the_config_header(tmp_path):
    assert protocol.paper_figure("gtea61/rgb-attention_r34_16f_stage2") == {
        "top1": pytest.approx(0.649), "protocol": protocol.PAPER_PROTOCOL}
    assert protocol.paper_figure("gtea61/two-in-one-ms-kl_r34_16f_stage3-mlconv1")["top1"] == pytest.approx(0.71)
    assert protocol.paper_figure("gtea61/rgb-attention_r34_16f_stage1") is None  # the table reports stage 2
    assert protocol.paper_figure(write_config(tmp_path / "tiny.yaml", tiny_config())) is None
    result = {
        "protocol": "gtea61-s2", "description": "d", "config": "<b>c|x", "seeds": 1,
        "selection": {"text": "last epoch (no selection)"}, "paper": protocol.paper_figure(
            "gtea61/rgb-attention_r34_16f_stage2"),
        "runs": [{"fold": "S2", "seed": 0, "test_subjects": ["S2"], "selection_subjects": [], "top1": 0.5,
                  "mean_class": 0.4}],
        "top1": protocol.summarise([0.5]), "mean_class": protocol.summarise([0.4])}
    markdown = protocol.protocol_markdown(result)
    page = protocol.protocol_html(result)
    assert "&lt;b&gt;c|x" in page and "<b>c" not in page
    assert "| S2 | 0 | S2 | none | - | 50.0 | 40.0 |" in markdown and "50.0 (one run)" in markdown
    assert "The paper reports 64.9% top-1 for this config (gtea61-s2, one run, best epoch chosen on S2" in markdown


def test_a_config_whose_parent_is_another_run_points_to_its_recipes(tiny_data, tmp_path):
    with pytest.raises(FparError, match=r"every fold and seed trains its own parent, so run a recipe that trains it "
                                        r"from its parent \(recipes/synthetic_demo, recipes/synthetic_ms\)"):
        protocol.run_protocol("synthetic/rgb-ms-reg-mse_r18_8f_stage2", data_root=tiny_data, protocol="loso",
                              seeds=1, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_force_goes_past_a_changed_plan_and_says_so(tmp_path):
    plan = {"protocol": "loso", "config": "c", "recipe": False, "seeds": 2, "overrides": [], "data_root": "/d",
            "dataset": "a" * 64}
    (tmp_path / protocol.PLAN_FILE).write_text(json.dumps(plan))
    said = []
    protocol._check_plan(tmp_path, {**plan, "overrides": ["optimizer.lr=0.1"]}, True, said.append)
    assert "the overrides changed" in said[0] and "--force: retraining every run" in said[0]
    with pytest.raises(FparError, match=r"another overrides: the overrides \[\] -> \['optimizer.lr=0.1'\]"):
        protocol._check_plan(tmp_path, {**plan, "overrides": ["optimizer.lr=0.1"]}, False, said.append)
    protocol._check_plan(tmp_path, {**plan, "data_root": "/moved"}, False, said.append)  # same dataset, moved
    assert "the same dataset now at /moved" in said[-1]

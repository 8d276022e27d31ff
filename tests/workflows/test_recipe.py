"""Recipes: stage chaining, skipping finished stages, resuming an interrupted one (train() faked)."""

import pytest

from fpar.workflows import recipe
from fpar.engine.config import CONFIG_DIR as CONFIGS
from fpar.engine.run_folder import FINISHED, INTERRUPTED
from fpar.errors import FparError
from helpers.fake_train import FakeTrain

TWO_STREAM = CONFIGS / "recipes" / "gtea61_two-stream_16f.yaml"


def test_stages_chain_skip_when_done_and_resume_when_interrupted(tmp_path, monkeypatch):
    fake = FakeTrain(interrupt="flow_r34_5s_flow300")
    monkeypatch.setattr(recipe, "_train", fake)
    with pytest.raises(KeyboardInterrupt):
        recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, log=lambda _: None)
    assert [c[0] for c in fake.calls] == ["rgb-attention_r34_16f_stage1", "rgb-attention_r34_16f_stage2",
                                          "flow_r34_5s_flow300"]

    fake.calls.clear()
    fake.interrupt = None
    results = recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, log=lambda _: None)
    assert [(r["state"], r["step"]) for r in results] == [(FINISHED, "skip"), (FINISHED, "skip"),
                                                          (INTERRUPTED, "resume"), (None, "train")]
    assert fake.calls == [
        ("flow_r34_5s_flow300", True, None),
        ("two-stream_r34_16f_joint", False, {"flow_model": "flow_r34_5s_flow300/best.ckpt",
                                              "rgb_model": "rgb-attention_r34_16f_stage2/best.ckpt"}),
    ]
    assert all(r["best_val_accuracy"] == 0.5 for r in results)

    fake.calls.clear()
    assert [r["state"] for r in recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, log=lambda _: None)] == [FINISHED] * 4
    assert fake.calls == []


def test_a_stage_trained_to_its_end_by_fpar_train_is_reported_finished(tmp_path, monkeypatch):
    # `fpar train` finished the first stage (its train.log says so, no summary.json yet): the recipe
    # lets it resume (nothing left to train, its summary written) and says it found it finished
    fake = FakeTrain(interrupt="rgb-attention_r34_16f_stage1")
    monkeypatch.setattr(recipe, "_train", fake)
    with pytest.raises(KeyboardInterrupt):
        recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, log=lambda _: None)
    (tmp_path / "rgb-attention_r34_16f_stage1" / "train.log").write_text(
        "2026-01-01 00:00:00 training rgb-attention_r34_16f_stage1 in x\n"
        "2026-01-01 00:10:00 finished after 3 epochs; best validation accuracy 50.0%\n")
    fake.interrupt, lines = "rgb-attention_r34_16f_stage2", []
    with pytest.raises(KeyboardInterrupt):
        recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, log=lines.append)
    assert lines[1].startswith("[1/4] rgb_stage1: skipped (finished), ")
    # the interrupted second stage, when run again: resumed, then the others trained
    fake.interrupt, lines = None, []
    results = recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, log=lines.append)
    assert [r["state"] for r in results] == [FINISHED, INTERRUPTED, None, None]
    assert [line.split(": ", 1)[1].split(",")[0] for line in lines[1::2]] == [
        "skipped (finished)", "resumed (interrupted)", "trained", "trained"]


def test_a_finished_run_is_not_reused_for_other_settings(tmp_path, monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(recipe, "_train", fake)
    recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, log=lambda _: None)
    # runtime settings may change; what the run computes may not
    again = recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, overrides=["data.workers=0"], log=lambda _: None)
    assert [r["state"] for r in again] == [FINISHED] * 4
    with pytest.raises(FparError, match=r"trained with other settings \(optimizer.lr: 0.001 -> 0.5"):
        recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, overrides=["optimizer.lr=0.5"], log=lambda _: None)


def test_overrides_reach_every_stage(tmp_path):
    stages = recipe.load_recipe(TWO_STREAM, ["trainer.epochs=2", "data.workers=0"])
    assert {(s["config"].trainer.epochs, s["config"].data.workers) for s in stages} == {(2, 0)}


@pytest.mark.parametrize("stages, message", [
    ("- {name: a, config: C}\n- {name: b, config: C, init_from: {stage: c}}", "not an earlier stage"),
    ("- {name: a, config: C, init_from: {stage: a}}", "not an earlier stage"),
    ("- {name: a, config: C}\n- {name: a, config: C}", "used twice"),
    ("- {name: a, config: C, epochs: 3}", "unknown key"),
    ("- {name: a, config: C, init_from: some/path.ckpt}", "init_from must be"),
    ("- {name: a, config: C, overrides: trainer.epochs=3}", "overrides must be a list"),
    ("- {name: a, config: C}\n- {name: b, config: C}", "share an experiment name"),
])
def test_bad_recipes_fail_before_training(tmp_path, stages, message):
    config = CONFIGS / "gtea61" / "flow_r34_5s_flow300.yaml"
    path = tmp_path / "recipe.yaml"
    path.write_text("stages:\n" + "\n".join("  " + line for line in stages.replace("C", str(config)).splitlines()))
    with pytest.raises(FparError, match=message):
        recipe.load_recipe(path)


@pytest.mark.parametrize("path", sorted((CONFIGS / "recipes").glob("gtea61_*.yaml")), ids=lambda p: p.stem)
def test_gtea61_recipes_chain_what_their_configs_name(path):
    """The recipe's init_from and the config's own name the same checkpoints."""
    stages = recipe.load_recipe(path)
    for stage in stages:
        assert recipe.resolve_init_from(stage["init_from"], stages) == stage["config"].init_from


def test_fpar_run_command(tmp_path, monkeypatch, capsys):
    from fpar.cli import main

    seen = []
    monkeypatch.setattr(recipe, "_train", lambda config, **kw: seen.append(config) or FakeTrain()(config, **kw))
    assert main(["run", str(TWO_STREAM), "--out", str(tmp_path), "trainer.epochs=2", "--data", "x"]) == 0
    assert [c.trainer.epochs for c in seen] == [2] * 4
    assert "[4/4] two_stream: trained" in capsys.readouterr().out
    assert main(["run", str(tmp_path / "missing.yaml")]) == 1

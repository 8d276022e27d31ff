"""Sweeps and recipes: run folders stay inside --out, and one writer per run folder (train() faked)."""

from pathlib import Path

import pytest

from fpar.cli import main
from fpar.engine.config import CONFIG_DIR as CONFIGS
from fpar.errors import FparError
from fpar.workflows import recipe, sweep

from helpers.fake_train import FakeTrain

CONFIG = CONFIGS / "gtea61" / "rgb-ms-cls_r34_16f_stage2.yaml"
TWO_STREAM = CONFIGS / "recipes" / "gtea61_two-stream_16f.yaml"
ESCAPES = ["../../../escape", "/tmp/fpar-escape", "a/../../b"]


@pytest.fixture
def fake(monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(recipe, "_train", fake)
    return fake


@pytest.mark.parametrize("name", ESCAPES)
def test_a_sweep_never_names_a_run_outside_out(name, fake, tmp_path, capsys):
    out = tmp_path / "a" / "b" / "runs"
    assert main(["sweep", str(CONFIG), "trainer.epochs=2,3", "--out", str(out), "--set", f"experiment={name}"]) == 1
    assert "experiment: must be a plain name" in capsys.readouterr().err
    assert fake.calls == [] and not (tmp_path / "a").exists() and not Path("/tmp/fpar-escape").exists()
    # a swept value becomes part of a run's name, flattened to one plain folder inside --out
    rows = sweep.run_sweep(CONFIG, [f"experiment=ok,{name}"], out_dir=out, log=lambda _: None)
    assert [(out / row["run"]).parent for row in rows] == [out, out]
    assert sorted(p.parent.parent for p in out.rglob("best.ckpt")) == [out, out]
    assert not (tmp_path / "escape").exists() and not Path("/tmp/fpar-escape").exists()


@pytest.mark.parametrize("name", ESCAPES)
def test_a_recipe_never_names_a_run_outside_out(name, fake, tmp_path, capsys):
    out = tmp_path / "a" / "b" / "runs"
    assert main(["run", str(TWO_STREAM), "--out", str(out), f"experiment={name}"]) == 1
    assert "experiment: must be a plain name" in capsys.readouterr().err
    stage_config = tmp_path / "stage.yaml"  # the name written in a stage's config file
    stage_config.write_text(f"_base_: {CONFIGS / 'gtea61' / 'flow_r34_5s_flow300.yaml'}\nexperiment: '{name}'\n")
    (tmp_path / "recipe.yaml").write_text(f"stages:\n  - {{name: a, config: {stage_config}}}\n")
    with pytest.raises(FparError, match="experiment: must be a plain name"):
        recipe.run_recipe(tmp_path / "recipe.yaml", out_dir=out, log=lambda _: None)
    assert fake.calls == [] and not (tmp_path / "a").exists()


def test_a_sweep_run_being_written_by_another_process_is_refused(fake, tmp_path):
    from fpar.engine.train import run_folder_lock

    from fpar.workflows.run_names import run_name

    busy = run_name("rgb-ms-cls_r34_16f_stage2", [("trainer.epochs", "3")])
    with run_folder_lock(tmp_path, busy):
        with pytest.raises(FparError, match=rf"run folder {tmp_path / busy}: another process is writing it \(lock .* is held by pid "):
            sweep.run_sweep(CONFIG, ["trainer.epochs=2,3"], out_dir=tmp_path, log=lambda _: None)
    assert [experiment for experiment, _, _ in fake.calls] == [run_name("rgb-ms-cls_r34_16f_stage2", [("trainer.epochs", "2")])]
    assert not (tmp_path / busy).exists()


def test_a_recipe_stage_being_written_by_another_process_is_refused(fake, tmp_path):
    from fpar.engine.train import run_folder_lock

    first = recipe.load_recipe(TWO_STREAM)[0]["config"].experiment
    with run_folder_lock(tmp_path, first):
        with pytest.raises(FparError, match="another process is writing it"):
            recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, log=lambda _: None)
    assert fake.calls == []
    recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, log=lambda _: None)  # free again: the recipe runs
    assert len(fake.calls) == 4

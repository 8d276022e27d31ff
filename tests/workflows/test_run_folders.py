"""Run folders: sweeps and recipes keep them inside --out, one writer per run folder, and each
folder's state (finished, interrupted, running, failed: fpar.engine.run_folder.STATES) is read in
the same words by `fpar runs`, `fpar train --dry-run`, a recipe and a protocol (train() faked)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fpar.cli import main
from fpar.engine.config import CONFIG_DIR as CONFIGS
from fpar.errors import FparError
from fpar.workflows import recipe, sweep

from helpers.fake_train import FakeTrain
from helpers.tiny import subprocess_env, tiny_config, write_config

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
    from fpar.engine.run_folder import run_folder_lock

    from fpar.workflows.run_names import run_name

    busy = run_name("rgb-ms-cls_r34_16f_stage2", [("trainer.epochs", "3")])
    with run_folder_lock(tmp_path, busy):
        with pytest.raises(FparError, match=rf"run folder {tmp_path / busy}: another process is writing it \(lock .* is held by pid "):
            sweep.run_sweep(CONFIG, ["trainer.epochs=2,3"], out_dir=tmp_path, log=lambda _: None)
    assert [experiment for experiment, _, _ in fake.calls] == [run_name("rgb-ms-cls_r34_16f_stage2", [("trainer.epochs", "2")])]
    assert not (tmp_path / busy).exists()


def test_a_recipe_stage_being_written_by_another_process_is_refused(fake, tmp_path):
    from fpar.engine.run_folder import run_folder_lock

    first = recipe.load_recipe(TWO_STREAM)[0]["config"].experiment
    with run_folder_lock(tmp_path, first):
        with pytest.raises(FparError, match="another process is writing it"):
            recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, log=lambda _: None)
    assert fake.calls == []
    recipe.run_recipe(TWO_STREAM, out_dir=tmp_path, log=lambda _: None)  # free again: the recipe runs
    assert len(fake.calls) == 4


# A process that holds a run folder's lock, as a running `fpar train` does; "orphan": the holder
# leaves the lock to a child that inherited it (filelock closes it in a plain fork) and dies: a
# stale lock, whose recorded holder is gone.
HOLD = """import os, subprocess, sys, time
from fpar.engine.run_folder import lock_file, run_folder_lock
with run_folder_lock(sys.argv[1], sys.argv[2]):
    if sys.argv[3] == "orphan":
        lock = str(lock_file(sys.argv[1], sys.argv[2]))
        fds = [int(fd) for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") == lock]
        child = subprocess.Popen(["sleep", "120"], pass_fds=fds)
        print(child.pid, flush=True)
        os._exit(0)
    print(os.getpid(), flush=True)
    time.sleep(120)
"""


def hold_lock(out: Path, experiment: str, how: str = "live") -> int:
    """Start a holder of ``out/experiment``'s lock; returns the pid of the process holding it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out), experiment, how], stdout=subprocess.PIPE,
                              text=True, env=subprocess_env())
    pid = int(holder.stdout.readline())
    if how == "orphan":
        holder.wait()  # the recorded holder is gone (not a zombie); the child holds on
    return pid


# train.log's last line of each kind of folder, as fpar.engine.run_folder.run_log writes it
# (None: the lock says it); and the state every reader finds the folder in
ENDINGS = {"finished": "finished after 3 epochs; best validation accuracy 50.0%",
           "sigterm": "interrupted by SIGTERM after epoch 1/3",
           "killed": "epoch 1/3  train loss 1.0986  val acc 33.3%",  # SIGKILL: no last line of its own
           "failed": "failed: S1/stir/1: frame 3 is not an image",
           "stale lock": "epoch 2/3  train loss 1.0986  val acc 33.3%",
           "running": None}
STATE = {"finished": "finished", "sigterm": "interrupted", "killed": "interrupted", "failed": "failed",
         "stale lock": "interrupted", "running": "running"}


def test_each_kind_of_run_folder_is_read_in_one_vocabulary_everywhere(tiny_data, tmp_path, monkeypatch, capsys):
    import fpar.engine.evaluate
    from fpar.engine.metric_registry import METRICS
    from fpar.engine.run_folder import RUN_LOG, RUN_SUMMARY, STATES

    assert set(STATE.values()) == set(STATES)
    fake = FakeTrain()
    monkeypatch.setattr(recipe, "_train", fake)
    monkeypatch.setattr(fpar.engine.evaluate, "evaluate",
                        lambda checkpoint, data_root, split: {"n": 4, **dict.fromkeys(METRICS, 0.5)})
    config = write_config(tmp_path / "kinds.yaml", tiny_config(experiment="kinds", trainer={"epochs": 3}))
    out = tmp_path / "out"
    args = ["protocol", str(config), "--data", str(tiny_data), "--protocol", "loso", "--seeds", "2", "--out", str(out)]
    assert main(args) == 0
    folders = sorted(path.parent for path in out.rglob(RUN_SUMMARY))
    assert len(folders) == len(ENDINGS) == 6  # three folds x two seeds: one folder of each kind
    kinds = dict(zip(ENDINGS, folders))
    holders = []
    try:
        for kind, folder in kinds.items():
            (folder / RUN_SUMMARY).unlink()  # as `fpar train` leaves a run: no job's summary yet
            if ENDINGS[kind] is not None:
                (folder / RUN_LOG).write_text(f"2026-01-01 00:00:00 training {folder.name} in {folder}\n"
                                              f"2026-01-01 00:01:00 {ENDINGS[kind]}\n")
        holders.append(hold_lock(out, kinds["running"].name))
        holders.append(hold_lock(out, kinds["stale lock"].name, "orphan"))

        capsys.readouterr()
        assert main(["runs", str(out), "--json"]) == 0
        listed = {row["run"]: row["state"] for row in json.loads(capsys.readouterr().out)}
        assert listed == {str(folder): STATE[kind] for kind, folder in kinds.items()}

        for kind, folder in kinds.items():  # fpar train names the state it would continue
            assert main(["train", str(folder), "--resume", "--dry-run"]) == 0
            assert capsys.readouterr().out.startswith(f"# run folder {folder} ({STATE[kind]}")

        recipe_file = tmp_path / "recipe.yaml"  # a recipe whose stages are these folders
        recipe_file.write_text("stages:\n" + "".join(
            f"  - {{name: s{i}, config: {config}, overrides: [experiment={folder.name}]}}\n"
            for i, folder in enumerate(kinds.values())))
        assert main(["run", str(recipe_file), "--out", str(out), "--dry-run"]) == 0
        plan = [line.split()[1:3] for line in capsys.readouterr().out.splitlines()[1:7]]
        assert plan == [["skip", "(finished)"], ["resume", "(interrupted)"], ["resume", "(interrupted)"],
                        ["resume", "(failed)"], ["resume", "(interrupted)"], ["refuse", "(running)"]]

        # the protocol again: each run as the same words say, and the running one refused
        assert main(args) == 1
        printed, err = capsys.readouterr()
        assert [line.split(": ", 1)[1].split(",")[0] for line in printed.splitlines() if line.startswith("    ")] == [
            "skipped (finished)", "resumed (interrupted)", "resumed (interrupted)", "resumed (failed)",
            "resumed (interrupted)"]
        assert f"run folder {kinds['running']}: another process is writing it" in err
        assert [name for name, resume, _ in fake.calls[6:]] == [folder.name for folder in folders[:5]]
    finally:
        for pid in holders:
            os.kill(pid, signal.SIGKILL)

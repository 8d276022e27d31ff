"""What schedulers and users do to a running command: SIGTERM (SLURM, Kubernetes, ``timeout``,
``kill``) and SIGINT (Ctrl-C), sent for real to a real ``fpar`` process. The command stops with one
line and exit 143 / 130, keeps what resumes, leaves no temporary file, and the run folder says
``interrupted`` (``running`` while it ran) to ``fpar runs``, recipes and protocols alike
(docs/reliability.md, "Signals")."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from helpers.tiny import subprocess_env, tiny_config, write_config

EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}


def fpar(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fpar", *map(str, args)], env=subprocess_env(), capture_output=True,
                          text=True, timeout=300, **kwargs)


def stop_when(args: list, ready: Callable[[], bool], sig: int, timeout: float = 240,
              while_running: Callable[[], None] = lambda: None) -> tuple[int, str]:
    """Start ``fpar ARGS``, call ``while_running()`` once ``ready()`` holds, then send ``sig``; return
    (exit status, stderr)."""
    process = subprocess.Popen([sys.executable, "-m", "fpar", *map(str, args)], env=subprocess_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, f"ended before the signal: {process.communicate()}"
            assert time.monotonic() < deadline, "never got ready"
            time.sleep(0.05)
        while_running()
        assert process.poll() is None, "ended before the signal"
        process.send_signal(sig)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err


def log_says(path: Path, text: str) -> Callable[[], bool]:
    return lambda: path.is_file() and text in path.read_text(encoding="utf-8", errors="replace")


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("fpar:")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_train_stopped_by_a_signal_is_interrupted_and_resumes(tmp_path, tiny_data, sig):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(trainer={"epochs": 30}))
    out = tmp_path / "runs"
    run = out / "tiny"
    seen = []  # fpar runs while the run writes its folder
    code, err = stop_when(["train", config, "--data", tiny_data, "--out", out, "--no-progress"],
                          lambda: (run / "last.ckpt").is_file(), sig,
                          while_running=lambda: seen.append(json.loads(fpar("runs", out, "--json").stdout)))
    assert code == EXIT[sig], err
    assert [r["state"] for r in seen[0]] == ["running"]
    assert "Traceback" not in err and "Received SIGTERM" not in err
    name = signal.Signals(sig).name
    line, = error_lines(err)
    assert line.startswith(f"fpar: interrupted by {name} after epoch ") and line.endswith(
        f"/30; resume with: fpar train {run} --resume"), line
    assert not list(run.glob(".*.tmp"))
    assert (run / "last.ckpt").is_file()
    assert (run / "train.log").read_text().splitlines()[-1].split(" ", 2)[2].startswith(f"interrupted by {name}")
    listed = json.loads(fpar("runs", out, "--json").stdout)
    assert [r["state"] for r in listed] == ["interrupted"]
    done = fpar("train", run, "--resume", "trainer.epochs=2", "--no-progress")  # the resume point is whole
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tiny: finished after 2 epochs, ")  # the CLI's summary, in the same words
    assert [r["state"] for r in json.loads(fpar("runs", out, "--json").stdout)] == ["finished"]


def test_train_stopped_before_its_first_checkpoint_keeps_nothing(tmp_path, tiny_data):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(trainer={"epochs": 30}))
    out = tmp_path / "runs"
    code, err = stop_when(["train", config, "--data", tiny_data, "--out", out, "--no-progress"],
                          log_says(out / "tiny" / "train.log", "training tiny"), signal.SIGTERM)
    assert code == 143, err
    assert error_lines(err) == ["fpar: interrupted by SIGTERM in epoch 1/30; no epoch had been saved, so nothing "
                                "was kept; train it again"]
    assert not (out / "tiny").exists()


def test_a_train_refused_for_a_missing_dataset_leaves_nothing(tmp_path):
    config = write_config(tmp_path / "tiny.yaml", tiny_config())
    out = tmp_path / "runs"
    done = fpar("train", config, "--data", tmp_path / "nowhere", "--out", out)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


def test_a_sweep_stopped_by_sigterm_names_the_run_and_keeps_it_resumable(tmp_path, tiny_data):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(trainer={"epochs": 30}))
    out = tmp_path / "runs"
    args = ["sweep", config, "optimizer.lr=1e-3,2e-3", "--data", tiny_data, "--out", out]
    code, err = stop_when(args, lambda: any(out.glob("tiny__*/last.ckpt")), signal.SIGTERM)
    assert code == 143, err
    first, = [path.parent for path in out.glob("tiny__*/last.ckpt")]  # named by fpar.workflows.run_names
    line, = error_lines(err)
    assert line.startswith(f"fpar: interrupted by SIGTERM in run 1/2 ({first.name}) after epoch ")
    assert line.endswith("/30; finished runs are kept and this one resumes: run the same command again"), line
    assert [r["state"] for r in json.loads(fpar("runs", out, "--json").stdout)] == ["interrupted"]
    plan = fpar(*args, "--dry-run")  # the same command resumes the stopped run and trains the other
    assert plan.returncode == 0 and [line.split()[1:3] for line in plan.stdout.splitlines()[1:3]] == [
        ["resume", "(interrupted)"], ["train", tiny_config()["model"]["name"]]]


@pytest.fixture(scope="module")
def checkpoint(module_tmp, tiny_data) -> Path:
    out = module_tmp("runs")
    config = write_config(out / "tiny.yaml", tiny_config(trainer={"epochs": 1}))
    done = fpar("train", config, "--data", tiny_data, "--out", out, "--no-progress")
    assert done.returncode == 0, done.stderr
    return out / "tiny" / "best.ckpt"


def test_an_onnx_export_stopped_by_sigterm_leaves_no_temporary_folder(tmp_path, checkpoint):
    out = tmp_path / "export"
    code, err = stop_when(["export", checkpoint, out, "--format", "onnx"],
                          lambda: any(tmp_path.glob(".export.*.tmp")), signal.SIGTERM)
    assert code == 143, err
    assert error_lines(err) == ["fpar: interrupted by SIGTERM; run the same command again"]
    # no half export, no temporary folder (the lock file stays by design: fpar.io.exclusive_lock)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks"]


def test_a_prepare_stopped_by_sigterm_keeps_finished_instances_and_continues(tmp_path):
    import cv2
    import numpy as np

    source = tmp_path / "videos"
    for n in range(6):
        folder = source / "S1" / "stir" / f"v{n}"
        folder.mkdir(parents=True)
        for t in range(1, 9):
            image = np.full((48, 64, 3), 60, np.uint8)
            image[10:30, 4 * t:4 * t + 20] = 200
            cv2.imwrite(str(folder / f"{t:04d}.png"), image)
    out = tmp_path / "out"
    args = ["prepare", "--tree", source, "--out", out, "--flow", "tvl1"]
    done_instances = lambda: len(list((out / "processed_frames" / "S1" / "stir").glob("v?")))
    code, err = stop_when(args, lambda: done_instances() >= 1, signal.SIGTERM)
    assert code == 143, err
    line, = error_lines(err)
    assert line.startswith("fpar: interrupted by SIGTERM after ") and line.endswith(
        "/6 instances; finished instances are kept: run the same command again to continue"), line
    kept = done_instances()
    again = fpar(*args)
    assert again.returncode == 0, again.stderr
    assert f"{kept} already prepared" in again.stdout and done_instances() == 6
    assert not list(out.rglob("*partial*"))


def test_a_cache_stopped_by_sigterm_is_finished_by_the_same_command(tmp_path):
    from helpers.tiny import write_dataset

    data = write_dataset(tmp_path / "data", videos=12)  # some 2,600 frames: a build of a few seconds
    store = tmp_path / "store"
    args = ["cache", data, "--out", store, "--resize", 48]
    code, err = stop_when(args, lambda: (store / "shard-00000.fpk").is_file(), signal.SIGTERM)
    assert code == 143, err
    assert error_lines(err) == ["fpar: interrupted by SIGTERM; run the same command again"]
    again = fpar(*args)
    assert again.returncode == 0 and "store ready" in again.stdout, again.stderr
    assert fpar(*args, "--verify").returncode == 0


def test_a_report_stopped_by_sigint_leaves_no_temporary_file_and_runs_again(tmp_path, checkpoint, tiny_data):
    out = tmp_path / "report"
    args = ["report", checkpoint.parent, "--data", tiny_data, "--out", out]
    code, err = stop_when(args, lambda: (out / ".fpar-report").is_file(), signal.SIGINT)
    assert code == 130, err
    assert error_lines(err) == ["fpar: interrupted by SIGINT; run the same command again"]
    assert not list(tmp_path.rglob("*.tmp")) and not (out / "index.html").exists()
    again = fpar(*args)
    assert again.returncode == 0 and (out / "index.html").is_file(), again.stderr


def test_a_recipe_stopped_by_sigterm_names_the_stage(tmp_path, tiny_data):
    write_config(tmp_path / "tiny.yaml", tiny_config(trainer={"epochs": 30}))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages:\n  - {name: first, config: tiny.yaml, overrides: [experiment=first]}\n"
                      "  - {name: second, config: tiny.yaml, overrides: [experiment=second], "
                      "init_from: {stage: first}}\n")
    out = tmp_path / "runs"
    code, err = stop_when(["run", recipe, "--data", tiny_data, "--out", out],
                          lambda: (out / "first" / "last.ckpt").is_file(), signal.SIGTERM)
    assert code == 143, err
    line, = error_lines(err)
    assert line.startswith("fpar: interrupted by SIGTERM in stage 1/2 (first) after epoch ") and line.endswith(
        "/30; finished runs are kept and this one resumes: run the same command again"), line
    assert [r["state"] for r in json.loads(fpar("runs", out, "--json").stdout)] == ["interrupted"]
    plan = fpar("run", recipe, "--data", tiny_data, "--out", out, "--dry-run")  # the recipe's words for it
    assert plan.returncode == 0 and [line.split()[1:3] for line in plan.stdout.splitlines()[1:3]] == [
        ["resume", "(interrupted)"], ["train", tiny_config()["model"]["name"]]]


def test_a_train_refused_after_reading_its_dataset_leaves_nothing(tmp_path, tiny_data):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data={"val_subjects": ["S9"]}))  # no such subject
    out = tmp_path / "runs"
    done = fpar("train", config, "--data", tiny_data, "--out", out)
    assert done.returncode == 1 and "S9" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not out.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_protocol_stopped_by_a_signal_names_its_run_and_the_same_command_finishes_it(tmp_path, tiny_data, sig):
    # 8 epochs: long enough for the signal to land in the first run, short enough to finish all three
    config = write_config(tmp_path / "tiny.yaml", tiny_config(experiment="proto", trainer={"epochs": 8}))
    out = tmp_path / "protocol"
    args = ["protocol", config, "--data", tiny_data, "--protocol", "loso", "--seeds", "1", "--out", out,
            "--no-progress"]
    code, err = stop_when(args, lambda: any(out.rglob("last.ckpt")), sig)
    assert code == EXIT[sig], err
    assert "Traceback" not in err and "Received SIGTERM" not in err
    line, = error_lines(err)
    name = signal.Signals(sig).name
    assert line.startswith(f"fpar: interrupted by {name} in run 1/3 (") and line.endswith(
        "; finished runs are kept and this one resumes: run the same command again"), line
    assert not (out / "protocol.json").exists()
    assert [r["state"] for r in json.loads(fpar("runs", out, "--json").stdout)] == ["interrupted"]
    if sig == signal.SIGINT:
        return  # the resume below is the same for either signal
    done = fpar(*args[:-1], "trainer.epochs=1")  # a shorter run: the overrides differ, so --force is needed
    assert done.returncode != 0 and "trainer.epochs" in done.stderr
    done = fpar(*args)  # the same command resumes the stopped run and trains the others
    assert done.returncode == 0, done.stderr
    assert [line.split(": ", 1)[1].split(",")[0] for line in done.stdout.splitlines() if line.startswith("    ")] \
        == ["resumed (interrupted)", "trained", "trained"]
    assert json.loads((out / "protocol.json").read_text())["top1"]["n"] == 3


def test_a_stopped_command_ends_even_when_an_exit_handler_hangs():
    """A signal raised inside a library can leave its lock held and its exit handler waiting on it
    for ever: the stopped command's status still arrives, after the grace period."""
    script = ("import atexit, sys, threading; from fpar import cli\n"
              "held = threading.Lock(); held.acquire(); atexit.register(held.acquire)  # never returns\n"
              "cli._exit_within(0.5, 143); sys.exit(143)")
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 143 and time.monotonic() - began < 30, done.stderr

"""Every command in a pipe, through the real ``fpar`` process (docs/cli.md, "In scripts and pipes"):
a closed stdout ends it quietly with a shell's SIGPIPE status, and a stderr that is no terminal gets
no carriage-return redraws."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fpar.cli import build_parser
from fpar.cli.output import CLOSED_STDOUT_STATUS

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}


def fpar(*args: str, closed: bool = False, cwd: Path | None = None, env: dict | None = None,
         timeout: int = 300) -> subprocess.CompletedProcess:
    """``fpar ARGS`` in its own process, stderr a pipe; ``closed``: stdout a pipe nobody reads."""
    if not closed:
        return subprocess.run([sys.executable, "-m", "fpar", *args], capture_output=True, text=True, cwd=cwd,
                              env=env or ENV, timeout=timeout)
    read, write = os.pipe()
    os.close(read)  # closed before the command starts: its first write meets a broken pipe
    try:
        return subprocess.run([sys.executable, "-m", "fpar", *args], stdout=write, stderr=subprocess.PIPE,
                              text=True, cwd=cwd, env=env or ENV, timeout=timeout)
    finally:
        os.close(write)


def assert_quiet_end(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == CLOSED_STDOUT_STATUS, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr and "Exception ignored" not in done.stderr


def commands(parser=None, prefix=()) -> list[tuple[str, ...]]:
    """Every command and sub-command of the parser."""
    import argparse

    parser = parser or build_parser()
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += commands(sub, (*prefix, name))
    return found


def test_every_commands_help_into_a_closed_pipe():
    # one process for all: --help is argparse's, printed by each command's own parser
    script = ("import os, sys\nfrom fpar.cli import main\nfrom fpar.cli.output import CLOSED_STDOUT_STATUS\n"
              "bad = []\n"
              "for line in sys.stdin.read().splitlines():\n"
              "    r, w = os.pipe(); os.close(r); saved = os.dup(1); os.dup2(w, 1); os.close(w)\n"
              "    sys.stdout = os.fdopen(1, 'w', closefd=False)\n"
              "    try:\n"
              "        status = main([*line.split(), '--help'])\n"
              "    except SystemExit as exc:\n"
              "        status = exc.code\n"
              "    os.dup2(saved, 1)\n"
              "    if status != CLOSED_STDOUT_STATUS: bad.append((line, status))\n"
              "print(bad, file=sys.stderr)\n")
    names = [" ".join(command) for command in commands()]
    assert {"models", "runs", "env", "cache", "data check", "configs list", "completion"} <= set(names)
    done = subprocess.run([sys.executable, "-c", script], input="\n".join(names), capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def one_epoch_run(tiny_data, module_tmp) -> Path:
    """A 1-epoch run trained by the CLI with stderr a pipe, its default (holdout) selection."""
    from helpers.tiny import tiny_config

    root = module_tmp("piped")
    config = tiny_config(experiment="piped", trainer={"epochs": 1}, selection={"method": "holdout", "fraction": 0.5})
    (root / "piped.yaml").write_text(yaml.safe_dump(config))
    done = fpar("train", str(root / "piped.yaml"), "--data", str(tiny_data), "--out", str(root / "runs"))
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "epoch 1/1" in done.stderr  # one line per epoch, no redraws
    return root / "runs"


def test_commands_that_print_end_quietly_on_a_closed_pipe(one_epoch_run, tiny_data, tmp_path):
    for args in (["models"], ["configs", "list"], ["completion", "bash"], ["runs", str(one_epoch_run)],
                 ["runs", str(one_epoch_run), "--json"], ["data", "check", str(tiny_data)], ["env"], ["env", "--json"],
                 ["configs", "show", "gtea61/flow_r34_5s_750e"],
                 ["eval", str(one_epoch_run / "piped" / "best.ckpt"), "--data", str(tiny_data)],
                 # a line per frame, the first of them already into a closed pipe
                 ["stream", str(one_epoch_run / "piped" / "best.ckpt"),
                  str(tiny_data / "processed_frames" / "S1" / "close_red" / "1" / "rgb")]):
        assert_quiet_end(fpar(*args, closed=True))


def test_cache_into_a_pipe_has_no_redraws_and_quiet_has_no_progress(tiny_data, tmp_path):
    done = fpar("cache", str(tiny_data), "--out", str(tmp_path / "store"), "--resize", "48")
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "frames in" in done.stderr  # the step's one line
    quiet = fpar("cache", str(tiny_data), "--out", str(tmp_path / "store2"), "--resize", "48", "--quiet")
    assert quiet.returncode == 0 and "frames in" not in quiet.stderr, quiet.stderr


def test_a_one_epoch_run_in_runs_and_its_files(one_epoch_run):
    run = one_epoch_run / "piped"
    listed = fpar("runs", str(one_epoch_run))
    assert "holdout 50%" in listed.stdout
    [row] = json.loads(fpar("runs", str(one_epoch_run), "--json").stdout)
    assert row["selection"] == "holdout 50%" and 0.0 <= row["best_val_accuracy"] <= 1.0
    assert f"{100 * row['best_val_accuracy']:.1f}%" in listed.stdout  # one number, two units (docs/units.md)
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val_accuracy", "val_top5", "val_mean_class_accuracy"} <= set(header)
    assert "1 epochs" not in (run / "train.log").read_text()


def test_env_names_the_instruction_set_threads_and_precision():
    found = json.loads(fpar("env", "--json").stdout)
    assert found["cpu"]["onednn_isa"] and found["cpu"]["threads"] >= 1
    choices = found["choices"]
    assert choices["precision"] in ("32-true", "bf16-mixed", "16-mixed") and choices["precision_reason"]
    capped = fpar("env", env={**ENV, "ONEDNN_MAX_CPU_ISA": "AVX2"})
    if "avx2" in found["cpu"]["flags"]:
        assert "oneDNN ISA:        AVX2 (capped by ONEDNN_MAX_CPU_ISA=AVX2)" in capped.stdout
        assert "precision auto:    32-true on cpu" in capped.stdout or found["gpus"]


def test_protocol_help_has_no_doubled_percent():
    assert "%%" not in fpar("protocol", "--help").stdout

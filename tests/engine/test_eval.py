"""evaluate() and `fpar eval`: the reported numbers, the predictions file, splits and views."""

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fpar.checkpoint import load_checkpoint, model_state_dict
from fpar.cli import main
from fpar.engine.evaluate import evaluate
from fpar.errors import FparError

from helpers.tiny import CLASSES, subprocess_env

VAL_CLIPS = 7  # S2


def test_evaluation_reports_every_number_and_matches_training_validation(trained_run, tiny_data, tmp_path):
    predictions = tmp_path / "pred.csv"
    result = evaluate(trained_run["best_ckpt"], tiny_data, predictions_csv=predictions)
    assert {"accuracy", "top5", "mean_class_accuracy", "per_class", "n"} <= set(result)
    assert result["n"] == VAL_CLIPS and result["split"] == ["S2"]
    assert set(result["per_class"]) == set(CLASSES)
    assert result["top5"] == 1.0  # three classes
    # the checkpoint kept for its validation accuracy scores exactly that again
    assert result["accuracy"] == pytest.approx(trained_run["best_val_accuracy"])
    assert result["mean_class_accuracy"] == pytest.approx(sum(result["per_class"].values()) / len(CLASSES))

    rows = list(csv.DictReader(predictions.open()))
    assert list(rows[0]) == ["id", "label", "prediction", *CLASSES]
    assert len(rows) == VAL_CLIPS and len({r["id"] for r in rows}) == VAL_CLIPS
    for row in rows:
        scores = [float(row[c]) for c in CLASSES]
        assert sum(scores) == pytest.approx(1.0, abs=1e-4)
        assert row["prediction"] == CLASSES[scores.index(max(scores))]
    correct = sum(r["label"] == r["prediction"] for r in rows)
    assert result["accuracy"] == pytest.approx(correct / VAL_CLIPS)


def test_evaluation_leaves_the_checkpoint_file_as_it_was(trained_run, tiny_data):
    # scoring folds the batch norms into the conv weights in place: into a copy, never the file
    checkpoint = Path(trained_run["best_ckpt"])
    before = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    evaluate(checkpoint, tiny_data)
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == before


def test_best_checkpoint_keeps_contiguous_weights(trained_run):
    # the layout inference loads without a copy (training itself runs channels-last)
    weights = model_state_dict(load_checkpoint(trained_run["best_ckpt"]))
    assert all(w.is_contiguous() for w in weights.values())


def test_other_splits_and_views(trained_run, tiny_data):
    assert evaluate(trained_run["best_ckpt"], tiny_data, split="S1,S3")["n"] == 12
    five = evaluate(trained_run["best_ckpt"], tiny_data, views="five")
    assert five["n"] == VAL_CLIPS and five["views"] == "five"
    with pytest.raises(FparError, match="S9"):
        evaluate(trained_run["best_ckpt"], tiny_data, split="S9")


def test_fpar_eval_json_and_table(trained_run, tiny_data, tmp_path, capsys):
    assert main(["eval", trained_run["best_ckpt"], "--data", str(tiny_data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == VAL_CLIPS and set(result["per_class"]) == set(CLASSES)

    predictions = tmp_path / "p.csv"
    assert main(["eval", trained_run["best_ckpt"], "--data", str(tiny_data), "--predictions", str(predictions)]) == 0
    table = capsys.readouterr().out
    for label in ("top-1", "top-5", "mean class", *CLASSES):
        assert label in table
    assert f"{100 * result['accuracy']:5.1f}%" in table
    assert predictions.exists()


def test_fpar_eval_errors_are_one_line(trained_run, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing.ckpt"), "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("fpar: error: checkpoint not found") and "\n" not in err


def test_a_gpu_asked_for_where_there_is_none_is_one_line(trained_run, tiny_data, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["eval", str(trained_run["best_ckpt"]), "--data", str(tiny_data), "--accelerator", "gpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("fpar: error: accelerator=gpu:") and "no CUDA device" in err and "\n" not in err


def test_one_process_evaluation_does_not_import_lightning(trained_run, tiny_data):
    # importing Lightning costs 1.5-2 s and ~120 MB, a fifth of a short `fpar eval`: one process
    # scores in a plain loop, and must give what the Lightning (DDP) path gives (tests/engine/test_ddp.py)
    script = ("import sys, contextlib, io\nfrom fpar.cli import main\n"
              "with contextlib.redirect_stdout(io.StringIO()):\n"
              f"    main(['eval', {str(trained_run['best_ckpt'])!r}, '--data', {str(tiny_data)!r}, '--json'])\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))")
    done = subprocess.run([sys.executable, "-c", script], env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"

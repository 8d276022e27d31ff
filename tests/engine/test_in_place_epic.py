"""EPIC-KITCHENS in place: `fpar prepare --epic CSV --frames ROOT` writes one manifest, and training and
evaluation read the published JPEG frames and half-rate u/v flow where they are (docs/data.md)."""

from __future__ import annotations

import csv

from fpar.cli import main
from fpar.engine.evaluate import evaluate
from fpar.engine.train import train

from helpers.tiny import flow_config, tiny_config
from helpers.epic_tree import PARTICIPANTS, SEGMENTS, VIDEOS_PER_PARTICIPANT, snapshot, write_epic_tree, write_epic_videos


def test_epic_frames_in_place_from_prepare_to_training_and_evaluation(tmp_path, capsys):
    epic = tmp_path / "EPIC-KITCHENS"
    annotations = write_epic_tree(epic)
    before = snapshot(epic)
    out = tmp_path / "epic-in-place"
    assert main(["prepare", "--epic", str(annotations), "--frames", str(epic), "--out", str(out)]) == 0
    assert "12 segments read in place" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["labels.csv", "manifest.csv"]  # no pixels, no flow
    lines = (out / "manifest.csv").read_text().splitlines()
    assert lines[0] == f"# root: {epic.resolve()}"
    row = next(csv.DictReader(lines[1:]))
    assert (row["frames"], row["flow_x"], row["flow_stride"], row["flow_bound"]) == (
        "P01/rgb_frames/P01_01", "P01/flow_frames/P01_01/u", "2", "25")

    assert main(["data", "check", str(out)]) == 0

    config = flow_config(trainer={"epochs": 1})
    config["data"].update(train_subjects=["P01"], val_subjects=["P02"])
    run = train(config, data_root=out, out_dir=out / "runs", progress=False)
    assert run["epochs_done"] == 1
    result = evaluate(run["best_ckpt"], out, split=["P02"])
    assert result["n"] == VIDEOS_PER_PARTICIPANT * len(SEGMENTS)
    assert snapshot(epic) == before  # nothing written under the dataset root
    written = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in written if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    assert len(written) < 40, written  # run files, not files per frame
    assert len(PARTICIPANTS) == 2


def test_epic_videos_in_place_train_an_rgb_model_without_extraction(tmp_path, capsys):
    epic = tmp_path / "EPIC-KITCHENS"
    annotations = write_epic_tree(epic)
    write_epic_videos(epic)
    before = snapshot(epic)
    out = tmp_path / "epic-videos"
    assert main(["prepare", "--epic", str(annotations), "--videos", str(epic), "--in-place", "--out", str(out)]) == 0
    assert "12 segments read in place (videos under" in capsys.readouterr().out
    config = tiny_config(trainer={"epochs": 1})
    config["data"].update(train_subjects=["P01"], val_subjects=["P02"])
    run = train(config, data_root=out, out_dir=out / "runs", progress=False)
    result = evaluate(run["best_ckpt"], out, split=["P02"])
    assert result["n"] == VIDEOS_PER_PARTICIPANT * len(SEGMENTS)
    assert snapshot(epic) == before
    assert not [p for p in out.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")]

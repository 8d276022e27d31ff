"""Journey 1, the paper's multi-stage models under a protocol, as a user types it: GTEA61-shaped videos
(subject / class / video) -> `fpar prepare --tree` -> `fpar protocol` of a recipe (RGB attention, then
the MS task from it) under leave-one-subject-out with 2 seeds -> `fpar protocol compare` of its two
stages -> `fpar report` of one fold's runs."""

import json
from pathlib import Path

import cv2
import numpy as np
import yaml

from fpar.cli import main

from journey_sizes import TINY

SUBJECTS = ("S1", "S2", "S3")
CLASSES = {"close_red": ((220, 40, 40), 2), "open_green": ((40, 200, 60), -2)}  # colour, motion (px/frame)


def write_videos(root: Path) -> Path:
    """ROOT/<subject>/<class>/<n>.avi: a coloured square moving over a textured table, per class."""
    rng = np.random.default_rng(0)
    for subject in SUBJECTS:
        for name, (colour, dx) in CLASSES.items():
            folder = root / subject / name
            folder.mkdir(parents=True)
            for n in (1, 2):
                writer = cv2.VideoWriter(str(folder / f"{n}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (40, 40))
                table = cv2.GaussianBlur(rng.integers(60, 200, (40, 40, 3)).astype(np.uint8), (0, 0), 1.5)
                x = 14 + int(rng.integers(-3, 4))
                for t in range(8):
                    frame = table.copy()
                    frame[14:26, x + dx * t:x + dx * t + 12] = colour
                    writer.write(frame[:, :, ::-1].copy())
                writer.release()
    return root


def test_a_recipe_under_loso_with_two_seeds_compare_and_report(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_videos(tmp_path / "videos")
    assert main(["prepare", "--tree", "videos", "--out", "data", "--flow", "dis", "--size", "32"]) == 0

    assert main(["protocol", "recipes/synthetic_ms", "--data", "data", "--protocol", "loso", "--seeds", "2",
                 "--out", "proto", "--no-progress", *TINY, "selection.fraction=0.25"]) == 0
    result = json.load(open("proto/protocol.json"))
    assert result["recipe"] and result["last_stage"] == "ms_mse" and list(result["stages"]) == ["rgb", "ms_mse"]
    runs = {(run["stage"], run["fold"], run["seed"]): run for run in result["runs"]}
    assert len(runs) == 12  # 3 folds x 2 seeds x 2 stages
    for fold in SUBJECTS:
        for seed in (0, 1):
            parent, child = runs[("rgb", fold, seed)], runs[("ms_mse", fold, seed)]
            folder = f"synthetic_ms__{fold}__seed{seed}"
            assert parent["run_dir"].startswith(folder + "/") and child["run_dir"].startswith(folder + "/")
            assert child["init_from"] == [parent["run_dir"]] and parent["init_from"] == []
            trained = yaml.safe_load(open(Path("proto") / child["run_dir"] / "config.yaml"))
            assert trained["init_from"] == f"{Path(parent['run_dir']).name}/best.ckpt"  # its own fold's parent
            assert trained["trainer"]["seed"] == seed and fold not in trained["data"]["train_subjects"]
            assert child["selection_subjects"] and fold not in child["selection_subjects"]
    ms = [run["top1"] for run in result["runs"] if run["stage"] == "ms_mse"]
    assert result["top1"] == result["stages"]["ms_mse"]["top1"] and result["top1"]["n"] == 6
    assert abs(result["top1"]["mean"] - sum(ms) / 6) < 1e-12

    capsys.readouterr()
    assert main(["protocol", "compare", "proto:ms_mse", "proto:rgb", "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["pairs"] == 6 and abs(diff["top1"]["mean"] - (sum(ms) - sum(
        run["top1"] for run in result["runs"] if run["stage"] == "rgb")) / 6) < 1e-9

    fold = Path("proto") / "synthetic_ms__S2__seed0"
    assert main(["report", str(fold / "rgb-attention_r18_8f_stage2"), str(fold / "rgb-ms-reg-mse_r18_8f_stage2"),
                 "--data", "data", "--split", "S2", "--out", "report", "--clips", "1"]) == 0
    assert (tmp_path / "report" / "index.html").is_file()

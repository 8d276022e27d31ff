"""Journey 3, EGTEA Gaze+ under its own protocol, as a user types it: EGTEA-shaped clip frame folders and
the annotation folder (action_idx.txt, train/test_split1..3.txt) -> `fpar prepare --egtea DIR --frames`
-> `fpar protocol ... --protocol egtea`: three splits of the clips, mean class accuracy averaged."""

import json
from pathlib import Path

import cv2
import numpy as np

from fpar.cli import main

from journey_sizes import TINY

# (action, verb, noun) ids as EGTEA numbers them (from 1), and each action's colour
ACTIONS = (("Open fridge", 1, 1, (220, 40, 40)), ("Take bowl", 2, 2, (40, 200, 60)), ("Cut tomato", 3, 3, (40, 60, 220)))
CLIPS_PER_ACTION = 6
FRAMES = 6


def write_egtea(root: Path) -> Path:
    """ROOT/frames/<session>/<clip>/frame_%010d.jpg and ROOT/annotations/ (returned): each split tests on
    a third of every action's clips and trains on the rest."""
    rng = np.random.default_rng(0)
    lines = []
    for a, (_, verb, noun, colour) in enumerate(ACTIONS):
        for k in range(CLIPS_PER_ACTION):
            session = f"OP0{1 + k % 2}-R0{1 + a}-Kitchen"
            start = 1000 * k + 1
            clip = f"{session}-{start * 40}-{(start + FRAMES) * 40}-F{start:06d}-F{start + FRAMES - 1:06d}"
            folder = root / "frames" / session / clip
            folder.mkdir(parents=True)
            x, y = rng.integers(4, 14, size=2)
            for t in range(1, FRAMES + 1):
                frame = rng.integers(90, 140, size=(32, 32, 3), dtype=np.uint8)
                frame[y:y + 10, x + t:x + t + 10] = colour
                cv2.imwrite(str(folder / f"frame_{t:010d}.jpg"), frame[:, :, ::-1])
            lines.append((k, f"{clip} {a + 1} {verb} {noun}"))
    annotations = root / "annotations"
    annotations.mkdir()
    (annotations / "action_idx.txt").write_text("".join(f"{name} {a + 1}\n" for a, (name, *_) in enumerate(ACTIONS)))
    for n in (1, 2, 3):
        (annotations / f"test_split{n}.txt").write_text("".join(f"{line}\n" for k, line in lines if k % 3 == n - 1))
        (annotations / f"train_split{n}.txt").write_text("".join(f"{line}\n" for k, line in lines if k % 3 != n - 1))
    return annotations


def test_egtea_three_splits_mean_class_accuracy(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_egtea(tmp_path / "EGTEA")
    assert main(["prepare", "--egtea", "EGTEA/annotations", "--frames", "EGTEA/frames", "--out", "data/egtea"]) == 0
    assert "18 segments" in capsys.readouterr().out
    splits = json.load(open("data/egtea/splits.json"))
    assert list(splits) == ["split1", "split2", "split3"]
    assert all(len(s["train"]) == 12 and len(s["test"]) == 6 for s in splits.values())

    assert main(["protocol", "egtea/rgb-attention_r34_16f_stage2", "--data", "data/egtea", "--protocol", "egtea",
                 "--seeds", "1", "--out", "proto", "--no-progress", *TINY, "init_from=null",
                 "selection.fraction=0.25"]) == 0
    result = json.load(open("proto/protocol.json"))
    assert result["primary"] == "mean_class" and [run["fold"] for run in result["runs"]] == EGTEA_FOLDS
    for run in result["runs"]:
        assert run["split"] == run["fold"] and run["n"] == 6 and run["test_subjects"] == []
        assert run["selection_subjects"] == [f"{run['fold']} training clips"]
        scores = json.load(open(Path("proto") / run["run_dir"] / "scores.json"))
        assert scores["split"] == run["fold"] and set(run["heads"]) == {"verb", "noun", "verb_noun_action"}
    values = [run["mean_class"] for run in result["runs"]]
    assert result["mean_class"]["n"] == 3 and abs(result["mean_class"]["mean"] - sum(values) / 3) < 1e-12
    table = open("proto/protocol.md").read()
    assert "| split1 | 0 | split1 test clips |" in table
    assert "Published: Ego-RNN (two-stream) 60.8% mean class accuracy" in table
    assert "LSTA (two-stream) 61.9%" in table

    # the split's test clips are what `fpar eval` scores for a model trained on it
    capsys.readouterr()
    assert main(["eval", f"proto/{result['runs'][1]['run_dir']}/best.ckpt", "--data", "data/egtea", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_class_accuracy"] == result["runs"][1]["mean_class"]
    assert main(["eval", f"proto/{result['runs'][1]['run_dir']}/best.ckpt", "--data", "data/egtea", "--split",
                 "split3", "--json"]) == 0  # another split's test clips, named
    assert json.loads(capsys.readouterr().out)["n"] == len(splits["split3"]["test"])

    # the report explains clips of the split the model is scored on (one per class, up to --clips)
    assert main(["report", f"proto/{result['runs'][1]['run_dir']}/best.ckpt", "--data", "data/egtea", "--out", "rep",
                 "--clips", "2", "--quiet"]) == 0
    explained = [folder.name for folder in Path("rep/clips").iterdir()]
    assert len(explained) == 2 and set(explained) <= set(splits[result["runs"][1]["fold"]]["test"])


EGTEA_FOLDS = ["split1", "split2", "split3"]


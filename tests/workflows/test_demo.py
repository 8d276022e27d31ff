"""The demo's pieces at toy scale: dataset, the five-model recipe, evaluation, the table (not the full demo)."""

import json

from fpar.workflows import demo

TOY_SYNTH = {"subjects": 4, "classes": 2, "videos_per_class": 1, "frames": 6, "size": (40, 32)}
TOY = ("trainer.epochs=1", "trainer.val_every=1", "trainer.batch_size=2", "data.num_frames=2",
       "data.resize=32", "data.crop=32")


def test_toy_demo_writes_one_table_for_all_five_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)  # a relative --out, as `make demo` gives
    out = tmp_path.name
    lines = []
    results = demo.run_demo(out, synth=TOY_SYNTH, overrides=TOY, log=lines.append)

    assert [row["stage"] for row in results["models"]] == ["rgb", "flow", "two_stream", "ms_regression", "two_in_one"]
    assert results["chance"] == 0.5 and all(row["n"] == 2 for row in results["models"])
    assert json.loads((tmp_path / "results.json").read_text()) == results
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("| model | config | S2 accuracy |") and "Chance level: 1/2 = 50.0%" in table
    assert "Checkpoint selection: best epoch on 20% of the training subjects' clips, held out of training" in table
    assert all(row["selection"]["subjects"] == ["S1", "S3", "S4"] for row in results["models"])
    assert lines[-1] == table.rstrip("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "results.json", "results.md", "runs"]

    # again: the dataset and every finished run are reused
    lines.clear()
    demo.run_demo(out, synth=TOY_SYNTH, overrides=TOY, log=lines.append)
    assert lines[0].startswith("dataset: reusing") and sum(": skipped (finished), " in line for line in lines) == 5


def test_table_rows_and_durations():
    results = {"held_out": ["S2"], "classes": 12, "chance": 1 / 12, "wall_seconds": 125.4,
               "models": [{"model": "flow", "experiment": "flow_x", "accuracy": 0.5, "mean_class_accuracy": 0.25,
                           "top5": 1.0, "n": 36, "train_seconds": 61}]}
    table = demo.results_table(results)
    assert "| flow | flow_x | 50.0% | 25.0% | 100.0% | 6.0 | 1m 01s |" in table
    assert table.endswith("Chance level: 1/12 = 8.3%. Held-out subject S2: 36 clips. Wall time: 2m 05s.")

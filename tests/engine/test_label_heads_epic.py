"""A verb+noun model end to end: trained on labels from a labels.csv with EPIC's class numbers, every
head validated and logged, `fpar eval` reporting each head and writing the challenge's results and
submission files, which `fpar score-epic` reads back to the same numbers."""

import csv
import json
from pathlib import Path

import pytest

from fpar.checkpoint import export_model, load_checkpoint, load_model
from fpar.cli import main
from fpar.engine.evaluate import evaluate
from fpar.engine.train import train

from helpers.epic_tree import NOUNS, epic_like_dataset
from helpers.tiny import tiny_config

# the tiny classes' verbs and nouns under EPIC-like numbers (97 verbs, 300 nouns)
def write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def verb_noun_run(module_tmp):
    root = module_tmp("epic") / "data"
    segments = epic_like_dataset(root)
    config = tiny_config(experiment="verb-noun", trainer={"epochs": 1, "logger": "csv"})
    config["model"]["heads"] = {"verb": 97, "noun": 300}
    result = train(config, data_root=root, out_dir=module_tmp("runs"), progress=False)
    return {"root": root, "segments": segments, **result}


def test_training_validates_and_logs_every_head(verb_noun_run):
    logged = Path(verb_noun_run["run_dir"]) / "csv" / "metrics.csv"
    columns = logged.read_text().splitlines()[0].split(",")
    for head in ("verb", "noun"):
        assert {f"val/{head}_acc", f"val/{head}_top5", f"val/{head}_mean_class_acc"} <= set(columns)
    assert {"val/acc", "val/verb_noun_acc", "train/ce_verb", "train/ce_noun"} <= set(columns)
    # the run's own files carry each head's numbers too, as the epoch line shows them
    own = (Path(verb_noun_run["run_dir"]) / "metrics.csv").read_text().splitlines()[0].split(",")
    for head in ("verb", "noun"):
        assert {f"val_{head}_accuracy", f"val_{head}_top5", f"val_{head}_mean_class_accuracy"} <= set(own)
    assert "val_verb_noun_accuracy" in own
    lines = (Path(verb_noun_run["run_dir"]) / "train.log").read_text()
    assert "verb acc " in lines and "verb+noun acc " in lines
    # the checkpoint names every output of each head: the dataset's numbers, then unnamed ones
    contract = load_checkpoint(verb_noun_run["best_ckpt"])["fpar"]
    assert contract["model"]["heads"] == {"verb": 97, "noun": 300}
    verbs = contract["label_classes"]["verb"]
    assert len(verbs) == 97 and verbs[3] == "close" and verbs[10] == "stir" and verbs[96] == "96"
    assert contract["label_classes"]["noun"][299] == "blue"


def test_eval_writes_results_and_submission_that_score_epic_reads_back(verb_noun_run, tmp_path, capsys):
    results, submission = tmp_path / "results.npz", tmp_path / "submission.json"
    assert main(["eval", verb_noun_run["best_ckpt"], "--data", str(verb_noun_run["root"]), "--json",
                 "--epic-results", str(results), "--epic-submission", str(submission),
                 "--sls-pt", "1", "--sls-tl", "2", "--sls-td", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["heads"]) == {"verb", "noun"} and report["heads"]["verb"]["n"] == 7
    assert set(report["heads"]["noun"]["per_class"]) <= set(NOUNS)

    val = [row for row in verb_noun_run["segments"] if row["participant_id"] == "S2"]
    labels = write_csv(tmp_path / "labels.csv", ["narration_id", "participant_id", "verb_class", "noun_class"], val)
    tail_verbs = write_csv(tmp_path / "tail_verbs.csv", ["verb"], [{"verb": 10}])
    tail_nouns = write_csv(tmp_path / "tail_nouns.csv", ["noun"], [{"noun": 299}])
    unseen = write_csv(tmp_path / "unseen.csv", ["participant_id"], [{"participant_id": "S2"}])
    assert main(["score-epic", str(results), "--labels", str(labels), "--tail-verbs", str(tail_verbs),
                 "--tail-nouns", str(tail_nouns), "--unseen", str(unseen), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    # the challenge's scoring of the written file gives eval's own numbers
    assert scored["all_verb_accuracy_at_1"] == pytest.approx(100 * report["heads"]["verb"]["accuracy"])
    assert scored["all_noun_accuracy_at_5"] == pytest.approx(100 * report["heads"]["noun"]["top5"])
    assert scored["all_action_accuracy_at_1"] == pytest.approx(100 * report["verb_noun_action"]["accuracy"])
    assert scored["all_action_accuracy_at_5"] == pytest.approx(100 * report["verb_noun_action"]["top5"])
    assert scored["unseen_verb_accuracy_at_1"] == scored["all_verb_accuracy_at_1"]

    sent = json.loads(submission.read_text())
    assert (sent["version"], sent["challenge"]) == ("0.2", "action_recognition")
    assert (sent["sls_pt"], sent["sls_tl"], sent["sls_td"]) == (1, 2, 3)
    assert set(sent["results"]) == {row["narration_id"] for row in val}
    entry = next(iter(sent["results"].values()))
    assert len(entry["verb"]) == 97 and len(entry["noun"]) == 300 and "299" in entry["noun"]


def test_eval_refuses_epic_files_it_cannot_write(verb_noun_run, trained_run, tiny_data, tmp_path, capsys):
    # a submission without its supervision levels; a model without EPIC's verb and noun heads
    assert main(["eval", verb_noun_run["best_ckpt"], "--data", str(verb_noun_run["root"]),
                 "--epic-submission", str(tmp_path / "s.json"), "--sls-pt", "1"]) != 0
    assert "give sls_tl, sls_td" in capsys.readouterr().err
    assert main(["eval", trained_run["best_ckpt"], "--data", str(tiny_data),
                 "--epic-results", str(tmp_path / "r.npz")]) != 0
    assert "need a verb head of 97 and a noun head of 300 classes; the model's label heads: none" \
        in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists() and not (tmp_path / "r.npz").exists()


def test_an_export_keeps_the_heads_and_multi_view_evaluation_scores_them(verb_noun_run, tmp_path):
    exported = export_model(verb_noun_run["best_ckpt"], tmp_path / "export")
    _, contract = load_model(exported)
    assert contract.label_classes["verb"][4] == "open" and len(contract.label_classes["noun"]) == 300
    result = evaluate(exported, verb_noun_run["root"], views="five")
    assert set(result["heads"]) == {"verb", "noun"}
    for numbers in (*result["heads"].values(), result["verb_noun_action"]):
        assert 0.0 <= numbers["accuracy"] <= numbers["top5"] <= 1.0
    # the row's per-head scores are the views' averaged probabilities
    assert sum(result["clips"][0].head_scores["noun"]) == pytest.approx(1.0, abs=1e-4)

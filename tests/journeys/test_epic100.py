"""Journey 2, EPIC-KITCHENS-100 from its published files to the challenge's numbers, as a user types it:
EPIC-shaped frame folders with a train and a validation CSV -> one import -> the packaged verb+noun
config -> `--protocol epic100` -> `fpar eval` writes results and a submission -> `fpar score-epic`."""

import csv
import json

from fpar.cli import main

from journey_sizes import TINY
from helpers.epic_tree import write_epic_tree


def _split_csv(train_csv, validation_csv):
    """EPIC_100_validation.csv: the segments of every participant's second video, moved out of train."""
    with open(train_csv, newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = reader.fieldnames, list(reader)
    for path, keep in ((train_csv, lambda r: not r["video_id"].endswith("_02")),
                       (validation_csv, lambda r: r["video_id"].endswith("_02"))):
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(row for row in rows if keep(row))
    return [row for row in rows if row["video_id"].endswith("_02")]


def test_epic100_from_two_csvs_to_score_epic(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_csv = write_epic_tree(tmp_path / "EPIC")
    validation = _split_csv(train_csv, tmp_path / "EPIC_100_validation.csv")

    assert main(["prepare", "--epic", "EPIC_100_train.csv", "EPIC_100_validation.csv", "--frames", "EPIC",
                 "--out", "data/epic"]) == 0
    manifest = list(csv.DictReader(line for line in open("data/epic/manifest.csv") if not line.startswith("#")))
    assert len(manifest) == 12 and {row["subject"] for row in manifest} == {"train", "validation"}
    assert {row["participant_id"] for row in manifest} == {"P01", "P02"}
    # a later import of a split already there replaces its rows and keeps the others
    capsys.readouterr()
    assert main(["prepare", "--epic", "EPIC_100_validation.csv", "--frames", "EPIC", "--out", "data/epic"]) == 0
    assert "6 earlier rows replaced" in capsys.readouterr().out
    assert len(open("data/epic/manifest.csv").read().strip().splitlines()) == 1 + 1 + 12

    assert main(["configs", "show", "epic100/rgb-attention_r34_16f_stage2"]) == 0
    assert "verb: 97  # _base_/epic100.yaml" in capsys.readouterr().out

    assert main(["protocol", "epic100/rgb-attention_r34_16f_stage2", "--data", "data/epic", "--protocol", "epic100",
                 "--seeds", "1", "--out", "proto", "--no-progress", *TINY, "init_from=null",
                 "selection.fraction=0.5"]) == 0
    result = json.load(open("proto/protocol.json"))
    (run,) = result["runs"]
    assert run["fold"] == "validation" and run["test_subjects"] == ["validation"] and run["n"] == 6
    assert set(result["heads"]) == {"verb", "noun", "verb_noun_action"}
    for head in ("verb", "noun"):
        assert 0 <= result["heads"][head]["top1"]["mean"] <= 1 and result["heads"][head]["mean_class"]["n"] == 1
    assert result["overrides"][-1] == "selection.fraction=0.5" and "verb_noun_action top-1 %" in open(
        "proto/protocol.md").read()

    checkpoint = f"proto/{run['run_dir']}/best.ckpt"
    capsys.readouterr()
    assert main(["eval", checkpoint, "--data", "data/epic", "--split", "validation", "--json",
                 "--epic-results", "results.pt", "--epic-submission", "submission.json",
                 "--sls-pt", "0", "--sls-tl", "0", "--sls-td", "0"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["heads"]["verb"]["accuracy"] == run["heads"]["verb"]["top1"]
    assert set(json.load(open("submission.json"))["results"]) == {row["narration_id"] for row in validation}

    assert main(["report", f"proto/{run['run_dir']}", "--data", "data/epic", "--split", "validation",
                 "--out", "report", "--clips", "0"]) == 0
    assert "verb head: top-1" in capsys.readouterr().out
    reported = json.load(open("report/report.json"))["runs"][0]
    assert reported["heads"]["noun"]["accuracy"] == run["heads"]["noun"]["top1"]
    assert "| verb head | value |" in open("report/report.md").read()

    for name, column, value in (("tail_verbs.csv", "verb", 0), ("tail_nouns.csv", "noun", 8),
                                ("unseen.csv", "participant_id", "P02")):
        (tmp_path / name).write_text(f"{column}\n{value}\n")
    assert main(["score-epic", "results.pt", "--labels", "EPIC_100_validation.csv", "--tail-verbs", "tail_verbs.csv",
                 "--tail-nouns", "tail_nouns.csv", "--unseen", "unseen.csv", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["all_verb_accuracy_at_1"] == 100 * run["heads"]["verb"]["top1"]
    assert scored["all_action_accuracy_at_1"] == 100 * run["heads"]["verb_noun_action"]["top1"]

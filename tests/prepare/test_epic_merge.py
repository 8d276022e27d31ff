"""EPIC-KITCHENS-100 imports into one root: several CSVs in one call or one after the other make one
manifest, whose subjects are the splits once it holds several; nothing earlier is silently dropped."""

import csv

from fpar.cli import main

from helpers.epic_tree import write_epic_tree


def _rows(out):
    with open(out / "manifest.csv") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def _write(path, columns, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_one_split_then_another_become_one_dataset_of_splits(tmp_path, capsys):
    train = write_epic_tree(tmp_path / "EPIC")
    with open(train, newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = reader.fieldnames, list(reader)
    _write(train, columns, rows[:6])
    validation = _write(tmp_path / "EPIC_100_validation.csv", columns, rows[6:])
    out = tmp_path / "data"
    assert main(["prepare", "--epic", str(train), "--frames", str(tmp_path / "EPIC"), "--out", str(out)]) == 0
    assert {row["subject"] for row in _rows(out)} == {"P01"}  # one split: the participants
    assert main(["prepare", "--epic", str(validation), "--frames", str(tmp_path / "EPIC"), "--out", str(out)]) == 0
    merged = _rows(out)
    assert len(merged) == 12 and {row["subject"] for row in merged} == {"train", "validation"}
    assert {(row["participant_id"], row["epic_split"]) for row in merged} == {("P01", "train"), ("P02", "validation")}

    # one narration in two CSVs of one call: refused before anything is written
    _write(tmp_path / "EPIC_100_test.csv", columns, rows[:1])
    before = (out / "manifest.csv").read_bytes()
    capsys.readouterr()
    assert main(["prepare", "--epic", str(train), str(tmp_path / "EPIC_100_test.csv"), "--frames",
                 str(tmp_path / "EPIC"), "--out", str(out)]) == 1
    assert "P01_01_0" in capsys.readouterr().err and (out / "manifest.csv").read_bytes() == before


def test_a_manifest_no_epic_import_wrote_is_refused(tmp_path, capsys):
    train = write_epic_tree(tmp_path / "EPIC")
    out = tmp_path / "data"
    out.mkdir()
    (out / "manifest.csv").write_text("id,subject,label,frames\nclip,S1,open,clip\n")
    assert main(["prepare", "--epic", str(train), "--frames", str(tmp_path / "EPIC"), "--out", str(out)]) == 1
    assert "is not an EPIC-KITCHENS import" in capsys.readouterr().err
    assert (out / "manifest.csv").read_text() == "id,subject,label,frames\nclip,S1,open,clip\n"

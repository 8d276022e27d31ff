"""Every row of an EPIC or EGTEA import is checked before anything is written: a bad row is one
line ``FILE:LINE: narration_id '...': reason``, the good ones are imported, the exit status is 1,
and an input with no good row writes nothing (docs/prepare.md, "Rows an import refuses")."""

import csv

import pytest

from fpar.cli import main

from .test_importers import EPIC_HEADER, make_egtea

GOOD = "P01_01_0,P01,P01_01,,,,1,10,open door,open,3,door,8,[],[]\n"


def epic_frames(tmp_path, count=10):
    frames = tmp_path / "EPIC" / "P01" / "rgb_frames" / "P01_01"
    frames.mkdir(parents=True)
    for k in range(1, count + 1):
        (frames / f"frame_{k:010d}.jpg").write_bytes(b"")
    return tmp_path / "EPIC"


BAD_ROWS = {
    "short row": ("P01_01_1,P01,P01_01,,,,1,10\n", "8 fields, the header has 15"),
    "climbing id": ("../../evil,P01,P01_01,,,,1,10,open door,open,3,door,8,[],[]\n", "path separator"),
    "NUL id": ("P01_\x00x,P01,P01_01,,,,1,10,open door,open,3,door,8,[],[]\n", "control character"),
    "empty id": (",P01,P01_01,,,,1,10,open door,open,3,door,8,[],[]\n", "empty id"),
    "dot id": ("..,P01,P01_01,,,,1,10,open door,open,3,door,8,[],[]\n", "names a folder"),
    "nan class": ("P01_01_2,P01,P01_01,,,,1,10,open door,open,nan,door,8,[],[]\n", "verb_class 'nan' is not a class"),
    "negative class": ("P01_01_3,P01,P01_01,,,,1,10,open door,open,3,door,-1,[],[]\n", "noun_class '-1' is not"),
    "class out of range": ("P01_01_4,P01,P01_01,,,,1,10,open door,open,97,door,8,[],[]\n", "out of range (0 to 96)"),
    "huge stop frame": ("P01_01_5,P01,P01_01,,,,1,100000000000000000000,open door,open,3,door,8,[],[]\n",
                        "beyond any video"),
    "stop past the frames": ("P01_01_6,P01,P01_01,,,,1,11,open door,open,3,door,8,[],[]\n", "frame 11 is not in"),
    "duplicate": (GOOD, "already on line 2"),
}


def test_an_epic_import_names_each_bad_row_and_imports_the_rest(tmp_path, capsys):
    data = epic_frames(tmp_path)
    annotations = tmp_path / "EPIC_100_train.csv"
    annotations.write_text(EPIC_HEADER + GOOD + "".join(row for row, _ in BAD_ROWS.values()), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["prepare", "--epic", str(annotations), "--frames", str(data), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(str(annotations))]
    assert len(lines) == len(BAD_ROWS)
    for number, (line, (kind, (_, reason))) in enumerate(zip(lines, BAD_ROWS.items()), 3):
        assert line.startswith(f"{annotations}:{number}: narration_id ") and reason in line, (kind, line)
    assert "'P01_\\x00x'" in err  # a control character is shown escaped, never raw
    rows = list(csv.DictReader((out / "manifest.csv").read_text().splitlines()[1:]))
    assert [row["id"] for row in rows] == ["P01_01_0"]
    assert [row["id"] for row in csv.DictReader((out / "labels.csv").read_text().splitlines())] == ["P01_01_0"]


@pytest.mark.parametrize("content", ["", "\n\n"], ids=["header only", "blank lines"])
def test_an_epic_input_with_no_good_row_writes_nothing(tmp_path, capsys, content):
    data = epic_frames(tmp_path)
    annotations = tmp_path / "EPIC_100_train.csv"
    annotations.write_text(EPIC_HEADER + content)
    out = tmp_path / "out"
    assert main(["prepare", "--epic", str(annotations), "--frames", str(data), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"fpar: error: {annotations}: no row to import (it has none); nothing written"]
    assert not out.exists()


def test_a_missing_videos_folder_is_one_line_and_writes_nothing(tmp_path, capsys):
    annotations = tmp_path / "EPIC_100_train.csv"
    annotations.write_text(EPIC_HEADER + GOOD)
    out = tmp_path / "out"
    for flags in (["--videos", str(tmp_path / "nowhere")], ["--videos", str(tmp_path / "nowhere"), "--in-place"],
                  ["--frames", str(tmp_path / "nowhere")]):
        assert main(["prepare", "--epic", str(annotations), *flags, "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "nowhere: no such folder" in err, err
        assert not out.exists()


def test_egtea_clips_that_climb_out_or_end_past_the_session_are_refused(tmp_path, capsys):
    root = make_egtea(tmp_path)
    split = root / "train_split1.txt"
    frames = tmp_path / "frames" / "OP01-R01-PastaSalad"
    frames.mkdir(parents=True)
    for k in range(1, 15):
        (frames / f"frame_{k:010d}.jpg").write_bytes(b"")
    split.write_text(split.read_text() + "OP01-../../evil-1-2-F000001-F000002 1 1 1\n"
                     + "OP01-R01-PastaSalad-1-2-F000001-F000002 1 1\n" + "OP01-R01-PastaSalad-3-4-F000001-F000002 1 nan 1\n")
    out = tmp_path / "out"
    assert main(["prepare", "--egtea", str(split), "--frames", str(tmp_path / "frames"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "clip 'OP01-../../evil-1-2-F000001-F000002': id holds a path separator" in err
    assert "frame 150 is not in" in err and "Traceback" not in err
    assert "clip 'OP01-R01-PastaSalad-1-2-F000001-F000002': 3 fields, expected 4" in err
    assert "clip 'OP01-R01-PastaSalad-3-4-F000001-F000002': id 'nan' is not a class id" in err
    assert not (tmp_path / "evil").exists()


def test_an_import_into_a_folder_of_another_layout_is_refused(tmp_path, capsys):
    data = epic_frames(tmp_path)
    annotations = tmp_path / "EPIC_100_train.csv"
    annotations.write_text(EPIC_HEADER + GOOD)
    out = tmp_path / "out"
    (out / "processed_frames" / "S1").mkdir(parents=True)  # a prepared GTEA-style dataset
    assert main(["prepare", "--epic", str(annotations), "--frames", str(data), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a dataset of the processed layout" in err
    assert sorted(p.name for p in out.iterdir()) == ["processed_frames"]

"""`fpar prepare --egtea/--epic ... --frames DIR | --videos DIR --in-place`: annotations become a manifest
read where the frames or videos are; nothing else is written, nothing under the dataset."""

import csv

import cv2
import numpy as np
import pytest

from fpar.cli import main
from fpar.data import ClipDataset, ClipSettings, load_index
from fpar.data.layouts import FrameRange, VideoRange
from fpar.errors import FparError
from fpar.prepare.importers import epic_manifest, write_in_place_manifest

from .conftest import moving_square, write_avi
from .test_importers import EPIC_HEADER, make_egtea

CLIPS = ("OP01-R01-PastaSalad-100-400-F000003-F000008", "OP01-R01-PastaSalad-300-700-F000006-F000012",
         "OP01-R01-PastaSalad-5000-5600-F000150-F000155")


def manifest_rows(out):
    lines = (out / "manifest.csv").read_text().splitlines()
    return lines[0], list(csv.DictReader(lines[1:]))


def test_egtea_videos_in_place(tmp_path, capsys):
    root = make_egtea(tmp_path)
    out = tmp_path / "out"
    assert main(["prepare", "--egtea", str(root / "train_split1.txt"), "--videos", str(root / "videos"),
                 "--in-place", "--out", str(out)]) == 1  # the two bad lines
    assert "3 segments read in place (videos under" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["labels.csv", "manifest.csv"]  # the verb and noun beside it
    header, rows = manifest_rows(out)
    assert header == f"# root: {(root / 'videos').resolve()}"
    # the session video for two clips (frames from the clip name), the cropped clip for the third
    assert [(r["video"], r["start_frame"], r["stop_frame"]) for r in rows] == [
        ("OP01-R01-PastaSalad.mp4", "3", "8"), ("OP01-R01-PastaSalad.mp4", "6", "12"),
        (f"OP01-R01-PastaSalad/{CLIPS[2]}.mp4", "1", "6")]
    index = load_index(out)
    assert {i.instance_id: (type(i.rgb), len(i.rgb)) for i in index.instances} == {
        CLIPS[0]: (VideoRange, 6), CLIPS[1]: (VideoRange, 7), CLIPS[2]: (VideoRange, 6)}
    item = ClipDataset(index.instances, ClipSettings(num_frames=3, resize=48, crop=48))[1]
    assert item["frames"].shape == (3, 3, 48, 48)


def test_egtea_frame_folders_in_place(tmp_path, capsys):
    root = make_egtea(tmp_path)
    frames = tmp_path / "frames" / "OP01-R01-PastaSalad"
    frames.mkdir(parents=True)
    for k, image in enumerate(moving_square(n=14), 1):
        cv2.imwrite(str(frames / f"frame_{k:010d}.jpg"), image)
    out = tmp_path / "out"
    assert main(["prepare", "--egtea", str(root / "train_split1.txt"), "--frames", str(tmp_path / "frames"),
                 "--out", str(out)]) == 1
    # the third clip's frames (150-155) are not in the session's 14: the import refuses that row
    assert f"clip '{CLIPS[2]}': frame 150 is not in" in capsys.readouterr().err
    index = load_index(out)
    assert CLIPS[2] not in {i.instance_id for i in index.instances}
    first = next(i for i in index.instances if i.instance_id == CLIPS[0])
    assert isinstance(first.rgb, FrameRange) and [p.name for p in first.rgb[:2]] == [
        "frame_0000000003.jpg", "frame_0000000004.jpg"]
    assert main(["data", "check", str(out)]) == 0


def test_epic_videos_in_place(tmp_path, capsys):
    data = tmp_path / "EPIC"
    (data / "P01" / "videos").mkdir(parents=True)
    write_avi(data / "P01" / "videos" / "P01_01.MP4", moving_square(n=20))
    annotations = tmp_path / "EPIC_100_validation.csv"
    annotations.write_text(EPIC_HEADER + "P01_01_0,P01,P01_01,,,,2,12,open door,open,3,door,8,[],[]\n"
                                         "P01_02_0,P01,P01_02,,,,2,12,open door,open,3,door,8,[],[]\n")
    out = tmp_path / "out"
    assert main(["prepare", "--epic", str(annotations), "--videos", str(data), "--in-place", "--out", str(out)]) == 1
    assert "no video" in capsys.readouterr().err  # P01_02 has none: one line, the row skipped
    (inst,) = load_index(out).instances
    assert (inst.rgb.video.name, inst.rgb.first, len(inst.rgb), inst.class_name) == ("P01_01.MP4", 2, 11, "open_door")


@pytest.mark.parametrize("args, message", [
    (["--manifest", "m.csv", "--frames", "."], "--frames goes with --epic CSV or --egtea SPLIT"),
    (["--epic", "a.csv", "--in-place"], "--in-place needs --videos DIR"),
    (["--epic", "a.csv", "--frames", ".", "--videos", "."], "not both"),
])
def test_in_place_argument_mistakes_are_one_line(tmp_path, capsys, args, message):
    assert main(["prepare", *args, "--out", str(tmp_path / "out")]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert message in line
    assert not (tmp_path / "out").exists()


def test_no_manifest_is_written_inside_the_dataset(tmp_path):
    data = tmp_path / "EPIC"
    (data / "P01" / "rgb_frames" / "P01_01").mkdir(parents=True)
    cv2.imwrite(str(data / "P01" / "rgb_frames" / "P01_01" / "frame_0000000001.jpg"), np.zeros((8, 8, 3), np.uint8))
    annotations = tmp_path / "a.csv"
    annotations.write_text(EPIC_HEADER + "P01_01_0,P01,P01_01,,,,1,1,open door,open,3,door,8,[],[]\n")
    with pytest.raises(FparError, match="inside the dataset"):
        write_in_place_manifest([], data, data / "fpar")
    assert main(["prepare", "--epic", str(annotations), "--frames", str(data), "--out", str(data / "fpar")]) == 1
    assert not (data / "fpar").exists()


def test_epic_rows_that_cannot_be_used_are_one_line_each(tmp_path):
    data = tmp_path / "EPIC"
    (data / "P01" / "rgb_frames" / "P01_01").mkdir(parents=True)
    for k in range(1, 11):
        (data / "P01" / "rgb_frames" / "P01_01" / f"frame_{k:010d}.jpg").write_bytes(b"")
    annotations = tmp_path / "a.csv"
    annotations.write_text(EPIC_HEADER
                           + "P01_01_0,P01,P01_01,,,,-4,10,open door,open,3,door,8,[],[]\n"
                           + "P01_01_1,P01,P01_01,,,,30,10,open door,open,3,door,8,[],[]\n"
                           + "P01_01_2,P01,P01_09,,,,1,10,open door,open,3,door,8,[],[]\n"
                           + "P01_01_3,P01,../x,,,,1,10,open door,open,3,door,8,[],[]\n"
                           + "P01_01_4,P01,P01_01,,,,1,10,open door,open,3,door,8,[],[]\n")
    rows, problems = epic_manifest(annotations, data)
    assert [r["id"] for r in rows] == ["P01_01_4"] and "flow_x" not in rows[0]  # no flow folder: RGB only
    assert [p.split(": ", 1)[0] for p in problems] == [f"{annotations}:{n}" for n in (2, 3, 4, 5)]
    assert "start_frame -4 is negative" in problems[0] and "stop_frame 10 before start_frame 30" in problems[1]
    assert "no frame folder" in problems[2] and "video_id: id holds a path separator" in problems[3]

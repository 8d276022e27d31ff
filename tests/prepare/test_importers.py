"""EGTEA Gaze+ and EPIC-KITCHENS-100 annotation files -> jobs -> the processed layout."""

import cv2
import pytest

from fpar.cli import main
from fpar.data import load_index
from fpar.errors import FparError
from fpar.prepare.importers import class_folder_name, egtea_jobs, epic_jobs
from fpar.prepare.video import Segment

from .conftest import moving_square, write_avi

ACTION_IDX = """\
Inspect/Read recipe 1
Open fridge 2
Take bowl 3
"""


def make_egtea(root):
    """A session video of 14 frames, one cropped clip, and a split file with a bad line and an unknown id."""
    videos = root / "videos"
    (videos / "OP01-R01-PastaSalad").mkdir(parents=True)
    write_avi(videos / "OP01-R01-PastaSalad.mp4", moving_square(n=14))
    write_avi(videos / "OP01-R01-PastaSalad" / "OP01-R01-PastaSalad-5000-5600-F000150-F000155.mp4",
              moving_square(n=6))
    (root / "action_idx.txt").write_text(ACTION_IDX)
    (root / "train_split1.txt").write_text(
        "OP01-R01-PastaSalad-100-400-F000003-F000008 2 5 7\n"
        "OP01-R01-PastaSalad-300-700-F000006-F000012 1 1 1\n"
        "OP01-R01-PastaSalad-5000-5600-F000150-F000155 3 2 2\n"
        "not a clip line\n"
        "OP01-R01-PastaSalad-100-400-F000003-F000008 99 1 1\n")
    return root


def test_egtea_jobs(tmp_path):
    root = make_egtea(tmp_path)
    jobs, problems = egtea_jobs(root / "train_split1.txt", root / "action_idx.txt", root / "videos")
    assert [(j.subject, j.class_name, j.instance_id, j.segment) for j in jobs] == [
        ("OP01", "open_fridge", "OP01-R01-PastaSalad-100-400-F000003-F000008", Segment(3, 8)),
        ("OP01", "inspect-read_recipe", "OP01-R01-PastaSalad-300-700-F000006-F000012", Segment(6, 12)),
        ("OP01", "take_bowl", "OP01-R01-PastaSalad-5000-5600-F000150-F000155", None),  # the cropped clip
    ]
    assert jobs[0].video == str(root / "videos" / "OP01-R01-PastaSalad.mp4")
    assert len(problems) == 2
    assert "train_split1.txt:4: not a '<clip> <action> <verb> <noun>' line" in problems[0]
    assert "train_split1.txt:5: action id 99 not in" in problems[1]


def test_fpar_prepare_egtea(tmp_path, capsys):
    root = make_egtea(tmp_path)
    out = tmp_path / "out"
    assert main(["prepare", "--egtea", str(root / "train_split1.txt"), "--videos", str(root / "videos"),
                 "--out", str(out), "--flow", "dis"]) == 1  # the two bad lines are reported
    captured = capsys.readouterr()
    assert "3 instances written (19 frames), 0 already prepared, 0 failed, 2 annotation problems" in captured.out
    lengths = {i.instance_id: len(i.rgb) for i in load_index(out).instances}
    assert lengths == {
        "OP01/open_fridge/OP01-R01-PastaSalad-100-400-F000003-F000008": 6,
        "OP01/inspect-read_recipe/OP01-R01-PastaSalad-300-700-F000006-F000012": 7,
        "OP01/take_bowl/OP01-R01-PastaSalad-5000-5600-F000150-F000155": 6,
    }


EPIC_HEADER = ("narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,"
               "start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n")


def make_epic(root):
    """P01_01 as a video, P02_03 as a frame folder (EPIC's frame_0000000001.jpg naming)."""
    videos = root / "EPIC-KITCHENS"
    (videos / "P01" / "videos").mkdir(parents=True)
    write_avi(videos / "P01" / "videos" / "P01_01.MP4", moving_square(n=12), fps=60)
    frames = videos / "P02" / "rgb_frames" / "P02_03"
    frames.mkdir(parents=True)
    for k, frame in enumerate(moving_square(n=10), 1):
        cv2.imwrite(str(frames / f"frame_{k:010d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (root / "EPIC_100_train.csv").write_text(
        EPIC_HEADER
        + 'P01_01_0,P01,P01_01,00:00:00.02,00:00:00.03,00:00:00.10,2,7,open door,open,3,door,8,"[\'door\']",[8]\n'
        + 'P01_01_1,P01,P01_01,00:00:00.10,00:00:00.10,00:00:00.18,6,11,take pan,take,0,pan:dust,5,"[\'pan:dust\']",[5]\n'
        + 'P02_03_0,P02,P02_03,00:00:00.00,00:00:00.00,00:00:00.10,3,9,wash cup,wash,2,cup,13,"[\'cup\']",[13]\n'
        + 'P02_03_1,P02,P02_03,00:00:00.00,00:00:00.00,00:00:00.10,x,9,wash cup,wash,2,cup,13,"[\'cup\']",[13]\n'
        + 'P09_01_0,P09,P09_01,00:00:00.00,00:00:00.00,00:00:00.10,1,5,cut onion,cut,7,onion,4,"[\'onion\']",[4]\n')
    return root


def test_epic_jobs_and_labels(tmp_path):
    root = make_epic(tmp_path)
    jobs, problems = epic_jobs(root / "EPIC_100_train.csv", root / "EPIC-KITCHENS")
    assert [(j.subject, j.class_name, j.instance_id, j.segment) for j in jobs] == [
        ("P01", "open_door", "P01_01_0", Segment(2, 7)),
        ("P01", "take_pan-dust", "P01_01_1", Segment(6, 11)),
        ("P02", "wash_cup", "P02_03_0", Segment(3, 9)),
        ("P09", "cut_onion", "P09_01_0", Segment(1, 5)),
    ]
    assert jobs[2].video == str(root / "EPIC-KITCHENS/P02/rgb_frames/P02_03")
    assert jobs[3].video == str(root / "EPIC-KITCHENS/P09/videos/P09_01.MP4")  # where it was looked for
    assert len(problems) == 1 and "EPIC_100_train.csv:5: narration_id 'P02_03_1': start_frame/stop_frame not whole numbers" \
        in problems[0]
    verbs, _ = epic_jobs(root / "EPIC_100_train.csv", root / "EPIC-KITCHENS", label="verb")
    assert [j.class_name for j in verbs] == ["open", "take", "wash", "cut"]


def test_fpar_prepare_epic(tmp_path, capsys):
    root = make_epic(tmp_path)
    out = tmp_path / "out"
    assert main(["prepare", "--epic", str(root / "EPIC_100_train.csv"), "--videos", str(root / "EPIC-KITCHENS"),
                 "--out", str(out), "--flow", "dis", "--workers", "2"]) == 1
    captured = capsys.readouterr()
    assert "3 instances written (19 frames), 0 already prepared, 1 failed, 1 annotation problems" in captured.out
    assert "failed: P09/cut_onion/P09_01_0" in captured.err and "P09_01.MP4: no such video" in captured.err
    lengths = {i.instance_id: len(i.rgb) for i in load_index(out).instances}
    assert lengths == {"P01/open_door/P01_01_0": 6, "P01/take_pan-dust/P01_01_1": 6, "P02/wash_cup/P02_03_0": 7}


def test_not_an_epic_csv(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FparError, match="not an EPIC-KITCHENS-100 annotation CSV"):
        epic_jobs(tmp_path / "x.csv", tmp_path)


def test_class_folder_names():
    assert class_folder_name("Inspect/Read recipe") == "inspect-read_recipe"
    assert class_folder_name("stir_spoon,cup") == "stir_spoon,cup"
    assert class_folder_name("../..") == "..-.."  # check_name still refuses the leading dot

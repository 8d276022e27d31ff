"""Hostile manifests and annotation files: each is one line naming the file and line, or the bad
lines are skipped and reported while the rest is imported; nothing is written for a refused one."""

import json

import pytest

from fpar.errors import FparError
from fpar.prepare.importers import egtea_jobs, epic_jobs
from fpar.prepare.jobs import read_manifest

from .test_importers import make_epic


def jsonl(**row):
    return (json.dumps({"video": "a.mp4", "subject": "S1", "class": "open", **row}) + "\n").encode()


# (name, bytes of manifest.jsonl / manifest.csv, the error's words); None: read fine
MANIFESTS = [
    ("subject a list", "jsonl", jsonl(subject=["S1"]), "manifest.jsonl:1: subject must be a name"),
    ("class a mapping", "jsonl", jsonl(**{"class": {"a": 1}}), "manifest.jsonl:1: class must be a name"),
    ("video a number list", "jsonl", jsonl(video=[1, 2]), "video must be a name"),
    ("instance true", "jsonl", jsonl(instance=True), "instance must be a name"),
    ("fps 1e-300", "jsonl", jsonl(start_sec=0, end_sec=1, fps=1e-300), "fps must be from 0.1 to 1000"),
    ("fps 1e39", "jsonl", jsonl(start_sec=0, end_sec=1, fps=1e39), "fps must be from 0.1 to 1000"),
    ("fps true", "jsonl", jsonl(fps=True), "fps True is not a number"),
    ("end_sec inf", "csv", b"video,subject,class,start_sec,end_sec\na.mp4,S1,open,0,inf\n", "end_sec must be a finite"),
    ("deeply nested", "jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n", "manifest.jsonl:1: not a JSON object"),
    ("non-UTF-8", "csv", b"video,subject,class\na.mp4,S\xff1,open\n", "manifest.csv:2: not UTF-8 text (byte 0xff)"),
    ("UTF-8 BOM", "csv", b"\xef\xbb\xbfvideo,subject,class\na.mp4,S1,open\n", None),
    ("UTF-8 BOM, JSONL", "jsonl", b"\xef\xbb\xbf" + jsonl(), None),
]


@pytest.mark.parametrize("name, suffix, data, message", MANIFESTS, ids=[m[0] for m in MANIFESTS])
def test_a_hostile_manifest_is_one_line_naming_the_line(tmp_path, name, suffix, data, message):
    path = tmp_path / f"manifest.{suffix}"
    path.write_bytes(data)
    if message is None:
        [job] = read_manifest(path)
        assert (job.subject, job.class_name, job.instance_id) == ("S1", "open", "a")
        return
    with pytest.raises(FparError) as error:
        read_manifest(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_manifest_too_large_is_refused_before_reading(tmp_path, monkeypatch):
    import fpar.prepare.jobs as jobs

    monkeypatch.setattr(jobs, "MANIFEST_MAX_BYTES", 1 << 10)
    path = tmp_path / "manifest.csv"
    path.write_bytes(b"video,subject,class\n" + b"a.mp4,S1,open\n" * 100)
    with pytest.raises(FparError, match="more than the 0 MiB fpar reads; split it"):
        read_manifest(path)


def test_epic_duplicates_and_negative_frames_are_skipped_and_reported(tmp_path):
    root = make_epic(tmp_path)
    csv = root / "EPIC_100_train.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("\ufeff" + "".join(lines) + lines[1] + lines[1].replace("P01_01_0,", "P01_01_9,").replace(",2,7,", ",-5,7,"))
    jobs, problems = epic_jobs(csv, root / "EPIC-KITCHENS")
    assert [j.instance_id for j in jobs] == ["P01_01_0", "P01_01_1", "P02_03_0", "P09_01_0"]
    assert f"{csv}:7: narration_id 'P01_01_0': already on line 2, skipped" in problems
    assert f"{csv}:8: narration_id 'P01_01_9': start_frame -5 is negative, skipped" in problems


def test_a_malformed_egtea_action_index_line_is_skipped_and_reported(tmp_path):
    (tmp_path / "action_idx.txt").write_text("open fridge 1\ngarbage\nclose fridge 1\ntake bowl 3\n")
    (tmp_path / "split.txt").write_text("OP01-R01-PastaSalad-100-400-F000003-F000008 1 1 1\n"
                                        "OP01-R01-PastaSalad-5000-5600-F000150-F000155 3 1 1\n")
    jobs, problems = egtea_jobs(tmp_path / "split.txt", tmp_path / "action_idx.txt", tmp_path)
    assert [j.class_name for j in jobs] == ["open_fridge", "take_bowl"]
    assert problems == [f"{tmp_path / 'action_idx.txt'}:2: expected '<name> <id>', got 'garbage', skipped",
                        f"{tmp_path / 'action_idx.txt'}:3: id 1 given twice, skipped"]

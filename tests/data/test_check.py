"""``fpar data check``: every problem kind on trees the tests break, the JSON and the exit codes."""

import json
import re

import cv2
import pytest

from fpar.cli import main
from fpar.data.check import check_dataset

from .conftest import add_processed_instance


def _shrink(path):
    """Replace an image with a half-size copy: the modalities of the instance no longer align."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(path), image[: image.shape[0] // 2, : image.shape[1] // 2])


def run_check(root, capsys, *extra):
    code = main(["data", "check", str(root), "--json", *extra])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out else None)


def problem(report, fragment):
    """The one problem whose reason contains ``fragment``."""
    found = [p for p in report["problems"] if fragment in p["reason"]]
    assert len(found) == 1, report["problems"]
    return found[0]


def test_clean_dataset_exits_0_with_counts(processed_root, capsys):
    code, report = run_check(processed_root, capsys)
    assert code == 0
    assert report["layout"] == "processed" and report["instances"] == 5 and report["problems"] == []
    assert report["classes"] == ["close_jam", "open_jam", "pour_tea"]
    assert report["subjects"] == {"S1": 2, "S2": 3}
    assert report["per_class"]["pour_tea"] == {"S1": 0, "S2": 1}
    assert report["frames"] == {"min": 8, "median": 8, "mean": 8, "max": 8}


def test_not_a_dataset_exits_2(tmp_path, capsys):
    code = main(["data", "check", str(tmp_path)])
    assert code == 2
    assert str(tmp_path) in capsys.readouterr().err


@pytest.mark.parametrize(
    "damage, path_end, reason",
    [
        (lambda inst: (inst / "rgb/rgb0003.png").write_bytes(b"garbage bytes"), "rgb0003.png", "corrupt image"),
        (lambda inst: (inst / "mmaps/map0002.png").write_bytes((inst / "mmaps/map0002.png").read_bytes()[:60]),
         "map0002.png", "truncated image"),
        (lambda inst: (inst / "rgb/rgb0005.png").write_bytes(b""), "rgb0005.png", "zero-byte file"),
        (lambda inst: (inst / "mmaps/map0008.png").unlink(), "S1/open_jam/1", "rgb/mmaps count mismatch (8 vs 7)"),
        (lambda inst: (inst / "rgb/rgb0004.png").rename(inst / "rgb/rgb0009.png"), "open_jam/1/rgb", "numbering gap"),
        (lambda inst: (inst / "notes.txt").write_text("x"), "open_jam/1/notes.txt", "unknown file"),
        (lambda inst: (inst.parent.parent / "empty_class").mkdir(), "S1/empty_class", "empty class folder"),
        (lambda inst: _shrink(inst / "mmaps/map0006.png"), "map0006.png", "the instance's others"),
    ],
    ids=["corrupt", "truncated", "zero-byte", "count-mismatch", "gap", "unknown-file", "empty-class", "size"],
)
def test_each_problem_kind_is_reported_with_its_path(processed_root, capsys, damage, path_end, reason):
    damage(processed_root / "processed_frames/S1/open_jam/1")
    code, report = run_check(processed_root, capsys)
    assert code == 1
    found = problem(report, reason)
    assert found["path"].endswith(path_end)


def test_fewer_frames_than_the_flow_stack(tmp_path, capsys):
    add_processed_instance(tmp_path, "S1", "a", "1", 6)
    add_processed_instance(tmp_path, "S1", "a", "2", 4)
    code, report = run_check(tmp_path, capsys)
    assert code == 1 and report["instances"] == 1 and report["skipped"] == 1
    assert problem(report, "fewer frames than the flow stack (4 < 5)")["path"].endswith("S1/a/2")


def test_frames_of_skipped_instances_are_still_read(tmp_path):
    add_processed_instance(tmp_path, "S1", "a", "1", 4)
    (tmp_path / "flow_x_processed/S1/a/1/flow_x_00002.png").write_bytes(b"")
    reasons = sorted(p.reason for p in check_dataset(tmp_path, progress=False).problems)
    assert reasons == ["fewer frames than the flow stack (4 < 5)", "zero-byte file"]


def test_text_report_lists_counts_and_problems(processed_root, capsys):
    (processed_root / "processed_frames/S2/pour_tea/1/rgb/rgb0001.png").write_bytes(b"")
    assert main(["data", "check", str(processed_root), "--layout", "processed"]) == 1
    text = capsys.readouterr().out
    assert "processed layout, 5 usable instances" in text
    assert re.search(r"^pour_tea +0 +1$", text, re.M)
    assert "rgb0001.png: zero-byte file" in text

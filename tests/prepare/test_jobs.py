"""Many videos in one run: manifests, trees, shards, workers, kills and reruns, settings, locks."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from fpar.cli import main
from fpar.data import load_index
from fpar.data.check import check_dataset
from fpar.errors import FparError
from fpar.io import exclusive_lock
from fpar.prepare.jobs import Job, RunOptions, check_jobs, read_manifest, run_jobs, shard, tree_jobs
from fpar.prepare.layout_writer import instance_dirs, lock_path
from fpar.prepare.video import Segment

from .conftest import moving_square, write_avi, write_gif

SRC = Path(__file__).resolve().parents[2] / "src"


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (lock files aside: they are bookkeeping) by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".locks" not in p.parts}


def make_tree(src: Path, n_videos: int = 6) -> Path:
    """SRC/<subject>/<class>/<video>: AVIs, GIFs and a frame folder, a few frames each."""
    for k in range(n_videos):
        folder = src / f"S{k % 2 + 1}" / ("open_jar" if k % 3 else "close_jar")
        folder.mkdir(parents=True, exist_ok=True)
        frames = moving_square(n=5 + k % 3, step=1 + k % 2)
        if k % 3 == 0:
            write_gif(folder / f"take_{k}.gif", frames)
        elif k % 3 == 1:
            write_avi(folder / f"take_{k}.avi", frames)
        else:
            (folder / f"take_{k}").mkdir()
            for number, frame in enumerate(frames, 1):
                cv2.imwrite(str(folder / f"take_{k}" / f"img_{number:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return src


def prepare(*argv: str) -> int:
    return main(["prepare", *argv, "--flow", "dis", "--size", "36"])


def test_tree_run_passes_data_check_and_reruns_skip(tmp_path, capsys):
    src = make_tree(tmp_path / "src")
    out = tmp_path / "out"
    assert prepare("--tree", str(src), "--out", str(out)) == 0
    assert "6 instances written (36 frames), 0 already prepared, 0 failed" in capsys.readouterr().out
    report = check_dataset(out, progress=False)
    assert report.ok, report.format()
    assert report.instances == 6 and set(report.subjects) == {"S1", "S2"}
    record = json.loads((out / "processed_frames/S1/close_jar/take_0/prepare.json").read_text())
    assert record["flow"] == "dis" and record["size"] == 36 and record["bound"] == 20.0 and record["warp"] is True  # the CLI default: warp flow
    assert prepare("--tree", str(src), "--out", str(out)) == 0
    assert "0 instances written (0 frames), 6 already prepared" in capsys.readouterr().out


def test_two_shards_one_killed_and_rerun_equal_a_single_run(tmp_path, monkeypatch):
    src = make_tree(tmp_path / "src")
    assert prepare("--tree", str(src), "--out", str(tmp_path / "single")) == 0
    jobs = check_jobs(tree_jobs(src))
    assert sorted(shard(jobs, 1, 2) + shard(jobs, 2, 2), key=lambda j: j.key) == jobs
    assert shard(jobs, 1, 2) and shard(jobs, 2, 2)

    sharded = tmp_path / "sharded"
    assert prepare("--tree", str(src), "--out", str(sharded), "--shard", "1/2") == 0
    # shard 2 dies in the middle of its second instance (after some frames were written)
    import fpar.prepare.layout_writer as writer

    real, calls = writer._write_png, []

    def dying(path, image):
        calls.append(path)
        if len(calls) == 30:
            raise KeyboardInterrupt
        real(path, image)

    monkeypatch.setattr(writer, "_write_png", dying)
    assert prepare("--tree", str(src), "--out", str(sharded), "--shard", "2/2") != 0  # "fpar: interrupted"
    monkeypatch.undo()
    assert tree_bytes(sharded) != tree_bytes(tmp_path / "single")
    assert prepare("--tree", str(src), "--out", str(sharded), "--shard", "2/2") == 0
    assert tree_bytes(sharded) == tree_bytes(tmp_path / "single")


def test_sigkilled_run_then_rerun_equals_a_single_run(tmp_path):
    src = make_tree(tmp_path / "src", n_videos=4)
    assert prepare("--tree", str(src), "--out", str(tmp_path / "single")) == 0
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    cmd = [sys.executable, "-m", "fpar.cli", "prepare", "--tree", str(src), "--out", str(out), "--flow", "dis",
           "--size", "36"]
    if not (SRC / "fpar" / "cli" / "__main__.py").exists():
        cmd[1:3] = ["-c", "import sys; from fpar.cli import main; sys.exit(main(sys.argv[1:]))"]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if (out / "flow_x_processed").is_dir() and any((out / "flow_x_processed").rglob("*.png")):
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert prepare("--tree", str(src), "--out", str(out)) == 0
    assert tree_bytes(out) == tree_bytes(tmp_path / "single")


def test_two_workers_equal_one(tmp_path):
    src = make_tree(tmp_path / "src", n_videos=4)
    assert prepare("--tree", str(src), "--out", str(tmp_path / "one"), "--workers", "1") == 0
    assert prepare("--tree", str(src), "--out", str(tmp_path / "two"), "--workers", "2") == 0
    assert tree_bytes(tmp_path / "two") == tree_bytes(tmp_path / "one")


def test_manifest_segments_in_frames_and_seconds(tmp_path):
    frames = moving_square(n=12)
    write_avi(tmp_path / "clip.avi", frames, fps=10)
    (tmp_path / "clip_frames").mkdir()
    for k, frame in enumerate(frames, 1):
        cv2.imwrite(str(tmp_path / "clip_frames" / f"frame_{k:010d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (tmp_path / "m.csv").write_text(
        "video,subject,class,instance,start_frame,end_frame,start_sec,end_sec,fps\n"
        "clip.avi,S1,open,,3,8,,,\n"
        "clip.avi,S1,open,late,7,12,,,\n"
        "clip.avi,S2,close,,,,0.2,0.6,\n"
        "clip_frames,S2,close,folder,,,0.5,0.9,10\n"
        "clip_frames,S2,close,folder_frames,4,9,,,\n")
    out = tmp_path / "out"
    assert main(["prepare", "--manifest", str(tmp_path / "m.csv"), "--out", str(out), "--flow", "dis"]) == 0
    lengths = {i.instance_id: len(i.rgb) for i in load_index(out).instances}
    assert lengths == {"S1/open/clip_3-8": 6, "S1/open/late": 6, "S2/close/clip_0.2-0.6s": 5,
                       "S2/close/folder": 5, "S2/close/folder_frames": 6}
    # frame 4 of the folder (file frame_0000000004) is the first frame of folder_frames
    first = cv2.imread(str(out / "processed_frames/S2/close/folder_frames/rgb/rgb0001.png"))
    assert first.tobytes() == cv2.imread(str(tmp_path / "clip_frames" / "frame_0000000004.png")).tobytes()
    record = json.loads((out / "processed_frames/S2/close/folder/prepare.json").read_text())
    assert record["segment"] == {"start": 0.5, "end": 0.9, "unit": "sec"}

    (tmp_path / "m.jsonl").write_text(json.dumps({"video": "clip.avi", "subject": "S3", "class": "open",
                                                  "start_sec": 0, "end_sec": 0.4}) + "\n")
    [job] = read_manifest(tmp_path / "m.jsonl")
    assert job.segment == Segment(0.0, 0.4, "sec") and job.video == str(tmp_path / "clip.avi")


@pytest.mark.parametrize("row, message", [
    ("clip.avi,S1,,", "missing class"),
    ("clip.avi,S1,x,5,3", "start_frame 5 is after end_frame 3"),
    ("clip.avi,S1,x,a,3", "not a whole number"),
])
def test_bad_manifest_rows_name_the_line(tmp_path, row, message):
    (tmp_path / "m.csv").write_text(f"video,subject,class,start_frame,end_frame\n{row}\n")
    with pytest.raises(FparError, match=rf"m.csv:2: .*{message}"):
        read_manifest(tmp_path / "m.csv")


def test_failures_are_summarised_and_the_rest_goes_on(tmp_path, capsys):
    write_gif(tmp_path / "good.gif", moving_square(n=6))
    (tmp_path / "bad.avi").write_bytes(b"\0" * 64)
    (tmp_path / "m.csv").write_text("video,subject,class,instance\n"
                                    "good.gif,S1,x,good\nbad.avi,S1,x,bad\nmissing.mp4,S1,x,gone\n"
                                    "good.gif,..,x,escape\ngood.gif,S1,x,.hidden\n")
    out = tmp_path / "out"
    assert main(["prepare", "--manifest", str(tmp_path / "m.csv"), "--out", str(out), "--flow", "dis"]) == 1
    captured = capsys.readouterr()
    failures = [line for line in captured.err.splitlines() if line.startswith("failed: ")]
    assert len(failures) == 4 and "Traceback" not in captured.err
    assert any("S1/x/bad" in line and "bad.avi" in line for line in failures)
    assert any("S1/x/gone" in line and "missing.mp4: no such video" in line for line in failures)
    assert any("invalid subject name '..'" in line for line in failures)
    assert "1 instances written (6 frames), 0 already prepared, 4 failed" in captured.out
    assert [i.instance_id for i in load_index(out).instances] == ["S1/x/good"]
    assert not (tmp_path / "x").exists() and sorted(p.name for p in out.iterdir()) == [
        ".locks", "flow_x_processed", "flow_y_processed", "processed_frames"]


def test_other_settings_are_refused_same_skipped_overwrite_rebuilds(tmp_path, capsys):
    write_gif(tmp_path / "clip.gif", moving_square(n=6))
    base = ["prepare", str(tmp_path / "clip.gif"), "--out", str(tmp_path / "out"), "--subject", "S1", "--class", "x"]
    assert main([*base, "--flow", "dis"]) == 0
    capsys.readouterr()
    assert main([*base, "--flow", "farneback", "--bound", "10"]) == 1
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if line.startswith("failed")]
    assert line.startswith("failed: S1/x/clip (") and "clip.gif): prepared with other settings (" in line
    assert "(flow dis -> farneback; bound 20.0 -> 10.0)" in line
    assert "--overwrite" in line
    assert main([*base, "--flow", "dis"]) == 0
    assert "1 already prepared" in capsys.readouterr().out
    assert main([*base, "--flow", "farneback", "--bound", "10", "--overwrite"]) == 0
    record = json.loads((tmp_path / "out/processed_frames/S1/x/clip/prepare.json").read_text())
    assert (record["flow"], record["bound"]) == ("farneback", 10.0)


def test_data_check_reports_mixed_settings_and_a_missing_tree(tmp_path):
    for k, flow in enumerate(("dis", "dis", "farneback")):
        write_gif(tmp_path / f"c{k}.gif", moving_square(n=6))
        assert main(["prepare", str(tmp_path / f"c{k}.gif"), "--out", str(tmp_path / "out"), "--subject", "S1",
                     "--class", "x", "--flow", flow]) == 0
    report = check_dataset(tmp_path / "out", progress=False)
    [problem] = report.problems
    assert problem.path.endswith("processed_frames/S1/x/c2")
    assert "other settings than most instances: flow farneback (most: dis)" in problem.reason

    import shutil

    shutil.rmtree(tmp_path / "out" / "flow_y_processed")
    reasons = {p.reason for p in check_dataset(tmp_path / "out", progress=False).problems}
    assert "missing flow_y tree (no instance has flow_y)" in reasons


def test_a_second_writer_of_one_instance_is_refused(tmp_path, capsys):
    write_gif(tmp_path / "clip.gif", moving_square(n=6))
    out = tmp_path / "out"
    key = "S1/x/clip"
    with exclusive_lock(lock_path(out, key), key):  # another process is writing it
        code = main(["prepare", str(tmp_path / "clip.gif"), "--out", str(out), "--subject", "S1", "--class", "x",
                     "--flow", "dis"])
    assert code == 1
    assert "clip.gif): another process is writing it (lock " in capsys.readouterr().err
    assert not instance_dirs(out, "S1", "x", "clip")["processed_frames"].exists()


def test_run_jobs_records_a_locked_instance_as_failed(tmp_path):
    write_gif(tmp_path / "a.gif", moving_square(n=6))
    jobs = [Job(str(tmp_path / "a.gif"), "S1", "x", name) for name in ("a", "b")]
    out = tmp_path / "out"
    with exclusive_lock(lock_path(out, "S1/x/b"), "S1/x/b"):
        report = run_jobs(jobs, RunOptions(str(out), flow="dis"), progress=False)
    assert report.written == ["S1/x/a"] and [job.key for job, _ in report.failed] == ["S1/x/b"]


def test_progress_lines_when_not_a_terminal(tmp_path, capsys):
    write_gif(tmp_path / "a.gif", moving_square(n=6))
    run_jobs([Job(str(tmp_path / "a.gif"), "S1", "x", "a")], RunOptions(str(tmp_path / "out"), flow="dis"))
    err = capsys.readouterr().err
    assert "[1/1] S1/x/a: 6 frames (" in err and "frames/s, ETA 0:00:00)" in err


def test_write_manifest_round_trips(tmp_path, capsys):
    write_avi(tmp_path / "clip.avi", moving_square(n=12), fps=10)
    (tmp_path / "m.csv").write_text("video,subject,class,start_frame,end_frame,start_sec,end_sec\n"
                                    "clip.avi,S1,open,3,8,,\nclip.avi,S2,close,,,0.2,0.6\n")
    assert main(["prepare", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "out"),
                 "--write-manifest", str(tmp_path / "again.csv")]) == 0
    assert "2 jobs, 0 annotation problems" in capsys.readouterr().out
    assert read_manifest(tmp_path / "again.csv") == read_manifest(tmp_path / "m.csv")
    assert not (tmp_path / "out").exists()


def test_no_warp_is_recorded_and_a_warp_rerun_is_refused(tmp_path, capsys):
    src = make_tree(tmp_path / "src")
    out = tmp_path / "out"
    assert prepare("--tree", str(src), "--out", str(out), "--no-warp") == 0
    record = json.loads((out / "processed_frames/S1/close_jar/take_0/prepare.json").read_text())
    assert record["warp"] is False
    capsys.readouterr()
    assert prepare("--tree", str(src), "--out", str(out)) == 1  # warp flow asked of instances made without
    assert "warp" in capsys.readouterr().out

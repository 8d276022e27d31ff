"""prepare_video writes one instance the data layer reads back; it is atomic and resumable."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpar.data import load_index
from fpar.errors import FparError
from fpar.prepare import dequantize_flow, prepare_video
from fpar.prepare.layout_writer import instance_dirs

KEY = dict(subject="S1", class_name="open_jar", instance_id="clip")


def test_prepare_video_reads_back_as_one_instance(tmp_path, square_avi, square_frames):
    result = prepare_video(square_avi, tmp_path / "out", flow="dis", progress=False, **KEY)
    assert (result.n_frames, result.skipped) == (len(square_frames), False)

    index = load_index(tmp_path / "out")
    assert index.layout == "processed" and index.classes == ["open_jar"] and not index.problems
    [inst] = index.instances
    assert inst.subject == "S1" and inst.instance_id == "S1/open_jar/clip"
    n = len(square_frames)
    assert len(inst.rgb) == len(inst.mmaps) == len(inst.flow_x) == len(inst.flow_y) == n
    assert inst.rgb[0].name == "rgb0001.png" and inst.flow_x[-1].name == f"flow_x_{n:05d}.png"

    # Flow 3 (frame 3 -> 4): the square moves +2 px in x, the background is still.
    fx, fy = (cv2.imread(str(p[2]), cv2.IMREAD_GRAYSCALE) for p in (inst.flow_x, inst.flow_y))
    flow = dequantize_flow(fx, fy)
    square = flow[28:44, 30:44]
    assert np.median(square[..., 0]) == pytest.approx(2.0, abs=0.5)
    assert np.median(flow[:, 70:, 0]) == pytest.approx(0.0, abs=0.2)
    mmap = cv2.imread(str(inst.mmaps[2]), cv2.IMREAD_GRAYSCALE)
    assert (mmap[28:44, 30:44] > 0).mean() > 0.5 and (mmap[:, 70:] > 0).mean() < 0.02
    # The last flow repeats the one before (the last frame has no successor).
    assert cv2.imread(str(inst.flow_x[-1])).tobytes() == cv2.imread(str(inst.flow_x[-2])).tobytes()


def test_size_and_max_frames(tmp_path, square_avi):
    prepare_video(square_avi, tmp_path, flow="dis", size=36, max_frames=6, progress=False, **KEY)
    [inst] = load_index(tmp_path).instances
    assert len(inst.rgb) == 6 and len(inst.flow_y) == 6
    assert cv2.imread(str(inst.rgb[0])).shape == (36, 48, 3)
    assert cv2.imread(str(inst.flow_x[0])).shape[:2] == (36, 48)


def test_finished_instance_is_skipped(tmp_path, square_avi):
    prepare_video(square_avi, tmp_path, flow="dis", progress=False, **KEY)
    rgb = instance_dirs(tmp_path, **KEY)["processed_frames"] / "rgb" / "rgb0001.png"
    os.utime(rgb, (1, 1))
    result = prepare_video(square_avi, tmp_path, flow="dis", progress=False, **KEY)
    assert result.skipped and rgb.stat().st_mtime == 1


def test_leftovers_of_a_killed_run_are_redone(tmp_path, square_avi, square_frames):
    dirs = instance_dirs(tmp_path, **KEY)
    # A killed run: a half-written temporary folder, and flow_x renamed but nothing else.
    partial = dirs["processed_frames"].with_name(".clip.partial") / "rgb"
    partial.mkdir(parents=True)
    (partial / "rgb0001.png").write_bytes(b"half")
    dirs["flow_x_processed"].mkdir(parents=True)
    (dirs["flow_x_processed"] / "flow_x_00001.png").write_bytes(b"stale")

    result = prepare_video(square_avi, tmp_path, flow="dis", progress=False, **KEY)
    assert not result.skipped and result.n_frames == len(square_frames)
    assert not partial.parent.exists()
    [inst] = load_index(tmp_path).instances
    assert len(inst.flow_x) == len(square_frames) and cv2.imread(str(inst.flow_x[0])) is not None


def test_corrupt_video_leaves_no_instance(tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(FparError, match="bad.avi"):
        prepare_video(bad, tmp_path / "out", flow="dis", progress=False, **KEY)
    assert not (tmp_path / "out").exists()


def test_single_frame_and_bad_names_are_user_errors(tmp_path, square_avi):
    with pytest.raises(FparError, match="flow needs at least 2"):
        prepare_video(square_avi, tmp_path, flow="dis", max_frames=1, progress=False, **KEY)
    with pytest.raises(FparError, match="plain folder name"):
        prepare_video(square_avi, tmp_path, flow="dis", progress=False, subject="S1", class_name="a/b",
                      instance_id="x")


def test_run_killed_between_renames_is_not_a_usable_instance(tmp_path, square_avi, monkeypatch):
    prepare_video(square_avi, tmp_path, flow="dis", progress=False, **KEY)
    renames = []
    real_rename = Path.rename

    def rename_then_die(self, target):
        if renames:  # the second rename of the instance never happens
            raise KeyboardInterrupt
        renames.append(target)
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename_then_die)
    other = dict(KEY, instance_id="other")
    with pytest.raises(KeyboardInterrupt):
        prepare_video(square_avi, tmp_path, flow="dis", progress=False, **other)
    monkeypatch.undo()

    index = load_index(tmp_path)
    assert [i.instance_id for i in index.instances] == ["S1/open_jar/clip"]
    assert [i.instance_id for i in index.skipped] == ["S1/open_jar/other"]
    assert not prepare_video(square_avi, tmp_path, flow="dis", progress=False, **other).skipped
    assert len(load_index(tmp_path).instances) == 2


def test_frames_are_written_as_they_come(tmp_path, monkeypatch):
    """A long video is never held in memory: each frame is written a frame or two after it is decoded."""
    import fpar.prepare.layout_writer as writer
    from fpar.prepare import write_instance

    from .conftest import moving_square

    base = moving_square(n=2)
    decoded, lags = [0], []

    def stream():
        for k in range(40):
            decoded[0] += 1
            yield base[k % 2]

    real = writer._write_png

    def watch(path, image):
        if path.name.startswith("rgb"):
            lags.append(decoded[0] - int(path.stem[3:]))
        real(path, image)

    monkeypatch.setattr(writer, "_write_png", watch)
    assert write_instance(stream(), tmp_path, flow="dis", **KEY) == 40
    assert len(lags) == 40 and max(lags) <= 2

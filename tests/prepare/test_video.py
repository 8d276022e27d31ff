"""read_video: video files, animated GIFs and frame folders; broken input is a one-line FparError."""

import cv2
import numpy as np
import pytest

from fpar.errors import FparError
from fpar.prepare.video import count_frames, iter_frames_at, read_video, resize_short_side

from .conftest import write_avi, write_gif


def test_avi(tmp_path, square_frames):
    video = read_video(write_avi(tmp_path / "clip.avi", square_frames, fps=12.0))
    assert len(video.frames) == len(square_frames)
    assert video.frames[0].shape == (72, 96, 3) and video.frames[0].dtype == np.uint8
    assert video.fps == pytest.approx(12.0)
    # MJPG is lossy: close, not equal, to what was written.
    assert np.abs(video.frames[3].astype(int) - square_frames[3]).mean() < 6


def test_gif_frames_colours_and_fps(tmp_path, square_frames):
    frames = [f.copy() for f in square_frames]
    frames[0][:8, :8] = (255, 0, 0)  # red stays red: RGB order, not BGR
    video = read_video(write_gif(tmp_path / "clip.gif", frames, duration_ms=50))
    assert len(video.frames) == len(frames)
    assert video.frames[0][2, 2].tolist() == [255, 0, 0]
    assert video.fps == pytest.approx(20.0)


def test_folder_sorted_by_number_and_max_frames(tmp_path):
    for number in (1, 2, 10):  # 10 must come after 2, not after 1
        image = np.full((6, 8, 3), number, np.uint8)
        cv2.imwrite(str(tmp_path / f"img_{number}.png"), image)
    (tmp_path / "notes.txt").write_text("ignored")
    video = read_video(tmp_path)
    assert [int(f[0, 0, 0]) for f in video.frames] == [1, 2, 10]
    assert video.fps is None
    assert len(read_video(tmp_path, max_frames=2).frames) == 2


def test_missing_corrupt_and_empty_inputs(tmp_path):
    with pytest.raises(FparError, match="nope.mp4: no such"):
        read_video(tmp_path / "nope.mp4")
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(b"this is not a video" * 10)
    with pytest.raises(FparError, match="corrupt.avi"):
        read_video(corrupt)
    bad_gif = tmp_path / "bad.gif"
    bad_gif.write_bytes(b"GIF89a broken")
    with pytest.raises(FparError, match="bad.gif"):
        read_video(bad_gif)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FparError, match="empty: no frames"):
        read_video(empty)


def test_resize_short_side_keeps_aspect():
    frame = np.zeros((72, 96, 3), np.uint8)
    assert resize_short_side(frame, 36).shape == (36, 48, 3)
    assert resize_short_side(frame, None) is frame


@pytest.mark.parametrize("kind", ["avi", "gif", "folder"])
def test_frames_at_decodes_only_the_frames_asked_for_as_the_full_read_numbers_them(tmp_path, square_frames, kind):
    if kind == "avi":
        video = write_avi(tmp_path / "clip.avi", square_frames)
    elif kind == "gif":
        video = write_gif(tmp_path / "clip.gif", square_frames)
    else:
        video = tmp_path / "frames"
        video.mkdir()
        for k, frame in enumerate(square_frames, 1):
            cv2.imwrite(str(video / f"{k}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    everything = read_video(video).frames
    assert count_frames(video) == len(everything) == len(square_frames)
    assert count_frames(video, max_frames=3) == 3
    picked = list(iter_frames_at(video, [6, 2, 2, 8]))
    assert [number for number, _ in picked] == [2, 6, 8]  # in order, once each
    for number, frame in picked:
        assert np.array_equal(frame, everything[number - 1])
    with pytest.raises(FparError, match=f"{video.name}.*(ends before frame 9|frame 9 requested)"):
        list(iter_frames_at(video, [1, 9]))


def test_count_frames_of_unreadable_inputs_names_them(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"this is not a video" * 10)
    with pytest.raises(FparError, match="corrupt.mp4"):
        count_frames(corrupt)
    with pytest.raises(FparError, match="nope.avi: no such"):
        count_frames(tmp_path / "nope.avi")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FparError, match="empty: no frames"):
        count_frames(tmp_path / "empty")

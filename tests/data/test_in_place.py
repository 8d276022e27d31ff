"""Manifests read in place: frame ranges of shared frame folders and of videos, flow at its own rate
and quantisation, bad rows skipped with one line each, `fpar data check` per folder."""

from __future__ import annotations

import fractions
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpar.data import ClipDataset, ClipSettings, load_index
from fpar.data.check import check_dataset
from fpar.data.frames import requantize_flow_table
from fpar.data.layouts import FrameRange, VideoRange, flow_range
from fpar.data.videos import read_video_frames

HEADER = "id,subject,label,frames,start_frame,stop_frame,frame_pattern,flow_x,flow_y,flow_stride,flow_bound"


def write_video_folders(root: Path, rgb: int = 30) -> None:
    """root/P01/rgb_frames/V1/frame_%010d.jpg (green channel = frame number) and u/v at half rate."""
    folder = root / "P01" / "rgb_frames" / "V1"
    folder.mkdir(parents=True)
    for k in range(1, rgb + 1):
        image = np.zeros((24, 32, 3), np.uint8)
        image[:, :, 1] = 8 * k
        cv2.imwrite(str(folder / f"frame_{k:010d}.jpg"), image)
    for axis, level in (("u", 153), ("v", 102)):
        flow = root / "P01" / "flow_frames" / "V1" / axis
        flow.mkdir(parents=True)
        for k in range(1, rgb // 2 + 1):
            cv2.imwrite(str(flow / f"frame_{k:010d}.jpg"), np.full((24, 32), level, np.uint8))


def row(ident: str, start, stop, **extra) -> str:
    values = {"id": ident, "subject": "P01", "label": "open_door", "frames": "P01/rgb_frames/V1",
              "start_frame": start, "stop_frame": stop, "frame_pattern": "frame_%010d.jpg",
              "flow_x": "P01/flow_frames/V1/u", "flow_y": "P01/flow_frames/V1/v", "flow_stride": 2,
              "flow_bound": 25, **extra}
    return ",".join(str(values[key]) for key in HEADER.split(","))


@pytest.fixture
def epic_like(tmp_path) -> tuple[Path, Path]:
    data = tmp_path / "epic"
    write_video_folders(data)
    manifest = tmp_path / "out" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text(f"# root: {data}\n" + "\n".join([HEADER, row("a", 1, 20), row("b", 9, 30)]) + "\n")
    return data, manifest


def test_flow_frames_lying_inside_the_segment_at_half_rate():
    # flow frame F stands for RGB frames 2F-1 and 2F
    assert flow_range(1, 20, 2) == (1, 10)
    assert flow_range(9, 30, 2) == (5, 15)
    assert flow_range(2, 10, 2) == (2, 5)  # RGB 2 alone would need flow frame 1, which also covers RGB 1
    assert flow_range(3, 3, 2) == (2, 1)  # empty: the segment holds no whole flow frame
    assert flow_range(4, 9, 1) == (4, 9)


def test_segments_share_one_folder_and_name_their_frames_without_listing(epic_like):
    data, manifest = epic_like
    index = load_index(manifest.parent)
    assert index.problems == [] and [i.instance_id for i in index.instances] == ["a", "b"]
    b = index.instances[1]
    assert isinstance(b.rgb, FrameRange) and len(b.rgb) == 22 and b.n_frames == 22
    assert b.rgb[0] == data / "P01/rgb_frames/V1/frame_0000000009.jpg"
    assert b.rgb[-1].name == "frame_0000000030.jpg"
    assert (len(b.flow_x), b.flow_x[0].name, b.flow_y[-1].name) == (11, "frame_0000000005.jpg", "frame_0000000015.jpg")
    assert (b.flow_bound, b.flow_stride) == (25.0, 2)
    assert b.rgb_numbers_of_flow([1, 2, 11]) == [1, 3, 21]  # flow 5, 6, 15 start at RGB 9, 11, 29


def test_clips_read_the_right_frames_and_flow_in_fpars_quantisation(epic_like):
    _, manifest = epic_like
    index = load_index(manifest)
    settings = ClipSettings(modalities=["frames", "flow"], num_frames=4, stack_size=3, resize=24, crop=24)
    ds = ClipDataset(index.instances, settings, normalize=False)
    item = ds[1]
    numbers = ds.frame_numbers(1)
    green = item["frames"][:, 1].float().mean(dim=(1, 2))  # green = 8 x the video's frame number
    expected = [8 * (9 + n - 1) for n in numbers["rgb"]]
    assert np.allclose(green.numpy(), expected, atol=3)
    # u level 153 at bound 25 is +5 px: level 159 at fpar's bound of 20 px; v 102 is -5 px: 96
    table = requantize_flow_table(25.0)
    assert (table[153], table[102], table[128]) == (159, 96, 128)
    assert item["flow"].shape == (6, 24, 24)
    assert item["flow"][0::2].unique().tolist() == [159] and item["flow"][1::2].unique().tolist() == [96]
    pairs = ClipDataset(index.instances, settings.model_copy(update={"flow_mode": "pairs"}), normalize=False)
    got = pairs[1]
    flow_numbers = pairs.frame_numbers(1)
    rgb_green = got["frames"][:, 1].float().mean(dim=(1, 2)).numpy()
    # each RGB frame is the first of its flow frame's two: video frame 2F-1 for flow frame F
    assert np.allclose(rgb_green, [8 * (2 * (4 + n) - 1) for n in flow_numbers["flow_x"]], atol=3)


@pytest.mark.parametrize("bad, reason", [
    (row("neg", -3, 10), "start_frame -3 is negative"),
    (row("rev", 12, 10), "stop_frame 10 before start_frame 12"),
    (row("word", "x", 10), "start_frame 'x' is not a whole number"),
    (row("gone", 1, 10, frames="P01/rgb_frames/V9"), "no such folder"),
    (row("up", 1, 10, frames="../outside"), "'../outside' is outside the data root"),
    (row("abs", 1, 10, frames="/etc"), "'/etc' is outside the data root"),
    (row("deep", 1, 10, flow_x="P01/../../x"), "outside the data root"),
    (row("stride", 1, 10, flow_stride=0), "flow_stride '0'"),
    (row("bound", 1, 10, flow_bound="nan"), "flow_bound 'nan'"),
    (row("pat", 1, 10, frame_pattern="frame_%s.jpg"), "frame pattern"),
])
def test_a_bad_row_is_skipped_with_one_line_naming_it(epic_like, bad, reason):
    _, manifest = epic_like
    manifest.write_text(manifest.read_text() + bad + "\n")
    index = load_index(manifest)
    assert [i.instance_id for i in index.instances] == ["a", "b"]
    (problem,) = index.problems
    assert problem.path == f"{manifest}:5" and reason in problem.reason and "row skipped" in problem.reason


def test_data_check_finds_missing_and_broken_frames_once_per_folder(epic_like, capsys):
    data, manifest = epic_like
    assert check_dataset(manifest).ok
    (data / "P01/rgb_frames/V1/frame_0000000025.jpg").unlink()
    (data / "P01/flow_frames/V1/u/frame_0000000003.jpg").write_bytes(b"\xff\xd8 not a jpeg \xff\xd9")
    report = check_dataset(manifest)
    assert [(Path(p.path).name, p.reason) for p in report.problems] == [
        ("frame_0000000025.jpg", "missing frame of frames 9-30 of instance b")]
    deep = check_dataset(manifest, deep=True)
    assert sorted(Path(p.path).name for p in deep.problems) == ["frame_0000000003.jpg", "frame_0000000025.jpg"]
    assert "corrupt image" in next(p.reason for p in deep.problems if p.path.endswith("0003.jpg"))


def write_video(path: Path, frames: int, variable_rate: bool = False) -> None:
    """An H.264 video with B-frames whose frame k shows k in binary blocks (bit b white at column 24 + 8b);
    with ``variable_rate`` its frame durations change every 10 frames."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 48, "yuv420p"
        stream.options = {"g": "12", "bf": "2"}
        stream.codec_context.time_base = fractions.Fraction(1, 3000)
        pts = 0
        for k in range(1, frames + 1):
            image = np.full((48, 96, 3), 60, np.uint8)
            for bit in range(6):
                image[16:32, 8 * bit + 24:8 * bit + 32] = 255 if (k >> bit) & 1 else 0
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, fractions.Fraction(1, 3000)
            pts += 100 if not variable_rate or (k // 10) % 2 == 0 else 230
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def shown_number(image: np.ndarray, left: int = 24) -> int:
    """The number :func:`write_video` drew, its blocks starting ``left`` px from the image's left edge."""
    return sum(1 << bit for bit in range(6) if image[20:28, left + 8 * bit + 2:left + 8 * bit + 6].mean() > 128)


@pytest.mark.parametrize("variable_rate", [False, True])
def test_video_frames_equal_a_frame_by_frame_decode(tmp_path, variable_rate):
    import av

    video = tmp_path / "clip.mp4"
    write_video(video, 60, variable_rate)
    with av.open(str(video)) as container:
        every = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert [shown_number(f) for f in every] == list(range(1, 61))
    rng = np.random.default_rng(0)
    for _ in range(6):
        numbers = [int(n) for n in rng.choice(np.arange(1, 61), 5, replace=False)]
        for got, number in zip(read_video_frames(video, numbers), numbers):
            assert np.array_equal(got, every[number - 1]), number


def test_a_video_row_decodes_only_its_segment(tmp_path):
    video = tmp_path / "data" / "P01_01.MP4"
    video.parent.mkdir()
    write_video(video, 60)
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.write_text("id,subject,label,video,start_frame,stop_frame\nx,P01,cut,P01_01.MP4,21,44\n"
                        "y,P01,cut,P01_01.MP4,50,70\nz,P01,cut,P01_01.MP4,0,5\nw,P01,cut,P01_01.MP4,,\n")
    index = load_index(manifest)  # y, past the video's end, is found by `fpar data check`, not by indexing
    inst = index.instances[0]
    assert [(i.instance_id, len(i.rgb)) for i in index.instances] == [("x", 24), ("y", 21), ("w", 60)]
    assert isinstance(inst.rgb, VideoRange) and inst.n_frames == 24
    assert [p.reason for p in index.problems] == ["start_frame 0: a video's first frame is 1 (id 'z'); row skipped"]
    ds = ClipDataset(index.instances, ClipSettings(num_frames=5, resize=48, crop=48), normalize=False)
    frames = ds[0]["frames"].permute(0, 2, 3, 1).numpy()  # (T, 48, 48, 3): columns 24..71 of each frame
    assert [shown_number(f, left=0) for f in frames] == [20 + n for n in ds.frame_numbers(0)["rgb"]]
    problems = check_dataset(manifest).problems
    assert [p.path for p in problems] == [f"{manifest}:4", str(video)]
    assert problems[1].reason == "frames 50-70 of instance y, but the video has 60"

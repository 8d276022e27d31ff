"""``fpar bench``'s in-place rows: what reading a dataset in place costs at EPIC-KITCHENS' scale
(docs/scale.md, "In place and video sources").

:func:`write_epic_shaped` writes a synthetic EPIC-shaped dataset: ``videos`` frame folders of the
published layout (``<P>/rgb_frames/<video>/frame_%010d.jpg``, ``flow_frames/<video>/{u,v}/`` at half
rate), every file a hard link of one small JPEG per folder (so a million frame names cost seconds and
no space; a file system allows some tens of thousands of links to one file),
and an in-place manifest of ``segments`` random segments over them: many segments share each frame.
:func:`measure_in_place` times, each in a fresh process, building the index (with its peak memory)
and ``fpar data check`` (existence of every frame of every segment); :func:`in_place_rows` makes the
two ``fpar bench`` rows of them (100,000 segments; the quick run 10,000).

:func:`compare_video_decoders` measures how exactly and how fast OpenCV and PyAV seek to sampled
frames of a constant- and a variable-frame-rate H.264 video (why :mod:`fpar.data.videos` uses PyAV).

    python -m fpar.bench.in_place FOLDER [--segments 100000] [--videos 100] [--frames 3000]
    python -m fpar.bench.in_place FOLDER --decoders
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fpar.bench.data_rows import data_row
from fpar.errors import FparError
from fpar.prepare.importers import EPIC_FLOW_BOUND, EPIC_FLOW_STRIDE, EPIC_FRAME_PATTERN

# segment lengths in RGB frames (EPIC-100's actions: median about 1.5 s at 60 fps)
SEGMENT_FRAMES = (30, 400)


def write_epic_shaped(folder: str | Path, *, segments: int = 100_000, videos: int = 100, frames: int = 3000,
                      seed: int = 0) -> Path:
    """``FOLDER/EPIC-KITCHENS`` (the frames) and ``FOLDER/in-place/manifest.csv``; returns the manifest."""
    import cv2  # noqa: PLC0415

    folder = Path(folder)
    data = folder / "EPIC-KITCHENS"
    if data.exists():
        raise FparError(f"{data} exists: give an empty folder")
    seeds = folder / "seed-frames"
    seeds.mkdir(parents=True)
    rgb_jpeg = cv2.imencode(".jpg", np.full((256, 456, 3), 90, np.uint8))[1].tobytes()
    flow_jpeg = cv2.imencode(".jpg", np.full((256, 456), 128, np.uint8))[1].tobytes()
    rng = np.random.default_rng(seed)
    names = []
    for v in range(videos):
        participant = f"P{v // 10 + 1:02d}"
        video = f"{participant}_{v % 10 + 1:02d}"
        names.append((participant, video))
        rgb = data / participant / "rgb_frames" / video
        rgb.mkdir(parents=True)
        _link_frames(seeds / f"{video}.jpg", rgb_jpeg, rgb, frames)
        for axis in ("u", "v"):
            flow = data / participant / "flow_frames" / video / axis
            flow.mkdir(parents=True)
            _link_frames(seeds / f"{video}_{axis}.jpg", flow_jpeg, flow, frames // 2)
    buffer = io.StringIO()
    buffer.write(f"# root: {data.resolve()}\n")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "subject", "label", "frames", "frame_pattern", "start_frame", "stop_frame", "flow_x",
                     "flow_y", "flow_pattern", "flow_stride", "flow_bound"])
    lengths = rng.integers(SEGMENT_FRAMES[0], min(SEGMENT_FRAMES[1], frames), size=segments)
    for s in range(segments):
        participant, video = names[s % videos]
        start = int(rng.integers(1, frames - lengths[s] + 1))
        flow = f"{participant}/flow_frames/{video}"
        writer.writerow([f"{video}_{s}", participant, f"verb{s % 97}_noun{s % 300}", f"{participant}/rgb_frames/{video}",
                         EPIC_FRAME_PATTERN, start, start + int(lengths[s]) - 1, f"{flow}/u", f"{flow}/v",
                         EPIC_FRAME_PATTERN, EPIC_FLOW_STRIDE, f"{EPIC_FLOW_BOUND:g}"])
    manifest = folder / "in-place" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text(buffer.getvalue())
    return manifest


def _link_frames(seed: Path, jpeg: bytes, folder: Path, count: int) -> None:
    seed.write_bytes(jpeg)
    for k in range(1, count + 1):
        os.link(seed, folder / (EPIC_FRAME_PATTERN % k))


_INDEX = """
import json, resource, sys, time
from fpar.data.layouts import load_index
start, cpu = time.perf_counter(), time.process_time()
index = load_index(sys.argv[1])
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "instances": len(index.instances), "problems": len(index.problems),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
_CHECK = """
import json, sys, time
from fpar.data.check import check_dataset
start, cpu = time.perf_counter(), time.process_time()
report = check_dataset(sys.argv[1], progress=False, deep=sys.argv[2] == "deep")
print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                  "problems": len(report.problems)}))
"""


def measure_in_place(manifest: str | Path, *, deep: bool = False) -> dict:
    """Index build (wall and CPU seconds, peak resident memory of the whole process) and
    ``fpar data check`` (wall and CPU seconds) of ``manifest``, each in a fresh process; ``deep``
    adds a ``--deep`` check. CPU seconds are what a shared machine's load does not inflate."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}

    def run(code: str, *args: str) -> dict:
        done = subprocess.run([sys.executable, "-c", code, str(manifest), *args], capture_output=True, text=True,
                              env=env)
        if done.returncode != 0:
            raise FparError(f"measuring {manifest} failed: {done.stderr.strip()[-500:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    result = {"index": run(_INDEX), "check": run(_CHECK, "shallow")}
    if deep:
        result["check_deep"] = run(_CHECK, "deep")
    return result


# target (docs/scale.md): at 100,000 segments the index in under 10 s and 1 GB, the check under 60 s
INDEX_TARGET_S, INDEX_TARGET_MB, CHECK_TARGET_S = 10.0, 1000.0, 60.0


def in_place_rows(quick: bool, repeats: int, setting: object, *, segments: int | None = None,
                  videos: int | None = None, frames: int = 3000) -> list[dict]:
    """Index build and ``fpar data check`` of a synthetic EPIC-shaped in-place manifest written to a
    temporary folder (100,000 segments over 100 videos of 3,000 frames; quick: 10,000 over 10), the
    best of ``repeats`` fresh processes each. There is no reference way to compare with: the reference
    copies every segment's frames into a folder of its own. ``setting`` is unused (no model runs);
    ``segments``, ``videos`` and ``frames`` (per video) override the dataset's shape."""
    import tempfile

    default_segments, default_videos = (10_000, 10) if quick else (100_000, 100)
    segments, videos = segments or default_segments, videos or default_videos
    with tempfile.TemporaryDirectory(prefix="fpar-bench-in-place-") as folder:
        manifest = write_epic_shaped(folder, segments=segments, videos=videos, frames=frames)
        measured = [measure_in_place(manifest) for _ in range(max(1, repeats))]
    index = min((m["index"] for m in measured), key=lambda run: run["seconds"])
    check = min((m["check"] for m in measured), key=lambda run: run["seconds"])
    index_met = index["seconds"] < INDEX_TARGET_S and index["peak_rss_mb"] < INDEX_TARGET_MB
    index_note = f"{index['seconds']:.1f} s ({index['cpu_seconds']:.1f} s CPU), {index['peak_rss_mb']:.0f} MB peak"
    check_note = f"{check['seconds']:.1f} s ({check['cpu_seconds']:.1f} s CPU), {check['problems']} problems"
    if segments == 100_000:  # the targets are stated at 100,000 segments
        index_note += f"; target < {INDEX_TARGET_S:.0f} s, < 1 GB: {'met' if index_met else 'not met'}"
        check_note += f"; target < {CHECK_TARGET_S:.0f} s: {'met' if check['seconds'] < CHECK_TARGET_S else 'not met'}"
    return [data_row(f"in place: index of {segments:,} segments", "in-place", "builds/s", None, index["seconds"],
                     index_note, (None, int(index["peak_rss_mb"] * 2**20)), segments=segments),
            data_row(f"in place: data check of {segments:,} segments", "in-place", "checks/s", None,
                     check["seconds"], check_note, segments=segments)]


def _write_numbered_video(path: Path, frames: int, variable_rate: bool) -> None:
    """456x256 H.264 at 60 fps (key frame every 120, 3 B-frames), frame k showing k - 1 in binary
    blocks; ``variable_rate``: every other run of 100 frames at 30 fps (as a GoPro dropping its rate)."""
    import fractions

    import av  # noqa: PLC0415

    base = np.random.default_rng(0).integers(0, 255, (256, 456, 3), np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=60)
        stream.width, stream.height, stream.pix_fmt = 456, 256, "yuv420p"
        stream.options = {"g": "120", "bf": "3"}
        stream.codec_context.time_base = fractions.Fraction(1, 60000)
        pts = 0
        for k in range(frames):
            image = np.roll(base, 3 * k, axis=1)
            for bit in range(10):
                image[0:16, 16 * bit:16 * bit + 16] = 255 if (k >> bit) & 1 else 0
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = pts, fractions.Fraction(1, 60000)
            pts += 2000 if variable_rate and (k // 100) % 2 else 1000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _shown(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(10) if image[4:12, 16 * bit + 4:16 * bit + 12].mean() > 128)


def compare_video_decoders(folder: str | Path, *, frames: int = 900, clips: int = 40, per_clip: int = 8) -> dict:
    """For a constant- and a variable-rate video: the share of sampled frames each way returns exactly
    (the frame a decode from the start gives at that position) and the milliseconds per clip of
    ``per_clip`` sorted random frames (wall and CPU: decoders may use several threads). Ways: OpenCV ``CAP_PROP_POS_FRAMES`` then ``read``; PyAV
    seeking to ``position / fps`` per frame; fpar's reader (PyAV, frame table, decoding forward), kept
    open between clips as a loader worker keeps it, the frame table's one-off cost given apart."""
    import av  # noqa: PLC0415
    import cv2  # noqa: PLC0415

    from fpar.data.videos import VideoReader, read_video_frames

    def opencv(path: Path, numbers: list[int]) -> list[int]:
        capture, shown = cv2.VideoCapture(str(path)), []
        for n in numbers:
            capture.set(cv2.CAP_PROP_POS_FRAMES, n - 1)
            ok, image = capture.read()
            shown.append(_shown(image[:, :, ::-1]) if ok else -1)
        capture.release()
        return shown

    def pyav_by_rate(path: Path, numbers: list[int]) -> list[int]:
        with av.open(str(path)) as container:
            stream, shown = container.streams.video[0], []
            step = 1 / (stream.average_rate * stream.time_base)
            for n in numbers:
                target = int(round((n - 1) * step))
                container.seek(target, stream=stream, backward=True, any_frame=False)
                frame = next(f for f in container.decode(stream) if f.pts >= target)
                shown.append(_shown(frame.to_ndarray(format="rgb24")))
        return shown

    def fpar_reader(path: Path, numbers: list[int]) -> list[int]:  # the video kept open, as a worker does
        return [_shown(image) for image in read_video_frames(path, numbers)]

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    samples = [sorted(int(n) for n in rng.choice(np.arange(1, frames + 1), per_clip, replace=False))
               for _ in range(clips)]
    result = {}
    for rate in ("constant", "variable"):
        path = folder / f"{rate}.mp4"
        _write_numbered_video(path, frames, rate == "variable")
        start = time.perf_counter()
        VideoReader(path).close()
        result[f"{rate}/frame_table_ms"] = 1000 * (time.perf_counter() - start)
        for name, way in (("opencv", opencv), ("pyav_by_rate", pyav_by_rate), ("fpar", fpar_reader)):
            start, cpu, exact = time.perf_counter(), time.process_time(), 0
            for numbers in samples:
                exact += sum(int(shown == n - 1) for shown, n in zip(way(path, numbers), numbers))
            result[f"{rate}/{name}"] = {"exact": exact / (clips * per_clip),
                                        "ms_per_clip": 1000 * (time.perf_counter() - start) / clips,
                                        "cpu_ms_per_clip": 1000 * (time.process_time() - cpu) / clips}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--deep", action="store_true")
    parser.add_argument("--decoders", action="store_true", help="compare the video decoders instead")
    args = parser.parse_args(argv)
    if args.decoders:
        print(json.dumps(compare_video_decoders(args.folder), indent=1))
        return 0
    start = time.perf_counter()
    manifest = write_epic_shaped(args.folder, segments=args.segments, videos=args.videos, frames=args.frames)
    print(f"wrote {manifest} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(json.dumps(measure_in_place(manifest, deep=args.deep), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What reading a dataset in place costs at EPIC-KITCHENS' scale (docs/scale.md, "In place and video sources").

:func:`write_epic_shaped` writes a synthetic EPIC-shaped dataset: ``videos`` frame folders of the
published layout (``<P>/rgb_frames/<video>/frame_%010d.jpg``, ``flow_frames/<video>/{u,v}/`` at half
rate), every file a hard link of one small JPEG per folder (so a million frame names cost seconds and
no space; a file system allows some tens of thousands of links to one file),
and an in-place manifest of ``segments`` random segments over them: many segments share each frame.
:func:`measure_in_place` times, each in a fresh process, building the index (with its peak memory)
and ``fpar data check`` (existence of every frame of every segment).

    python -m fpar.workflows.in_place_scale FOLDER [--segments 100000] [--videos 100] [--frames 3000]
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

from fpar.errors import FparError

PATTERN = "frame_%010d.jpg"
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
    lengths = rng.integers(*SEGMENT_FRAMES, size=segments)
    for s in range(segments):
        participant, video = names[s % videos]
        start = int(rng.integers(1, frames - lengths[s] + 1))
        flow = f"{participant}/flow_frames/{video}"
        writer.writerow([f"{video}_{s}", participant, f"verb{s % 97}_noun{s % 300}", f"{participant}/rgb_frames/{video}",
                         PATTERN, start, start + int(lengths[s]) - 1, f"{flow}/u", f"{flow}/v", PATTERN, 2, 25])
    manifest = folder / "in-place" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text(buffer.getvalue())
    return manifest


def _link_frames(seed: Path, jpeg: bytes, folder: Path, count: int) -> None:
    seed.write_bytes(jpeg)
    for k in range(1, count + 1):
        os.link(seed, folder / (PATTERN % k))


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--deep", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    manifest = write_epic_shaped(args.folder, segments=args.segments, videos=args.videos, frames=args.frames)
    print(f"wrote {manifest} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(json.dumps(measure_in_place(manifest, deep=args.deep), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``fpar prepare`` (videos -> processed layout), ``fpar prepare-gtea`` (raw GTEA) and ``fpar flow`` (look at flow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fpar.cli.common import at_least
from fpar.errors import FparError

MIN_SIZE = 16  # px; OpenCV's flow methods need frames of at least 12 px

FLOW_METHODS = ("tvl1", "tvl1-opencv", "dis", "farneback")  # as fpar.prepare.flow.METHODS (not imported: keeps startup fast)


def register(subparsers: argparse._SubParsersAction) -> None:
    prepare = subparsers.add_parser(
        "prepare", help="turn videos into one processed-layout instance each (frames, flow, motion maps)",
        description="Write each VIDEO (video file, animated GIF or folder of frames) as one instance of "
                    "ROOT/processed_frames/<subject>/<class>/<instance>/ with TV-L1 flow and motion maps. "
                    "Finished instances are skipped, so an interrupted run can simply be restarted.")
    prepare.add_argument("videos", nargs="+", metavar="VIDEO")
    prepare.add_argument("--out", required=True, metavar="ROOT", help="dataset root to write into")
    prepare.add_argument("--subject", required=True, help="subject folder, e.g. S1")
    prepare.add_argument("--class", dest="class_name", required=True, help="class name, e.g. open_jar")
    prepare.add_argument("--instance", help="instance id (one VIDEO only; default: the video's file stem)")
    _add_flow_options(prepare)
    prepare.add_argument("--max-frames", type=at_least(1), help="read at most this many frames per video")
    prepare.set_defaults(func=prepare_command)

    gtea = subparsers.add_parser(
        "prepare-gtea", help="import raw GTEA (frame folders + label files) as GTEA61 in the processed layout",
        description="Read RAW/<frames-dir>/<video>/*.png and RAW/<labels-dir>/<video>.txt; write one instance "
                    "per labelled segment (Ego-RNN's renames and drops applied). Resumable.")
    gtea.add_argument("raw", metavar="RAW")
    gtea.add_argument("--out", required=True, metavar="ROOT")
    gtea.add_argument("--frames-dir", default="png", help="folder of per-video frame folders (default png)")
    gtea.add_argument("--labels-dir", default="labels", help="folder of per-video label files (default labels)")
    _add_flow_options(gtea)
    gtea.set_defaults(func=prepare_gtea_command)

    flow = subparsers.add_parser(
        "flow", help="write a GIF of a video's optical flow (hue = direction, brightness = speed)")
    flow.add_argument("video", metavar="VIDEO")
    flow.add_argument("--out", required=True, help="GIF to write, e.g. flow.gif")
    flow.add_argument("--method", "--flow", dest="method", choices=FLOW_METHODS, default="dis", help="flow method (default dis: fast)")
    flow.add_argument("--size", type=at_least(MIN_SIZE), help="resize so the short side is SIZE px")
    flow.add_argument("--max-frames", type=at_least(1), help="read at most this many frames")
    flow.set_defaults(func=flow_command)


def _add_flow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flow", choices=FLOW_METHODS, default="tvl1",
                        help="optical flow method (default tvl1, as the reference; dis is ~200x faster)")
    parser.add_argument("--bound", type=float, default=20.0, help="flow clipped to ±BOUND px before 8-bit coding")
    parser.add_argument("--size", type=at_least(MIN_SIZE), help="resize so the short side is SIZE px (default: keep)")


def prepare_command(args: argparse.Namespace) -> int:
    from fpar.prepare import prepare_video

    if args.instance and len(args.videos) > 1:
        raise FparError("--instance names one instance; give one VIDEO or leave --instance out")
    stems = [Path(video).stem for video in args.videos]
    twice = sorted({stem for stem in stems if stems.count(stem) > 1})
    if twice:
        raise FparError(f"videos with the same name would be one instance ({', '.join(twice)}); "
                        "prepare them in separate calls with --instance")
    for video in args.videos:  # all inputs checked before the first is prepared
        if not Path(video).exists():
            raise FparError(f"{video}: no such video file or folder")
    for video in args.videos:
        result = prepare_video(
            video, args.out, subject=args.subject, class_name=args.class_name,
            instance_id=args.instance or Path(video).stem, flow=args.flow, bound=args.bound,
            size=args.size, max_frames=args.max_frames,
        )
        where = f"{args.subject}/{args.class_name}/{result.instance_id}"
        print(f"{where}: already prepared, skipped" if result.skipped else f"{where}: {result.n_frames} frames")
    return 0


def prepare_gtea_command(args: argparse.Namespace) -> int:
    from fpar.prepare import import_gtea

    result = import_gtea(
        args.raw, args.out, flow=args.flow, bound=args.bound, size=args.size,
        frames_dir=args.frames_dir, labels_dir=args.labels_dir,
    )
    print(f"{args.out}: {len(result.written)} instances written, {len(result.resumed)} already done, "
          f"{result.dropped} dropped (Ego-RNN drops), {len(result.problems)} problems")
    return 0


def flow_command(args: argparse.Namespace) -> int:
    from fpar.prepare.flow import write_flow_gif

    n = write_flow_gif(args.video, args.out, method=args.method, size=args.size, max_frames=args.max_frames)
    print(f"wrote {args.out}: {n} frames (left: video, right: flow to the next frame)")
    return 0

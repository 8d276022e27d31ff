"""``fpar prepare`` (videos, manifests, trees, EGTEA / EPIC annotations -> processed layout; what
it reads from each source: :mod:`fpar.cli.prepare_sources`), ``fpar prepare-gtea`` (raw GTEA) and
``fpar flow`` (look at flow)."""

from __future__ import annotations

import argparse
import math
import sys

from fpar.cli.common import add_compute_options, at_least, require_device
from fpar.cli.prepare_sources import (annotation_jobs, in_place_manifest, refuse_empty_import, refuse_other_layout,
                                      write_labels)
from fpar.data.frames import FLOW_BOUND, FLOW_BOUND_RANGE
from fpar.data.labels import ACTION, CLASS_KINDS
from fpar.data.layouts import PROCESSED_LAYOUT
from fpar.prepare.flow import DEFAULT_FLOW_METHOD, FLOW_METHODS

MIN_SIZE = 16  # px; OpenCV's flow methods need frames of at least 12 px


def register(subparsers: argparse._SubParsersAction) -> None:
    prepare = subparsers.add_parser(
        "prepare", help="turn videos into processed-layout instances (frames, flow, motion maps)",
        description="Write videos (files, animated GIFs or folders of frames) as instances of "
                    "ROOT/processed_frames/<subject>/<class>/<instance>/ with optical flow and motion maps. "
                    "The videos come from the command line (with --subject and --class), a manifest, a folder "
                    "tree or a dataset's annotation files. Finished instances are skipped, so an interrupted run "
                    "can simply be restarted; failures are listed at the end (exit code 1).")
    prepare.add_argument("videos", nargs="*", metavar="VIDEO")
    prepare.add_argument("--out", required=True, metavar="ROOT", help="dataset root to write into")
    prepare.add_argument("--subject", help="subject folder, e.g. S1 (with VIDEO arguments)")
    prepare.add_argument("--class", dest="class_name", help="class name, e.g. open_jar (with VIDEO arguments)")
    prepare.add_argument("--instance", help="instance id (one VIDEO only; default: the video's file stem)")
    source = prepare.add_mutually_exclusive_group()
    source.add_argument("--manifest", metavar="FILE",
                        help="CSV or JSONL: video, subject, class[, instance][, start_frame, end_frame | "
                             "start_sec, end_sec][, fps]")
    source.add_argument("--tree", metavar="SRC", help="every video of SRC/<subject>/<class>/<video>")
    source.add_argument("--egtea", metavar="SPLIT|DIR",
                        help="EGTEA Gaze+ annotations: a split file, e.g. train_split1.txt, or the folder of "
                             "action_idx.txt and the six train/test_splitN.txt (every clip, the three splits "
                             "recorded for --protocol egtea)")
    source.add_argument("--epic", metavar="CSV", nargs="+",
                        help="EPIC-KITCHENS-100 annotations, e.g. EPIC_100_train.csv EPIC_100_validation.csv: "
                             "one dataset whose subjects are the splits (train, validation) when it holds several")
    prepare.add_argument("--actions", metavar="FILE", help="EGTEA's action_idx.txt (default: beside SPLIT)")
    prepare.add_argument("--videos", dest="videos_dir", metavar="DIR", help="EGTEA / EPIC video folder")
    prepare.add_argument("--epic-label", choices=CLASS_KINDS, default=ACTION,
                         help="EPIC class: action (default: the verb_noun pair), verb or noun")
    in_place = prepare.add_mutually_exclusive_group()
    in_place.add_argument("--frames", dest="frames_dir", metavar="DIR",
                          help="with --epic/--egtea: use the dataset's published frame folders in place "
                               "(EPIC: DIR/<P>/rgb_frames/<video>/, flow_frames/<video>/{u,v}/): write only "
                               "ROOT/manifest.csv, no pixels, no flow computed")
    in_place.add_argument("--in-place", action="store_true",
                          help="with --epic/--egtea and --videos: write only ROOT/manifest.csv naming frame "
                               "ranges of the videos, decoded when a clip is read (RGB only; no extraction)")
    prepare.add_argument("--write-manifest", metavar="FILE",
                         help="write the jobs as a CSV manifest and stop (to look at or edit an import)")
    _add_flow_options(prepare)
    prepare.add_argument("--max-frames", type=at_least(1), help="read at most this many frames per instance")
    _add_run_options(prepare)
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
    _add_run_options(gtea)
    gtea.set_defaults(func=prepare_gtea_command)

    flow = subparsers.add_parser(
        "flow", help="write a GIF of a video's optical flow (hue = direction, brightness = speed)")
    flow.add_argument("video", metavar="VIDEO")
    flow.add_argument("--out", required=True, help="GIF to write, e.g. flow.gif")
    flow.add_argument("--method", "--flow", dest="method", choices=FLOW_METHODS, default=DEFAULT_FLOW_METHOD,
                      help=f"flow method (default {DEFAULT_FLOW_METHOD}, as models are trained; dis: fast)")
    flow.add_argument("--size", type=at_least(MIN_SIZE), help="resize so the short side is SIZE px")
    flow.add_argument("--max-frames", type=at_least(1), help="read at most this many frames")
    add_compute_options(flow, default="cpu")
    flow.set_defaults(func=flow_command)


def positive_bound(text: str) -> float:
    """An argparse type: a number of pixels in FLOW_BOUND_RANGE (below half a pixel every motion saturates, above
    100 px it all codes as zero in 8 bits; nan, inf, 0 and negatives make no flow coding)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    low, high = FLOW_BOUND_RANGE
    if not math.isfinite(value) or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be a number of pixels from {low:g} to {high:g}, got {text}")
    return value


positive_bound.__name__ = "bound"


def shard_spec(text: str) -> tuple[int, int]:
    """An argparse type: ``K/N`` with 1 <= K <= N."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N, e.g. 1/4, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"K must be between 1 and N, got {text}")
    return k, n


shard_spec.__name__ = "shard"


def _add_flow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flow", choices=FLOW_METHODS, default=DEFAULT_FLOW_METHOD,
                        help=f"optical flow method (default {DEFAULT_FLOW_METHOD}, as the reference; dis is ~200x "
                             "faster)")
    parser.add_argument("--bound", type=positive_bound, default=FLOW_BOUND,
                        help=f"flow clipped to ±BOUND px before 8-bit coding (default {FLOW_BOUND:g})")
    parser.add_argument("--size", type=at_least(MIN_SIZE), help="resize so the short side is SIZE px (default: keep)")
    parser.add_argument("--warp", action=argparse.BooleanOptionalAction, default=True,
                        help="remove the camera's motion before the flow (warp flow, what the temporal stream "
                             "is trained on; default on)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=at_least(1), default=1, help="processes, each preparing whole instances")
    add_compute_options(parser, default="cpu")  # the flow's device (tvl1)
    parser.add_argument("--shard", type=shard_spec, metavar="K/N",
                        help="prepare only shard K of N (e.g. $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT)")
    parser.add_argument("--overwrite", action="store_true",
                        help="rebuild instances prepared with other settings (default: refuse them)")


def prepare_command(args: argparse.Namespace) -> int:
    from fpar.prepare import jobs as jobs_module

    require_device(args.device)  # once, before any instance: not once per instance
    if args.frames_dir or args.in_place:
        return in_place_manifest(args)
    jobs, problems = annotation_jobs(args)
    jobs = jobs_module.check_jobs(jobs)
    if args.epic or args.egtea:
        if not jobs:
            for line in problems:
                print(line, file=sys.stderr)
        refuse_empty_import(args, len(jobs), problems)
    if args.write_manifest:
        jobs_module.write_manifest(jobs, args.write_manifest)
        print(f"wrote {args.write_manifest}: {len(jobs)} jobs, {len(problems)} annotation problems")
        return 1 if problems else 0
    refuse_other_layout(args.out, PROCESSED_LAYOUT)
    write_labels(args, {job.instance_id for job in jobs})
    return _run(jobs, problems, args)


def _run(jobs: list, problems: list[str], args: argparse.Namespace) -> int:
    from fpar.prepare.jobs import RunOptions, run_jobs, shard

    total = len(jobs)
    if args.shard:
        jobs = shard(jobs, *args.shard)
    options = RunOptions(args.out, flow=args.flow, bound=args.bound, size=args.size, warp=args.warp,
                         max_frames=getattr(args, "max_frames", None), device=args.device, overwrite=args.overwrite)
    report = run_jobs(jobs, options, workers=args.workers)
    for line in problems + report.summary():
        print(line, file=sys.stderr)
    part = f" (shard {args.shard[0]}/{args.shard[1]}: {len(jobs)} of {total})" if args.shard else ""
    print(f"{args.out}: {len(report.written)} instances written ({report.frames} frames), "
          f"{len(report.skipped)} already prepared, "
          f"{len(report.failed)} failed, {len(problems)} annotation problems{part}")
    return 1 if report.failed or problems else 0


def prepare_gtea_command(args: argparse.Namespace) -> int:
    from fpar.prepare import import_gtea

    require_device(args.device)
    result = import_gtea(
        args.raw, args.out, flow=args.flow, bound=args.bound, size=args.size, warp=args.warp,
        frames_dir=args.frames_dir, labels_dir=args.labels_dir, workers=args.workers, shard_of=args.shard,
        device=args.device, overwrite=args.overwrite,
    )
    print(f"{args.out}: {len(result.written)} instances written, {len(result.resumed)} already done, "
          f"{result.dropped} dropped (Ego-RNN drops), {len(result.problems)} problems")
    return 1 if result.failed else 0


def flow_command(args: argparse.Namespace) -> int:
    from fpar.prepare.flow import write_flow_gif

    n = write_flow_gif(args.video, args.out, method=args.method, size=args.size, max_frames=args.max_frames,
                       device=require_device(args.device))
    print(f"wrote {args.out}: {n} frames (left: video, right: flow to the next frame)")
    return 0

"""``fpar prepare`` (videos, manifests, trees, EGTEA / EPIC annotations -> processed layout),
``fpar prepare-gtea`` (raw GTEA) and ``fpar flow`` (look at flow)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from fpar.cli.common import add_compute_options, at_least, require_device
from fpar.errors import FparError
from fpar.data.frames import FLOW_BOUND, FLOW_BOUND_RANGE
from fpar.data.layouts import MANIFEST_LAYOUT, PROCESSED_LAYOUT
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
    prepare.add_argument("--epic-label", choices=("action", "verb", "noun"), default="action",
                         help="EPIC class: verb_noun (default), verb or noun")
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
    flow.add_argument("--method", "--flow", dest="method", choices=FLOW_METHODS, default="dis", help="flow method (default dis: fast)")
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
        return _in_place(args)
    jobs, problems = _jobs(args)
    jobs = jobs_module.check_jobs(jobs)
    if args.epic or args.egtea:
        if not jobs:
            for line in problems:
                print(line, file=sys.stderr)
        _refuse_empty_import(args, len(jobs), problems)
    if args.write_manifest:
        jobs_module.write_manifest(jobs, args.write_manifest)
        print(f"wrote {args.write_manifest}: {len(jobs)} jobs, {len(problems)} annotation problems")
        return 1 if problems else 0
    _refuse_other_layout(args.out, PROCESSED_LAYOUT)
    _write_labels(args, {job.instance_id for job in jobs})
    return _run(jobs, problems, args)


def _refuse_other_layout(out: str, layout: str) -> None:
    """A dataset root holds one layout: writing another beside it would leave one of the two unread
    (``auto`` picks one; docs/data.md), so an OUT that holds another layout is refused."""
    from fpar.data.layouts import detect_layout
    from fpar.errors import NotADatasetError

    if not Path(out).is_dir():
        return
    try:
        found = detect_layout(Path(out))
    except NotADatasetError:
        return
    if found != layout:
        raise FparError(f"--out {out} holds a dataset of the {found} layout; this import writes the {layout} "
                        "layout, which would not be read beside it: give another --out")


def _refuse_empty_import(args: argparse.Namespace, imported: int, problems: list[str]) -> None:
    """An annotation file none of whose rows can be imported writes nothing (no manifest of no row)."""
    if imported == 0:
        source = ", ".join(args.epic) if args.epic else args.egtea  # --epic takes several CSVs
        why = f"{len(problems)} refused (listed above)" if problems else "it has none"
        raise FparError(f"{source}: no row to import ({why}); nothing written")


def _write_labels(args: argparse.Namespace, ids: set[str]) -> None:
    """EPIC's and EGTEA's verb and noun classes of the imported ``ids``, merged into ``OUT/labels.csv``
    (docs/data.md): a refused row's labels are not written either."""
    from fpar.data.labels import LABELS_FILE, add_labels
    from fpar.io import inside
    from fpar.prepare import importers

    if args.epic:
        rows = [row for csv_path in args.epic for row in importers.epic_labels(csv_path)]
    elif args.egtea:
        rows = [row for split in _egtea_split_files(args.egtea) for row in importers.egtea_labels(
            split, split.with_name("verb_idx.txt"), split.with_name("noun_idx.txt"))]
    else:
        return
    rows = [row for row in rows if row["id"] in ids]
    if rows:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        add_labels(inside(args.out, LABELS_FILE), rows)


def _jobs(args: argparse.Namespace) -> tuple[list, list[str]]:
    """The jobs the arguments name, and the annotation lines that could not be used."""
    from fpar.prepare import importers
    from fpar.prepare.jobs import Job, read_manifest, tree_jobs

    listed = bool(args.videos)
    sources = [flag for flag, value in (("--manifest", args.manifest), ("--tree", args.tree), ("--egtea", args.egtea),
                                        ("--epic", args.epic)) if value]
    if listed == bool(sources):
        raise FparError("give either VIDEO arguments (with --subject and --class) or one of "
                        "--manifest, --tree, --egtea, --epic")
    if not listed and (args.subject or args.class_name or args.instance):
        raise FparError(f"--subject, --class and --instance go with VIDEO arguments, not {sources[0]}")
    if args.manifest:
        return read_manifest(args.manifest), []
    if args.tree:
        return tree_jobs(args.tree), []
    if args.egtea or args.epic:
        if not args.videos_dir:
            raise FparError(f"{sources[0]} needs --videos DIR (where the videos are)")
        if not Path(args.videos_dir).is_dir():
            raise FparError(f"--videos {args.videos_dir}: no such folder (where the videos are)")
        if args.egtea:
            jobs, problems, seen = [], [], set()
            for split in _egtea_split_files(args.egtea):  # a clip in several split files is one job
                found, trouble = importers.egtea_jobs(split, _egtea_actions(args), args.videos_dir)
                jobs += [job for job in found if job.key not in seen]
                seen.update(job.key for job in found)
                problems += trouble
            return jobs, problems
        jobs, problems = [], []
        for csv_path in args.epic:
            found, trouble = importers.epic_jobs(csv_path, args.videos_dir, args.epic_label)
            if len(args.epic) > 1:  # several splits in one dataset: the split is the subject
                found = [dataclasses.replace(job, subject=importers.epic_split_name(csv_path)) for job in found]
            jobs += found
            problems += trouble
        return jobs, problems
    if not (args.subject and args.class_name):
        raise FparError("VIDEO arguments need --subject and --class")
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
    return [Job(video, args.subject, args.class_name, args.instance or Path(video).stem) for video in args.videos], []


def _in_place(args: argparse.Namespace) -> int:
    """``--frames`` / ``--in-place``: the annotations as a manifest of frame ranges read where they are."""
    from fpar.prepare import importers

    flag = "--frames" if args.frames_dir else "--in-place"
    if not (args.epic or args.egtea) or args.videos:
        raise FparError(f"{flag} goes with --epic CSV or --egtea SPLIT (no VIDEO arguments)")
    if args.in_place and not args.videos_dir:
        raise FparError("--in-place needs --videos DIR (the videos whose frames the manifest names)")
    if args.frames_dir and args.videos_dir:
        raise FparError("give --frames DIR (frame folders) or --videos DIR --in-place (videos), not both")
    if args.shard or args.write_manifest:
        raise FparError(f"{flag} writes one manifest at once: --shard and --write-manifest do not apply")
    root = args.frames_dir or args.videos_dir
    if not Path(root).is_dir():
        raise FparError(f"{flag if args.frames_dir else '--videos'} {root}: no such folder (the dataset's "
                        f"{'frames' if args.frames_dir else 'videos'})")
    _refuse_other_layout(args.out, MANIFEST_LAYOUT)  # before anything is read, so before a merge with it
    replaced, splits = 0, None
    if args.epic:
        rows, problems = [], []
        for csv_path in args.epic:
            found, trouble = importers.epic_manifest(csv_path, root, videos=args.in_place, label=args.epic_label)
            rows += found
            problems += trouble
        twice = _twice([row["id"] for row in rows])
        if twice:
            raise FparError(f"narration id {twice!r} is in more than one of {', '.join(args.epic)}: nothing written")
        imported = len(rows)  # before the merge: an import with no row of its own writes nothing
        rows, replaced = importers.merge_epic_rows(args.out, root, rows)
    else:
        rows, problems, splits = _egtea_rows(args, root)
        imported = len(rows)
    for line in problems:
        print(line, file=sys.stderr)
    _refuse_empty_import(args, imported, problems)
    path = importers.write_in_place_manifest(rows, root, args.out)
    if splits:
        from fpar.data.splits import SPLITS_FILE
        from fpar.io import inside, write_text

        write_text(inside(args.out, SPLITS_FILE), json.dumps(splits, indent=1) + "\n")
    _write_labels(args, {row["id"] for row in rows})  # beside the manifest, where the index looks for them
    what = "videos" if args.in_place else "frames"
    subjects = sorted({row["subject"] for row in rows})
    print(f"wrote {path}: {len(rows)} segments read in place ({what} under {root}; subjects "
          f"{', '.join(subjects[:6])}{', ...' if len(subjects) > 6 else ''})"
          + (f", {replaced} earlier rows replaced by their new import" if replaced else "")
          + (f", splits {', '.join(splits)} recorded" if splits else "")
          + f", {len(problems)} annotation problems")
    return 1 if problems else 0


def _twice(ids: list[str]) -> str | None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            return item
        seen.add(item)
    return None


def _egtea_split_files(source: str) -> list[Path]:
    """A split file, or the six ``train_splitN.txt`` / ``test_splitN.txt`` of an annotation folder."""
    folder = Path(source)
    if not folder.is_dir():
        return [folder]
    files = [folder / f"{side}_split{n}.txt" for n in (1, 2, 3) for side in ("train", "test")]
    lacking = [f.name for f in files if not f.is_file()]
    if lacking:
        raise FparError(f"{folder}: an EGTEA Gaze+ annotation folder holds train_split1..3.txt and "
                        f"test_split1..3.txt; {', '.join(lacking)} missing")
    return files


def _egtea_actions(args: argparse.Namespace) -> str:
    folder = Path(args.egtea)
    return args.actions or str(folder / "action_idx.txt" if folder.is_dir() else folder.with_name("action_idx.txt"))


def _egtea_rows(args: argparse.Namespace, root: str) -> tuple[list[dict[str, str]], list[str], dict | None]:
    """EGTEA manifest rows (every clip once), problems, and for an annotation folder its three splits
    as clip lists (``splits.json``: each split's train and test clips)."""
    from fpar.prepare import importers

    files = _egtea_split_files(args.egtea)
    rows: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    listed: dict[Path, list[str]] = {}
    for split in files:
        found, trouble = importers.egtea_manifest(split, _egtea_actions(args), root, videos=args.in_place)
        problems += trouble
        listed[split] = [row["id"] for row in found]
        for row in found:
            rows.setdefault(row["id"], row)
    if not Path(args.egtea).is_dir():
        return list(rows.values()), problems, None
    splits = {f"split{n}": {side: listed[Path(args.egtea) / f"{side}_split{n}.txt"] for side in ("train", "test")}
              for n in (1, 2, 3)}
    return list(rows.values()), problems, splits


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

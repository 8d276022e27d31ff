"""``fpar synth`` and ``fpar data check``: make the synthetic dataset, inspect any dataset."""

from __future__ import annotations

import argparse
import json

from fpar.cli.common import at_least
from fpar.data.layouts import layout_names


def register(subparsers: argparse._SubParsersAction) -> None:
    synth = subparsers.add_parser(
        "synth", help="write the synthetic egocentric dataset", description="Write the synthetic egocentric "
        "dataset (processed layout: RGB, quantised x/y flow, motion maps). Same arguments -> identical files."
    )
    synth.add_argument("out", metavar="OUT", help="folder to write the dataset into")
    synth.add_argument("--subjects", type=at_least(1), default=4)
    synth.add_argument("--classes", type=at_least(1), default=12, help="verb x object classes (at most 20)")
    synth.add_argument("--videos-per-class", type=at_least(1), default=3, help="per subject")
    synth.add_argument("--frames", type=at_least(1), default=24, help="frames per video")
    synth.add_argument("--size", type=_size, default=(160, 120), metavar="WxH", help="frame size (default 160x120)")
    synth.add_argument("--seed", type=at_least(0), default=0)
    synth.add_argument("--force", action="store_true", help="replace a dataset already in OUT")
    synth.set_defaults(func=run_synth)

    data = subparsers.add_parser("data", help="inspect datasets", description="Inspect datasets.")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND")
    check = data_sub.add_parser(
        "check", help="count instances and find every problem in a dataset",
        description="Detect the layout, count instances per subject and class, and list every problem "
        "with its path. Exit 0: usable; 1: problems found; 2: not a dataset.",
    )
    check.add_argument("root", metavar="ROOT", help="dataset folder, or a manifest .csv/.jsonl")
    check.add_argument("--layout", default="auto", choices=["auto", *layout_names()])
    check.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    check.add_argument("--deep", action="store_true",
                       help="decode every frame read in place (manifest frame ranges, videos) once, not only "
                            "check that it exists, and check every frame of the dataset's stores "
                            "(ROOT/.fpar-store) against its checksum")
    check.set_defaults(func=run_check)
    data.set_defaults(func=lambda args: _usage(data))


def run_synth(args: argparse.Namespace) -> int:
    from fpar.data.synth import generate

    out = generate(
        args.out, subjects=args.subjects, classes=args.classes, videos_per_class=args.videos_per_class,
        frames=args.frames, size=args.size, seed=args.seed, force=args.force, progress=None,
    )
    count = args.subjects * args.classes * args.videos_per_class
    print(f"wrote {count} videos ({args.subjects} subjects x {args.classes} classes) to {out}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from fpar.data.check import check_dataset

    report = check_dataset(args.root, args.layout, deep=args.deep)
    if args.deep:
        from fpar.data.store import store_problems

        report.problems += store_problems(args.root)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.format())
    # Exit 2 ("not a dataset") comes from NotADatasetError, which the fpar entry point turns into it.
    return 0 if report.ok else 1


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 160x120, got {text!r}") from None
    if min(width, height) < 1 or max(width, height) > 4096:
        raise argparse.ArgumentTypeError(f"width and height must be between 1 and 4096, got {text}")
    return width, height


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2

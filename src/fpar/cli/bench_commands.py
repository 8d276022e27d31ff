"""``fpar bench``: speed of fpar's way of computing against the reference's, measured here."""

from __future__ import annotations

import argparse
import json

from fpar.bench.vocabulary import ROW_KINDS
from fpar.cli.common import add_compute_options, at_least, require_device
from fpar.engine.settings import PRECISIONS
from fpar.errors import FparError


def _frames(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--frames takes positive clip lengths like 7,16,25, not {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser(
        "bench", help="time fpar against the reference's way of computing, on this machine",
        description="Runs each benchmark both ways in one process (timed alternately) and prints rates, the "
                    "speed-up reference/fpar, each way's share of the machine's matmul peak and peak memory. "
                    "The default is quick (ResNet-18, 112px, 2 clips); --full uses the paper's ResNet-34 at "
                    "224px and 4 clips.")
    bench.add_argument("--full", action="store_true", help="ResNet-34 at 224px (slow on a CPU)")
    bench.add_argument("--frames", type=_frames, default=(7,), metavar="T,...",
                       help="clip lengths to run the model rows at (default 7; the paper's: 7,16,25)")
    bench.add_argument("--batch", type=at_least(1, 4096), metavar="B", help="clips per batch (default 2, with --full 4)")
    bench.add_argument("--size", type=at_least(32, 4096), metavar="PX", help="input side in pixels (default 112, with --full 224)")
    bench.add_argument("--rows", type=_names, default=None, metavar="KIND,...",
                       help=f"row kinds to run: {', '.join(ROW_KINDS)} (default all)")
    bench.add_argument("--stages", type=_names, default=None, metavar="STAGE,...",
                       help="training stages for the train rows (default all)")
    add_compute_options(bench, default="cpu")
    bench.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="fpar's precision (default auto: what this machine computes fastest)")
    bench.add_argument("--repeats", type=at_least(1, 1000), default=3, help="timed runs per side (median reported)")
    bench.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")
    bench.add_argument("--data", metavar="DIR", default=None,
                       help="stream rows: a prepared dataset whose evaluation clips (as `fpar eval` reads them) "
                            "measure each runtime x precision's accuracy change, on --checkpoint")
    bench.add_argument("--checkpoint", metavar="CKPT", default=None,
                       help="stream rows with --data: the trained model the accuracy is measured on (the rates "
                            "are of the paper's size with random weights)")
    bench.set_defaults(func=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    from fpar.bench import STAGE_MODELS, format_table, run_benchmarks

    for flag, value in (("--batch", args.batch), ("--size", args.size), ("--repeats", args.repeats)):
        if value is not None and value < 1:
            raise FparError(f"{flag} must be at least 1, got {value}")
    result = run_benchmarks(quick=not args.full, repeats=args.repeats, frames=args.frames, batch=args.batch,
                            size=args.size,
                            stages=args.stages or tuple(STAGE_MODELS), rows=args.rows or ROW_KINDS,
                            device=require_device(args.device), precision=args.precision, progress=True,
                            data=args.data, checkpoint=args.checkpoint)
    print(format_table(result))
    if args.json:
        from fpar.io import write_text

        write_text(args.json, json.dumps(result, indent=1) + "\n")
    return 0

"""``fpar bench``: speed of fpar's way of computing against the reference's, measured here."""

from __future__ import annotations

import argparse
import json

from fpar.cli.common import at_least


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser(
        "bench", help="time fpar against the reference's way of computing, on this machine",
        description="Runs each benchmark both ways in one process (timed alternately) and prints the "
                    "speed-up reference/fpar. --full uses the paper's ResNet-34 at 224px.")
    bench.add_argument("--full", action="store_true", help="ResNet-34 at 224px (slow on a CPU)")
    bench.add_argument("--repeats", type=at_least(1), default=3, help="timed runs per side (median reported)")
    bench.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    bench.set_defaults(func=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    from fpar.bench import format_table, run_benchmarks

    rows = run_benchmarks(quick=not args.full, repeats=args.repeats)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0

"""``fpar runs``: the run folders under a folder, with what they trained and how they ended."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from fpar.engine.run_folder import DEFAULT_OUT, STATES

    states = "; ".join(f"{state}: {meaning}" for state, meaning in STATES.items())
    runs = subparsers.add_parser(
        "runs", help="list the runs under a folder: model, stage, epochs, best validation accuracy, state",
        description=f"Every run folder (one with config.yaml) under DIR, one line each. State: {states}.")
    runs.add_argument("dir", nargs="?", default=DEFAULT_OUT, metavar="DIR",
                      help=f"folder of runs (default {DEFAULT_OUT})")
    runs.add_argument("--json", action="store_true", help="print one JSON list")
    runs.set_defaults(func=runs_command)


def runs_command(args: argparse.Namespace) -> int:
    import json

    from fpar.workflows.runs import describe_run, format_runs, run_folders

    runs = [describe_run(folder) for folder in run_folders(args.dir)]
    if args.json:
        print(json.dumps(runs))
    elif not runs:
        print(f"no runs under {args.dir}")
    else:
        print(format_runs(runs))
    return 0

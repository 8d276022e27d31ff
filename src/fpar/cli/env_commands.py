"""``fpar env``: what decides fpar's numbers and speed here, to paste into a bug report."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    env = subparsers.add_parser(
        "env", help="print this machine's CPU, instruction set, threads, precision choice, versions and paths",
        description="What decides fpar's numbers and speed on this machine: the CPU and the instruction set "
                    "oneDNN dispatches to (capped by ONEDNN_MAX_CPU_ISA where set), cores and threads, GPUs, the "
                    "precision trainer.precision: auto picks and why, the data.workers: auto choice, library "
                    "versions, optional packages and where fpar keeps files. Paste it into a bug report.")
    env.add_argument("--json", action="store_true", help="print one JSON object")
    env.set_defaults(func=env_command)


def env_command(args: argparse.Namespace) -> int:
    import json

    from fpar.engine.environment import environment, format_environment

    found = environment()
    print(json.dumps(found, indent=1) if args.json else format_environment(found))
    return 0

"""The ``fpar`` command: one entry point, one thin module per command group.

Each module in ``COMMAND_MODULES`` has ``register(subparsers)``, which adds its sub-commands
and sets ``func`` on them. ``func(args) -> int`` returns the exit code. Building the parser
imports no torch, Lightning or OpenCV (``--help`` answers at once): command modules import the
vocabularies their choices come from, and the work itself inside ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fpar import __version__
from fpar.errors import FparError
from fpar.io import os_error_line

COMMAND_MODULES = [
    "fpar.cli.data_commands",
    "fpar.cli.cache_commands",
    "fpar.cli.model_commands",
    "fpar.cli.engine_commands",
    "fpar.cli.recipe_commands",
    "fpar.cli.infer_commands",
    "fpar.cli.bench_commands",
    "fpar.cli.prepare_commands",
    "fpar.cli.config_commands",
    "fpar.cli.export_commands",
    "fpar.cli.epic_commands",
    "fpar.cli.protocol_commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fpar", description="First-person action recognition: data, training, evaluation, explanations."
    )
    parser.add_argument("--version", action="version", version=f"fpar {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a command group not built yet
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FparError as exc:
        print(f"fpar: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # a write the file system refused outside fpar's own writers (a folder made for the output)
        line = os_error_line(exc)
        if line is None:
            raise
        print(f"fpar: error: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fpar: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

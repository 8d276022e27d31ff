"""The ``fpar`` command: one entry point, one thin module per command group.

Each module in ``COMMAND_MODULES`` (the command registry, in ``fpar --help``'s order; a module
out of tree joins it with :func:`add_command_module`) has ``register(subparsers)``, which adds its
sub-commands and sets ``func`` on them; a registered module that cannot be found is an error.
``func(args) -> int`` returns the exit code. Building the parser imports no torch, Lightning or
OpenCV (``--help`` answers at once): command modules import the vocabularies their choices come
from, and the work itself inside ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import threading
import time

from fpar import __version__
from fpar.cli.common import FparParser
from fpar.cli.output import add_quiet_option, run_command
from fpar.errors import SIGNAL_EXIT_CODES, FparError, Interrupted, interruption, stop_on_signals
from fpar.io import os_error_line
from fpar.progress import set_quiet

COMMAND_MODULES = [
    "fpar.cli.data_commands",
    "fpar.cli.cache_commands",
    "fpar.cli.model_commands",
    "fpar.cli.engine_commands",
    "fpar.cli.recipe_commands",
    "fpar.cli.infer_commands",
    "fpar.cli.stream_commands",
    "fpar.cli.bench_commands",
    "fpar.cli.prepare_commands",
    "fpar.cli.config_commands",
    "fpar.cli.export_commands",
    "fpar.cli.runs_commands",
    "fpar.cli.completion_commands",
    "fpar.cli.epic_commands",
    "fpar.cli.protocol_commands",
    "fpar.cli.env_commands",
]


def add_command_module(name: str) -> None:
    """Register the command module importable as ``name`` (its ``register(subparsers)`` adds its
    commands to ``fpar``), after fpar's own."""
    if name not in COMMAND_MODULES:
        COMMAND_MODULES.append(name)


def build_parser() -> argparse.ArgumentParser:
    parser = FparParser(
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
            raise FparError(f"command module {name} is registered (fpar.cli.COMMAND_MODULES) but not found") from None
        if not callable(getattr(module, "register", None)):
            raise FparError(f"command module {name} has no register(subparsers)")
        module.register(subparsers)
    add_quiet_option(parser)
    parser.set_defaults(root_parser=parser)  # for commands that read the whole parser (completion)
    return parser


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (a test's capture, a redirected one)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


_CONSOLE = _Stderr()  # fpar's log lines on stderr: warnings, and with --verbose status lines


def show_log_lines(verbose: bool) -> None:
    """fpar's logged lines go to stderr as plain lines: warnings always, information with ``--verbose``
    (a run folder's train.log keeps the information lines either way)."""
    _CONSOLE.setLevel(logging.INFO if verbose else logging.WARNING)
    package = logging.getLogger("fpar")
    if _CONSOLE not in package.handlers:
        package.addHandler(_CONSOLE)
    if verbose and package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)


# Decoders' own log lines ("moov atom not found", OpenCV's "[ WARN:0] global cap.cpp ...") precede
# fpar's one-line error about the same file and say less; the CLI mutes them before OpenCV loads
# (a value set in the environment wins: OPENCV_FFMPEG_LOGLEVEL=24 shows ffmpeg's warnings again).
QUIET_DECODERS = {"OPENCV_FFMPEG_LOGLEVEL": "-8", "OPENCV_LOG_LEVEL": "ERROR"}


def main(argv: list[str] | None = None) -> int:
    """Run one command; what it prints follows :mod:`fpar.cli.output` (pipes, progress, --quiet)."""
    return run_command(lambda: _main(argv))


def program() -> None:
    """The ``fpar`` program: :func:`main` on the command line, then exit with its status (a
    command a signal stopped within :data:`EXIT_GRACE_SECONDS`, whatever its libraries' exit
    handlers do)."""
    code = main()
    if code in SIGNAL_EXIT_CODES.values():
        _exit_within(EXIT_GRACE_SECONDS, code)
    sys.exit(code)


def _main(argv: list[str] | None) -> int:
    for name, value in QUIET_DECODERS.items():
        os.environ.setdefault(name, value)
    try:
        parser = build_parser()
    except FparError as exc:  # a registered command module that is missing
        print(f"fpar: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    set_quiet(args.quiet)
    show_log_lines(getattr(args, "verbose", False) and not args.quiet)
    try:
        with stop_on_signals():  # SIGTERM stops a command as Ctrl-C does (docs/reliability.md, "Signals")
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
    except Exception as exc:
        stopped = interruption(exc)  # a signal's exception, turned into another one on its way
        if stopped is None:
            raise
        return _interrupted(stopped)
    except (KeyboardInterrupt, SystemExit) as exc:
        stopped = interruption(exc)
        if stopped is None and isinstance(exc, SystemExit):
            raise
        return _interrupted(stopped or Interrupted("SIGINT"))


def _interrupted(stopped: Interrupted) -> int:
    """The one line of a command a signal stopped, and its exit status (143 / 130)."""
    if not stopped.hint:  # what stopped wrote atomically or not at all: nothing half-done to clean
        stopped = stopped.but(hint="run the same command again")
    print(f"fpar: {stopped}", file=sys.stderr)
    return stopped.exit_code


# how long a stopped command's exit may take (libraries' exit handlers, threads joined) before
# it ends anyway: a signal raised inside a library can leave one of its locks held, and its exit
# handler then waits on it for ever (seen once in ~20 test runs: a sweep stopped by SIGTERM
# printed its line, then hung at exit)
EXIT_GRACE_SECONDS = 20


def _exit_within(seconds: float, code: int) -> None:
    """End the process with ``code`` ``seconds`` from now if it has not ended by then."""
    def force() -> None:
        time.sleep(seconds)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)

    threading.Thread(target=force, name="fpar-exit-grace", daemon=True).start()


if __name__ == "__main__":
    program()

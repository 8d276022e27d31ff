"""What every command does with stdout and stderr (docs/cli.md, "In scripts and pipes"), in one place.

* stdout carries results only; status lines, warnings, progress and errors go to stderr.
* A closed stdout (``fpar models | head -n 1``) ends the command quietly with the status a Unix
  tool killed by SIGPIPE has (141 in a shell), no traceback.
* Progress follows :mod:`fpar.progress`: bars only where stderr is a terminal, one line per step or
  nothing elsewhere; ``--quiet`` (before or after the command name) shows none.
* fpar prints no colour, so ``NO_COLOR`` has nothing to turn off.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Callable



# a shell's status for a process killed by SIGPIPE: what `yes | head -n 1` leaves in PIPESTATUS
CLOSED_STDOUT_STATUS = 128 + getattr(signal, "SIGPIPE", 13)

QUIET_HELP = "no progress and no status lines (results, warnings and errors still print)"


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    """``--quiet``/``-q`` on ``parser`` and every sub-command below it. The sub-commands' copies
    default to "not given", so ``fpar --quiet train ...`` and ``fpar train ... --quiet`` agree."""
    parser.add_argument("--quiet", "-q", action="store_true", help=QUIET_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_to_command(sub)


def _add_to_command(parser: argparse.ArgumentParser) -> None:
    if not any("--quiet" in action.option_strings for action in parser._actions):
        parser.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_to_command(sub)


def run_command(command: Callable[[], int]) -> int:
    """Run ``command`` (which parses the arguments and calls :func:`set_quiet`) under the output
    rules above; stdout is flushed before returning, so a reader that left early is met here and not
    at interpreter exit."""
    try:
        try:
            return command()
        finally:  # also after argparse's --help, which ends in SystemExit
            sys.stdout.flush()
    except BrokenPipeError:
        if not stdout_closed():
            raise  # some other pipe (a worker's): a real error
        return closed_stdout()


def stdout_closed() -> bool:
    """Whether stdout is a pipe nobody reads any more."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    try:
        import select

        poller = select.poll()
    except (ImportError, AttributeError):  # no poll() (Windows): a broken pipe on write means stdout
        return True
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def closed_stdout() -> int:
    """Point stdout at the null device (the interpreter's final flush must not fail again) and
    return :data:`CLOSED_STDOUT_STATUS`."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return CLOSED_STDOUT_STATUS

"""Progress of long work, shown on stderr the way the CLI decided (docs/cli.md, "In scripts and pipes").

One policy for every bar fpar draws (store builds, data checks, flow, prepare, scoring, training):

* stderr a terminal: a tqdm bar, redrawn in place;
* stderr a file or a pipe: no carriage-return redraws; a bar asked for explicitly becomes one line
  when its step ends (``store r256: 1200 frames in 3.1 s``), one asked for "where it suits"
  (``progress=None``) prints nothing;
* ``fpar --quiet``: nothing at all.

The CLI sets :func:`set_quiet` once per command (``fpar.cli.main``); library code asks :func:`bar`
or :func:`on_terminal` and never looks at ``isatty`` itself. fpar prints no colour, so ``NO_COLOR``
has nothing to turn off.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, TextIO

_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress and no status lines from here on (results and errors still print)."""
    _state["quiet"] = bool(quiet)


def quiet() -> bool:
    return _state["quiet"]


def on_terminal(stream: TextIO | None = None) -> bool:
    """Whether bars may be redrawn on ``stream`` (stderr): a terminal, and not ``--quiet``."""
    stream = stream or sys.stderr
    try:
        return not quiet() and stream.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False


def shown(progress: bool | None) -> bool:
    """Whether progress asked for as ``progress`` shows at all: True (always, as bar or lines), None
    (only on a terminal) or False (never); ``--quiet`` shows none."""
    return not quiet() and (on_terminal() if progress is None else bool(progress))


class _Lines:
    """A bar's counting without its drawing: one line when the step ends, on a file or a pipe."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str, initial: int,
                 stream: TextIO, silent: bool):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.first, self.stream, self.silent = initial, initial, stream, silent
        self.postfix = ""
        self.started = time.monotonic()
        self.closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def __enter__(self) -> "_Lines":
        return self

    def __exit__(self, kind: Any, *rest: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.closed = True  # an error says what happened; no "done" line after it

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.silent:
            return
        done = self.n - self.first
        plural = "" if done == 1 or self.unit.endswith("s") else "es" if self.unit.endswith(("ch", "sh", "x")) else "s"
        tail = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {done} {self.unit}{plural} in {time.monotonic() - self.started:.1f} s{tail}",
              file=self.stream, flush=True)


def bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str = "it",
        progress: bool | None = None, initial: int = 0, leave: bool = True) -> Any:
    """A progress bar on stderr after the policy above: tqdm on a terminal (``leave``: keep it when
    done), otherwise one line at the end (``progress=True``) or nothing. Used as tqdm is: iterated,
    or ``update(n)`` and ``close()`` (also as a context manager)."""
    stream = sys.stderr
    if shown(progress) and on_terminal(stream):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=stream,
                    dynamic_ncols=True, leave=leave)
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    return _Lines(iterable, total, desc, unit, initial, stream, silent=not shown(progress) or progress is None)

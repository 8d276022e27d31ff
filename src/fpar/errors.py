"""User-facing errors.

Anything a user can cause (a missing file, a corrupt frame, a bad config key) raises
:class:`FparError` with one line that says what and where. The CLI prints that line and
exits non-zero without a traceback; library users catch it like any exception.
"""


import contextlib
import re
import signal
import threading
from typing import Iterator

# How PyTorch's DataLoader re-raises an error of a worker process in the main one: the same type,
# built from "Caught <Type> in DataLoader worker process N.\nOriginal Traceback ...: <message>".
_WORKER_WRAPPED = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback", re.S)


class FparError(Exception):
    """A problem with the user's input, reported as one line.

    Raised in a DataLoader worker, it reaches the main process as its own line again (the
    worker's traceback, which PyTorch puts into the message, is dropped): the user reads which
    file is broken, not where in fpar a worker noticed it.
    """

    exit_code = 1

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str) and _WORKER_WRAPPED.match(args[0]):
            args = (_original_message(args[0]),)
        super().__init__(*args)


def _original_message(wrapped: str) -> str:
    """The worker's own message: the traceback's last line, without the exception's type name."""
    last = wrapped.rstrip().splitlines()[-1]
    return re.sub(r"^(?:[\w.]+\.)?\w*(?:Error|Exception): ", "", last, count=1)


class NotADatasetError(FparError):
    """The given root holds no dataset layout fpar knows."""

    exit_code = 2


# The exit status of a command a signal stopped: 128 + the signal's number, as the shell reports a
# process the signal killed, so a scheduler or an `&&` chain never reads success.
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class Interrupted(KeyboardInterrupt):
    """A command stopped by SIGINT (Ctrl-C) or SIGTERM (what SLURM, Kubernetes, ``timeout`` and
    ``kill`` send), raised where the signal arrived by :func:`stop_on_signals`.

    It is a ``KeyboardInterrupt``, so everything that lets Ctrl-C through (temporary files removed
    by ``fpar.io.atomic_path``, locks released) treats SIGTERM alike. Code that knows how far the
    work got re-raises it with :meth:`but` (``where``: "after epoch 3/40"; ``hint``: how to
    continue); the CLI prints it as one line and exits with :attr:`exit_code` (docs/reliability.md,
    "Signals").
    """

    def __init__(self, signal_name: str = "SIGINT", where: str = "", hint: str = "") -> None:
        super().__init__(signal_name, where, hint)
        self.signal_name, self.where, self.hint = signal_name, where, hint

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT_CODES.get(self.signal_name, 130)

    def but(self, where: str | None = None, hint: str | None = None) -> "Interrupted":
        """The same interruption with what the caller knows about it (``None`` keeps a field)."""
        return Interrupted(self.signal_name, self.where if where is None else where,
                           self.hint if hint is None else hint)

    def __str__(self) -> str:
        where = f" {self.where}" if self.where else ""
        return f"interrupted by {self.signal_name}{where}" + (f"; {self.hint}" if self.hint else "")


# the signals received since the outermost stop_on_signals block began, first one first (kept after
# it ends, for the handler of what the block raised)
_RECEIVED: list[str] = []


def interruption(exc: BaseException) -> Interrupted | None:
    """The :class:`Interrupted` behind ``exc``: itself, the one a library turned into another
    exception while handling it (Lightning ends a fit that Ctrl-C stopped with ``sys.exit(1)``),
    or, when a signal arrived inside :func:`stop_on_signals`, that signal's: an exception raised
    in code that calls Python from C++ (a torch writer) may lose the one it was handling."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Interrupted):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return Interrupted(_RECEIVED[0]) if _RECEIVED else None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT raise :class:`Interrupted` where the program is, as
    Python's Ctrl-C raises ``KeyboardInterrupt``: the work in progress is abandoned through its
    ``finally`` blocks, and what was finished stays. Nested blocks are harmless; outside the main
    thread (where handlers cannot be set) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        _RECEIVED.append(signal.Signals(signum).name)
        raise Interrupted(signal.Signals(signum).name)

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    if not any(getattr(handler, "__qualname__", "").startswith("stop_on_signals") for handler in previous.values()):
        _RECEIVED.clear()  # the outermost block: a signal of an earlier one is not this one's
    for signum in previous:
        signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

"""User-facing errors.

Anything a user can cause (a missing file, a corrupt frame, a bad config key) raises
:class:`FparError` with one line that says what and where. The CLI prints that line and
exits non-zero without a traceback; library users catch it like any exception.
"""


import re

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

"""User-facing errors.

Anything a user can cause (a missing file, a corrupt frame, a bad config key) raises
:class:`FparError` with one line that says what and where. The CLI prints that line and
exits non-zero without a traceback; library users catch it like any exception.
"""


class FparError(Exception):
    """A problem with the user's input, reported as one line."""

    exit_code = 1


class NotADatasetError(FparError):
    """The given root holds no dataset layout fpar knows."""

    exit_code = 2

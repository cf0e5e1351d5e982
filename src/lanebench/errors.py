"""Errors that reach the user as one clear line and a non-zero exit code."""

from __future__ import annotations


class LanebenchError(Exception):
    """A problem with the user's input or environment; its message is shown as-is.

    ``exit_code`` follows the CLI's convention: 2 bad input, 3 missing engine or model,
    4 a lane failed during measurement, 1 anything else.
    """

    exit_code = 1


class BadInput(LanebenchError):
    """Input the user gave (a file, a field, a flag) is not what was expected."""

    exit_code = 2


class NotFound(LanebenchError):
    """Something needed (a binary, a model) is missing; the message says how to get it."""

    exit_code = 3


class LaneFailed(LanebenchError):
    """A lane could not be measured (engine died, refused the lane, timed out)."""

    exit_code = 4

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class Interrupted(LanebenchError):
    """Ctrl-C or SIGTERM during a run: servers are stopped, what was measured is kept."""

    exit_code = 130

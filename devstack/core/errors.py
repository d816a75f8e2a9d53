"""One error family. A task turns any DevstackError into its message on one line and a non-zero
exit; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class DevstackError(Exception):
    """A failure the user can act on. `detail` (several lines, e.g. a command's output) is shown
    above the one-line message."""

    exit_code = 1

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class UsageError(DevstackError):
    """A flag or argument the task cannot use."""

    exit_code = 2


class MissingToolError(DevstackError):
    """A tool is missing, too old, or its daemon is not running; the message says what to do."""

    exit_code = 127


class CommandError(DevstackError):
    """An external command failed; `detail` holds the tail of its output."""

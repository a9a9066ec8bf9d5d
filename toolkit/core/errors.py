"""User-facing errors: the CLI prints their message as one line on stderr and exits non-zero.

Anything else that escapes is a bug and keeps its traceback.
"""

import re


class ToolkitError(Exception):
    """An expected failure caused by input or environment; the message says what to do."""

    exit_code = 1


class DataError(ToolkitError):
    """Missing, corrupt or foreign data set files."""


class ConfigError(ToolkitError):
    """An option value that cannot work (unknown model, non-positive size, ...)."""


class DeviceError(ToolkitError):
    """A device that was asked for but is not available."""


class CheckpointError(ToolkitError):
    """A checkpoint that is missing, corrupt or for another model."""


class RunFolderError(ToolkitError):
    """A run folder that cannot be used: taken by another process, not writable, or not a run."""


class TrainingDiverged(ToolkitError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


class Interrupted(ToolkitError):
    """SIGINT or SIGTERM during training; a resumable checkpoint was written. Exit code 128 + signal."""

    def __init__(self, message: str, signum: int = 2):
        super().__init__(message)
        self.exit_code = 128 + signum


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes some exporters put in their messages


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message, or its type name when the message is empty."""
    for line in _ANSI.sub("", str(exc)).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(exc).__name__

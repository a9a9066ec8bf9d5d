"""User-facing errors: the CLI prints their message as one line on stderr and exits non-zero.

Anything else that escapes is a bug and keeps its traceback.
"""


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


class TrainingDiverged(ToolkitError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class Interrupted(ToolkitError):
    """Ctrl-C during training; a resumable checkpoint was written."""

    exit_code = 130

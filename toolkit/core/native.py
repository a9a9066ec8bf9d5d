"""Native libraries that write to the process's stderr (file descriptor 2) on their own, bypassing Python."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what C/C++ code writes to fd 2 inside the block to /dev/null: ExecuTorch logs lines such as
    "[threadpool.cpp:66] Resetting threadpool" and its CPU probing on every load, which would bury the
    toolkit's own one-line messages. Failures still surface as Python exceptions."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (an embedding host): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def loggers_silenced(*names: str) -> Iterator[None]:
    """Disable Python loggers inside the block: torch.export.load logs a failed read's whole traceback as a
    warning before raising, which would print 12 lines above the toolkit's one line. The exception is kept."""
    import logging

    loggers = [logging.getLogger(name) for name in names]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, was in zip(loggers, before, strict=True):
            logger.disabled = was

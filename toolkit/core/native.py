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

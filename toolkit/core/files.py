"""Atomic file writes: a reader never sees a half-written checkpoint, export or report."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolkit.core.errors import ToolkitError, first_line

TEMP_SUFFIX = ".tmp"


def temp_prefix(name: str) -> str:
    """Temporary files for `name` are hidden and recognisable, so a later run can remove stale ones."""
    return f".{name}."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds.

    A failure to write (disk full, file-size limit, permissions) becomes a ToolkitError naming the file;
    the previous file, if any, is left as it was and the temporary one is removed.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise ToolkitError(
            f"cannot write {path} ({exc.strerror or first_line(exc)}); choose a writable folder"
        ) from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the final file gets the usual permissions
    tmp_path = Path(tmp)
    existed = path.exists()
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        kept = "the previous version is intact" if existed else "nothing was written"
        raise ToolkitError(
            f"cannot write {path} ({exc.strerror or first_line(exc)}); {kept}; "
            f"free space or raise the file-size limit and retry"
        ) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

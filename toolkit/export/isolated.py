"""Each file is written in a process of its own, as verify runs each runtime: a writer that aborts in native
code (torch.jit.save on a full disk raised a C++ error no one caught: `terminate called`, exit 134) becomes one
line here instead of taking the export down, and the temporary file is removed by the parent.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

import torch

from toolkit.core.errors import ToolkitError
from toolkit.core.isolate import report_errors, run_isolated

NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_isolated(fmt_name: str, checkpoint: Path, tmp: Path, options: dict[str, Any], label: str) -> dict[str, Any]:
    """Run format `fmt_name`'s writer on the checkpoint's model into `tmp` in a child; its details dict."""
    spec = {
        "format": fmt_name,
        "checkpoint": str(checkpoint),
        "path": str(tmp),
        "options": options,
        "threads": torch.get_num_threads(),  # the caller's (two exports side by side run one thread each)
        "label": label,
    }
    try:
        return run_isolated(write_worker, spec, label=label)
    except ToolkitError:
        folder = tmp.parent
        free = shutil.disk_usage(folder).free
        if free < max(checkpoint.stat().st_size, 1 << 20):  # the file (about the weights' size) cannot fit
            raise ToolkitError(
                f"no space left on {folder} ({free / 2**20:,.1f} MiB free) while writing {label}; "
                "free some space and re-run toolkit export"
            ) from None
        raise


def write_worker(spec: dict, queue) -> None:
    report_errors(queue, spec["label"], lambda: _write(spec))


def _write(spec: dict) -> dict[str, Any]:
    from toolkit.export.check import example_inputs
    from toolkit.targets.formats import FORMATS, writer
    from toolkit.train.checkpoint import load_checkpoint, model_from_checkpoint

    torch.set_num_threads(spec["threads"])
    ckpt = load_checkpoint(spec["checkpoint"])
    model = model_from_checkpoint(ckpt)
    path = Path(spec["path"])
    try:
        # Batch 4, not 1: an example of batch 1 lets exporters specialise the batch axis away.
        return writer(FORMATS[spec["format"]])(model, example_inputs(ckpt, 4), path, ckpt, **spec["options"])
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise ToolkitError(f"no space left on {path.parent}; free some space and re-run toolkit export") from None
        raise

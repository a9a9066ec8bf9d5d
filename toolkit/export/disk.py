"""Disk space around each written file: refuse a file that cannot fit before writing it, and name a full disk
as such when a writer fails on one.

Writers hand the file to Python's own I/O (TorchScript, torch.export, AOTInductor and ExecuTorch serialize to
memory first), so a full disk raises OSError instead of aborting in C++: torch.jit.save straight to a path
on a full disk threw a C++ error no one caught (`terminate called`, exit 134) and left its temp file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from torch import nn

from toolkit.core.errors import ToolkitError

BYTES_PER_WEIGHT = {"fp32": 4, "bf16": 4, "fp16": 2, "int8": 1, "int8-dynamic": 1}


def expected_bytes(model: nn.Module, precision: str) -> int:
    """The least a file of `model`'s weights at `precision` takes: its parameters and buffers, nothing else."""
    weights = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    return weights * BYTES_PER_WEIGHT.get(precision, 4)


def no_room(folder: Path, needed: int, filename: str, *, failed: bool = False) -> ToolkitError | None:
    """The one line for a disk without room for `filename` (at least `needed` bytes), else None: before
    writing it, or, `failed`, after its writer failed (then under 1 MiB free also counts as full)."""
    free = shutil.disk_usage(folder).free
    if free >= (max(needed, 1 << 20) if failed else needed):
        return None
    if failed:
        return ToolkitError(
            f"no space left on {folder} ({free / 2**20:,.1f} MiB free) while writing {filename}; "
            "free some space and re-run toolkit export"
        )
    return ToolkitError(
        f"no space left on {folder}: {filename} needs at least {needed / 2**20:,.1f} MiB and "
        f"{free / 2**20:,.1f} MiB is free; free some space and re-run toolkit export"
    )

"""Run a runtime over fixed input batches in its own process: a crash in native code becomes one line.

Export's self-check and verify call every non-eager runtime through here. The inputs travel as a .npy
file written once for all children (the test set is ~120 MB of floats, too much for a pipe); the logits
come back as the child's result.
A runtime that segfaults or aborts inside onnxruntime, OpenVINO or OpenCV is reported as
"openvino/cpu: its process died from signal SIGSEGV ...", and the caller goes on with the others.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit.core.errors import ToolkitError, first_line
from toolkit.core.isolate import report_errors, run_isolated


@dataclass
class ChildRun:
    outputs: list[torch.Tensor]  # logits per input batch, float32 on CPU
    details: dict[str, Any]  # the runtime's describe(), read back in the child
    metadata: dict[str, str] | None  # the file's toolkit.* metadata where the runtime reads it


@dataclass(frozen=True)
class SavedInputs:
    path: Path  # one .npy of all batches, concatenated
    sizes: tuple[int, ...]  # batch sizes, in order


@contextlib.contextmanager
def saved_inputs(batches: list[torch.Tensor]) -> Iterator[SavedInputs]:
    """Write `batches` once for any number of children to read; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="toolkit-inputs-") as tmp:
        path = Path(tmp) / "inputs.npy"
        np.save(path, torch.cat(batches).numpy())
        yield SavedInputs(path, tuple(len(b) for b in batches))


def run_in_child(
    runtime: str,
    path: str | Path,
    device: str,
    threads: int | None,
    inputs: list[torch.Tensor] | SavedInputs,
    *,
    label: str,
    options: dict | None = None,
    timeout_s: float = 3600,
) -> ChildRun:
    """`inputs` through `runtime` loading `path` on `device`, in a fresh process; ToolkitError on any failure."""
    if not isinstance(inputs, SavedInputs):
        with saved_inputs(inputs) as saved:
            return run_in_child(
                runtime, path, device, threads, saved, label=label, options=options, timeout_s=timeout_s
            )
    spec = {
        "runtime": runtime,
        "path": str(path),
        "device": device,
        "threads": threads,
        "options": options or {},
        "inputs": str(inputs.path),
        "sizes": list(inputs.sizes),
        "label": label,
    }
    got = run_isolated(_worker, spec, label=label, timeout_s=timeout_s)
    return ChildRun([torch.from_numpy(o) for o in got["outputs"]], got["details"], got["metadata"])


def _worker(spec: dict, queue) -> None:
    report_errors(queue, spec["label"], lambda: _run(spec))


def _run(spec: dict) -> dict:
    from toolkit.targets.runtimes import open_runtime

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    rt = open_runtime(spec["runtime"], spec["path"], spec["device"], spec["threads"], **spec["options"])
    x_all = torch.from_numpy(np.load(spec["inputs"]))
    outputs, start = [], 0
    for n in spec["sizes"]:
        x = x_all[start : start + n]
        start += n
        try:
            out = rt.run(x)
        except Exception as exc:
            raise ToolkitError(
                f"cannot run a batch of {n} ({type(exc).__name__}: {first_line(exc, 160)}); the batch axis may be fixed"
            ) from None
        outputs.append(out.float().numpy())
    return {"outputs": outputs, "details": rt.describe(), "metadata": getattr(rt, "metadata", None)}

"""Run work in a fresh Python process and get its result, or a one-line error within seconds.

Benchmark cases get their own process because onnxruntime's spinning worker threads slow PyTorch that runs
after it in the same process, and a runtime's allocator or thread pool must not carry into the next case;
export's self-check and verify run each runtime this way so that one crashing in native code becomes a
failure line naming it while the other runtimes still report. The parent polls: a child that dies
(segfault, OOM killer, kill -9) is reported at once, not waited for.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from toolkit.core.errors import ToolkitError, first_line

POLL_S = 0.2


def run_isolated(worker: Callable, spec: dict, *, label: str = "benchmark case", timeout_s: float = 3600) -> dict:
    """Run `worker(spec, queue)` in a fresh interpreter; it must put ("ok", result) or ("error", message).

    The child is `python -m toolkit.core.isolate`, not a multiprocessing spawn: spawn re-imports the
    caller's main module, which breaks scripts fed on stdin and re-runs unguarded user scripts.
    `worker` must be a module-level function; the request and the result travel as pickles in a private
    temporary folder that only these two processes write.
    """
    with tempfile.TemporaryDirectory(prefix="toolkit-child-") as tmp:
        request, result = Path(tmp) / "request.pkl", Path(tmp) / "result.pkl"
        with open(request, "wb") as f:
            pickle.dump(
                {"target": f"{worker.__module__}:{worker.__qualname__}", "spec": spec, "result": str(result)}, f
            )
        # The child sees the modules the parent sees (a test's helpers, an editable install).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen([sys.executable, "-m", "toolkit.core.isolate", str(request)], env=env)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    proc.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() > deadline:
                    raise ToolkitError(f"{label}: no result within {timeout_s:.0f} s; stopped it")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        if not result.is_file():
            raise ToolkitError(
                f"{label}: its process died {_how(proc.returncode)} before reporting a "
                f"result (out of memory or a crash in native code?)"
            )
        with open(result, "rb") as f:
            status, payload = pickle.load(f)
    if status != "ok":
        raise ToolkitError(payload)
    return payload


class _ResultFile:
    """What the worker puts its result on: the parent reads it once the child has exited."""

    def __init__(self, path: str):
        self.path = Path(path)

    def put(self, item) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(item, f)
        tmp.rename(self.path)  # whole or absent: a child killed mid-write leaves no half result


def _child_main(request_path: str) -> None:
    import importlib

    with open(request_path, "rb") as f:
        request = pickle.load(f)
    module, name = request["target"].split(":")
    worker = getattr(importlib.import_module(module), name)
    worker(request["spec"], _ResultFile(request["result"]))


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"from signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"from signal {-exitcode}"
    return f"with exit code {exitcode}"


def report_errors(queue, label: str, work: Callable[[], dict]) -> None:
    """Run `work` in the child and put its result, or its failure as one line, on `queue`."""
    try:
        queue.put(("ok", work()))
    except ToolkitError as exc:
        queue.put(("error", f"{label}: {exc}"))
    except Exception as exc:  # report, do not hang the parent
        queue.put(("error", f"{label}: {type(exc).__name__}: {first_line(exc)}"))


if __name__ == "__main__":
    _child_main(sys.argv[1])

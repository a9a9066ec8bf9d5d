"""Run one benchmark case in a fresh spawned process and get its result, or a one-line error within seconds.

Each case gets its own process because onnxruntime's spinning worker threads slow PyTorch that runs after
it in the same process, and a runtime's allocator or thread pool must not carry into the next case. The
parent polls: a child that dies (segfault, OOM killer, kill -9) is reported at once, not waited for.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
import time
from collections.abc import Callable

from toolkit.core.errors import ToolkitError, first_line

POLL_S = 0.2


def run_isolated(worker: Callable, spec: dict, *, label: str = "benchmark case", timeout_s: float = 3600) -> dict:
    """Run `worker(spec, queue)` in a spawned process; it must put ("ok", result) or ("error", message)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=worker, args=(spec, results), daemon=True)
    proc.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                status, payload = results.get(timeout=POLL_S)
                break
            except queue_mod.Empty:
                pass
            if not proc.is_alive():
                # A result put just before a clean exit may still be in the pipe: one last look.
                try:
                    status, payload = results.get(timeout=1.0)
                    break
                except queue_mod.Empty:
                    raise ToolkitError(
                        f"{label}: its process died {_how(proc.exitcode)} before reporting a "
                        f"result (out of memory or a crash in native code?)"
                    ) from None
            if time.monotonic() > deadline:
                raise ToolkitError(f"{label}: no result within {timeout_s:.0f} s; stopped it")
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=10)
    if status != "ok":
        raise ToolkitError(payload)
    return payload


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

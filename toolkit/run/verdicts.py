"""The one join of verify's verdicts (parity.json) with bench's speeds (bench.json): the fastest timed target
that passed verify, at a batch size, on a device.

bench's recommendation, the report's "which file to ship" and predict's `--runtime auto` all choose through
`fastest_verified` (on the records' data: run/records.py reads and checks the files), each re-reading
parity.json at the moment it chooses: none of them can pick a file that
verify failed, whatever bench.json says (a hand-edited one, or one older than the last verify).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REFERENCE = ("checkpoint", "eager")  # eager fp32 on the checkpoint: the reference, passed by definition


def verdicts(parity: dict[str, Any] | None) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(format, runtime, device) -> verify's entry for it; eager fp32 on the reference device passes."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    if not parity:
        return found
    for e in parity.get("entries") or []:
        if isinstance(e, dict) and {"format", "runtime", "device"} <= e.keys():
            found[(e["format"], e["runtime"], e["device"])] = e
    ref = parity.get("reference")
    device = ref.get("device", "cpu") if isinstance(ref, dict) else "cpu"
    found[(*REFERENCE, device)] = {"passed": True, "acc_delta": 0.0}
    return found


@dataclass(frozen=True)
class Pick:
    case: dict[str, Any]  # bench.json's inference case: runtime, format, device, label, results
    result: dict[str, Any]  # its result at the batch asked for: img_per_s, latency_ms
    verdict: dict[str, Any]  # parity.json's entry: passed, acc_delta, ...

    @property
    def accuracy_cost_pt(self) -> float:
        return -float(self.verdict.get("acc_delta") or 0.0)


def fastest_verified(
    bench: dict[str, Any] | None, parity: dict[str, Any] | None, batch: int, device: str | None = None
) -> Pick | None:
    """The timed target with the most img/s at `batch` (on `device`, if given) whose file passed verify on
    that runtime and device; None where verify has not run or nothing it passed was timed at that batch.
    Runtime variants (bench --variants) are settings predict cannot reproduce: never picked."""
    if not bench or not parity:
        return None
    passed = verdicts(parity)
    best: Pick | None = None
    for case in bench.get("inference") or []:
        if not isinstance(case, dict) or case.get("variant") or (device and case.get("device") != device):
            continue
        verdict = passed.get((case.get("format", "checkpoint"), case.get("runtime"), case.get("device")))
        if not verdict or verdict.get("passed") is not True:
            continue
        for r in case.get("results") or []:
            if r.get("batch_size") == batch and (best is None or r["img_per_s"] > best.result["img_per_s"]):
                best = Pick(case, r, verdict)
    return best


def batch_sizes(bench: dict[str, Any] | None) -> list[int]:
    """Every batch size bench timed, smallest first."""
    return sorted({r["batch_size"] for c in (bench or {}).get("inference") or [] for r in c.get("results") or []})

"""Tracks: training img/s of `toolkit train` against the seed tutorial's loop, same data, one run.

    python benchmarks/train_vs_seed.py --data-dir data --steps 30 --rounds 3 --with-command

Each measurement runs in a fresh process (toolkit.core.isolate, which reports a dead child within
seconds), alternating, so none inherits another's allocator or thread state:
- seed: the tutorial's loop (PIL + ToTensor DataLoader, default Adam), timed per step after a warm-up;
- toolkit: the TrainStep that `toolkit train` calls, in its own set-up (toolkit.bench.train_step), same timing;
- command (--with-command): the `toolkit train` command itself, one epoch over the same --images, img/s as
  its summary.json reports it (warm-up steps included, evaluation excluded).
Prints a table, each ratio to the seed loop with its spread over rounds, and the CPU; `--json` keeps all.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from toolkit.bench.cases import training_worker
from toolkit.core.errors import ToolkitError, first_line
from toolkit.core.isolate import run_isolated
from toolkit.core.machine import machine_info

KINDS = ("seed", "toolkit", "command")


def run_command(args: dict) -> dict:
    """One epoch of the real `toolkit train` over the same images, in its own process."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "toolkit",
            "train",
            "--model",
            args["model"],
            "--dataset",
            args["dataset"],
            "--limit-train",
            str(args["images"]),
            "--limit-test",
            "1000",
            "--epochs",
            "1",
            "--batch-size",
            str(args["batch_size"]),
            "--device",
            args["device"],
            "--out",
            tmp,
            "--run-name",
            "r",
            "--progress",
            "none",
            "--no-download",
        ]
        if args["data_dir"]:
            cmd += ["--data-dir", args["data_dir"]]
        env = {**os.environ, "OMP_NUM_THREADS": str(args["threads"])}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
        if done.returncode != 0:
            raise ToolkitError(f"toolkit train failed: {first_line(RuntimeError(done.stderr))}")
        summary = json.loads((Path(tmp) / "r" / "summary.json").read_text())
    return {"img_per_s": summary["img_per_s"], "cv": 0.0, "threads": summary["threads"]}


def run(args: dict) -> dict:
    base = {
        k: args[k]
        for k in (
            "model",
            "batch_size",
            "steps",
            "warmup",
            "threads",
            "dataset",
            "data_dir",
            "images",
            "device",
            "amp",
            "channels_last",
        )
    }
    kinds = KINDS if args["with_command"] else KINDS[:2]
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(args["rounds"]):
        for kind in kinds:
            if kind == "command":
                results[kind].append(run_command(args))
            else:
                spec = {**base, "loop": kind}
                results[kind].append(run_isolated(training_worker, spec, label=f"{kind} loop"))
    out = {"args": args, "machine": machine_info(), "results": results}
    for kind in kinds:
        out[f"{kind}_img_per_s"] = statistics.median(r["img_per_s"] for r in results[kind])
        if kind != "seed":  # ratio of each round's pair, so the spread shows the machine's noise
            out[f"{kind}_ratios"] = [
                t["img_per_s"] / s["img_per_s"] for s, t in zip(results["seed"], results[kind], strict=True)
            ]
    out["ratio"] = statistics.median(out["toolkit_ratios"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--dataset", default="cifar10", choices=["cifar10", "synthetic"])
    ap.add_argument("--model", default="tutorial-cnn")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=10_000, help="training images to draw batches from")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default="off")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--with-command", action="store_true", help="also time the `toolkit train` command")
    ap.add_argument("--json", default=None, help="write the full result here")
    args = vars(ap.parse_args(argv))
    try:
        out = run(args)
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = out["machine"]
    print(
        f"CPU: {m['cpu_model']}  GPU: {m['gpu'] or 'none'}  device: {args['device']}  threads: {args['threads']}  "
        f"torch {m['torch']}"
    )
    print(f"{'loop':<10}{'img/s (median of rounds)':>26}   per-round img/s (cv of step times)")
    for kind, rounds in out["results"].items():
        cells = ", ".join(f"{r['img_per_s']:.1f} ({100 * r['cv']:.0f}%)" for r in rounds)
        print(f"{kind:<10}{out[kind + '_img_per_s']:>26.1f}   {cells}")
    for kind in out["results"]:
        if kind != "seed":
            r = out[f"{kind}_ratios"]
            print(
                f"ratio {kind} / seed: {statistics.median(r):.2f}x (median of {len(r)} rounds, "
                f"range {min(r):.2f}-{max(r):.2f})"
            )
    if args["json"]:
        with open(args["json"], "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

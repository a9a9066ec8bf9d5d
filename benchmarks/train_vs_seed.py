"""Tracks: training img/s of `toolkit train`'s own step against the seed tutorial's loop, same data, one run.

    python benchmarks/train_vs_seed.py --data-dir data --steps 30 --rounds 3

Each measurement runs in a fresh process (toolkit.bench.isolate, which reports a dead child within
seconds), alternating seed/toolkit, so neither inherits the other's allocator or thread state. Ours is
the TrainStep that `toolkit train` calls (toolkit.bench.train_step.toolkit_loop). Prints a table, the
ratio with its spread over rounds, and the CPU; `--json` writes everything with the machine facts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from toolkit.bench.cases import training_worker
from toolkit.bench.isolate import run_isolated
from toolkit.core.errors import ToolkitError
from toolkit.core.machine import machine_info


def run(args: dict) -> dict:
    results: dict[str, list[dict]] = {"seed": [], "toolkit": []}
    base = {
        "model": args["model"],
        "batch_size": args["batch_size"],
        "steps": args["steps"],
        "warmup": args["warmup"],
        "threads": args["threads"],
        "dataset": args["dataset"],
        "data_dir": args["data_dir"],
        "images": args["images"],
        "device": args["device"],
        "amp": args["amp"],
        "channels_last": args["channels_last"],
    }
    for _ in range(args["rounds"]):
        for kind in ("seed", "toolkit"):
            spec = {**base, "loop": kind}
            results[kind].append(run_isolated(training_worker, spec, label=f"{kind} loop"))
    ratios = [t["img_per_s"] / s["img_per_s"] for s, t in zip(results["seed"], results["toolkit"], strict=True)]
    return {
        "args": args,
        "machine": machine_info(),
        "results": results,
        "seed_img_per_s": statistics.median(r["img_per_s"] for r in results["seed"]),
        "toolkit_img_per_s": statistics.median(r["img_per_s"] for r in results["toolkit"]),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
    }


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
    for kind in ("seed", "toolkit"):
        rounds = ", ".join(f"{r['img_per_s']:.1f} ({100 * r['cv']:.0f}%)" for r in out["results"][kind])
        print(f"{kind:<10}{out[kind + '_img_per_s']:>26.1f}   {rounds}")
    spread = f"{min(out['ratios']):.2f}-{max(out['ratios']):.2f}"
    print(f"ratio toolkit / seed: {out['ratio']:.2f}x (median of {len(out['ratios'])} rounds, range {spread})")
    if args["json"]:
        with open(args["json"], "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tracks: training img/s of `toolkit train`'s loop against the seed tutorial's own loop, same data, one run.

    python benchmarks/train_vs_seed.py --data-dir data --steps 30 --rounds 2

Each measurement runs in a fresh process (spawn), alternating seed/toolkit, so neither inherits the
other's allocator or thread state. Prints a table and the ratio; `--json` writes everything with the
machine facts (CPU model, threads, versions).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys


def _measure(kind: str, args: dict, queue) -> None:
    import torch

    from toolkit.data import load_dataset
    from toolkit.trainbench import time_seed_loop, time_toolkit_loop

    torch.set_num_threads(args["threads"])
    data = load_dataset(args["dataset"], True, args["data_dir"], limit=args["images"], download=False)
    common = dict(model=args["model"], batch_size=args["batch_size"], steps=args["steps"], warmup=args["warmup"])
    if kind == "seed":
        result = time_seed_loop(data, **common)
    else:
        result = time_toolkit_loop(data, **common, amp=args["amp"], channels_last=args["channels_last"])
    queue.put(result.to_dict())


def run(args: dict) -> dict:
    ctx = mp.get_context("spawn")
    results = {"seed": [], "toolkit": []}
    for _ in range(args["rounds"]):
        for kind in ("seed", "toolkit"):
            q = ctx.Queue()
            p = ctx.Process(target=_measure, args=(kind, args, q))
            p.start()
            results[kind].append(q.get())
            p.join()
    seed = statistics.median(r["img_per_s"] for r in results["seed"])
    ours = statistics.median(r["img_per_s"] for r in results["toolkit"])
    from toolkit.machine import machine_info
    return {"args": args, "machine": machine_info(), "results": results,
            "seed_img_per_s": seed, "toolkit_img_per_s": ours, "ratio": ours / seed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--dataset", default="cifar10", choices=["cifar10", "synthetic"])
    ap.add_argument("--model", default="tutorial-cnn")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--images", type=int, default=10_000, help="training images to draw batches from")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--amp", default="off")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--json", default=None, help="write the full result here")
    args = vars(ap.parse_args(argv))
    out = run(args)
    print(f"CPU: {out['machine']['cpu_model']}  threads: {args['threads']}  torch {out['machine']['torch']}")
    print(f"{'loop':<10}{'img/s (median of rounds)':>26}{'per-round img/s':>30}")
    for kind in ("seed", "toolkit"):
        rounds = ", ".join(f"{r['img_per_s']:.1f} (cv {100 * r['cv']:.0f}%)" for r in out["results"][kind])
        print(f"{kind:<10}{out[kind + '_img_per_s']:>26.1f}   {rounds}")
    print(f"ratio toolkit / seed: {out['ratio']:.2f}x")
    if args["json"]:
        with open(args["json"], "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tracks: what the JPEG-degraded CIFAR-10 copy from ../shared costs a trained run's test accuracy.

    python benchmarks/jpeg_cost.py artifacts/reproduce-fast-cnn/seed-0 --data-dir data

That copy keeps the original pixels for the first 1,017 rows of every batch file (../shared/data/cifar10/
README.md) and decodes the rest from JPEG. The test rows are in random class order, so the exact-pixel rows
are a fair sample of the test set: accuracy on them against accuracy on the JPEG rows (plain and with the
run's TTA policy, each with a 95 % Wilson interval) estimates the cost of the degraded test pixels. It cannot
see what the degraded training pixels cost; a run on the official files would.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch

EXACT_ROWS = 1017


def wilson(correct: int, n: int) -> tuple[float, float]:
    z = 1.959964
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * (centre - half), 100 * (centre + half)


def main(argv: list[str] | None = None) -> int:
    from toolkit.data import TensorLoader, load_dataset
    from toolkit.run.checkpoint import load_checkpoint, model_from_checkpoint
    from toolkit.train.evaluation import tta_logits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.run)
    model = model_from_checkpoint(ckpt)
    policy = ckpt["train_config"].get("tta") or "none"
    test = load_dataset("cifar10", False, args.data_dir, download=False)
    loader = TensorLoader(test, 500, mean=tuple(ckpt["input"]["mean"]), std=tuple(ckpt["input"]["std"]))
    plain, tta = [], []
    with torch.inference_mode():
        for x, y in loader.epoch(0):
            plain.append(model(x).argmax(1) == y)
            tta.append(tta_logits(model, x, policy).argmax(1) == y)
    print(f"{ckpt['model']['name']} from {args.run}; TTA policy {policy}")
    for name, hits in (("plain", torch.cat(plain)), (f"TTA ({policy})", torch.cat(tta))):
        for part, rows in (
            ("exact pixels (rows 0-1016)", hits[:EXACT_ROWS]),
            ("JPEG pixels (rows 1017-9999)", hits[EXACT_ROWS:]),
        ):
            lo, hi = wilson(int(rows.sum()), len(rows))
            print(
                f"  {name:<24} {part:<30} {100 * rows.float().mean():6.2f} %  95 % CI [{lo:.2f}, {hi:.2f}]  "
                f"n={len(rows)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

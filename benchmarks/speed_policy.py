"""Training speed of `toolkit train`'s default (the speed policy's choice) against each switch set by hand.

    python benchmarks/speed_policy.py [--models fast-cnn resnet20 tutorial-cnn] [--steps 8] [--rounds 3]

For each model at its recipe's batch size, each configuration trains in its own process (core/isolate.py)
through `toolkit train`'s set-up and step (bench/train_step.py): the default (every switch auto, decided
for the recipe's full run and cached), fp32 with no switch, --channels-last, --amp bf16 (where the CPU has
it natively), --compile, and bf16 + channels_last together. Rounds alternate the configurations
(A B C ... A B C ...), so a change in the machine's load falls on all of them; each round times --steps
steps after 3 untimed ones (compilation happens there). Prints a markdown table: median img/s over the
rounds, their min-max, and the ratio to the best switch set by hand. The policy's own cost (timing its
candidates, compiling) is printed per model from the cache entry it writes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.bench.cases import training_worker  # noqa: E402
from toolkit.core.device import native_half_precisions  # noqa: E402
from toolkit.core.isolate import run_isolated  # noqa: E402
from toolkit.core.machine import cpu_model  # noqa: E402
from toolkit.models import get_spec  # noqa: E402

BY_HAND = {
    "fp32 (no switch)": dict(amp="off", channels_last=False, compile=False),
    "--channels-last": dict(amp="off", channels_last=True, compile=False),
    "--amp bf16": dict(amp="bf16", channels_last=False, compile=False),
    "--amp bf16 --channels-last": dict(amp="bf16", channels_last=True, compile=False),
    "--compile": dict(amp="off", channels_last=False, compile=True),
}
DEFAULT = dict(amp="auto", channels_last=None, compile=None)


def configs(device: str) -> dict[str, dict]:
    out = {"default (auto)": DEFAULT, **BY_HAND}
    if "bf16" not in native_half_precisions(device):  # emulated bf16 is far slower; not a switch anyone picks
        out = {k: v for k, v in out.items() if "bf16" not in k}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["fast-cnn", "resnet20", "tutorial-cnn"])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--cache-dir", help="speed policy cache [a fresh folder: the default decides from scratch]")
    args = p.parse_args()
    os.environ["TOOLKIT_CACHE_DIR"] = args.cache_dir or tempfile.mkdtemp(prefix="speed-cache-")
    print(f"{cpu_model()}, {args.threads} threads, device {args.device}; cache {os.environ['TOOLKIT_CACHE_DIR']}")
    print("\n| model | batch | configuration | img/s (median) | min-max over rounds | vs best by hand |")
    print("|---|---|---|---|---|---|")
    for model in args.models:
        batch = get_spec(model).recipe.batch_size
        runs: dict[str, list[float]] = {}
        names: dict[str, str] = {}
        for _ in range(args.rounds):
            for label, switches in configs(args.device).items():
                spec = {
                    "model": model,
                    "batch_size": batch,
                    "steps": args.steps,
                    "warmup": 3,
                    "threads": args.threads,
                    "dataset": "synthetic",
                    "images": batch * (args.steps + 4),
                    "device": args.device,
                    "loop": "toolkit",
                    **switches,
                }
                res = run_isolated(training_worker, spec, label=f"{model} {label}")
                runs.setdefault(label, []).append(res["img_per_s"])
                names[label] = res["name"]
        best_by_hand = max(statistics.median(v) for k, v in runs.items() if k in BY_HAND)
        for label, v in runs.items():
            shown = names[label].removeprefix("toolkit ") if label == "default (auto)" else label
            print(
                f"| {model} | {batch} | {shown} | {statistics.median(v):,.0f} | {min(v):,.0f}-{max(v):,.0f} | "
                f"{statistics.median(v) / best_by_hand:.2f}x |"
            )
    print("\nThe policy's decisions (cache entries: seconds per step of each candidate, compile timing):")
    for f in sorted(Path(os.environ["TOOLKIT_CACHE_DIR"], "speed").glob("*.json")):
        entry = json.loads(f.read_text())
        key = entry["key"]
        steps = ", ".join(f"{k}: {1e3 * s:.0f} ms" for k, s in entry["step_seconds"].items())
        print(f"- {key['model']} batch {key['batch_size']}: {steps}; compile: {entry.get('compile')}")


if __name__ == "__main__":
    main()

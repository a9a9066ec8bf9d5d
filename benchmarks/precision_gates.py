"""How far honest low-precision files move the logits, per registry model: the figures verify's gates are sized from.

    python benchmarks/precision_gates.py --data-dir data [--epochs 1] [--limit-train 10000] [--limit 2000]

Each registry model is trained briefly on the real data (weakly trained models are where accuracy gates are
weakest), exported to every format, and verified; then the two forgeries of the red team (INT8: the last
DequantizeLinear pointed at a scale of 1e6; fp16: the largest initializer scaled by 1.05) are made on copies
and verified with --allow-modified, so they are judged on their figures alone. Prints one row per target:
max and mean |Δlogit| relative to the logit scale (std of the reference logits), agreement and verdict.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.helpers, when run as a script

from tests.helpers import tamper_int8_scale, tamper_largest_initializer  # noqa: E402
from toolkit.core.machine import machine_info  # noqa: E402
from toolkit.export import export  # noqa: E402
from toolkit.models import list_models  # noqa: E402
from toolkit.train import train  # noqa: E402
from toolkit.verify import verify  # noqa: E402

LOW = ("onnx-int8", "onnx-int8-dynamic", "onnx-fp16")


def rows(label: str, result) -> list[str]:
    out = []
    for e in result.entries:
        if e.precision == "fp32" or e.max_rel is None:
            continue
        out.append(
            f"| {label} | {e.label} | {e.precision} | {e.max_rel:.2e} | {e.mean_rel:.2e} | {e.max_abs:.2e} | "
            f"{e.agreement:.2f} | {e.acc_delta:+.2f} | {'pass' if e.passed else 'FAIL: ' + e.failures[0]} |"
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="data")
    p.add_argument("--out", default="artifacts/precision-gates")
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--limit-train", type=int, default=10000)
    p.add_argument("--limit", type=int, default=2000, help="test images verify compares on")
    p.add_argument("--models", default=",".join(list_models()))
    a = p.parse_args()
    info = machine_info()
    print(
        f"# {info['cpu_model']} ({' '.join(f for f in info['cpu_flags'] if 'avx512' in f or 'amx' in f) or 'no AVX-512'}), torch {info.get('torch')}"
    )
    print("| model | target | precision | max/scale | mean/scale | max abs | agree % | Δacc pt | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in a.models.split(","):
        run = Path(a.out) / model
        if not (run / "checkpoint.pt").is_file():
            shutil.rmtree(run, ignore_errors=True)
            train(model=model, out=a.out, run_name=model, epochs=a.epochs, limit_train=a.limit_train,
                  data_dir=a.data_dir, device="cpu")  # fmt: skip
            export(run, ("torchscript", "onnx", *LOW), data_dir=a.data_dir)
        honest = verify(run, formats=[*LOW, "checkpoint-bf16"] if _bf16() else list(LOW), limit=a.limit,
                        data_dir=a.data_dir, write=False)  # fmt: skip
        print("\n".join(rows(f"{model} (scale {honest.reference['logit_scale']:.3g}, acc "
                             f"{honest.reference['accuracy']:.1f} %)", honest)), flush=True)  # fmt: skip
        forged = Path(a.out) / f"{model}-forged"
        shutil.rmtree(forged, ignore_errors=True)
        shutil.copytree(run, forged)
        tamper_int8_scale(forged / "model-int8.onnx")
        tamper_largest_initializer(forged / "model-fp16.onnx")
        result = verify(forged, formats=["onnx-int8", "onnx-fp16"], limit=a.limit, data_dir=a.data_dir,
                        allow_modified=True, write=False)  # fmt: skip
        print("\n".join(rows(f"{model} forged", result)), flush=True)


def _bf16() -> bool:
    from toolkit.core.device import native_half_precisions

    return "bf16" in native_half_precisions("cpu")


if __name__ == "__main__":
    main()

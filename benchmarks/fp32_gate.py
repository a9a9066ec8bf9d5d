"""How far honest fp32 files move the logits at every magnitude, and the smallest forgery the fp32 gate catches:
the figures `Thresholds.rtol` is sized from.

    python benchmarks/fp32_gate.py --data-dir data [--limit 1000] [--models resnet20,resnet56,...]

Each model is written untrained (logits from ~0.1 for the tutorial CNN to ~7e4 for ResNet-56) and trained for
one epoch on 5,000 real images (resnet20's logits then reach ~1e3), exported to TorchScript, ONNX and
torch.export, and verified on every runtime with atol 0 and rtol 1, so that each target's figure is
max over images of max |Δlogit| / (that image's largest |logit|): what an honest file needs of rtol. Then the
largest weight tensor of model.onnx is scaled by 1 + δ on copies and verified on onnxruntime with the default
gate (--allow-modified: judged on figures alone), for the smallest δ it still fails.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.helpers, when run as a script

from tests.helpers import tamper_largest_initializer  # noqa: E402
from toolkit.core.machine import machine_info  # noqa: E402
from toolkit.export import export  # noqa: E402
from toolkit.targets.gates import Thresholds  # noqa: E402
from toolkit.train import train  # noqa: E402
from toolkit.train.checkpoint import write_untrained  # noqa: E402
from toolkit.verify import verify  # noqa: E402

FORMATS = ("torchscript", "onnx", "pt2")
DELTAS = (1e-3, 1e-4, 1e-5, 1e-6)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="data")
    p.add_argument("--out", default="artifacts/fp32-gate")
    p.add_argument("--limit", type=int, default=1000, help="test images verify compares on")
    p.add_argument("--models", default="tutorial-cnn,resnet20,resnet56,fast-cnn,resnet18")
    p.add_argument("--trained", default="resnet20,resnet56", help="models also trained 1 epoch on 5,000 images")
    a = p.parse_args()
    info = machine_info()
    print(f"# {info['cpu_model']}, torch {info.get('torch')}; honest files, atol 0 and rtol 1:")
    print("| run | target | max \\|logit\\| | max \\|Δ\\| | max \\|Δ\\|/\\|logit\\| (image) | default gate |")
    print("|---|---|---|---|---|---|")
    runs = []
    for model in a.models.split(","):
        run = Path(a.out) / f"{model}-untrained"
        if not (run / "checkpoint.pt").is_file():
            write_untrained(model, run)
        runs.append(run)
        if model in a.trained.split(","):
            run = Path(a.out) / f"{model}-1epoch"
            if not (run / "checkpoint.pt").is_file():
                train(model=model, epochs=1, limit_train=5000, data_dir=a.data_dir, out=a.out, run_name=run.name,
                      limit_test=500, device="cpu")  # fmt: skip
            runs.append(run)
    for run in runs:
        if not (run / "model.onnx").is_file():
            export(run, FORMATS)
        common = dict(limit=a.limit, data_dir=a.data_dir, write=False, formats=list(FORMATS), devices=["cpu"])
        loose = verify(run, thresholds=Thresholds(atol=0.0, rtol=1.0), **common)
        gated = {e.label: e for e in verify(run, **common).entries}
        for e in loose.entries:
            x = e.fp32_excess
            if x is None:
                print(f"| {run.name} | {e.label} | - | - | - | {e.failures[0] if e.failures else '?'} |")
                continue
            g = gated[e.label]
            print(
                f"| {run.name} | {e.label} | {x.magnitude:.3g} | {e.max_abs:.2e} | {x.ratio:.2e} | "
                f"{'pass' if g.passed else 'FAIL: ' + g.failures[0]} |"
            )
    print("\n# forgeries: the largest initializer of model.onnx scaled by 1 + δ, onnxruntime, default gate")
    print("| run | δ | figure (|Δ| / allowed) | max \\|Δ\\| | agreement % | verdict |")
    print("|---|---|---|---|---|---|")
    for run in runs:
        for delta in DELTAS:
            forged = Path(a.out) / "forged" / run.name
            shutil.rmtree(forged, ignore_errors=True)
            shutil.copytree(run, forged)
            tamper_largest_initializer(forged / "model.onnx", 1 + delta)
            r = verify(forged, formats=["onnx"], runtimes=["onnxruntime"], devices=["cpu"], limit=a.limit,
                       data_dir=a.data_dir, write=False, allow_modified=True)  # fmt: skip
            (e,) = r.entries
            print(
                f"| {run.name} | {delta:g} | {e.fp32_excess.ratio:.3g} | {e.max_abs:.2e} | {e.agreement:.2f} | "
                f"{'pass' if e.passed else 'FAIL'} |"
            )


if __name__ == "__main__":
    main()

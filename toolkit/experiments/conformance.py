"""Conformance of a foreign model: every format exported on its own, then verified on every installed runtime.

Networks nobody here wrote (torchvision's) test the exporters and runtimes better than our own five. Each
format is exported separately, so one that fails does not hide the others; its failure is the exporter's own
first line. The verdicts are verify's (gates, sha256 check, crash isolation) on a synthetic 10-class set at the asked
input size, so the table says whether the *files* are right, not how well a model learns.

The weights are trained for 48 Adam steps first (not to accuracy: to realistic scales). Untrained, several
torchvision networks give logits of 1e-10 (mobilenet_v2, mobilenet_v3_small) to 1e-14 (efficientnet_b0)
on random input; any file then "matches" eager within 1e-4 and an INT8 file's relative error is noise over
nothing. SGD at the foreign recipe's lr for as few steps drove efficientnet_b0's logits to ~1e3 instead.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.errors import ToolkitError, first_line
from toolkit.export import export
from toolkit.models.external import short_name, trust
from toolkit.targets.formats import expand_formats
from toolkit.train import train
from toolkit.verify.parity import verify


@dataclass
class Conformance:
    model: str
    image_size: int
    test_accuracy: float | None = None  # after the short training, on the synthetic test images
    exported: dict[str, str] = field(default_factory=dict)  # format -> "ok" or the exporter's error line
    cells: list[dict[str, Any]] = field(default_factory=list)  # format, runtime, verdict, figure, error
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def conformance(
    model: str,
    image_size: int,
    out: str | os.PathLike,
    *,
    formats: str | tuple[str, ...] = "all",
    model_args: dict | None = None,
    limit: int = 256,
    train_images: int = 1024,
    epochs: int = 3,
    threads: int | None = None,
) -> Conformance:
    """Train `model` (a factory path) briefly at `image_size`, export it to each of `formats`, verify every file."""
    t0 = time.perf_counter()
    trust(model)
    args = {"num_classes": 10, **(model_args or {})}
    run = Path(out) / f"{short_name(model)}-{image_size}"
    result = Conformance(model, image_size)
    shutil.rmtree(run, ignore_errors=True)  # the row's own folder, from an earlier run of the table
    trained = train(
        model=model,
        model_args=args,
        dataset="synthetic",
        image_size=image_size,
        limit_train=train_images,
        limit_test=limit,
        epochs=epochs,
        batch_size=64,
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        schedule="constant",
        augment=False,  # the synthetic classes are fixed pixel templates: crops and flips hide them
        amp="off",
        channels_last=False,
        compile=False,
        out=str(run.parent),
        run_name=run.name,
    )
    result.test_accuracy = trained.summary["final_test_acc"]
    names, skipped = expand_formats(formats)
    result.notes += skipped
    for name in names:
        try:
            export(run, name, threads=threads)
            result.exported[name] = "ok"
        except ToolkitError as exc:
            result.exported[name] = first_line(exc, 300)
        except Exception as exc:  # an exporter's own crash is the finding, not the end of the table
            result.exported[name] = f"{type(exc).__name__}: {first_line(exc, 300)}"
    if any(v == "ok" for v in result.exported.values()):
        try:
            parity = verify(run, limit=limit, threads=threads, write=True)
        except ToolkitError as exc:
            result.notes.append(f"verify: {first_line(exc, 300)}")
            result.seconds = time.perf_counter() - t0
            return result
        result.notes += parity.notes
        for e in parity.entries:
            result.cells.append(
                {
                    "format": e.format,
                    "runtime": e.runtime,
                    "device": e.device,
                    "precision": e.precision,
                    "passed": e.passed,
                    "max_abs": e.max_abs,
                    "max_rel": e.max_rel,
                    "mean_rel": e.mean_rel,
                    "agreement": e.agreement,
                    "acc_delta": e.acc_delta,
                    "failures": list(e.failures),
                }
            )
    result.seconds = time.perf_counter() - t0
    return result


def cell_text(cell: dict[str, Any]) -> str:
    """One table cell: pass with its gated figure, or the verdict's first failure."""
    if cell["passed"]:
        if cell["precision"] == "fp32":
            return f"pass ({cell['max_abs']:.0e})"
        return f"pass ({cell['agreement']:.0f} %)"
    return f"FAIL: {cell['failures'][0][:160]}" if cell["failures"] else "FAIL"

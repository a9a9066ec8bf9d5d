"""Predict: classify image files with an exported model, preprocessed from the run's manifest.json alone.

`toolkit.predict(["cat.png", "photos/"], run_dir="artifacts/resnet20-...")` returns a PredictResult: one
Prediction (top-k classes with softmax probabilities) per image that could be read, and one line per
file that could not, which does not stop the others. The same call is `toolkit predict`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from toolkit.core.callable_module import make_callable
from toolkit.core.errors import ConfigError, DataError, ToolkitError, first_line
from toolkit.data import normalise
from toolkit.data.decode import load_image
from toolkit.models.external import trust
from toolkit.predict.images import expand
from toolkit.run.folder import BENCH, DEFAULT_ROOT, MANIFEST, PARITY, latest_run
from toolkit.run.manifest import load_manifest, modification
from toolkit.run.records import Bench, Parity
from toolkit.run.verdicts import batch_sizes, fastest_verified
from toolkit.targets.formats import FORMATS, primary_format
from toolkit.targets.plan import plan
from toolkit.targets.runtimes import RUNTIMES, check_runtime, open_runtime

BATCH = 256
AUTO = "auto"
FALLBACK = "onnxruntime"  # what auto uses where bench has recommended nothing for the CPU


def recommended_target(run: Path) -> tuple[str, str | None, str]:
    """(runtime, format, why) for --runtime auto: the fastest CPU target in bench.json whose file passed verify
    in parity.json, joined afresh here (run/verdicts.py), so a bench.json that names a failed file is not
    followed; else onnxruntime on the fp32 ONNX file."""
    bench, parity = (r.data if (r := record.read(run)) else None for record in (Bench, Parity))
    if bench is None:
        why = f"no readable {BENCH}"
    elif parity is None:
        why = f"no readable {PARITY} (only files that passed verify are chosen)"
    else:
        batches = batch_sizes(bench)
        pick = fastest_verified(bench, parity, batches[-1], device="cpu") if batches else None
        runtime, fmt = (pick.case.get("runtime"), pick.case.get("format")) if pick else (None, None)
        if runtime in RUNTIMES and fmt in FORMATS:
            return (
                runtime,
                fmt,
                f"{pick.case.get('label', runtime)} is the fastest file that passed verify on the CPU "
                f"({pick.result['img_per_s']:,.0f} img/s at batch {pick.result['batch_size']}; {BENCH}, {PARITY})",
            )
        why = f"no file that passed verify was timed on the CPU ({BENCH}, {PARITY})"
    return FALLBACK, None, f"{why}: {FALLBACK}; run `toolkit verify {run}` and `toolkit bench {run}` to choose"


@dataclass
class Prediction:
    file: str
    top: list[tuple[str, float]]  # (class name, probability), most likely first

    def to_dict(self) -> dict:
        return {"file": self.file, "top": [{"class": c, "probability": p} for c, p in self.top]}


@dataclass
class PredictResult:
    run_dir: Path
    runtime: str
    format: str
    details: dict
    modified: str | None = None  # why the file is not the one export checked (answered only with allow_modified)
    chosen: str | None = None  # how --runtime auto chose the runtime and file
    predictions: list[Prediction] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one line per file that got no answer

    def __bool__(self) -> bool:
        return not self.failures


def predict(
    paths: list[str | os.PathLike],
    *,
    run_dir: str | os.PathLike | None = None,
    runtime: str = AUTO,
    format: str | None = None,
    top_k: int = 3,
    threads: int | None = None,
    allow_modified: bool = False,
    model: str | None = None,
    artifacts: str | os.PathLike = DEFAULT_ROOT,
) -> PredictResult:
    """Classify `paths` (image files or folders of them) with `runtime` loading the run's `format` file;
    runtime "auto" takes what `toolkit bench` recommended for the CPU (recommended_target).

    The file must be the one export checked (its sha256 in manifest.json) unless `allow_modified`."""
    if not paths:
        raise ConfigError("no image given; pass image files or folders")
    run = Path(run_dir) if run_dir is not None else latest_run(artifacts)
    if not run.is_dir():
        raise ConfigError(f"{run}: no such run folder; pass --run with a folder that toolkit train wrote")
    chosen = None
    if runtime == AUTO:
        runtime, recommended_format, chosen = recommended_target(run)
        format = format or recommended_format
    check_runtime(runtime)
    fmt = FORMATS[format] if format in FORMATS else None
    if format is not None and fmt is None:
        raise ConfigError(f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}")
    fmt = fmt or primary_format(runtime)
    if runtime not in fmt.runtimes:
        raise ConfigError(
            f"{runtime} does not read {fmt.name} files; it reads: "
            + ", ".join(f.name for f in FORMATS.values() if runtime in f.runtimes)
        )
    # The class names and the normalisation come from the manifest, and from nothing else.
    manifest = load_manifest(run)
    if model is not None:  # the eager runtime rebuilds a factory model only when it is named
        if model != manifest.get("model"):
            raise ConfigError(f"the run's model is {manifest.get('model')}, not {model}; pass --model with its name")
        trust(model)
    # The one target, from the same plan verify and bench use: a file not exported or a runtime not
    # installed is one line saying what to run.
    found = plan(run, [fmt.name], [runtime], ["cpu"], reference=True)
    if not found.targets:  # e.g. checkpoint-bf16 on a CPU without native bf16
        raise ConfigError(f"{run}: {'; '.join(found.skipped) or f'{fmt.name} does not run on this CPU'}")
    target = found.targets[0]
    modified = modification(run, manifest, fmt.filename)
    if modified and not allow_modified:
        raise ConfigError(
            f"{run}: {modified}; re-run `toolkit export {run}`, or pass --allow-modified to answer from it anyway"
        )
    classes = manifest["classes"]
    if not 1 <= top_k <= len(classes):
        raise ConfigError(f"--top-k must be between 1 and {len(classes)}, got {top_k}")
    files, failures = expand(list(paths))
    size = tuple(manifest["input"]["shape"][1:])
    resize = manifest["input"].get("resize", "stretch")  # runs exported before image folders: CIFAR's stretch
    rt = open_runtime(runtime, target.path, "cpu", threads, **target.options)  # eager[bf16]: its autocast
    result = PredictResult(run, runtime, fmt.name, rt.describe(), modified, chosen=chosen, failures=failures)
    spec = manifest["input"]  # the normalisation comes from the manifest alone
    # Decoded a batch at a time: a folder of thousands of photos never sits in memory as tensors all at once.
    for start in range(0, len(files), BATCH):
        images, names = [], []
        for f in files[start : start + BATCH]:
            try:
                images.append(load_image(f, size, resize))
                names.append(str(f))
            except DataError as exc:
                failures.append(str(exc))
        if not images:
            continue
        x = normalise(torch.stack(images), spec["mean"], spec["std"])
        try:
            logits = rt.run(x).float()
        except ToolkitError:
            raise
        except Exception as exc:  # a native runtime's own error: one line, not its traceback
            raise ToolkitError(
                f"{run / fmt.filename} failed on {runtime} for a batch of {len(images)} images of "
                f"{spec['shape']}: {first_line(exc)}; run `toolkit verify {run}` to see whether the file is sound"
            ) from None
        if logits.ndim != 2 or logits.shape[1] != len(classes):
            raise ConfigError(
                f"{run / MANIFEST}: 'classes' names {len(classes)} classes but {fmt.filename} gives "
                f"{tuple(logits.shape[1:])} outputs per image; re-run toolkit export"
            )
        if not torch.isfinite(logits).all():
            raise ConfigError(f"{run / fmt.filename} gives NaN/inf logits; run `toolkit verify {run}` to see why")
        probs = torch.softmax(logits, dim=1)
        p, idx = probs.topk(top_k, dim=1)
        for name, pr, ix in zip(names, p.tolist(), idx.tolist(), strict=True):
            result.predictions.append(Prediction(name, [(classes[i], v) for i, v in zip(ix, pr, strict=True)]))
    return result


def to_json_lines(result: PredictResult) -> str:
    return "".join(json.dumps(p.to_dict()) + "\n" for p in result.predictions)


__all__ = ["PredictResult", "Prediction", "predict"]

make_callable(__name__, predict)

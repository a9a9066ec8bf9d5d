"""Foreign-model conformance: torchvision's small classifiers through every format and every installed runtime.

    python benchmarks/conformance.py [--models mobilenet_v2 ...] [--sizes 32 64] [--out artifacts/conformance]

Each model is built untrained by its torchvision factory (`num_classes=10`) at each input size, exported to
each format on its own (toolkit/experiments/conformance.py) and verified on a synthetic 10-class test set at that
size. Writes conformance.json (every cell with its figures and failure lines) and conformance.md (the table
docs/results.md shows: one row per model x size x format, one column per runtime, and the wall time per model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.core.files import write_json, write_text  # noqa: E402
from toolkit.core.machine import cpu_model  # noqa: E402
from toolkit.experiments.conformance import cell_text, conformance  # noqa: E402

MODELS = (
    "mobilenet_v2",
    "mobilenet_v3_small",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "efficientnet_b0",
    "regnet_x_400mf",
    "mnasnet0_5",
    "resnet18",
)


def table(results: list[dict]) -> str:
    runtimes = sorted({c["runtime"] for r in results for c in r["cells"]})
    lines = [
        "| model | input | format | export | " + " | ".join(runtimes) + " |",
        "|---|---|---|---|" + "---|" * len(runtimes),
    ]
    for r in results:
        name = f"{r['model'].split(':')[-1]} ({r['seconds']:.0f} s)"
        for fmt, exported in r["exported"].items():
            cells = {c["runtime"]: cell_text(c) for c in r["cells"] if c["format"] == fmt and c["device"] == "cpu"}
            row = [cells.get(rt, "-") for rt in runtimes]
            export_cell = "ok" if exported == "ok" else f"FAIL: {exported[:200]}"
            lines.append(f"| {name} | {r['image_size']} | {fmt} | {export_cell} | " + " | ".join(row) + " |")
            name = ""
    return "\n".join(lines) + "\n"


SHORT = {"torchscript": "ts", "onnx-int8": "int8", "onnx-int8-dynamic": "int8-dyn", "onnx-fp16": "fp16",
         "onnxruntime": "ort", "openvino": "ov", "opencv": "cv", "torch-export": "", "executorch": "",
         "aoti": "", "checkpoint-bf16": "bf16"}  # fmt: skip


def compact_table(results: list[dict]) -> str:
    """One row per model x input size, one column per file/runtime; failures as numbered notes below."""
    columns = []
    for r in results:
        for c in r["cells"]:
            key = (c["format"], c["runtime"])
            if c["device"] == "cpu" and key not in columns:
                columns.append(key)
    formats = list(dict.fromkeys(f for r in results for f in r["exported"]))
    order = {f: i for i, f in enumerate(formats)}
    columns.sort(key=lambda k: (order.get(k[0], -1), k[1]))
    label = lambda f, rt: "/".join(x for x in (SHORT.get(f, f), SHORT.get(rt, rt)) if x) or f  # noqa: E731
    lines = [
        "| model | input | s | " + " | ".join(label(*k) for k in columns) + " |",
        "|---|---|--:|" + ":-:|" * len(columns),
    ]
    notes: list[str] = []

    def note(text: str) -> str:
        if text not in notes:
            notes.append(text)
        return f"✗{notes.index(text) + 1}"

    for r in results:
        cells = {(c["format"], c["runtime"]): c for c in r["cells"] if c["device"] == "cpu"}
        row = []
        for f, rt in columns:
            if r["exported"].get(f, "ok") != "ok":
                why = r["exported"][f]
                mark = note(f"{f}: {why.split(': ', 1)[-1] if 'no MatMul/Gemm' in why else 'export: ' + why}")
                row.append(mark.replace("✗", "n/a ") if "no MatMul/Gemm" in why else mark)
            elif (f, rt) not in cells:
                row.append("-")
            elif cells[(f, rt)]["passed"]:
                row.append("✓")
            else:
                row.append(note(cell_text(cells[(f, rt)]).removeprefix("FAIL: ")))
        name = r["model"].split(":")[-1]
        lines.append(f"| {name} | {r['image_size']} | {r['seconds']:.0f} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n\n" + "".join(f"{i + 1}. {t}\n" for i, t in enumerate(notes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--sizes", nargs="+", type=int, default=[32, 64])
    ap.add_argument("--formats", default="all")
    ap.add_argument("--limit", type=int, default=256, help="synthetic test images verify compares on")
    ap.add_argument("--out", default="artifacts/conformance")
    ap.add_argument("--update", action="store_true", help="keep OUT/conformance.json's other rows, replace these")
    args = ap.parse_args()
    out = Path(args.out)
    results, started = [], time.time()
    if args.update and (out / "conformance.json").is_file():
        redo = {f"torchvision.models:{m}" for m in args.models}
        results = [r for r in json.loads((out / "conformance.json").read_text())["results"] if r["model"] not in redo]
    rank = {m: i for i, m in enumerate(MODELS)}
    for model in args.models:
        for size in args.sizes:
            r = conformance(f"torchvision.models:{model}", size, out, formats=args.formats, limit=args.limit)
            results.append(r.to_dict())
            results.sort(key=lambda x: (rank.get(x["model"].split(":")[-1], len(rank)), x["image_size"]))
            print(
                f"{model} at {size}: {r.seconds:.0f} s; export "
                + ", ".join(f"{k}={'ok' if v == 'ok' else 'FAIL'}" for k, v in r.exported.items()),
                flush=True,
            )
            report = {"cpu": cpu_model(), "started": started, "results": results}
            write_json(out / "conformance.json", report)
            write_text(
                out / "conformance.md",
                f"CPU: {cpu_model()}\n\n" + compact_table(results) + "\n## Every cell\n\n" + table(results),
            )
    print(json.dumps({"wall_s": time.time() - started}))


if __name__ == "__main__":
    main()

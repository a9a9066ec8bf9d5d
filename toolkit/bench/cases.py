"""The work each isolated benchmark process does: an inference case, a training case, the matmul peak.

These functions run in the child (see core/isolate.py); each opens what it times exactly as the shipped
commands do: runtimes through the format registry, training through the step `toolkit train` runs.
"""

from __future__ import annotations

import torch

from toolkit.bench.timing import matmul_peak_gflops, onnx_gemm_gflops, time_call
from toolkit.core.isolate import report_errors


def inference_case(spec: dict) -> dict:
    from toolkit.targets.runtimes import open_runtime

    torch.set_num_threads(spec["threads"])
    torch.set_num_interop_threads(1)
    rt = open_runtime(spec["runtime"], spec["path"], spec["device"], spec["threads"], **(spec.get("options") or {}))
    results = []
    for b in spec["batch_sizes"]:
        x = torch.randn(b, *spec.get("input_shape", (3, 32, 32)), generator=torch.Generator().manual_seed(b))
        timing = time_call(
            lambda x=x: rt.run(x), b, warmup=spec["warmup"], rounds=spec["rounds"], budget_s=spec["budget_s"]
        )
        results.append(timing.stats())
    return {
        "runtime": spec["runtime"],
        "format": spec.get("format", "checkpoint"),
        "precision": spec.get("precision", "fp32"),
        "label": spec.get("label", f"{spec['runtime']}/{spec['device']}"),
        "device": spec["device"],
        "variant": spec.get("variant", ""),
        "details": rt.describe(),
        "torch_threads": torch.get_num_threads(),
        "results": results,
    }


def training_case(spec: dict) -> dict:
    from toolkit.bench.train_step import seed_loop, toolkit_loop
    from toolkit.data import load_dataset

    torch.set_num_threads(spec["threads"])
    data = load_dataset(
        spec["dataset"], True, spec.get("data_dir"), limit=spec["images"], download=False,
        image_size=spec.get("image_size"),
    )  # fmt: skip
    common = dict(
        model=spec["model"], model_args=spec.get("model_args"), batch_size=spec["batch_size"], device=spec["device"]
    )
    if spec["loop"] == "seed":
        loop = seed_loop(data, **common)
    else:
        loop = toolkit_loop(
            data, **common, amp=spec["amp"], channels_last=spec["channels_last"], compile=spec.get("compile", False)
        )
    t = loop.time(spec["steps"], spec["warmup"])
    return {"device": spec["device"], "threads": torch.get_num_threads(), **t.to_dict()}


def peak_case(spec: dict) -> dict:
    """{device: {engine: fp32 GEMM GFLOP/s}}: torch on every device; on the CPU also the installed runtimes'
    own GEMMs, since torch's is not the fastest on every CPU."""
    from toolkit.targets.runtimes import runtime_class

    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 peak, not TF32's
    peaks = {d: {"torch": matmul_peak_gflops(spec["threads"], device=d)} for d in spec["devices"] if d != "mps"}
    if "cpu" in peaks:
        for engine in ("onnxruntime", "openvino"):
            if runtime_class(engine).unavailable_reason("cpu") is None:
                peaks["cpu"][engine] = onnx_gemm_gflops(engine, spec["threads"])
    return peaks


def inference_worker(spec: dict, queue) -> None:
    report_errors(queue, spec.get("label", f"{spec['runtime']}/{spec['device']}"), lambda: inference_case(spec))


def training_worker(spec: dict, queue) -> None:
    report_errors(queue, f"training {spec['loop']}/{spec['device']}", lambda: training_case(spec))


def peak_worker(spec: dict, queue) -> None:
    report_errors(queue, "matmul peak", lambda: peak_case(spec))

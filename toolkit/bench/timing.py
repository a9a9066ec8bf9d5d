"""Timing primitives shared by `toolkit bench` and benchmarks/: timed calls, percentiles, the machine's
fp32 matmul peak, and model FLOPs.

Honesty rules, each for a reason:
- threads are pinned and recorded; the first run (graph optimisation, cuDNN autotuning) is reported apart;
- every timed call synchronizes device work before the clock stops (Runtime.run does);
- fixed rounds after a warm-up, reported as img/s, latency percentiles and the coefficient of variation.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from toolkit.core.device import synchronize

DEFAULT_BATCHES = (1, 32, 256)


@dataclass
class Timing:
    """Seconds per round for one case, plus the first (cold) run measured apart."""

    batch_size: int
    rounds: list[float]
    first_run: float

    def stats(self) -> dict[str, Any]:
        r = sorted(self.rounds)
        mean = statistics.mean(r)
        return {
            "batch_size": self.batch_size,
            "rounds": len(r),
            "img_per_s": self.batch_size * len(r) / sum(r),
            "latency_ms": {
                "p50": 1e3 * percentile(r, 50),
                "p90": 1e3 * percentile(r, 90),
                "p99": 1e3 * percentile(r, 99),
                "mean": 1e3 * mean,
                "min": 1e3 * r[0],
            },
            "cv": statistics.stdev(r) / mean if len(r) > 1 else 0.0,
            "first_run_ms": 1e3 * self.first_run,
        }


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted list (numpy's default method)."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def time_call(
    fn, batch_size: int, *, warmup: int = 3, rounds: int = 20, budget_s: float | None = None, min_rounds: int = 5
) -> Timing:
    """Time `fn()` (which must finish its device work before returning) for fixed rounds after a warm-up.

    With `budget_s`, rounds stop early once the budget is spent, but never below `min_rounds`.
    """
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < rounds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if budget_s is not None and len(times) >= min_rounds and time.perf_counter() - start > budget_s:
            break
    return Timing(batch_size, times, first)


def harness_overhead_s(samples: int = 2000) -> float:
    """Median cost of the timing loop itself around a no-op call."""
    noop = lambda: None  # noqa: E731
    return percentile(sorted(time_call(noop, 1, warmup=10, rounds=samples).rounds), 50)


def matmul_peak_gflops(threads: int, n: int = 2048, rounds: int = 10, device: str = "cpu") -> float:
    """Best fp32 GEMM rate (GFLOP/s) over `rounds` n x n x n products with `threads` threads."""
    torch.set_num_threads(threads)
    dev = torch.device(device)
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)

    def mm():
        a @ b
        synchronize(dev)

    best = min(time_call(mm, 1, warmup=3, rounds=rounds).rounds)
    return 2 * n**3 / best / 1e9


def onnx_gemm_gflops(engine: str, threads: int, n: int = 2048, rounds: int = 10) -> float:
    """Best fp32 GEMM rate of onnxruntime or OpenVINO (CPU) on an n x n x n MatMul graph, same threads.

    torch's fp32 GEMM runs a slow path on some AMD CPUs (203 GFLOP/s measured on an EPYC where OpenVINO ran
    resnet20 at 402), so the peak a runtime is compared with is the fastest GEMM any installed engine has."""
    import tempfile
    from pathlib import Path

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), name="b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
        [b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    a = rng.standard_normal((n, n), dtype=np.float32)
    if engine == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        call = lambda: session.run(None, {"a": a})  # noqa: E731
    elif engine == "openvino":
        import openvino as ov

        core = ov.Core()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "gemm.onnx"
            onnx.save(model, str(path))
            config = {
                "INFERENCE_PRECISION_HINT": "f32",
                "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": "LATENCY",
            }
            compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        request = compiled.create_infer_request()
        call = lambda: request.infer({0: a})  # noqa: E731
    else:
        raise ValueError(f"unknown GEMM engine {engine!r}")
    best = min(time_call(call, 1, warmup=3, rounds=rounds).rounds)
    return 2 * n**3 / best / 1e9


def activation_floor_bytes(ckpt: dict) -> int:
    """Bytes one image needs at the least while the model runs: its input plus the largest layer's input and
    output held together (fp32). Every runtime reuses buffers differently, but none computes a layer without
    both: a batch whose floor exceeds the free memory cannot run anywhere."""
    from toolkit.run.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(ckpt)
    x = torch.zeros(1, *ckpt["input"]["shape"])
    largest = [0]

    def hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and not list(module.children()):  # leaf layers only
            held = sum(t.numel() for t in inputs if isinstance(t, torch.Tensor)) + output.numel()
            largest[0] = max(largest[0], held)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return 4 * (x.numel() + largest[0])


def forward_flops(ckpt: dict) -> int:
    """FLOPs of one image's forward pass, counted by torch's FlopCounterMode (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    from toolkit.run.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(ckpt)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, *ckpt["input"]["shape"]))
    return int(counter.get_total_flops())

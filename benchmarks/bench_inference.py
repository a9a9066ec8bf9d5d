"""Tracks: inference latency and img/s of the tutorial CNN per runtime x device x batch size.

Builds what it needs in a temp folder (fresh weights, exported with the default dynamo exporter), so it
runs from a fresh clone. Each call synchronizes device work before returning (Runtime.run). img/s and
latency percentiles go into extra_info; CUDA cases skip cleanly without CUDA. Threads: all cores for
torch and onnxruntime intra-op, recorded in extra_info.
"""

import os

import pytest
import torch

from toolkit.bench.timing import percentile
from toolkit.export import export
from toolkit.targets.formats import FORMATS, target_label, targets
from toolkit.targets.runtimes import open_runtime, runtime_class
from toolkit.train.checkpoint import write_untrained

MODEL = "tutorial-cnn"
THREADS = os.cpu_count() or 1


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("bench") / MODEL
    write_untrained(MODEL, run)
    # Static INT8 calibrates on training images, which a fresh clone may lack: `toolkit bench` times it.
    export(run, ("torchscript", "onnx", "onnx-int8-dynamic", "onnx-fp16"))
    return run


@pytest.mark.parametrize("batch", [1, 32, 256])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize(("fmt", "runtime"), targets(), ids=[f"{r}[{f}]" for f, r in targets()])
def test_inference(benchmark, run_dir, fmt, runtime, device, batch):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    why = runtime_class(runtime).unavailable_reason(device) or FORMATS[fmt].not_timed.get((runtime, device))
    if why:
        pytest.skip(why)
    path = run_dir / FORMATS[fmt].filename
    if not path.is_file():
        pytest.skip(f"{path.name} is not made here")
    torch.set_num_threads(THREADS)
    rt = open_runtime(runtime, path, device, THREADS)
    x = torch.randn(batch, 3, 32, 32)
    rounds = 30 if batch < 256 else 10
    benchmark.pedantic(rt.run, args=(x,), rounds=rounds, warmup_rounds=3, iterations=1)
    data = sorted(benchmark.stats.stats.data)
    benchmark.extra_info.update(
        runtime=runtime,
        target=target_label(fmt, runtime, device),
        device=device,
        batch=batch,
        threads=THREADS,
        details=rt.describe(),
        img_per_s=batch / benchmark.stats.stats.mean,
        latency_ms={
            "p50": 1e3 * percentile(data, 50),
            "p90": 1e3 * percentile(data, 90),
            "p99": 1e3 * percentile(data, 99),
        },
    )

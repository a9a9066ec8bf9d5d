"""Benchmark machinery: statistics, FLOP counts, report files from a real tiny run, bad inputs."""

import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers import NO_CUDA_ONLY, tiny_run
from tests.test_cli_train import assert_one_line_error
from toolkit.bench.timing import Timing, forward_flops, harness_overhead_s, percentile, time_call
from toolkit.cli import app
from toolkit.models.external import trust
from toolkit.run.checkpoint import load_checkpoint
from toolkit.targets.runtimes import runtime_class
from toolkit.train.checkpoint import write_untrained

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_percentile_matches_numpy():
    values = sorted(np.random.default_rng(0).exponential(size=37).tolist())
    for q in (0, 10, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_timing_stats():
    t = Timing(batch_size=10, rounds=[0.1, 0.2, 0.3, 0.4], first_run=1.0)
    s = t.stats()
    assert s["img_per_s"] == pytest.approx(40 / 1.0)
    assert s["latency_ms"]["p50"] == pytest.approx(250) and s["latency_ms"]["min"] == pytest.approx(100)
    assert s["cv"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2.5)
    assert s["first_run_ms"] == 1000 and s["rounds"] == 4


def test_time_call_counts_rounds_and_respects_budget():
    calls = []
    t = time_call(lambda: calls.append(1), 1, warmup=2, rounds=7)
    assert len(t.rounds) == 7 and len(calls) == 1 + 2 + 7
    slow = time_call(lambda: time.sleep(0.01), 1, warmup=0, rounds=1000, budget_s=0.05, min_rounds=3)
    assert 3 <= len(slow.rounds) < 20
    assert min(slow.rounds) >= 0.01
    assert harness_overhead_s(200) < 1e-4  # the loop itself is noise next to a millisecond call


def test_forward_flops_are_counted(tmp_path):
    # conv1 2*30*30*64*27 + conv2 2*28*28*128*576 + fc1 2*100352*256 + fc2 2*256*10
    ckpt = load_checkpoint(write_untrained("tutorial-cnn", tmp_path / "t"))
    assert forward_flops(ckpt) == 3_110_400 + 115_605_504 + 51_380_224 + 5_120
    # At the checkpoint's input size: a conv-pool-linear factory at 48x48 (conv 2*48*48*8*27 + fc 2*8*10).
    trust("tests.own_models:tiny")
    ckpt = load_checkpoint(write_untrained("tests.own_models:tiny", tmp_path / "u", dataset="synthetic",
                                           image_size=48))  # fmt: skip
    assert forward_flops(ckpt) == 2 * 48 * 48 * 8 * 27 + 2 * 8 * 10


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    run_dir = tiny_run(tmp_path_factory.mktemp("runs"), "resnet20")
    assert run("export", run_dir, "--format", "onnx", "--exporter", "torchscript").exit_code == 0
    return run_dir


def _seed_speed_cache(model: str, batch: int, threads: int) -> None:
    """The speed policy's cache entry for bench's training default, so the child decides without timing:
    channels_last faster, compiling slower. What bench then times is what the cache says `toolkit train`
    would choose."""
    import torch

    from toolkit.train import speed
    from toolkit.train.config import TrainConfig

    # As bench.train_step.toolkit_loop builds it for bench's synthetic training images.
    cfg = TrainConfig(model=model, batch_size=batch, dataset="synthetic", image_size=32).resolved()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # the child's, which the key records
    try:
        key = speed.cache_key(cfg, torch.device("cpu"), speed.candidates(cfg, torch.device("cpu")))
    finally:
        torch.set_num_threads(before)
    layouts = {f"{p}, contiguous, eager": 0.2 for p in ("fp32", "bf16", "fp16")}
    fastest = "fp32, channels_last, eager"
    entry = {
        "step_seconds": {k: v for k, v in {**layouts, fastest: 0.1}.items() if k in key["candidates"]},
        "compile": {fastest: {"step_s": 0.5, "compile_s": 60.0, "eager_step_s": 0.1}},
    }
    speed.write_cache(key, entry)


def test_bench_writes_reports(exported_run, tmp_path, monkeypatch):
    # A cache of this test's own (bench's children inherit it): the seeded entry must not steer other tests'
    # short synthetic resnet20 runs, whose key it matches.
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    _seed_speed_cache("resnet20", 128, 1)
    r = run(
        "bench",
        exported_run,
        "--batch-sizes",
        "1,4",
        "--rounds",
        "3",
        "--warmup",
        "1",
        "--budget",
        "1",
        "--train-steps",
        "1",
        "--threads",
        "1",
        "--device",
        "cpu",
    )
    assert r.exit_code == 0, r.output
    result = json.loads((exported_run / "bench.json").read_text())
    assert result["machine"]["cpu_model"] and result["threads"] == 1
    assert result["matmul_peak_gflops"]["cpu"] > 0 and result["forward_flops_per_image"] > 0
    cases = {(c["runtime"], c["device"]) for c in result["inference"]}
    consumers = {(r, "cpu") for r in ("openvino", "opencv") if runtime_class(r).unavailable_reason("cpu") is None}
    assert cases == {("eager", "cpu"), ("onnxruntime", "cpu")} | consumers
    for c in result["inference"]:
        assert [x["batch_size"] for x in c["results"]] == [1, 4]
        assert c["details"]["threads"] == 1
        for x in c["results"]:
            assert x["rounds"] == 3 and x["img_per_s"] > 0 and x["latency_ms"]["p99"] >= x["latency_ms"]["p50"]
    # parity.json is absent: nothing unverified is recommended
    assert "no recommendation: run `toolkit verify" in result["recommendation"]["text"]
    assert result["recommendation"]["text"] in r.stdout
    ort = next(c for c in result["inference"] if c["runtime"] == "onnxruntime")
    assert ort["details"]["provider"] == "CPUExecutionProvider" and ort["details"]["inter_op_threads"] == 1
    names = [t["name"] for t in result["training"]]
    # The default is what the speed policy chooses for `toolkit train` (here from the cache seeded above).
    assert names == [
        "seed loop",
        "toolkit default (fp32, channels_last, eager, cached)",
        "toolkit",
        "toolkit channels_last",
    ]
    for t in result["training"]:  # each ratio is its own img/s over the seed loop's, from separate processes
        assert t["speedup_vs_seed"] == pytest.approx(t["img_per_s"] / result["training"][0]["img_per_s"])
        assert t["steps"] == 1 and len(t["step_ms"]) == 1
    drift = result["matmul_peak_drift"]["cpu"]
    assert drift["before"] > 0 and drift["after"] > 0 and result["matmul_peak_gflops"]["cpu"] >= drift["before"]
    assert set(result["training"][1]["phase_ms"]) == {"data", "forward", "backward", "optimizer"}
    md = (exported_run / "bench.md").read_text()
    assert "| onnxruntime | onnx (fp32) | - | cpu | 4 |" in md and result["machine"]["cpu_model"] in md
    assert (exported_run / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--batch-sizes", "0,32"], "--batch-sizes takes comma-separated positive integers"),
        (["--batch-sizes", "a"], "--batch-sizes takes comma-separated positive integers"),
        (["--runtime", "tvm"], "unknown runtime 'tvm'"),
        pytest.param(["--device", "cuda"], "device 'cuda' is not available", marks=NO_CUDA_ONLY),
        (["--device", "mps"], "device 'mps' is not available here (found: cpu"),
        (["--device", "npu"], "unknown device 'npu'"),
        (["--rounds", "0"], "--rounds must be a positive integer"),
    ],
)
def test_bench_bad_options(exported_run, args, fragment):
    assert_one_line_error(run("bench", exported_run, *args), fragment)


def test_bench_needs_exports_or_a_model(tmp_path):
    bare = tiny_run(tmp_path, "resnet20")
    assert_one_line_error(run("bench", bare), "has no exports", "toolkit export")
    assert_one_line_error(run("bench", "--model", "alexnet", "--out", tmp_path), "unknown model 'alexnet'")
    # With a run, --model names the run's own model (to allow a factory's import), never another one.
    assert_one_line_error(run("bench", bare, "--model", "resnet56"), "the run's model is resnet20, not resnet56")


def test_bench_model_never_overwrites_a_trained_run(tmp_path):
    trained = tiny_run(tmp_path, "resnet20", "bench-resnet20")  # a user's run that happens to have this name
    before = (trained / "checkpoint.pt").read_bytes()
    r = run("bench", "--model", "resnet20", "--out", tmp_path, "--no-train")
    assert_one_line_error(r, "holds a checkpoint bench did not make", "will not overwrite")
    assert (trained / "checkpoint.pt").read_bytes() == before


def _case(runtime="onnxruntime", img_per_s=1000.0, cv=0.01, **extra):
    result = {"batch_size": 256, "img_per_s": img_per_s, "rounds": 5, "cv": cv, "first_run_ms": 1.0}
    result["latency_ms"] = {"p50": 1, "p90": 1, "p99": 1}
    return {"runtime": runtime, "device": "cpu", "variant": "", "details": {}, "results": [result], **extra}


def _bench_result(inference, peak, drift, disturbed):
    return {
        "model": "m",
        "run_dir": "r",
        "machine": {"cpu_model": "cpu", "logical_cpus": 2, "cpu_flags": {}, "gpu": None, "torch": "t"},
        "threads": 2,
        "matmul_peak_gflops": {"cpu": peak},
        "matmul_peak_source": {"cpu": "openvino"},
        "matmul_peak_drift": {"cpu": drift},
        "forward_flops_per_image": 100_000_000,
        "harness_overhead_us": 1.0,
        "inference": inference,
        "training": [],
        "disturbed": disturbed,
    }


def test_a_runtime_faster_than_the_peak_is_not_called_disturbed():
    # The red team's EPYC: OpenVINO ran resnet20 at 402 GFLOP/s where torch's GEMM peaked at 203. Beating a
    # GEMM is no evidence of a busy machine; only the peak's drift or a case's own spread is.
    from toolkit.bench.bench_files import bench_markdown
    from toolkit.bench.run import _disturbances, _share_of_peak

    inference = [_case(), _case("openvino", img_per_s=4000.0)]
    steady = {"before": 203.0, "after": 200.0, "drift": 200 / 203 - 1}
    _share_of_peak(inference, [], {"cpu": 203.0}, 100_000_000)
    assert inference[1]["results"][0]["pct_of_peak"] == pytest.approx(197.0, abs=0.1)
    assert _disturbances(inference, [], {"cpu": steady}) == []
    md = bench_markdown(_bench_result(inference, 203.0, steady, []))
    assert "(disturbed)" not in md and "| 197 |" in md and "openvino GEMM, the fastest engine" in md


def test_disturbed_only_with_evidence_drift_or_spread():
    from toolkit.bench.bench_files import bench_markdown
    from toolkit.bench.run import _disturbances

    noisy, quiet = _case("openvino", cv=0.4), _case()
    steady = {"before": 200.0, "after": 196.0, "drift": 196 / 200 - 1}
    lines = _disturbances([noisy, quiet], [], {"cpu": steady})
    assert lines == ["openvino/cpu batch 256: its rounds spread 40 % (CV over 25 %)"]
    assert noisy["results"][0]["disturbed"] and "disturbed" not in quiet["results"][0]
    moved = {"before": 200.0, "after": 120.0, "drift": 120 / 200 - 1}
    lines = _disturbances([_case()], [], {"cpu": moved})
    assert lines == ["cpu: the fastest GEMM ran at 200 GFLOP/s before the cases and 120 after (-40 %, over 15 %): "
                     "the machine's load changed"]  # fmt: skip
    for c in (noisy, quiet):
        c["results"][0]["pct_of_peak"] = 50.0
    md = bench_markdown(_bench_result([noisy, quiet], 200.0, steady, ["x: its rounds spread"]))
    assert md.count("(disturbed)") == 1 and "**Disturbed:** x: its rounds spread" in md


def test_the_peak_is_the_fastest_gemm_of_every_installed_engine():
    from toolkit.bench.cases import peak_case
    from toolkit.targets.runtimes import runtime_class

    peaks = peak_case({"threads": 1, "devices": ["cpu"]})["cpu"]
    expected = {"torch"} | {
        e for e in ("onnxruntime", "openvino") if runtime_class(e).unavailable_reason("cpu") is None
    }
    assert set(peaks) == expected and all(g > 0 for g in peaks.values())

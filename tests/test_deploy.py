"""Deployment: INT8 and fp16 files gated by verify, OpenVINO and OpenCV, crash isolation, `toolkit predict`."""

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import tamper_largest_initializer, tiny_run
from tests.test_cli_train import assert_one_line_error
from toolkit.bench.run import recommend
from toolkit.cli import app
from toolkit.core.errors import ToolkitError
from toolkit.data import TensorLoader, load_dataset
from toolkit.export import quantize
from toolkit.targets.child import run_in_child
from toolkit.targets.formats import FORMATS
from toolkit.targets.gates import Thresholds, fp32_excess
from toolkit.targets.runtimes import open_runtime, runtime_class
from toolkit.verify.parity import RuntimeParity

runner = CliRunner()
LOW = ("onnx-int8", "onnx-int8-dynamic", "onnx-fp16")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def needs(runtime):
    why = runtime_class(runtime).unavailable_reason("cpu")
    return pytest.mark.skipif(why is not None, reason=why or "")


def test_low_precision_files_are_written_checked_and_described(deployed):
    m = json.loads((deployed / "manifest.json").read_text())["files"]
    static = m["model-int8.onnx"]
    assert static["precision"] == "int8" and static["quantization"].startswith("static QDQ")
    assert static["int8_preset"] in quantize.PRESETS and static["int8_preset_reason"]
    assert static["calibration"] == "minmax" and static["calibration_images"] == 64
    assert static["quantized_nodes"] > 0 and "gated_by" in static and "atol" not in static
    assert m["model-int8-dynamic.onnx"]["quantized_nodes"] >= 1  # fc1 and fc2
    assert m["model-fp16.onnx"]["precision"] == "fp16"
    import onnx

    fp16 = onnx.load(str(deployed / "model-fp16.onnx"))
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 in and out
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    int8 = onnx.load(str(deployed / "model-int8.onnx"))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in int8.graph.node}
    meta = {p.key: p.value for p in int8.metadata_props}
    assert meta["toolkit.model"] == "tutorial-cnn" and meta["toolkit.quantization"].startswith("static QDQ")


def test_the_int8_preset_follows_the_cpu(monkeypatch):
    flags = {"avx2": True, "avx512_vnni": False, "avx_vnni": False, "amx_int8": False}
    monkeypatch.setattr(quantize, "cpu_flags", lambda: flags)
    assert quantize.auto_preset()[0] == "u8s8-rr"
    flags["avx512_vnni"] = True
    preset, why = quantize.auto_preset()
    assert preset == "u8s8" and "avx512_vnni" in why


def test_verify_gates_low_precision_files_by_accuracy_and_agreement(run_copy):
    r = run("verify", run_copy, "--format", "onnx-int8", "--format", "onnx-int8-dynamic", "--format", "onnx-fp16")
    parity = json.loads((run_copy / "parity.json").read_text())
    entries = {(e["runtime"], e["format"]): e for e in parity["entries"]}
    assert ("onnxruntime", "onnx-int8") in entries and ("onnxruntime", "onnx-fp16") in entries
    assert ("onnxruntime", "onnx-int8-dynamic") in entries
    assert all(e["precision"] != "fp32" for e in entries.values())
    # Whatever the tiny model's figures, the verdict is the gates applied to them.
    t = Thresholds()
    rel = {"int8": ("mean_rel", t.int8_mean_rel), "int8-dynamic": ("mean_rel", t.int8_mean_rel)}
    rel["fp16"] = ("max_rel", t.fp16_max_rel)
    for e in entries.values():
        if e["accuracy"] is None:
            continue
        figure, limit = rel[e["precision"]]
        expected = -e["acc_delta"] <= t.max_acc_drop and e["agreement"] >= t.min_agreement and not e["non_finite"]
        assert e["passed"] == (expected and e[figure] <= limit), e
    assert r.exit_code == (0 if parity["passed"] else 1)
    md = (run_copy / "parity.md").read_text()
    assert "INT8/fp16/bf16 files: accuracy drop ≤ 0.5 pt, top-1 agreement ≥ 97 %" in md
    assert f"fp16 max |Δ| ≤ {t.fp16_max_rel:g}" in md and f"INT8 mean |Δ| ≤ {t.int8_mean_rel:g}" in md


def test_the_gates_name_format_device_figure_and_limit():
    e = RuntimeParity("onnxruntime", "cpu", "onnx-int8", "int8", {}, accuracy=60.0, acc_delta=-0.8, agreement=96.0)
    e.max_abs, e.worst_batch, e.mean_abs, e.max_rel, e.mean_rel = 3.0, 2, 0.5, 1.5, 0.25
    e.failures = FORMATS[e.format].gate.judge(e, Thresholds())
    assert e.failures == [
        "onnxruntime[int8]/cpu: int8 mean |Δlogit| is 0.25 of the logit scale > --int8-mean-rel 0.2 (mean |Δ| 0.5)",
        "onnxruntime[int8]/cpu: int8 accuracy drop 0.80 pt > --max-acc-drop 0.5 pt",
        "onnxruntime[int8]/cpu: int8 top-1 agreement 96.00% < --min-agreement 97%",
    ]
    better = RuntimeParity("onnxruntime", "cpu", "onnx-fp16", "fp16", {}, accuracy=61, acc_delta=+0.9, agreement=99)
    better.max_abs, better.max_rel, better.mean_rel = 5.0, 0.029, 0.001  # just inside the fp16 gate
    better.failures = FORMATS[better.format].gate.judge(better, Thresholds())
    assert better.passed
    better.max_rel = 0.031
    better.failures = FORMATS[better.format].gate.judge(better, Thresholds())
    assert better.failures == [
        "onnxruntime[fp16]/cpu: fp16 max |Δlogit| is 0.031 of the logit scale > --fp16-max-rel 0.03 (max |Δ| 5)"
    ]
    bf16 = RuntimeParity("eager", "cpu", "checkpoint-bf16", "bf16", {}, accuracy=61, acc_delta=0.0, agreement=99.9)
    bf16.max_abs, bf16.mean_abs, bf16.max_rel, bf16.mean_rel = 0.6, 0.05, 0.3, 0.03  # its max alone is not gated
    bf16.failures = FORMATS[bf16.format].gate.judge(bf16, Thresholds())
    assert bf16.failures == [
        "eager[bf16]/cpu: bf16 mean |Δlogit| is 0.03 of the logit scale > --bf16-mean-rel 0.02 (mean |Δ| 0.05)"
    ]


def test_the_fp32_gate_grows_with_the_magnitude_of_the_logits():
    # One float32 step at 1,024 is 1.22e-4: two of them failed an honest 1-epoch resnet20 (logits near 1,000)
    # against the absolute 1e-4. Each image may move by atol + rtol x its largest |logit|; a small logit
    # still gets about atol alone, so a file moved by 3e-4 at logits near 10 fails.
    t = Thresholds()
    ref = torch.tensor([[1024.0, 990.0, -5.0], [10.0, -3.0, 1.0]])
    honest = ref.clone()
    honest[0, 0] = 1024.0 + 2 * 1.220703125e-4
    assert fp32_excess(honest, ref, t).ratio <= 1
    forged = ref.clone()
    forged[1, 0] += 3e-4
    x = fp32_excess(forged, ref, t, batch=4)
    assert x.ratio > 1 and x.magnitude == 10.0
    fp32 = RuntimeParity("openvino", "cpu", "onnx", "fp32", {}, accuracy=61, acc_delta=0.0, agreement=100)
    fp32.max_abs, fp32.worst_batch, fp32.fp32_excess = x.diff, 4, x
    fp32.failures = FORMATS[fp32.format].gate.judge(fp32, Thresholds())
    assert fp32.failures == [
        "openvino/cpu: max |diff| 0.0003 > 0.0001 + 1e-05 x |logit| 10 = 0.0002 allowed on batch 4 (--atol, --rtol)"
    ]


def test_an_honest_fp32_file_with_large_logits_passes_and_a_forged_one_fails(tmp_path):
    # The final layer scaled by 1e4 (logits ~1e3-1e4, as a 1-epoch resnet20's or an untrained ResNet-56's):
    # export's check and verify apply one rule, so both pass the honest file; the smallest forgery
    # docs/guide.md sizes the gate against (the largest weight tensor scaled by 1 + 1e-4) still fails.
    from toolkit.core.files import atomic_path
    from toolkit.run.checkpoint import load_checkpoint

    run_dir = tiny_run(tmp_path, "resnet20")
    ckpt = load_checkpoint(run_dir)
    for key in ("fc.weight", "fc.bias"):
        ckpt["state_dict"][key] = ckpt["state_dict"][key] * 1e4
    with atomic_path(run_dir / "checkpoint.pt") as tmp:
        torch.save(ckpt, tmp)
    assert run("export", run_dir, "--format", "onnx").exit_code == 0
    r = run("verify", run_dir, "--runtime", "onnxruntime", "--limit", "256")
    assert r.exit_code == 0, r.output
    (e,) = json.loads((run_dir / "parity.json").read_text())["entries"]
    assert e["max_abs"] > 1e-4 and e["fp32_excess"]["magnitude"] > 100  # failed the absolute 1e-4 alone
    tamper_largest_initializer(run_dir / "model.onnx", 1 + 1e-4)
    r = run("verify", run_dir, "--runtime", "onnxruntime", "--limit", "256", "--allow-modified")
    assert r.exit_code == 1 and "allowed on batch" in r.stderr, r.output


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--calibration-images", "0"], "--calibration-images must be a positive integer, got 0"),
        (["--int8-preset", "s4s4"], "unknown --int8-preset 's4s4'"),
        (["--calibration", "kl"], "unknown --calibration 'kl'"),
    ],
)
@pytest.mark.parametrize("fmt", ["onnx-int8", "onnx"])  # validated even when no INT8 file is asked for
def test_bad_quantization_options(deployed, args, fragment, fmt):
    assert_one_line_error(run("export", deployed, "--format", fmt, *args), fragment)


def test_quantizing_needs_the_fp32_onnx_and_the_data(tmp_path):
    bare = tiny_run(tmp_path, "tutorial-cnn")
    assert_one_line_error(
        run("export", bare, "--format", "onnx-int8"), "has no model.onnx to make onnx-int8 from", "--format onnx"
    )
    assert not list(bare.glob("*.onnx"))
    # A run trained on CIFAR-10 whose data folder is gone.
    from toolkit.train.checkpoint import write_untrained

    write_untrained("tutorial-cnn", tmp_path / "cifar")
    assert run("export", tmp_path / "cifar", "--format", "onnx").exit_code == 0
    r = run("export", tmp_path / "cifar", "--format", "onnx-int8", "--data-dir", tmp_path / "nowhere")
    assert_one_line_error(r, "calibration needs the run's training images", "--data-dir")
    assert not (tmp_path / "cifar" / "model-int8.onnx").exists()


def test_a_runtime_that_crashes_is_an_error_within_seconds(deployed):
    started = time.monotonic()
    with pytest.raises(ToolkitError, match=r"^crasher/cpu: its process died from signal SIGSEGV"):
        run_in_child(
            "tests.helpers:SegfaultRuntime",
            deployed / "model.onnx",
            "cpu",
            1,
            [torch.zeros(1, 3, 32, 32)],
            label="crasher/cpu",
        )
    assert time.monotonic() - started < 60


@needs("opencv")
def test_verify_survives_a_runtime_crash(tmp_path):
    """OpenCV 5.0.0 segfaults reading the opset-18 form of GELU: verify reports it and goes on."""
    run_dir = tiny_run(tmp_path, "fast-cnn")
    assert run("export", run_dir, "--format", "onnx", "--opset", "18").exit_code == 0
    r = run("verify", run_dir, "--runtime", "opencv", "--runtime", "onnxruntime")
    parity = json.loads((run_dir / "parity.json").read_text())
    by = {e["runtime"]: e for e in parity["entries"]}
    if by["opencv"]["passed"]:
        pytest.skip("this OpenCV reads the opset-18 GELU without crashing")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "opencv/cpu: its process died from signal SIGSEGV" in by["opencv"]["failures"][0]
    assert by["onnxruntime"]["passed"] and by["onnxruntime"]["max_abs"] < 1e-4


@needs("openvino")
def test_openvino_reads_back_what_it_runs(deployed):
    rt = open_runtime("openvino", deployed / "model.onnx", "cpu", threads=1)
    info = rt.describe()
    # The CPU plugin would run fp32 models in bf16 on AMX CPUs unless told otherwise.
    assert info["inference_precision"] == "f32" and info["performance_hint"] == "latency"
    assert info["threads"] == 1 and info["streams"] == 1
    assert rt.run(torch.zeros(5, 3, 32, 32)).shape == (5, 10)


def test_bench_skips_fp16_on_the_onnxruntime_cpu_provider_and_recommends_only_verified(run_copy):
    from toolkit.bench.run import BenchConfig, _inference_specs

    notes = []
    specs = _inference_specs(run_copy, BenchConfig(devices=("cpu",)), 1, notes, [3, 32, 32])
    targets = {(s["runtime"], s["format"]) for s in specs}
    assert ("onnxruntime", "onnx-int8") in targets and ("onnxruntime", "onnx-fp16") not in targets
    assert any("no fp16 kernels" in n for n in notes)

    def case(runtime, fmt, speed):
        return {
            "runtime": runtime,
            "format": fmt,
            "device": "cpu",
            "variant": "",
            "label": f"{runtime}[{fmt}]/cpu",
            "results": [{"batch_size": 256, "img_per_s": speed}],
        }

    result = {
        "config": {"batch_sizes": [1, 256]},
        "inference": [
            case("eager", "checkpoint", 100.0),
            case("onnxruntime", "onnx", 200.0),
            case("onnxruntime", "onnx-int8", 400.0),
        ],
    }
    assert "run `toolkit verify" in recommend(result, run_copy)["text"]
    parity = {
        "entries": [
            {"runtime": "onnxruntime", "format": "onnx", "device": "cpu", "passed": True, "acc_delta": 0.0},
            {"runtime": "onnxruntime", "format": "onnx-int8", "device": "cpu", "passed": False, "acc_delta": -2.0},
        ]
    }
    (run_copy / "parity.json").write_text(json.dumps(parity))
    rec = recommend(result, run_copy)
    assert rec["format"] == "onnx" and rec["speedup_vs_eager_fp32"] == 2.0  # the faster INT8 file failed verify
    parity["entries"][1].update(passed=True, acc_delta=-0.3)
    (run_copy / "parity.json").write_text(json.dumps(parity))
    rec = recommend(result, run_copy)
    assert rec["format"] == "onnx-int8" and rec["speedup_vs_eager_fp32"] == 4.0 and rec["accuracy_cost_pt"] == 0.3


# --- predict ---


def _save_test_pngs(images: torch.Tensor, folder):
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")


def _runtime_predictions(run_dir, data, runtime="onnxruntime", filename="model.onnx"):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    loader = TensorLoader(data, 64, mean=tuple(manifest["input"]["mean"]), std=tuple(manifest["input"]["std"]))
    rt = open_runtime(runtime, run_dir / filename, "cpu", 1)
    return torch.cat([rt.run(x).argmax(1) for x, _ in loader.epoch(0)]).tolist(), manifest["classes"]


def test_predict_on_pngs_equals_the_runtime_on_the_test_set(deployed, tmp_path):
    test = load_dataset("synthetic", False, None, limit=40)
    _save_test_pngs(test.images, tmp_path / "pngs")
    expected, classes = _runtime_predictions(deployed, test)
    r = run("predict", tmp_path / "pngs", "--run", deployed, "--json", "--top-k", "10")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["top"][0]["class"] for row in rows] == [classes[i] for i in expected]
    for row in rows:  # all ten classes: softmax probabilities, most likely first
        probs = [t["probability"] for t in row["top"]]
        assert sorted(probs, reverse=True) == probs and abs(sum(probs) - 1) < 1e-5
        assert sorted(t["class"] for t in row["top"]) == sorted(classes)


@pytest.mark.real_data
def test_predict_on_real_cifar_pngs_equals_verify(real_cifar_dir, deployed, tmp_path):
    test = load_dataset("cifar10", False, real_cifar_dir, limit=50, download=False)
    _save_test_pngs(test.images, tmp_path / "pngs")
    for runtime, filename, fmt in [("onnxruntime", "model-int8.onnx", "onnx-int8"), ("torchscript", "model.ts", None)]:
        expected, classes = _runtime_predictions(deployed, test, runtime, filename)
        args = ["--format", fmt] if fmt else []
        r = run("predict", tmp_path / "pngs", "--run", deployed, "--runtime", runtime, "--json", *args)
        assert r.exit_code == 0, r.output
        assert [json.loads(line)["top"][0]["class"] for line in r.stdout.splitlines()] == [classes[i] for i in expected]


def test_predict_bad_files_get_one_line_each_and_the_others_answers(deployed, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.full((64, 48, 3), 120, np.uint8)).save(folder / "big.jpg")  # resized to 32x32
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "dot.png")
    (folder / "notes.png").write_text("a text file renamed .png")
    Image.fromarray(np.full((40, 40), 7, np.uint8), mode="L").save(folder / "grey.png")  # grey becomes RGB
    r = run("predict", folder, "--run", deployed)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert sorted(line.split(":")[0].rsplit("/", 1)[1] for line in r.stdout.splitlines()) == ["big.jpg", "grey.png"]
    errors = [e for e in r.stderr.strip().splitlines() if not e.startswith("runtime auto: ")]
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)
    assert any("dot.png: 1x1 pixels is too small" in e for e in errors)
    assert any("notes.png: not an image Pillow can read" in e for e in errors)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images")
    r = run("predict", empty, "--run", deployed)
    assert r.exit_code == 1 and "no image files" in r.stderr and not r.stdout.strip()


def _bench_and_parity(run_dir, timed: dict[str, tuple[str, str, float]], passed: dict[str, bool]) -> None:
    """bench.json timing `timed` (label -> (runtime, format, img/s) at batch 256 on the CPU) and parity.json
    with verify's verdict on each label in `passed`, as bench and verify write them."""
    cases = [
        {
            "label": label,
            "runtime": rt,
            "format": fmt,
            "device": "cpu",
            "results": [{"batch_size": 256, "img_per_s": v}],
        }
        for label, (rt, fmt, v) in timed.items()
    ]
    entries = [
        {"format": timed[label][1], "runtime": timed[label][0], "device": "cpu", "passed": ok, "acc_delta": 0.0}
        for label, ok in passed.items()
    ]
    (run_dir / "bench.json").write_text(json.dumps({"inference": cases}))
    (run_dir / "parity.json").write_text(json.dumps({"entries": entries, "reference": {"device": "cpu"}}))


@pytest.mark.parametrize("native_bf16", [True, False])
def test_predict_auto_takes_the_fastest_file_that_passed_verify(run_copy, tmp_path, monkeypatch, native_bf16):
    # Whether this CPU computes bf16 natively is the probe's answer, patched: the test holds on every CPU (it
    # assumed AMX and failed CI on an AVX2-only EPYC).
    import toolkit.core.device as device_mod
    from toolkit.predict import predict

    monkeypatch.setattr(device_mod, "native_half_precisions", lambda d: ("bf16",) if native_bf16 else ())
    test = load_dataset("synthetic", False, None, limit=8)
    _save_test_pngs(test.images, tmp_path / "pngs")
    plain = predict([tmp_path / "pngs"], run_dir=run_copy, top_k=10)  # no bench.json: onnxruntime, and it says why
    assert (plain.runtime, plain.format) == ("onnxruntime", "onnx") and "no readable bench.json" in plain.chosen
    timed = {
        "torchscript/cpu": ("torchscript", "torchscript", 4000.0),  # the fastest, and verify failed it
        "eager[bf16]/cpu": ("eager", "checkpoint-bf16", 1234.0),
        "onnxruntime/cpu": ("onnxruntime", "onnx", 1000.0),
    }
    _bench_and_parity(run_copy, timed, {"torchscript/cpu": False, "eager[bf16]/cpu": True, "onnxruntime/cpu": True})
    r = run("predict", tmp_path / "pngs", "--run", run_copy, "--json")
    if not native_bf16:  # the fastest verified file needs native bf16: one line, no answer from another file
        assert_one_line_error(r, "cpu has no native bf16")
        return
    assert r.exit_code == 0, r.output
    assert "runtime auto: eager[bf16]/cpu is the fastest file that passed verify on the CPU" in r.stderr
    auto = predict([tmp_path / "pngs"], run_dir=run_copy, top_k=10)
    # The format's own options reach the runtime: eager runs under bf16 autocast.
    assert (auto.runtime, auto.format, auto.details["amp"]) == ("eager", "checkpoint-bf16", "bf16")
    for a, b in zip(auto.predictions, plain.predictions, strict=True):  # bf16 moved them by 3e-3 (max) here
        assert max(abs(x - y) for (_, x), (_, y) in zip(sorted(a.top), sorted(b.top), strict=True)) < 0.05


def test_predict_auto_never_follows_bench_json_to_a_file_verify_failed(run_copy, tmp_path):
    from toolkit.predict import predict

    _save_test_pngs(load_dataset("synthetic", False, None, limit=2).images, tmp_path / "pngs")
    timed = {
        "torchscript/cpu": ("torchscript", "torchscript", 4000.0),
        "onnxruntime/cpu": ("onnxruntime", "onnx", 10.0),
    }
    _bench_and_parity(run_copy, timed, {"torchscript/cpu": False, "onnxruntime/cpu": True})
    # bench.json's own recommendation (hand-written, or older than the last verify) names the failed file.
    bench = json.loads((run_copy / "bench.json").read_text())
    bench["recommendation"] = {"target": "torchscript/cpu", "runtime": "torchscript", "format": "torchscript",
                               "device": "cpu", "batch_size": 256, "img_per_s": 4000.0}  # fmt: skip
    (run_copy / "bench.json").write_text(json.dumps(bench))
    chosen = predict([tmp_path / "pngs"], run_dir=run_copy)
    assert (chosen.runtime, chosen.format) == (
        "onnxruntime",
        "onnx",
    ) and "onnxruntime/cpu is the fastest" in chosen.chosen
    _bench_and_parity(run_copy, timed, {"torchscript/cpu": False})  # nothing timed passed: the fp32 ONNX file
    chosen = predict([tmp_path / "pngs"], run_dir=run_copy)
    assert chosen.runtime == "onnxruntime" and "no file that passed verify was timed on the CPU" in chosen.chosen
    # A target timed on another device is not one for predict, which runs on the CPU.
    cuda = json.loads((run_copy / "bench.json").read_text())
    cuda["inference"][1]["device"] = "cuda"
    (run_copy / "bench.json").write_text(json.dumps(cuda))
    assert "no file that passed verify" in predict([tmp_path / "pngs"], run_dir=run_copy).chosen


def test_predict_bad_options(deployed, tmp_path):
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    assert_one_line_error(run("predict", img, "--run", deployed, "--runtime", "tensorrt"), "unknown runtime")
    assert_one_line_error(run("predict", img, "--run", deployed, "--top-k", "11"), "--top-k must be between 1 and 10")
    assert_one_line_error(
        run("predict", img, "--run", deployed, "--runtime", "opencv", "--format", "onnx-int8-dynamic"),
        "opencv does not read onnx-int8-dynamic files",
    )
    assert_one_line_error(run("predict", img, "--run", tmp_path), "manifest.json is missing")


@pytest.mark.parametrize("native", [True, False])
def test_eager_bf16_is_checked_only_where_the_cpu_has_it(run_copy, monkeypatch, native):
    import toolkit.core.device as device_mod
    from toolkit.verify import verify

    monkeypatch.setattr(device_mod, "native_half_precisions", lambda d: ("bf16",) if native and d == "cpu" else ())
    if not native:
        with pytest.raises(ToolkitError, match="nothing to verify.*cpu has no native bf16"):
            verify(run_copy, formats=["checkpoint-bf16"], devices=["cpu"], write=False)
        return
    result = verify(run_copy, formats=["checkpoint-bf16"], devices=["cpu"], write=False)
    (entry,) = result.entries
    assert entry.label == "eager[bf16]/cpu" and entry.precision == "bf16" and entry.details["amp"] == "bf16"
    # bf16 logits differ from fp32 by far more than atol 1e-4; they are gated by accuracy and agreement.
    assert entry.max_abs > 1e-4 and entry.passed == (entry.agreement >= 97 and -entry.acc_delta <= 0.5)


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_any_timing(deployed):
    # --batch-sizes 100000 on the tutorial CNN (76 GiB of activations) ran for minutes, each runtime in turn.
    from toolkit.bench.timing import activation_floor_bytes
    from toolkit.core.machine import available_memory_bytes
    from toolkit.run.checkpoint import load_checkpoint

    floor = activation_floor_bytes(load_checkpoint(deployed))
    assert floor >= 4 * (3 * 32 * 32 + 2 * 32 * 32 * 32)  # the input, and conv1's input and 32-channel output
    batch = 2 * available_memory_bytes() // floor
    started = time.monotonic()
    r = run("bench", deployed, "--batch-sizes", f"1,{batch}", "--no-train")
    assert_one_line_error(r, f"--batch-sizes {batch}: one call needs at least", "use batches up to")
    assert time.monotonic() - started < 60 and not (deployed / "bench.json").exists()


def test_bench_notes_a_file_its_runtime_cannot_run_and_times_the_rest(run_copy):
    (run_copy / "model-int8-dynamic.onnx").write_bytes(b"not onnx any more")
    r = run(
        "bench",
        run_copy,
        "--runtime",
        "onnxruntime",
        "--batch-sizes",
        "1",
        "--rounds",
        "3",
        "--warmup",
        "1",
        "--budget",
        "1",
        "--threads",
        "1",
        "--no-train",
        "--device",
        "cpu",
    )
    assert r.exit_code == 0, r.output
    result = json.loads((run_copy / "bench.json").read_text())
    timed = {c["format"] for c in result["inference"]}
    assert timed == {"onnx", "onnx-int8"}  # fp16 is not timed on the CPU provider, the broken file failed
    assert any(n.startswith("not timed: onnxruntime[int8-dynamic]/cpu") for n in result["notes"])
    assert "not timed: onnxruntime[int8-dynamic]/cpu" in (run_copy / "bench.md").read_text()
    assert "onnxruntime[int8-dynamic]/cpu: not timed: " in r.stdout  # why, as it happens, not "see the notes"

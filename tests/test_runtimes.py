"""One interface test over every runtime x every registry model: the shared contract, checked for all.

The runs (conftest.every_model_exported) hold every fp32 file, PyTorch 2 included, and pte-int8."""

import pytest
import torch

from tests.conftest import AOTI_MODELS
from toolkit.export import export
from toolkit.models import list_models
from toolkit.targets.formats import primary_format
from toolkit.targets.runtimes import RUNTIMES, open_runtime, runtime_class


@pytest.fixture(scope="module")
def exported(every_model_exported):
    return every_model_exported


# OpenVINO 2026.4's CPU plugin moves this one-step fast-cnn's logits by ~8e-4 (measured; the gap opens at the
# first MaxPool -> BatchNorm -> GELU, which alone it computes exactly; the trained fast-cnn passes verify at
# 1e-5). Here it must stay within this bound, with the same top-1 classes; docs/guide.md says so.
KNOWN_DEVIATION = {("openvino", "fast-cnn"): 3e-3}


@pytest.mark.parametrize(
    ("runtime", "model"),
    [(r, m) for r in RUNTIMES for m in list_models() if r != "aoti" or m in AOTI_MODELS],
)
def test_runtime_interface(exported, runtime, model):
    """Every registry model's default export through every installed runtime, against the trained model."""
    why = runtime_class(runtime).unavailable_reason("cpu")
    if why:
        pytest.skip(why)
    runs, trained = exported
    rt = open_runtime(runtime, runs[model] / primary_format(runtime).filename, "cpu", threads=1)
    x = torch.randn(3, 3, 32, 32)
    out = rt.run(x)
    assert out.shape == (3, 10) and out.dtype == torch.float32 and out.device.type == "cpu"
    with torch.no_grad():
        ref = trained[model](x)
    atol = KNOWN_DEVIATION.get((runtime, model), 1e-4)
    assert torch.allclose(out, ref, atol=atol, rtol=1e-4)
    assert torch.equal(out.argmax(1), ref.argmax(1))
    info = rt.describe()
    assert info["runtime"] == runtime == rt.name and info["device"] == "cpu" and info["threads"] == 1
    assert info["provider"] and rt.label == f"{runtime}/cpu"


@pytest.mark.parametrize("model", list_models())
def test_legacy_onnx_exporter_works_for_every_model(exported, model, tmp_path):
    result = export(exported[0][model], ("onnx",), exporter="torchscript")
    assert result.checks["onnx"]["batch_sizes"] == [1, 7, 256]
    assert result.manifest["files"]["model.onnx"]["exporter"] == "torchscript"


def test_missing_provider_is_reported_not_faked():
    import onnxruntime

    cls = runtime_class("onnxruntime")
    assert cls.unavailable_reason("cpu") is None
    assert "no provider" in cls.unavailable_reason("mps")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert "[gpu]" in cls.unavailable_reason("cuda")
    assert runtime_class("torchscript").unavailable_reason("mps") == "torchscript has no mps support"

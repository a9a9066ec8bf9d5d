"""One interface test over every runtime x every registry model: the shared contract, checked for all."""

import pytest
import torch

from tests.helpers import TINY
from toolkit.export import export
from toolkit.models import list_models
from toolkit.targets.formats import primary_format
from toolkit.targets.runtimes import RUNTIMES, open_runtime, runtime_class
from toolkit.train import train


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every registry model trained for one step and exported to every format (dynamo ONNX).

    The reference is the model object training returned, never re-read from the checkpoint: the eager
    runtime is checked against it too, so a checkpoint that saves or loads the wrong weights fails here.
    """
    out = tmp_path_factory.mktemp("runs")
    runs, trained = {}, {}
    for name in list_models():
        result = train(model=name, out=str(out), run_name=name, **TINY)
        export(result.run_dir)
        runs[name], trained[name] = result.run_dir, result.model.cpu().eval()
    return runs, trained


# OpenVINO 2026.4's CPU plugin moves this one-step fast-cnn's logits by ~8e-4 (measured; the gap opens at the
# first MaxPool -> BatchNorm -> GELU, which alone it computes exactly; the trained fast-cnn passes verify at
# 1e-5). Here it must stay within this bound, with the same top-1 classes; the README says so.
KNOWN_DEVIATION = {("openvino", "fast-cnn"): 3e-3}


@pytest.mark.parametrize("model", list_models())
@pytest.mark.parametrize("runtime", RUNTIMES)
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

"""A subset of the foreign-model conformance table (benchmarks/conformance.py) on every CI run: torchvision
networks nobody here wrote, trained a few steps, exported format by format and verified on every runtime."""

import pytest

from toolkit.experiments.conformance import cell_text, conformance

pytest.importorskip("torchvision")


@pytest.mark.parametrize(
    "model, size, formats",
    [
        ("squeezenet1_1", 32, "torchscript,onnx,pt2"),  # ceil-mode max-pools, concatenating fire modules
        ("shufflenet_v2_x0_5", 64, "onnx"),  # channel shuffle (reshape/transpose), strided depthwise convs
    ],
)
def test_foreign_models_export_and_pass_verify_on_every_runtime(tmp_path, model, size, formats):
    result = conformance(f"torchvision.models:{model}", size, tmp_path, formats=formats, limit=64, train_images=128,
                         epochs=1)  # fmt: skip
    assert result.exported == dict.fromkeys(formats.split(","), "ok"), result.exported
    runtimes = {(c["format"], c["runtime"]) for c in result.cells}
    expected = {"torchscript": {"torchscript"}, "onnx": {"onnxruntime", "openvino", "opencv"},
                "pt2": {"torch-export"}}  # fmt: skip
    for fmt in formats.split(","):
        assert {rt for f, rt in runtimes if f == fmt} >= expected[fmt], runtimes
    failed = [f"{c['format']}/{c['runtime']}: {cell_text(c)}" for c in result.cells if not c["passed"]]
    assert not failed, failed
    assert all(c["max_abs"] is not None for c in result.cells)

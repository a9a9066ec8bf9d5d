"""Adding a format is its writer and one registry line: a format defined here, in the test, with an option of
its own, is listed by `toolkit formats`, takes its option on `toolkit export` (and in `--help`), is planned,
verified and timed like the registry's own, with nothing else in the toolkit edited."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from tests.helpers import tiny_run
from toolkit.cli import app
from toolkit.run.folder import BENCH, MANIFEST, PARITY
from toolkit.targets.formats import FORMATS, Format, WriterOption, register_format
from toolkit.targets.plan import plan

runner = CliRunner()
NAME, FILE = "onnx-legacy", "model-legacy.onnx"
LEGACY_OPSET = WriterOption("legacy_opset", int, 17, "opset of the TorchScript-based ONNX exporter")


def write(model, example, path: Path, ckpt: dict, *, legacy_opset: int = 17, **_: Any) -> dict[str, Any]:
    """The writer: torch.onnx's TorchScript-based exporter at an opset of the user's choosing."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=legacy_opset,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})  # fmt: skip
    return {"opset": legacy_opset}


@pytest.fixture
def legacy_format():
    """The one registry line, undone after the test."""
    register_format(Format(NAME, FILE, f"{__name__}:write", ("onnxruntime",), writer_options=(LEGACY_OPSET,)))
    yield
    del FORMATS[NAME]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_a_format_defined_here_is_listed_written_planned_verified_and_timed(legacy_format, tmp_path):
    r = run("formats")
    assert r.exit_code == 0 and NAME in r.stdout and FILE in r.stdout, r.output
    r = run("export", "--help")
    assert "--legacy-opset" in r.stdout and f"{NAME}: opset of the TorchScript-based ONNX exporter [17]" in " ".join(
        r.stdout.split()
    )
    assert NAME in r.stdout  # in --format's list
    run_dir = tiny_run(tmp_path, "tutorial-cnn")
    r = run("export", run_dir, "--format", NAME, "--legacy-opset", "x")  # parsed as the option's type
    assert r.exit_code == 2 and "Invalid value for '--legacy-opset'" in r.output
    r = run("export", run_dir, "--format", NAME, "--legacy-opset", "16")
    assert r.exit_code == 0, r.output
    entry = json.loads((run_dir / MANIFEST).read_text())["files"][FILE]
    assert entry["format"] == NAME and entry["opset"] == 16  # the option reached the writer
    assert [t.label for t in plan(run_dir, [NAME]).targets] == ["onnxruntime[legacy]/cpu"]
    r = run("verify", run_dir, "--format", NAME, "--limit", "64")
    assert r.exit_code == 0, r.output
    (entry,) = json.loads((run_dir / PARITY).read_text())["entries"]
    assert (entry["format"], entry["passed"]) == (NAME, True)
    r = run("bench", run_dir, "--format", NAME, "--no-train", "--batch-sizes", "1,4", "--rounds", "2",
            "--warmup", "1", "--budget", "0.2", "--threads", "1", "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    eager, case = json.loads((run_dir / BENCH).read_text())["inference"]  # eager fp32: what it is compared with
    assert eager["format"] == "checkpoint" and case["format"] == NAME
    assert [x["batch_size"] for x in case["results"]] == [1, 4]
    assert "onnxruntime[legacy]/cpu" in json.loads((run_dir / BENCH).read_text())["recommendation"]["target"]


def test_an_option_no_format_declares_is_refused(tmp_path):
    from toolkit.core.errors import ConfigError
    from toolkit.export import export

    with pytest.raises(ConfigError, match="unknown export option 'legacy_opset'"):
        export(tmp_path, "onnx", legacy_opset=17)  # its format is not registered here
    with pytest.raises(ConfigError, match="--opset takes int values"):
        export(tmp_path, "onnx", opset="20")

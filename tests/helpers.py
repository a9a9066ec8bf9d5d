"""Small trained runs for export/verify/bench tests: one step on a synthetic set, in seconds."""

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from toolkit.train import train

# Cases that need a machine without CUDA (on a GPU machine, "--device cuda" is a valid choice).
NO_CUDA_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
TINY = dict(dataset="synthetic", limit_train=32, limit_test=64, batch_size=32, eval_batch_size=64, epochs=1)


def tiny_run(out: Path, model: str = "resnet20", name: str | None = None) -> Path:
    name = name or model
    train(model=model, out=str(out), run_name=name, **TINY)
    return Path(out) / name


@contextlib.contextmanager
def unwritable(folder: Path):
    """Make `folder` unwritable even for root (chattr +i); skip the test where that cannot be done."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        undo = ["chattr", "-i", str(folder)]  # root ignores mode bits, not the immutable attribute
    else:
        pytest.skip("cannot make a folder unwritable here (root without chattr)")
    try:
        yield folder
    finally:
        subprocess.run(undo, capture_output=True)


def kill_self(spec, queue):
    """A benchmark worker that dies the way the OOM killer ends a process."""
    os.kill(os.getpid(), signal.SIGKILL)


def report_and_exit(spec, queue):
    queue.put(("ok", {"value": spec["value"]}))


class SegfaultRuntime:
    """A runtime whose native code crashes: what verify and export must survive (loaded by import path)."""

    name = "segfault"

    def __init__(self, path, device="cpu", threads=None):
        self.path = path

    def run(self, x):
        os.kill(os.getpid(), signal.SIGSEGV)


def exported_tiny_run(folder: Path, model: str, *export_args: str) -> Path:
    """tiny_run, then `toolkit export` through the CLI (fp32 files unless `export_args` say otherwise)."""
    from typer.testing import CliRunner

    from toolkit.cli import app

    run_dir = tiny_run(folder, model)
    r = CliRunner().invoke(app, ["export", str(run_dir), *export_args])
    assert r.exit_code == 0, r.output
    return run_dir


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    """A private copy of a module-scoped run folder, for a test that damages it."""
    import shutil

    dest = tmp_path / "run"
    shutil.copytree(run_dir, dest)
    return dest


def tamper_int8_scale(path: Path, scale: float = 1e6) -> None:
    """Point the last DequantizeLinear of an INT8 ONNX file at a new scale (the red team's first forgery)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    node = [n for n in model.graph.node if n.op_type == "DequantizeLinear"][-1]
    old = next(i for i in model.graph.initializer if i.name == node.input[1])
    forged = numpy_helper.from_array(np.full_like(numpy_helper.to_array(old), scale), name=old.name + "_forged")
    model.graph.initializer.append(forged)
    node.input[1] = forged.name
    onnx.save(model, str(path))


def tamper_largest_initializer(path: Path, factor: float = 1.05) -> None:
    """Scale the largest weight tensor of an ONNX file by `factor`, keeping its dtype (fp16 stays fp16)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    largest = max(model.graph.initializer, key=lambda i: numpy_helper.to_array(i).size)
    array = numpy_helper.to_array(largest)
    largest.CopyFrom(numpy_helper.from_array((array * factor).astype(array.dtype), name=largest.name))
    onnx.save(model, str(path))

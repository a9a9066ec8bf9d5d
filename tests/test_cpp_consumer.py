"""The files work outside Python: a C++ program built against the libtorch inside the torch wheel loads model.ts
(torch::jit::load) and the AOTInductor package (AOTIModelPackageLoader), runs CIFAR test images read from a
binary file, and its logits match eager PyTorch's. Skipped, with a note, where there is no C++ compiler."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from toolkit.data import TensorLoader, load_dataset
from toolkit.run.checkpoint import load_checkpoint, model_from_checkpoint

SOURCE = Path(__file__).parent / "cpp" / "consumer.cpp"
CXX = shutil.which("g++") or shutil.which("c++")


@pytest.fixture(scope="module")
def consumer(tmp_path_factory) -> Path:
    if CXX is None:
        pytest.skip("no C++ compiler (g++): the C++ consumer is not built here")
    from torch.utils.cpp_extension import include_paths, library_paths

    exe = tmp_path_factory.mktemp("cpp") / "consumer"
    libs = library_paths()
    cmd = [CXX, "-std=c++20", "-O1", str(SOURCE), "-o", str(exe)]
    cmd += [f"-I{p}" for p in include_paths()]
    cmd += [f"-D_GLIBCXX_USE_CXX11_ABI={int(torch.compiled_with_cxx11_abi())}"]
    cmd += [f"-L{p}" for p in libs] + [f"-Wl,-rpath,{p}" for p in libs]
    cmd += ["-ltorch", "-ltorch_cpu", "-lc10"]
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    return exe


@pytest.mark.real_data
def test_a_cpp_program_loads_torchscript_and_aoti_and_matches_eager(
    consumer, every_model_exported, real_cifar_dir, tmp_path
):
    run_dir = every_model_exported[0]["resnet20"]
    ckpt = load_checkpoint(run_dir)
    test = load_dataset("cifar10", False, str(real_cifar_dir), limit=100, download=False)
    loader = TensorLoader(test, 100, mean=tuple(ckpt["input"]["mean"]), std=tuple(ckpt["input"]["std"]))
    x = next(iter(loader.epoch(0)))[0].contiguous()
    inputs = tmp_path / "inputs.bin"
    x.numpy().astype(np.float32).tofile(inputs)
    out_ts, out_aoti = tmp_path / "ts.bin", tmp_path / "aoti.bin"
    r = subprocess.run(
        [consumer, run_dir / "model.ts", run_dir / "model-aoti.pt2", inputs, *map(str, x.shape), out_ts, out_aoti],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and r.stdout.strip() == f"ok {len(x)} images", r.stderr[-2000:]
    with torch.no_grad():
        ref = model_from_checkpoint(ckpt)(x)
    for path in (out_ts, out_aoti):
        got = torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(ref.shape))
        assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4), (path.name, float((got - ref).abs().max()))
        assert torch.equal(got.argmax(1), ref.argmax(1))

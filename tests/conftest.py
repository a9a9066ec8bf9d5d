"""Shared fixtures: a real CIFAR-10 folder when one can be had, and small official-layout fakes."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHARED_BUILD = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "build.py"


@pytest.fixture(scope="session", autouse=True)
def speed_cache(tmp_path_factory) -> Path:
    """The speed policy's cache (toolkit/train/speed.py) in a folder of the session's own, for every test and
    every CLI it starts: a user's cached decisions never steer a test, and tests never write into them."""
    folder = tmp_path_factory.mktemp("speed-cache")
    os.environ["TOOLKIT_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture(autouse=True)
def no_trusted_models(monkeypatch):
    """Factories a test named (models/external.trust sets an environment variable) are forgotten after it."""
    from toolkit.models.external import TRUST_ENV

    monkeypatch.setenv(TRUST_ENV, "")


@pytest.fixture(scope="session")
def real_cifar_dir(tmp_path_factory) -> Path:
    """A folder holding cifar-10-batches-py/: $TOOLKIT_TEST_DATA, else rebuilt from ../shared, else skip."""
    given = os.environ.get("TOOLKIT_TEST_DATA")
    if given and (Path(given) / "cifar-10-batches-py" / "batches.meta").is_file():
        return Path(given)
    if not SHARED_BUILD.is_file():
        pytest.skip("real CIFAR-10 unavailable: set TOOLKIT_TEST_DATA or place ../shared beside the repo")
    dest = tmp_path_factory.mktemp("cifar10")
    subprocess.run([sys.executable, str(SHARED_BUILD), str(dest)], check=True, capture_output=True)
    return dest


def write_pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def make_batch(rows: int, seed: int = 0, num_classes: int = 10) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "batch_label": "fake",
        "labels": rng.integers(0, num_classes, rows).tolist(),
        "data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8),
    }


@pytest.fixture
def fake_cifar(tmp_path) -> Path:
    """An official-layout cifar-10-batches-py/ with a full-size (10,000-row) test batch only."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    write_pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": 10000})
    write_pickle(folder / "test_batch", make_batch(10_000))
    return folder


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server (tests/postgres.py): {"url", "version"}; skipped where none can be started."""
    from tests.postgres import postgres_server

    yield from postgres_server()


@pytest.fixture(scope="session")
def deployed(tmp_path_factory):
    """A tiny tutorial-CNN run exported to TorchScript and every ONNX file, the low-precision ones through the CLI
    (the PyTorch 2 files of every model: `every_model_exported`). Shared by test_deploy and test_trust: a test
    that damages it works on a copy (`run_copy`)."""
    from tests.helpers import exported_tiny_run

    return exported_tiny_run(
        tmp_path_factory.mktemp("runs"), "tutorial-cnn", "--format", ONNX_AND_TORCHSCRIPT, "--calibration-images", "64"
    )


ONNX_AND_TORCHSCRIPT = "torchscript,onnx,onnx-int8,onnx-int8-dynamic,onnx-fp16"


EXPORT_ORDER = ("resnet56", "resnet18", "fast-cnn", "tutorial-cnn", "resnet20")  # a model not listed goes first


# AOTInductor compiles C++ for each model (20-40 s on one core): two models of different kinds carry its
# runtime contract (resnet20: residual blocks; fast-cnn: GELU, max-pooling, whitening), not all five. The
# conformance table (benchmarks/conformance.py) compiles it for every model.
AOTI_MODELS = ("resnet20", "fast-cnn")


def _export_every_format(run_dir: Path) -> None:
    """Every fp32 format (AOTInductor for AOTI_MODELS only), and pte-int8 where ExecuTorch is installed
    (without it, its tests skip)."""
    import torch

    from toolkit.export import export

    # Two of these run side by side on the 2 cores: one thread each instead of two each (oversubscribed) made
    # a pair of exports 18 % faster (103 -> 85 s, resnet20 + fast-cnn).
    torch.set_num_threads(1)
    from toolkit.targets.formats import FORMATS, format_sets

    fp32 = format_sets()["fp32"]
    export(run_dir, fp32 if run_dir.name in AOTI_MODELS else tuple(f for f in fp32 if f != "aoti"))
    if not FORMATS["pte-int8"].missing():
        export(run_dir, ("pte-int8",), calibration_images=32)


@pytest.fixture(scope="session")
def every_model_exported(tmp_path_factory):
    """Every registry model trained for one step and exported to every fp32 format and pte-int8: ({model: run
    folder}, {model: the trained module}). Once per session: AOTInductor compiles C++ for each model.

    The reference is the model object training returned, never re-read from the checkpoint: the eager
    runtime is checked against it too, so a checkpoint that saves or loads the wrong weights fails here.
    """
    from tests.helpers import TINY
    from toolkit.models import list_models
    from toolkit.train import train

    out = tmp_path_factory.mktemp("every-model")
    runs, trained = {}, {}
    for name in list_models():
        result = train(model=name, out=str(out), run_name=name, **TINY)
        runs[name], trained[name] = result.run_dir, result.model.cpu().eval()
    # Compiling C++ and lowering graphs run on one core each: two models at a time halve the wait on 2 cores.
    # Longest first, so the two workers end together (export times here: resnet56 and resnet18 ~105 s,
    # fast-cnn ~95, tutorial-cnn ~78, resnet20 ~70; in registry order the last model ran alone).
    longest_first = sorted(runs, key=lambda m: EXPORT_ORDER.index(m) if m in EXPORT_ORDER else -1)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_export_every_format, [runs[m] for m in longest_first]))
    return runs, trained


@pytest.fixture
def run_copy(deployed, tmp_path):
    """A private copy of `deployed`, for a test that damages it."""
    from tests.helpers import copy_run

    return copy_run(deployed, tmp_path)


# The fast lane, `pytest -m "not slow"` (README): what a contributor runs between edits. Slow are the tests that
# need a session-wide export of many files, a real server or browser, or train and export for long; each stage
# keeps fast tests of its own in the lane.
SLOW_FIXTURES = {"every_model_exported", "deployed", "run_copy", "reported", "page_in_chromium", "postgres"}
SLOW_MODULES = {
    "test_sweep.py", "test_conformance.py", "test_recipes.py", "test_distributed.py", "test_cpp_consumer.py",
    "test_reproduce.py", "test_new_format.py",
}  # fmt: skip


# Each over 5 s in the lane on the 2-core AVX2 EPYC (`pytest -m "not slow" --durations=40`, 2026-12-08).
SLOW_TESTS = {
    "test_bench_writes_reports", "test_verify_survives_a_runtime_crash", "test_a_factory_model_goes_through_the_whole_flow",
    "test_the_one_import_api", "test_an_honest_fp32_file_with_large_logits_passes_and_a_forged_one_fails",
    "test_quantizing_prints_no_raw_library_warnings", "test_quantizing_needs_the_fp32_onnx_and_the_data",
    "test_time_to_accuracy_counts_training_time_only", "test_export_removes_what_a_killed_export_left",
    "test_a_model_trained_on_an_image_folder_predicts_its_pngs_as_eager_does",
    "test_bf16_channels_last_are_recorded_and_export", "test_the_peak_is_the_fastest_gemm_of_every_installed_engine",
    "test_a_checkpoint_naming_os_system_runs_nothing", "test_a_plugin_adds_a_named_model_with_its_recipe",
    "test_two_runs_started_together_into_one_folder", "test_fp16_uses_a_grad_scaler_that_resumes",
    "test_images_of_any_size_are_centre_cropped_to_image_size_and_predict_does_the_same",
}  # fmt: skip


def pytest_collection_modifyitems(config, items):
    for item in items:
        slow_fixture = SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
        if slow_fixture or item.path.name in SLOW_MODULES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)

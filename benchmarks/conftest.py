"""Benchmarks run only under `pytest --benchmark-only`; a plain `pytest` skips them to stay fast.

Also: machine facts (CPU model and flags, threads, GPU, versions, onnxruntime providers) go into
pytest-benchmark's machine_info, and onnxruntime cases run last, because its spinning worker threads
slow the PyTorch cases that would otherwise run after them in this one process.
"""

import pytest


def pytest_collection_modifyitems(config, items):
    here = str(config.rootpath / "benchmarks")
    if not config.getoption("benchmark_only", default=False):
        skip = pytest.mark.skip(reason="benchmark: run with pytest --benchmark-only")
        for item in items:
            if str(item.fspath).startswith(here):
                item.add_marker(skip)
        return
    items.sort(key=lambda item: "onnxruntime" in item.nodeid)  # stable: keeps the order otherwise


def pytest_benchmark_update_machine_info(config, machine_info):
    import torch

    from toolkit.core.machine import machine_info as facts

    machine_info["toolkit"] = facts()
    machine_info["torch_threads"] = torch.get_num_threads()

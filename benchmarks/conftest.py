"""Benchmarks run only under `pytest --benchmark-only`; a plain `pytest` skips them to stay fast."""

import pytest


def pytest_collection_modifyitems(config, items):
    if config.getoption("benchmark_only", default=False):
        return
    skip = pytest.mark.skip(reason="benchmark: run with pytest --benchmark-only")
    here = str(config.rootpath / "benchmarks")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)

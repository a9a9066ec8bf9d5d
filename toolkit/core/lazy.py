"""Names resolved on first use: the registries name their writers, readers and runtimes by import string, and
the packages load their heavy modules only when something in them is used (PEP 562)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def load_object(target: str) -> Any:
    """The object a "module:attribute" string names (the module itself for "module")."""
    module, _, attr = target.partition(":")
    value = importlib.import_module(module)
    return getattr(value, attr) if attr else value


def lazy_attributes(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that loads each of `names` ("module:attribute" or "module") when first asked."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return load_object(names[name])

    return __getattr__

"""Let a stage package be called as its entry function: `toolkit.train(...)` is `toolkit.train.train(...)`.

Each stage is a package (toolkit/train/, toolkit/export/, toolkit/verify/) and also the one-import API's
verb. Once Python imports the package it sets `toolkit.train` to the module, hiding a function of that
name, so the module itself is made callable instead (module __class__ assignment, Python >= 3.5).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    module = sys.modules[module_name]

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    CallableModule.__call__.__doc__ = function.__doc__
    module.__class__ = CallableModule

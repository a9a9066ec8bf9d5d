"""Verify: every exported runtime x device against eager fp32 on the test set; a result object and a verdict.

`toolkit.verify(...)` calls `verify` below (see core/callable_module.py).
"""

from toolkit.core.callable_module import make_callable
from toolkit.verify.parity import ParityResult, RuntimeParity, Thresholds, verify

__all__ = ["ParityResult", "RuntimeParity", "Thresholds", "verify"]

make_callable(__name__, verify)

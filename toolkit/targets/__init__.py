"""Targets: which file runs in which runtime on which device, and what it must reproduce.

formats.py and runtimes.py are the registries (one line per format, one per runtime); gates.py holds what
each precision promises; plan.py decides what runs and what is skipped and why; child.py runs a runtime in
a process of its own. export, verify, bench and predict take all of this from here.
"""

from toolkit.targets.formats import (
    DEFAULT_FORMATS,
    EXPORT_FORMATS,
    FORMAT_SETS,
    FORMATS,
    Format,
    expand_formats,
    primary_format,
    target_label,
)
from toolkit.targets.gates import Thresholds
from toolkit.targets.plan import Plan, Target, plan
from toolkit.targets.runtimes import RUNTIMES, open_runtime, runtime_class

__all__ = [
    "DEFAULT_FORMATS",
    "EXPORT_FORMATS",
    "FORMATS",
    "FORMAT_SETS",
    "RUNTIMES",
    "Format",
    "Plan",
    "Target",
    "Thresholds",
    "expand_formats",
    "open_runtime",
    "plan",
    "primary_format",
    "runtime_class",
    "target_label",
]

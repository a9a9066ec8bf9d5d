"""Runtimes: one small class per runtime behind base.Runtime, heavy imports inside it.

Which runtime loads which file is declared once, in targets/formats.py (one line per format); the runtimes
are registered in targets/runtimes.py (one line each).
"""

from toolkit.runtimes.base import Runtime

__all__ = ["Runtime"]

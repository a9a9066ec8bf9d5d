"""Runtimes: one small class per runtime behind base.Runtime, heavy imports inside it.

Which runtime loads which file is declared once, in export/formats.py (one line per format).
"""

from toolkit.runtimes.base import Runtime

__all__ = ["Runtime"]

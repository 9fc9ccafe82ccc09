"""Diagnostics as separate check objects: ``Check().run(...)`` returns self with
``table_``, ``warnings_``, ``passed_`` and ``to_checks()`` (figures for ``Diagnostics.checks``).
"""

from roi.checks.balance import BalanceCheck
from roi.checks.overlap import OverlapCheck

__all__ = ["BalanceCheck", "OverlapCheck"]

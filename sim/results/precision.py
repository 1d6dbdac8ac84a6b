"""How many decimals a value is shown with in CSV and Excel exports, by its unit.

Why: the engines compute expectations (a stock-flow run gives 73,451.2371...), and a
file with 11 decimals claims a precision no projection has and is hard to read.  The
NetCDF files keep every digit (they are the record); the tables people open are
rounded here, by one rule for every export.
"""

from __future__ import annotations

import numpy as np

# unit prefix -> decimals (first match wins; the results schema's units)
DECIMALS: tuple[tuple[str, int], ...] = (
    ("children", 1),  # counts of children and children per year: expectations
    ("GBP", 0),  # whole pounds
    ("months", 2),
    ("ratio", 4),  # price index
)
DEFAULT_DECIMALS = 4


def decimals(unit: str) -> int:
    """Decimals shown for a value in ``unit`` (see :data:`DECIMALS`)."""
    for prefix, places in DECIMALS:
        if unit.startswith(prefix):
            return places
    return DEFAULT_DECIMALS


def rounded(values: np.ndarray, unit: str) -> np.ndarray:
    """``values`` rounded for display (NaN stays NaN; -0.0 becomes 0.0)."""
    out = np.round(np.asarray(values, dtype=float), decimals(unit))
    return out + 0.0

"""The description of one scenario key (kept import-free so model modules can declare
their own scenario sections next to the code that uses them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Field:
    """One scenario key.  ``kind`` is one of int, float, str, bool, prob, or a tuple of
    allowed strings; ``estimate_ok`` lets the value be the string "estimate"."""

    kind: Any
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    estimate_ok: bool = False
    is_list: bool = False

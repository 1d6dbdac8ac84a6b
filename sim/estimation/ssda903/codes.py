"""The SSDA903 code lists and what each code means to the model.

Why a data file (``sim/data/ssda903_reason_codes.csv``) and not code: which REC codes
count as "returned home" or "adoption" is data knowledge, like ``ROUTE_MEASURES`` for the
published aggregates, and it must be readable (and arguable) without reading Python.
Each row is ``field, code, meaning, maps_to, notes``:

* ``REC`` rows map a reason an episode ceased to a model exit route (``spec.EXIT_ROUTES``)
  or ``continues`` (``X1``: a new episode starts the same day, the period goes on);
* ``RNE`` rows say whether a reason for a new episode starts a period (``new_period``:
  ``S``) or continues one;
* ``LS`` rows list legal statuses; ``short_break`` marks those DfE's headline counts leave
  out (episodes under them are excluded from estimation, and counted);
* ``PLACE`` rows map a placement type to a model placement (``spec.PLACEMENTS``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sim.datasets import DATA_DIR
from sim.model import spec

CODES_FILE = "ssda903_reason_codes.csv"
FIELDS = ("REC", "RNE", "LS", "PLACE")
CONTINUES = "continues"
NEW_PERIOD = "new_period"
SHORT_BREAK = "short_break"


@dataclass(frozen=True)
class CodeLists:
    """Code -> model meaning, one dict per field."""

    rec: dict[str, str]
    rne: dict[str, str]
    ls: dict[str, str]
    place: dict[str, str]

    def known(self, field: str) -> dict[str, str]:
        return {"REC": self.rec, "RNE": self.rne, "LS": self.ls, "PLACE": self.place}[field]


@lru_cache(maxsize=4)
def load_codes(data_dir: Path | None = None) -> CodeLists:
    """Read the code lists; a mapping onto a route or placement the model does not have
    is a bug in the shipped file (ValueError), not bad user input."""
    path = (DATA_DIR if data_dir is None else Path(data_dir)) / CODES_FILE
    tables: dict[str, dict[str, str]] = {f: {} for f in FIELDS}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            tables[row["field"]][row["code"].strip().upper()] = row["maps_to"].strip()
    valid = {"REC": {*spec.EXIT_ROUTES, CONTINUES}, "RNE": {NEW_PERIOD, CONTINUES},
             "LS": {"", SHORT_BREAK}, "PLACE": set(spec.PLACEMENTS)}
    for field, table in tables.items():
        wrong = {c: m for c, m in table.items() if m not in valid[field]}
        if wrong:
            raise ValueError(f"{path}: {field} codes map to unknown model names: {wrong}")
    return CodeLists(tables["REC"], tables["RNE"], tables["LS"], tables["PLACE"])

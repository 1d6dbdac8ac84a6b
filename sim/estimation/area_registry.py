"""The local authorities cicsim knows: codes, names, regions, boundary changes, pathfinders.

Why a registry file and not the data's own columns: the published files name an
authority by three keys that drift (ONS code, DfE 3-digit ``old_la_code``, name
spellings such as "St. Helens" / "St Helens"), and some authorities changed boundaries
inside the data's span.  ``sim/data/areas.csv`` fixes one row per authority on
31 March 2022 boundaries (152, the Isles of Scilly and the City of London included):
the ONS code in force then, the DfE code the data are joined on (it survives ONS
re-codings such as Gateshead's E08000020 -> E08000037), the name, the region, other
ONS codes and aliases accepted by :func:`resolve_areas`, and for a successor authority
its predecessors and the first year it publishes its own figures (docs/areas.md,
"Boundary changes").

Region membership: the ONS region of each authority (classification, no figure).
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sim.datasets import DATA_DIR
from sim.errors import InputError

REGISTRY_FILE = "areas.csv"
PATHFINDER_FILE = "pathfinders.csv"
FAMILIES_FIRST = "Families First for Children pathfinder"


@dataclass(frozen=True)
class Area:
    """One geography a run can be made for: England or a local authority."""

    code: str  # ONS code in force on 31 March 2022, e.g. "E08000031"; England "E92000001"
    dfe_code: str  # DfE 3-digit old_la_code; "" for England
    name: str
    region: str  # ONS region name; "" for England


ENGLAND = Area(code="E92000001", dfe_code="", name="England", region="")


@dataclass(frozen=True)
class AreaRecord:
    """A registry row: the :class:`Area` plus what joining its data needs."""

    area: Area
    other_codes: tuple[str, ...]
    aliases: tuple[str, ...]
    predecessors: tuple[str, ...]  # DfE codes of the authorities it was formed from
    first_own_year: int | None  # first year ending 31 March it publishes itself


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(";") if part.strip())


@cache
def _registry(data_dir: Path) -> tuple[AreaRecord, ...]:
    path = data_dir / REGISTRY_FILE
    if not path.exists():
        raise InputError(f"{path}: area registry is missing")
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return tuple(
        AreaRecord(area=Area(code=r["code"], dfe_code=r["dfe_code"], name=r["name"],
                             region=r["region"]),
                   other_codes=_split(r["other_codes"]), aliases=_split(r["aliases"]),
                   predecessors=_split(r["predecessors"]),
                   first_own_year=int(r["first_own_year"]) if r["first_own_year"] else None)
        for r in rows)


def registry(data_dir: Path | None = None) -> tuple[AreaRecord, ...]:
    """Every current authority (2022 boundaries), in DfE-code order."""
    return _registry(DATA_DIR if data_dir is None else Path(data_dir))


def all_areas(data_dir: Path | None = None) -> list[Area]:
    return [record.area for record in registry(data_dir)]


def record_of(area: Area, data_dir: Path | None = None) -> AreaRecord:
    for record in registry(data_dir):
        if record.area == area:
            return record
    raise InputError(f"sim/data/{REGISTRY_FILE}: no authority {area.code} ({area.name})")


def _lookup(data_dir: Path | None) -> dict[str, list[Area]]:
    """Lower-cased code, DfE code, name, alias or region -> areas."""
    table: dict[str, list[Area]] = {"england": [ENGLAND], ENGLAND.code.lower(): [ENGLAND]}
    for record in registry(data_dir):
        area = record.area
        for key in (area.code, area.dfe_code, area.name, *record.other_codes,
                    *record.aliases):
            table.setdefault(key.lower(), []).append(area)
        table.setdefault(area.region.lower(), []).append(area)
    return table


def resolve_areas(selector: str = "england", data_dir: Path | None = None) -> list[Area]:
    """The areas a selector names, in the order given (duplicates dropped).

    ``selector`` is ``england`` (the default), one authority by ONS code, DfE 3-digit
    code or name (case-insensitive), a region name, ``pathfinders`` (the confirmed
    Families First for Children pathfinders), ``all`` (every authority, 2022
    boundaries), or a comma-separated list of these.  Anything unknown is an
    :class:`InputError` naming it, with close matches suggested.
    """
    table = _lookup(data_dir)
    out: list[Area] = []
    parts = [part.strip() for part in selector.split(",")]
    if not any(parts):
        raise InputError("--area: empty area selector")
    for part in parts:
        key = part.lower()
        if key == "all":
            found = all_areas(data_dir)
        elif key == "pathfinders":
            found = [area for area, _, _ in pathfinder_areas(data_dir=data_dir)]
        elif key in table:
            found = table[key]
        else:
            names = sorted({k for k in table if not k[:1].isdigit()} | {"all", "pathfinders"})
            close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else (
                "; use an ONS code, a DfE 3-digit code, a name, a region, 'pathfinders', "
                "'all' or 'england'")
            raise InputError(f"--area: unknown area '{part}' (sim/data/{REGISTRY_FILE})"
                             f"{hint}")
        out.extend(area for area in found if area not in out)
    return out


def pathfinder_areas(programme: str = FAMILIES_FIRST,
                     data_dir: Path | None = None) -> list[tuple[Area, int, str]]:
    """``(area, wave, start)`` for each *confirmed* authority of ``programme`` in
    ``sim/data/pathfinders.csv`` (start is ``YYYY-MM``).  Rows whose authority is not
    yet known (``status`` "not known") are left out; they are listed in the file."""
    directory = DATA_DIR if data_dir is None else Path(data_dir)
    path = directory / PATHFINDER_FILE
    if not path.exists():
        raise InputError(f"{path}: pathfinder list is missing")
    with open(path, encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["programme"] == programme]
    if not rows:
        raise InputError(f"{path}: no rows for programme '{programme}'")
    by_code = {record.area.code: record.area for record in registry(data_dir)}
    out = []
    for row in rows:
        if not row["status"].startswith("confirmed"):
            continue
        if row["la_code"] not in by_code:
            raise InputError(f"{path}: la_code '{row['la_code']}' ({row['la_name']}) is "
                             f"not in sim/data/{REGISTRY_FILE}")
        out.append((by_code[row["la_code"]], int(row["wave"]), row["start"]))
    return out

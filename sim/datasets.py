"""Read the shipped official figures (``sim/data``) into one national lookup.

Why one access point: calibration and backtests must prove that nothing after the
base year is read.  Every figure the model estimates from passes through
:func:`load_observed`, which drops rows after ``max_year`` *at read time*, so later
data cannot leak into an estimate by accident (``tests/unit/test_backtest_cutoff``
corrupts the later rows and checks the estimate does not move).

Sources: see ``sim/data/SOURCES.md`` and ``sim/data/sources.csv`` (DfE children looked
after and children in need releases, ONS mid-year estimates; Open Government Licence).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from sim.errors import InputError

FIRST_BASE_YEAR = 2012  # first year all series needed for estimation are published
LAST_DATA_YEAR = 2022  # shipped data stop at 31 March 2022 (sim/data/SOURCES.md)

DATA_DIR = Path(__file__).parent / "data"

# Tidy national files (one value per row) that the estimation reads.
NATIONAL_FILES = (
    "cla_national_timeseries.csv",
    "cla_31_march_by_characteristics.csv.gz",
    "cla_started_by_characteristics.csv.gz",
    "cla_ceased_by_characteristics.csv.gz",
    "cin_cpp_by_area.csv.gz",
    "population_0_17.csv",
)
SINGLE_AGE_FILE = "population_by_single_age.csv"
# Local-authority files (sim.estimation.areas): the headline file first (it is the one
# that carries every authority's stock, starts and ceased in every year), then the
# characteristics files.  The national time series has no authority rows.
AREA_FILES = ("cla_headline_by_area.csv",) + NATIONAL_FILES[1:]


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")  # noqa: SIM115


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Observed:
    """National published figures up to ``max_year`` (years ending 31 March).

    ``series[measure][year]`` is the published value.  Where a measure appears in
    several files (the same figure re-published), the first file in
    ``NATIONAL_FILES`` wins: ``cla_national_timeseries.csv`` is DfE's latest vintage.
    """

    max_year: int
    series: dict[str, dict[int, float]] = field(default_factory=dict)
    single_age_population: dict[int, float] = field(default_factory=dict)
    single_age_year: int = 0
    files_read: dict[str, str] = field(default_factory=dict)  # name -> sha256
    # measure -> years whose published cell is a suppression or not-applicable code
    # (x, c, z, u, [x], low) and no file publishes a number: missing, never zero.
    suppressed: dict[str, set[int]] = field(default_factory=dict)

    def is_suppressed(self, measure: str, year: int) -> bool:
        return year in self.suppressed.get(measure, ())

    def get(self, measure: str, year: int) -> float | None:
        return self.series.get(measure, {}).get(year)

    def require(self, measure: str, year: int) -> float:
        value = self.get(measure, year)
        if value is None:
            raise InputError(
                f"sim/data: no published value for '{measure}' in {year}"
                f" (available years: {sorted(self.series.get(measure, {}))})"
            )
        return value

    def years(self, measure: str) -> list[int]:
        return sorted(self.series.get(measure, {}))

    def latest_year_at_or_before(self, measure: str, year: int) -> int | None:
        years = [y for y in self.years(measure) if y <= year]
        return max(years) if years else None


def _parse_value(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # suppression codes (x, c, z, u, [x]) are not numbers


def load_observed(max_year: int, data_dir: Path | None = None,
                  geography: str | None = None) -> Observed:
    """Load national figures with ``year <= max_year``; later rows are never kept.

    ``geography`` (optional) is a local authority's DfE 3-digit code: its own rows
    instead (:func:`load_area_observed`); None, the default, is England."""
    if geography is not None:
        areas = load_area_observed(max_year, data_dir)
        if geography not in areas:
            raise InputError(f"sim/data: no local authority with old_la_code '{geography}'")
        return areas[geography]
    data_dir = DATA_DIR if data_dir is None else Path(data_dir)
    observed = Observed(max_year=max_year)
    for name in NATIONAL_FILES:
        path = data_dir / name
        if not path.exists():
            raise InputError(f"{path}: data file is missing")
        observed.files_read[name] = file_sha256(path)
        with _open_text(path) as handle:
            for row in csv.DictReader(handle):
                if row["geography_level"] != "national":
                    continue
                year = int(row["year"])
                if year > max_year:
                    continue
                value = _parse_value(row["value"])
                if value is None:
                    continue
                observed.series.setdefault(row["measure"], {}).setdefault(year, value)
    _read_single_age(observed, data_dir)
    return observed


def _read_single_age(observed: Observed, data_dir: Path) -> None:
    path = data_dir / SINGLE_AGE_FILE
    if not path.exists():
        raise InputError(f"{path}: data file is missing")
    observed.files_read[SINGLE_AGE_FILE] = file_sha256(path)
    with _open_text(path) as handle:
        rows = [r for r in csv.DictReader(handle) if r["sex"] == "persons"]
    # Only mid-2020 is published in the shipped file.  It is used for the *shape*
    # of the age structure (scaled to each year's total), so reading it does not
    # leak 2020 counts into earlier base years; the totals come from
    # population_0_17.csv, filtered by max_year above.
    observed.single_age_year = int(rows[0]["year"])
    observed.single_age_population = {
        int(r["age"]): float(r["value"]) for r in rows if int(r["age"]) <= 17
    }


def load_area_observed(max_year: int, data_dir: Path | None = None) -> dict[str, Observed]:
    """Every local authority's published figures with ``year <= max_year``, keyed by
    DfE 3-digit code (``old_la_code``, stable across ONS re-codings), read in one pass.

    Measure names are the national ones.  A cell holding a suppression code is
    recorded in ``Observed.suppressed`` (unless another file publishes a number for
    it), never as a value.  The single-age population shape is England's (no
    authority publishes one here).
    """
    data_dir = DATA_DIR if data_dir is None else Path(data_dir)
    areas: dict[str, Observed] = {}
    hashes: dict[str, str] = {}
    for name in AREA_FILES:
        path = data_dir / name
        if not path.exists():
            raise InputError(f"{path}: data file is missing")
        hashes[name] = file_sha256(path)
        with _open_text(path) as handle:
            reader = csv.reader(handle)  # plain rows: twice as fast as DictReader here
            header = next(reader)
            level, year_at, code_at, measure_at, value_at = (header.index(c) for c in (
                "geography_level", "year", "old_la_code", "measure", "value"))
            for row in reader:
                if row[level] != "local_authority":
                    continue
                year = int(row[year_at])
                if year > max_year:
                    continue
                observed = areas.get(row[code_at])
                if observed is None:
                    observed = areas[row[code_at]] = Observed(max_year=max_year)
                measure = row[measure_at]
                value = _parse_value(row[value_at])
                if value is None:
                    if year not in observed.series.get(measure, {}):
                        observed.suppressed.setdefault(measure, set()).add(year)
                    continue
                observed.series.setdefault(measure, {}).setdefault(year, value)
                if year in observed.suppressed.get(measure, ()):
                    observed.suppressed[measure].discard(year)
    template = Observed(max_year=max_year)
    _read_single_age(template, data_dir)
    for observed in areas.values():
        observed.files_read = {**hashes, **template.files_read}
        observed.single_age_year = template.single_age_year
        observed.single_age_population = dict(template.single_age_population)
    return areas


def data_hashes(data_dir: Path | None = None) -> dict[str, str]:
    """SHA-256 of every shipped data file, for provenance."""
    data_dir = DATA_DIR if data_dir is None else Path(data_dir)
    return {
        p.name: file_sha256(p)
        for p in sorted(data_dir.iterdir())
        if p.suffix in {".csv", ".gz"}
    }


def load_curated(name: str, data_dir: Path | None = None) -> list[dict[str, str]]:
    """Rows of a small curated file (source, measure, year, value, unit, url)."""
    data_dir = DATA_DIR if data_dir is None else Path(data_dir)
    path = data_dir / name
    if not path.exists():
        raise InputError(f"{path}: data file is missing")
    with _open_text(path) as handle:
        return list(csv.DictReader(handle))


def curated_value(name: str, measure_contains: str, year: str | int,
                  data_dir: Path | None = None) -> float | None:
    """The value of the first curated row whose measure contains the text, or None."""
    for row in load_curated(name, data_dir):
        if measure_contains in row["measure"] and row["year"] == str(year):
            return float(row["value"])
    return None

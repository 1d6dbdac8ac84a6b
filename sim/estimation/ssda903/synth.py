"""A seeded synthetic SSDA903 extract drawn from known rates (``cicsim synth-903``).

For tests and worked examples: real child data never enter the repository.  The
generating process is the one the estimator assumes, so the estimates can be checked
against the truth (``tests/statistical/test_ssda903_recovery.py``):

* ``children`` first entries, uniform over the collection years ``start_year`` to
  ``end_year`` (1 April ``start_year - 1`` to 31 March ``end_year``), or from
  ``burn_in_years`` earlier; age at entry by :data:`ENTRY_AGE_SHARE` over the DfE
  bands, uniform within a band.  Periods that ended before the window are left out, as
  in stacked annual returns (whole periods are kept, though: a real return lacks the
  earlier episodes of a long period), and so are children with nothing left;
* in care, each exit route's hazard is its ``<route>_rate`` (per year; adoption only
  under ``adoption_max_age``) times :data:`STAGE_MULTIPLIER` of the time-in-care band;
  the 18th birthday ends the period (REC E5/E6/E17); the end date censors it;
* changes of placement or legal status at ``placement_change_rate`` per year, each a new
  episode (previous REC ``X1``, RNE ``P``/``L``/``T``);
* after a return home, the model's re-entry chain: one-year exponential stages
  (``spec.HOME_STAGES``), re-entry at ``reentry_rate_year1`` in the first and
  ``reentry_rate_later`` in the others, none after the last stage or at 18.

Same seed and settings -> identical files.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from sim.errors import InputError
from sim.estimation.ssda903.periods import (
    BAND_EDGES_YEARS,
    DAYS_PER_YEAR,
    STAGE_EDGES_YEARS,
    add_years,
)
from sim.estimation.ssda903.reader import EPISODE_COLUMNS, HEADER_COLUMNS
from sim.model import spec
from sim.rng import stream_generator

# Share of first entries by DfE age band (ASSUMPTION: roughly England's pattern).
ENTRY_AGE_SHARE = (0.20, 0.18, 0.17, 0.35, 0.10)
# Relative exit hazard by time-in-care band (0-6 m, 6-12 m, 1-2 y, 2-5 y, 5 y+).
STAGE_MULTIPLIER = (1.6, 1.2, 1.0, 0.8, 0.5)
REC_CODES = {"returned_home": ("E4A", "E4A", "E4B"), "adoption": ("E11", "E12"),
             "sgo_cao": ("E41", "E45", "E46", "E47", "E48"),
             "other": ("E8", "E13", "E3", "E5", "E9"), "turned_18": ("E5", "E6", "E17")}
PLACE_CODES = ("U1", "U3", "U4", "U4", "U5", "U6", "U6", "K2", "K2", "R1", "S1", "P1",
               "A4", "H5", "Z1")
LS_CODES = ("C1", "C2", "C2", "V2", "E1")
CHANGE_RNE = ("P", "P", "P", "P", "L", "T")


@dataclass(frozen=True)
class SynthSettings:
    """The generating rates (``--set key=value``); hazards are per year."""

    start_year: int = 2013
    end_year: int = 2022
    returned_home_rate: float = 0.30
    adoption_rate: float = 0.15
    sgo_cao_rate: float = 0.10
    other_rate: float = 0.08
    adoption_max_age: int = 10
    placement_change_rate: float = 0.6
    reentry_rate_year1: float = 0.25
    reentry_rate_later: float = 0.06
    burn_in_years: int = 0

    def route_rates(self) -> np.ndarray:
        """(routes, bands) true hazards before the stage multiplier."""
        rates = np.array([[getattr(self, f"{r}_rate")] * len(spec.AGE_BANDS)
                          for r in spec.EXIT_ROUTES])
        for b, (_, start, _) in enumerate(spec.AGE_BANDS):
            if start >= 12 * self.adoption_max_age:
                rates[spec.EXIT_ROUTES.index("adoption"), b] = 0.0
        return rates

    def reentry_rates(self) -> np.ndarray:
        n = len(spec.HOME_STAGES)
        return np.array([self.reentry_rate_year1] + [self.reentry_rate_later] * (n - 1))


def parse_settings(pairs: list[str], where: str = "synth-903 --set") -> SynthSettings:
    """``key=value`` pairs -> settings; InputError naming the key if unknown or bad."""
    settings = SynthSettings()
    types = {f.name: f.type for f in fields(SynthSettings)}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or key not in types:
            raise InputError(f"{where}: unknown key {key!r} (valid: {', '.join(types)})")
        try:
            value: float = int(text) if types[key] == "int" else float(text)
        except ValueError:
            raise InputError(f"{where}: {key} must be a {types[key]}, got {text!r}") from None
        if not np.isfinite(value) or value < 0 or value > (2100 if types[key] == "int" else 20):
            raise InputError(f"{where}: {key} = {text} is out of range")
        settings = replace(settings, **{key: value})
    if not 1990 < settings.start_year <= settings.end_year:
        raise InputError(f"{where}: start_year {settings.start_year} must be after 1990 "
                         f"and not after end_year {settings.end_year}")
    return settings


def _date(day: float) -> str:
    return dt.date.fromordinal(int(np.floor(day))).strftime("%d/%m/%Y")


class _Child:
    """One child's history, drawn event by event."""

    def __init__(self, rng: np.random.Generator, settings: SynthSettings, child: str,
                 entry: float, dob: float, window_end: float,
                 window_start: float = -np.inf) -> None:
        self.rng, self.settings, self.child = rng, settings, child
        self.dob, self.window_end, self.window_start = dob, window_end, window_start
        born = dt.date.fromordinal(int(dob))
        # exact birthdays, as the estimator counts them
        self.age_edges = [float(add_years(born, e).toordinal()) for e in BAND_EDGES_YEARS]
        self.adult = self.age_edges[-1]
        self.rates = settings.route_rates() / DAYS_PER_YEAR  # per day
        self.episodes: list[list[str]] = []
        # an age drawn just under 18 years can fall after the exact 18th birthday
        start: float | None = min(entry, self.adult - 1)
        while start is not None:
            start = self._period(start)

    def _exit(self, start: float) -> tuple[float, str | None]:
        """Exit time and route (None: censored at the end date; turned_18 at 18)."""
        stage_edges = [start + e * DAYS_PER_YEAR for e in STAGE_EDGES_YEARS]
        t, stop = start, min(self.adult, self.window_end)
        while t < stop:
            band = int(np.searchsorted(self.age_edges, t, side="right"))
            stage = int(np.searchsorted(stage_edges, t, side="right"))
            edge = min([e for e in (*self.age_edges, *stage_edges) if e > t] + [stop])
            hazards = self.rates[:, band] * STAGE_MULTIPLIER[stage]
            total = hazards.sum()
            wait = self.rng.exponential(1 / total) if total > 0 else np.inf
            if t + wait < edge:
                route = spec.EXIT_ROUTES[self.rng.choice(len(hazards), p=hazards / total)]
                return t + wait, route
            t = edge
        # window_end is exclusive (1 April): an 18th birthday on it is after the extract
        return stop, spec.AGEING_REASON if self.adult < self.window_end else None

    def _reentry(self, home: float) -> float | None:
        t = home
        for rate in self.settings.reentry_rates() / DAYS_PER_YEAR:
            stage_end = t + self.rng.exponential(DAYS_PER_YEAR)
            wait = self.rng.exponential(1 / rate) if rate > 0 else np.inf
            if t + wait < stage_end:
                back = t + wait
                return back if back < min(self.adult, self.window_end) else None
            t = stage_end
        return None

    def _period(self, start: float) -> float | None:
        """Write one period's episodes; the next period's start, if any."""
        end, route = self._exit(start)
        n_changes = self.rng.poisson(self.settings.placement_change_rate
                                     * (end - start) / DAYS_PER_YEAR)
        changes = np.sort(self.rng.uniform(start, end, n_changes))
        place, legal = self.rng.choice(PLACE_CODES), self.rng.choice(LS_CODES)
        bounds = [start, *changes, end]
        written = []
        for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
            rne = "S" if k == 0 else str(self.rng.choice(CHANGE_RNE))
            if rne in ("P", "T"):
                place = self.rng.choice(PLACE_CODES)
            if rne in ("L", "T"):
                legal = self.rng.choice(LS_CODES)
            last = k == len(bounds) - 2
            closed = not (last and route is None)
            rec = (str(self.rng.choice(REC_CODES[route])) if last and route else
                   "" if not closed else "X1")
            written.append([
                self.child, _date(a), rne, str(legal), "N1", str(place), "PR1",
                _date(b) if closed else "", rec,
                "CARPL" if rne in ("P", "T") else "", "ZZ99", "ZZ99", "XXXXXXX"])
        if route is None or np.floor(end) >= self.window_start:
            self.episodes.extend(written)
        if route == "returned_home":
            return self._reentry(end)
        return None


def generate(children: int, seed: int, settings: SynthSettings | None = None
             ) -> tuple[list[list[str]], list[list[str]]]:
    """Header and episode rows (without column names) for ``children`` children."""
    settings = settings or SynthSettings()
    rng = stream_generator(seed, 0, "synth-903")
    window_start = float(dt.date(settings.start_year - 1, 4, 1).toordinal())
    first_entry = float(dt.date(settings.start_year - 1 - settings.burn_in_years, 4, 1)
                        .toordinal())
    window_end = float(dt.date(settings.end_year, 3, 31).toordinal())
    header, episodes = [], []
    bands = rng.choice(len(spec.AGE_BANDS), size=children, p=ENTRY_AGE_SHARE)
    entries = np.sort(rng.uniform(first_entry, window_end + 1, children))
    for i in range(children):
        _, first, stop = spec.AGE_BANDS[bands[i]]
        age_days = rng.uniform(first / 12, stop / 12) * DAYS_PER_YEAR
        dob = np.floor(entries[i] - age_days)
        entry = max(entries[i], dob)
        child = f"{100000 + i}"
        sex = int(rng.integers(1, 3))
        history = _Child(rng, settings, child, entry, dob, window_end + 1,
                         window_start).episodes
        if history:
            header.append([child, str(sex), _date(dob), "WBRI", "UN1",
                           "0" if sex == 2 else "", ""])
            episodes.extend(history)
    return header, episodes


def write_extract(out: str | Path, children: int, seed: int,
                  settings: SynthSettings | None = None) -> tuple[Path, Path]:
    """Write ``header.csv`` and ``episodes.csv`` into ``out`` (created)."""
    if children < 1:
        raise InputError(f"synth-903 --children: must be at least 1, got {children}")
    header, episodes = generate(children, seed, settings)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / "header.csv", out / "episodes.csv")
    for path, columns, rows in zip(paths, (HEADER_COLUMNS, EPISODE_COLUMNS),
                                   (header, episodes), strict=True):
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(rows)
    return paths

"""What the replicate paths share: the children, their episodes and how they are drawn.

:class:`ReplicateState` holds one replicate's tables (children, care episodes, home
spells) and draws them: the initial state, each month's entries, whole care episodes
and home spells.  A child's numbers depend only on its id and episode number, so the
simpy path (:mod:`.replicate`), which draws month by month, and the batch and capacity
paths (:mod:`.batch`, :mod:`.replay`), which draw every month's entrants at once and
re-entries in rounds (:meth:`_reenter`), give the same children the same numbers.  The
paths differ in when they draw and how they count: the simpy path counts flows in
event callbacks and meets capacity there; the others count them afterwards from the
tables.  Subclasses hook in through :meth:`_episodes_drawn` and :meth:`_reenter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from sim import rng
from sim.engines import stockflow
from sim.engines.des.chains import sample_paths
from sim.engines.des.common import (
    AGE_ROWS,
    BAND_OF_AGE_ROW,
    CARE_COLUMN,
    CARE_DRAWS,
    CARE_STOCK_SHAPE,
    CARE_STOCK_SIZE,
    FOSTER,
    HOME_AGED_OUT,
    HOME_COMPLETED,
    HOME_DRAWS,
    HOME_REENTERED,
    HOME_STILL_AT_HOME,
    LAYOUT,
    MONTH_IN_YEARS,
    MONTHS_PER_YEAR,
    N_CARE_STAGES,
    N_HOME_STAGES,
    N_PLACEMENTS,
    ORIGIN_BIRTH,
    ORIGIN_CIN,
    ORIGIN_FAMILY_HELP,
    ORIGIN_INITIAL,
    ORIGIN_UASC,
    REASON_OF_ROUTE,
    RETURNED_HOME,
    SOURCE_BIRTH,
    SOURCE_CIN,
    SOURCE_INITIAL,
    SOURCE_REENTRY,
    SOURCE_UASC,
    STILL_IN_CARE,
    STREAM_CARE,
    STREAM_CELL_COUNTS,
    STREAM_ENTRY_TIMES,
    STREAM_FAMILY_HELP,
    STREAM_HOME,
    TURNED_18,
    UASC,
    IntArray,
    _counts,
    child_ids,
    poisson_quantile,
)
from sim.engines.des.model import CompiledModel
from sim.engines.record import YearTotals, year_record
from sim.model.parameters import Array


class FosterQueueView(Protocol):
    """What the year record reads of the foster queue (sim.engines.des.capacity)."""

    waits: Any

    def waiting_at(self, year: int) -> int: ...


class FamilyHelpView(Protocol):
    """What the year record reads of the family-help queue (sim.engines.des.capacity)."""

    waits: Any
    referred: Any
    helped: Any

    def in_pool(self, moment: float) -> int: ...

    def waiting_at(self, year: int) -> int: ...

class _Columns:
    """Growable struct-of-arrays table (append whole batches; views for queries)."""

    def __init__(self, **dtypes: Any) -> None:
        self.size = 0
        self._data: dict[str, NDArray[Any]] = {}
        for name, spec_ in dtypes.items():
            dtype, width = spec_ if isinstance(spec_, tuple) else (spec_, None)
            shape = (1024,) if width is None else (1024, width)
            self._data[name] = np.zeros(shape, dtype=dtype)

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` rows in all, so that growing to them copies nothing
        (a table doubled while full briefly holds three times its data)."""
        if rows > len(next(iter(self._data.values()))):
            for name, old in self._data.items():
                grown = np.zeros((rows, *old.shape[1:]), dtype=old.dtype)
                grown[: self.size] = old[: self.size]
                self._data[name] = grown

    def append(self, **columns: NDArray[Any]) -> IntArray:
        n = len(next(iter(columns.values())))
        if self.size + n > len(next(iter(self._data.values()))):
            capacity = max(2 * (self.size + n), 1024)
            for name, old in self._data.items():
                grown = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
                grown[: self.size] = old[: self.size]
                self._data[name] = grown
        for name, values in columns.items():
            self._data[name][self.size: self.size + n] = values
        indices = np.arange(self.size, self.size + n)
        self.size += n
        return indices

    def __getitem__(self, name: str) -> NDArray[Any]:
        return self._data[name][: self.size]


@dataclass
class ReplicateResult:
    """One replicate: the per-year records plus the raw episode records behind them."""

    replicate: int
    years: list[int]
    records: list[dict[str, Array]]
    episodes: dict[str, NDArray[Any]]  # one row per care episode (see _ReplicateRun)
    home_spells: dict[str, NDArray[Any]]
    heap_events: int  # events processed by the simpy environment
    transitions: int  # model transitions (entries, stage moves, exits, home moves...)
    wall_time_s: float
    extra: dict[str, Any] = field(default_factory=dict)

class ReplicateState:
    """One replicate's children, episodes and home spells, and the draws that make them.

    Subclasses decide what happens when episodes are drawn (:meth:`_episodes_drawn`):
    the event path schedules their starts and ends on the simpy heap; the batch path
    does nothing, because without capacity an episode's draw is its whole story.
    """

    def __init__(self, model: CompiledModel, replicate: int) -> None:
        self.model = model
        self.replicate = replicate
        self.scale = model.population_scale
        self.keys = {name: rng.stream_key(model.root_seed, replicate, name) for name in (
            STREAM_CELL_COUNTS, STREAM_ENTRY_TIMES, STREAM_CARE, STREAM_HOME,
            STREAM_FAMILY_HELP)}
        self.n_years = len(model.years) - 1
        self.current_month = -1  # last month whose entries have been drawn
        self.transitions = 0
        self.children = _Columns(id=np.uint64, birth=np.int64, care_episodes=np.int64,
                                 home_spells=np.int64)
        self.episodes = _Columns(
            child=np.int64, stream=np.int64, birth=np.int64, source=np.int64,
            start=np.float64, placement=np.int64, drawn_placement=np.int64,
            stage_start=(np.float64, N_CARE_STAGES), end=np.float64, reason=np.int64,
            foster_from=np.float64, wait_start=np.float64, wait_end=np.float64)
        self.home = _Columns(child=np.int64, start=np.float64, end=np.float64,
                             outcome=np.int64)
        self.pending_reentries: dict[int, list[tuple[int, float]]] = {}
        # flows by projected year (index 1..n; 0 unused): indexable by [year] (lists in
        # the event path, filled one child at a time; arrays in the batch path)
        self.started: Any = None  # [year][band]
        self.started_uasc: Any = None  # [year][band]
        self.reentered: Any = None  # [year]
        self.first_starts: Any = None  # [year]
        self.ceased: Any = None  # [year][stream][reason]
        # capacity (event path only)
        self.foster: FosterQueueView | None = None
        self.family_help: FamilyHelpView | None = None

    def _episode_tables(self) -> tuple[dict[str, NDArray[Any]], dict[str, NDArray[Any]]]:
        """Copies of the episode and home-spell records returned with a replicate, in
        child order (children in the order they were registered, each child's episodes
        and spells in time order).  The paths draw the same episodes but append them in
        different orders (the batch path draws re-entries in rounds), so the tables are
        put in this order, which all paths share."""
        by_child = np.argsort(self.episodes["child"], kind="stable")
        episodes = {name: self.episodes[name][by_child] for name in (
            "child", "stream", "birth", "source", "start", "end", "reason", "placement",
            "wait_start", "wait_end")}
        by_child = np.argsort(self.home["child"], kind="stable")
        home = {name: self.home[name][by_child] for name in ("child", "start", "end",
                                                               "outcome")}
        return episodes, home

    # -- drawing children ----------------------------------------------------------

    def _poisson_cells(self, origins: int | IntArray, month: int | IntArray,
                       rows: IntArray, columns: IntArray, means: Array) -> IntArray:
        """Poisson counts per cell by inversion of a per-cell keyed uniform, so a cell's
        count rises monotonically with its mean across scenarios (paired).  ``month``
        is one month, or one per cell (the batch path draws every month at once)."""
        counts = np.zeros(len(means), dtype=np.int64)
        positive = np.flatnonzero(means > 0)
        if positive.size:
            origin = np.broadcast_to(np.asarray(origins), means.shape)[positive]
            months = np.broadcast_to(np.asarray(month), means.shape)[positive]
            ids = child_ids(origin, months, rows[positive], columns[positive],
                            np.zeros(positive.size, dtype=np.int64))
            uniforms = rng.keyed_uniforms(self.keys[STREAM_CELL_COUNTS], ids, 0, 1)[:, 0]
            counts[positive] = poisson_quantile(uniforms, means[positive])
        return counts

    def _new_referrals(self, month: int) -> IntArray:
        """Register the month's children referred for family help (a share of the CIN
        inflow, Poisson by age row) and return their indices.  Both capacity paths
        (simpy and the replay) draw them here, so they are the same children."""
        model = self.model
        rows = np.arange(AGE_ROWS)
        zeros = np.zeros(AGE_ROWS, dtype=np.int64)
        means = (self.scale * model.population[month]
                 * model.capacity.family_help_referral_share
                 * model.referral_rate[month // MONTHS_PER_YEAR] * MONTH_IN_YEARS)
        counts = self._poisson_cells(ORIGIN_FAMILY_HELP, month, rows, zeros, means)
        children, _ = self._new_children(ORIGIN_FAMILY_HELP, month, rows, zeros, counts,
                                         month - rows)
        return children

    def _new_children(self, origins: int | IntArray, month: int | IntArray,
                      rows: IntArray, columns: IntArray, counts: IntArray,
                      births: IntArray) -> tuple[IntArray, IntArray]:
        """Register ``counts[i]`` children per cell, in cell order; returns (child
        indices, cell index).  ``month``: one, or one per cell."""
        cell = np.repeat(np.arange(len(counts)), counts)
        ordinal = np.arange(cell.size) - np.repeat(np.cumsum(counts) - counts, counts)
        origin = np.broadcast_to(np.asarray(origins), counts.shape)[cell]
        months = np.broadcast_to(np.asarray(month), counts.shape)[cell]
        ids = child_ids(origin, months, rows[cell], columns[cell], ordinal)
        zeros = np.zeros(cell.size, dtype=np.int64)
        children = self.children.append(id=ids, birth=births[cell], care_episodes=zeros,
                                        home_spells=zeros)
        return children, cell

    def _draw_initial_state(self) -> dict[str, Array]:
        """Children in care and at home on 31 March of the base year, drawn cell by cell
        (Poisson with mean scale x expected count) from ``params.initial_state``."""
        initial = self.model.params.initial_state
        grid = np.meshgrid(np.arange(AGE_ROWS),
                           np.arange(LAYOUT.care_start, LAYOUT.counter_start), indexing="ij")
        rows, columns = grid[0].ravel(), grid[1].ravel()
        counts = self._poisson_cells(ORIGIN_INITIAL, 0, rows, columns,
                                     self.scale * initial[rows, columns])
        children, cell = self._new_children(ORIGIN_INITIAL, 0, rows, columns, counts,
                                            -rows)
        column = columns[cell]
        in_care = column < LAYOUT.home_start
        care_index = column[in_care] - LAYOUT.care_start
        per_stream = N_PLACEMENTS * N_CARE_STAGES
        self._start_episodes(
            children[in_care], np.zeros(in_care.sum()), SOURCE_INITIAL,
            streams=care_index // per_stream,
            start_stages=care_index % N_CARE_STAGES,
            placements=(care_index % per_stream) // N_CARE_STAGES)
        at_home = ~in_care
        self._start_home_spells(children[at_home], np.zeros(at_home.sum()),
                                column[at_home] - LAYOUT.home_start)
        # base-year record: the stock-flow engine's convention applied to the drawn
        # state, with placements as resolved by foster capacity (if any)
        state = np.zeros((AGE_ROWS, LAYOUT.size))
        np.add.at(state, (rows[cell][at_home], column[at_home]), 1.0 / self.scale)
        e = self.episodes
        placement_now = np.where(e["foster_from"] <= 0.0, FOSTER, e["placement"])
        stage_now = np.where(e["stage_start"] <= 0.0, np.arange(N_CARE_STAGES),
                             -1).max(axis=1)
        care_column = CARE_COLUMN[e["stream"], placement_now, stage_now]
        np.add.at(state, (-e["birth"], care_column), 1.0 / self.scale)
        for source in (LAYOUT.population, LAYOUT.uasc_source, LAYOUT.cin_pool):
            state[:, source] = initial[:, source]
        base = self.model.base_rates
        record = stockflow.snapshot(state, stockflow.instantaneous_flows(state, base), base)
        record["started_first_in_year"] = np.array(np.nan)
        self._add_capacity_record(record, 0)
        return record

    def _draw_month(self, month: int) -> None:
        """Draw ``month``'s entries: from the CIN pool, UASC arrivals, re-entries due,
        and babies entering care at birth at the month's end (in this order, which
        fixes the order of the episode table)."""
        self.current_month = month
        model = self.model
        # entrants from the CIN pool and UASC arrivals, one cell per (origin, age row)
        origins = np.repeat([ORIGIN_CIN, ORIGIN_UASC], AGE_ROWS)
        rows = np.tile(np.arange(AGE_ROWS), 2)
        zeros = np.zeros(rows.size, dtype=np.int64)
        means = self.scale * np.concatenate([
            model.pool.expected_entries[month],
            model.uasc_arrivals[month] * MONTH_IN_YEARS])  # constant within the month
        counts = self._poisson_cells(origins, month, rows, zeros, means)
        children, cell = self._new_children(origins, month, rows, zeros, counts,
                                            month - rows)
        uniforms = rng.keyed_uniforms(self.keys[STREAM_ENTRY_TIMES],
                                      self.children["id"][children], 0, 1)[:, 0]
        from_pool = origins[cell] == ORIGIN_CIN
        start = month + uniforms
        start[from_pool] = model.pool.entry_times(month, rows[cell][from_pool],
                                                  uniforms[from_pool])
        # re-entries due this month (drawn when their home spell was drawn)
        due = self.pending_reentries.pop(month, [])
        again = np.array([c for c, _ in due], dtype=np.int64)
        again_start = np.array([t for _, t in due], dtype=float)
        self._start_episodes(
            np.concatenate([children, again]), np.concatenate([start, again_start]),
            np.concatenate([np.where(from_pool, SOURCE_CIN, SOURCE_UASC),
                            np.full(again.size, SOURCE_REENTRY)]),
            streams=np.concatenate([np.where(from_pool, 0, UASC),
                                    np.zeros(again.size, dtype=np.int64)]))
        self._enter_at_birth(month)

    def _enter_at_birth(self, month: int) -> None:
        """Babies coming into care at birth at the end of ``month``: the stock-flow
        engine puts them into the newborn cohort after the month's ageing, with this
        month's rates, and counts them in this month's flows; here they are born and
        start care at that boundary (before any 31 March snapshot there)."""
        model = self.model
        rates = model.rates[month // MONTHS_PER_YEAR]
        cell = np.zeros(1, dtype=np.int64)
        mean = np.array([self.scale * rates.birth_entry_share
                         * rates.population_by_age_month[0]])
        count = self._poisson_cells(ORIGIN_BIRTH, month, cell, cell, mean)
        if count[0] == 0:
            return
        newborns, _ = self._new_children(ORIGIN_BIRTH, month, cell, cell, count,
                                         np.array([month + 1]))
        uniforms = rng.keyed_uniforms(self.keys[STREAM_ENTRY_TIMES],
                                      self.children["id"][newborns], 0, 1)[:, 0]
        cumulative = model.placement_cumulative[month // MONTHS_PER_YEAR, 0]
        placements = (uniforms[:, None] > cumulative[None, :-1]).sum(axis=1)
        self._start_episodes(newborns, np.full(newborns.size, month + 1.0), SOURCE_BIRTH,
                             streams=np.zeros(newborns.size, dtype=np.int64),
                             placements=placements)

    # -- episodes ------------------------------------------------------------------

    def _start_episodes(self, children: IntArray, start: Array, source: int | IntArray,
                        streams: IntArray, start_stages: IntArray | None = None,
                        placements: IntArray | None = None) -> None:
        """Draw whole care episodes for a batch of children starting care, record them,
        draw the home spells of those who return home, then hand the batch to
        :meth:`_episodes_drawn`."""
        n = len(children)
        if n == 0:
            return
        model = self.model
        sources = np.broadcast_to(np.asarray(source, dtype=np.int64), (n,))
        births = self.children["birth"][children]
        episode_numbers = self.children["care_episodes"][children].copy()
        self.children["care_episodes"][children] += 1
        draws = rng.keyed_uniforms(self.keys[STREAM_CARE], self.children["id"][children],
                                   episode_numbers, CARE_DRAWS)
        months = np.minimum(np.floor(start).astype(np.int64), model.n_months - 1)
        if placements is None or (placements < 0).any():
            # drawn from the year's mix (-1 in ``placements``: drawn for that child)
            mix = model.placement_cumulative[months // MONTHS_PER_YEAR, streams]
            drawn = (draws[:, :1] > mix[:, :-1]).sum(axis=1)
            placements = drawn if placements is None else np.where(placements < 0, drawn,
                                                                   placements)
        stages = np.zeros(n, dtype=np.int64) if start_stages is None else start_stages
        birthday = (births + AGE_ROWS).astype(float)
        limit = np.minimum(birthday, model.n_months)
        paths = sample_paths(model.care, streams, births, start, stages, limit,
                             -np.log(draws[:, 1:1 + N_CARE_STAGES]),
                             draws[:, 1 + N_CARE_STAGES:])
        reached_limit = paths.end_choice < 0
        reason = np.where(reached_limit,
                          np.where(birthday <= model.n_months, TURNED_18, STILL_IN_CARE),
                          REASON_OF_ROUTE[np.maximum(paths.end_choice - 1, 0)])
        end = np.where(reason == STILL_IN_CARE, np.inf, paths.end_time)
        self.transitions += paths.transitions + int((reason == TURNED_18).sum()) + int(
            (sources != SOURCE_INITIAL).sum())
        episodes = self.episodes.append(
            child=children, stream=streams, birth=births, source=sources, start=start,
            placement=placements, drawn_placement=placements,
            stage_start=paths.stage_start, end=end, reason=reason,
            foster_from=np.full(n, np.inf), wait_start=np.full(n, np.nan),
            wait_end=np.full(n, np.nan))
        home = reason == RETURNED_HOME
        self._start_home_spells(children[home], end[home], np.zeros(home.sum(), np.int64))
        self._episodes_drawn(episodes, children, start, sources, streams, births, months,
                             placements, end, reason)

    def _episodes_drawn(self, episodes: IntArray, children: IntArray, start: Array,
                        sources: IntArray, streams: IntArray, births: IntArray,
                        months: IntArray, placements: IntArray, end: Array,
                        reason: IntArray) -> None:
        """Called once per batch of drawn episodes (after their home spells): nothing
        to do unless a subclass counts or queues them as they happen."""

    def _start_home_spells(self, children: IntArray, start: Array,
                           start_stages: IntArray) -> None:
        """Draw the time at home after a return (or from the initial state): re-entry,
        the end of the five tracked years, or the 18th birthday."""
        n = len(children)
        if n == 0:
            return
        model = self.model
        births = self.children["birth"][children]
        spell_numbers = self.children["home_spells"][children].copy()
        self.children["home_spells"][children] += 1
        draws = rng.keyed_uniforms(self.keys[STREAM_HOME], self.children["id"][children],
                                   spell_numbers, HOME_DRAWS)
        birthday = (births + AGE_ROWS).astype(float)
        limit = np.minimum(birthday, model.n_months)
        paths = sample_paths(model.home, np.zeros(n, dtype=np.int64), births, start,
                             start_stages, limit, -np.log(draws[:, :N_HOME_STAGES]),
                             draws[:, N_HOME_STAGES:])
        outcome = np.where(paths.end_choice == 1, HOME_REENTERED,
                           np.where(paths.end_choice == 0, HOME_COMPLETED,
                                    np.where(birthday <= model.n_months, HOME_AGED_OUT,
                                             HOME_STILL_AT_HOME)))
        end = np.where(outcome == HOME_STILL_AT_HOME, np.inf, paths.end_time)
        self.transitions += paths.transitions + int((outcome == HOME_AGED_OUT).sum())
        self.home.append(child=children, start=start, end=end, outcome=outcome)
        again = np.flatnonzero(outcome == HOME_REENTERED)
        if again.size:
            self._reenter(children[again], end[again])

    def _reenter(self, children: IntArray, times: Array) -> None:
        """File re-entries to care (in home-spell order) as the month-by-month paths
        draw them: one in a month whose entries are drawn already starts now (a batch,
        before the next child of the month, as the heap would), a later one waits for
        its month.  :class:`.batch.BatchReplicate` overrides this: it draws them in
        rounds."""
        months = np.floor(times).astype(np.int64)
        now_batch = months <= self.current_month  # this month's entries are drawn already
        if now_batch.any():
            self._start_episodes(children[now_batch], times[now_batch], SOURCE_REENTRY,
                                 np.zeros(int(now_batch.sum()), np.int64))
        for child, month, when in zip(children[~now_batch].tolist(),
                                      months[~now_batch].tolist(),
                                      times[~now_batch].tolist(), strict=True):
            self.pending_reentries.setdefault(month, []).append((child, when))

    # -- records -------------------------------------------------------------------

    def _year_record(self, year: int) -> dict[str, Array]:
        """The year's record in the shared schema, scaled to England: the stock from
        the episodes in care at 31 March, the flows from the year's counts."""
        model = self.model
        moment = float(MONTHS_PER_YEAR * year)
        inverse = 1.0 / self.scale
        e = self.episodes
        in_care = np.flatnonzero((e["start"] <= moment) & (moment < e["end"]))
        band = BAND_OF_AGE_ROW[int(moment) - e["birth"][in_care]]
        placement = np.where(e["foster_from"][in_care] <= moment, FOSTER,
                             e["placement"][in_care])
        stage = np.where(e["stage_start"][in_care] <= moment,
                         np.arange(N_CARE_STAGES), -1).max(axis=1)
        stream = e["stream"][in_care]
        h = self.home
        at_home = int(((h["start"] <= moment) & (moment < h["end"])).sum())
        rates = model.rates[year - 1]
        pool = float(model.pool.year_end_pool[year])
        referrals = float(model.pool.expected_referrals[
            MONTHS_PER_YEAR * (year - 1): MONTHS_PER_YEAR * year].sum())
        served = rates.effects.family_help_served
        if self.family_help is not None:
            pool += self.family_help.in_pool(moment) * inverse
            referrals += self.family_help.referred[year] * inverse
            served = self.family_help.helped[year] * inverse
        cells = np.ravel_multi_index((band, stream, placement, stage), CARE_STOCK_SHAPE)
        totals = YearTotals(
            care_stock=_counts(cells, CARE_STOCK_SIZE).reshape(CARE_STOCK_SHAPE) * inverse,
            every_start_by_band=np.array(self.started[year], dtype=float) * inverse,
            uasc_start_by_band=np.array(self.started_uasc[year], dtype=float) * inverse,
            ceased_by_stream=np.array(self.ceased[year], dtype=float) * inverse,
            reentered=self.reentered[year] * inverse,
            home_after_care=at_home * inverse,
            cin_pool=pool,
            cin_referrals=referrals,
            family_help_served=served,
            programme_cost_gbp=rates.effects.programme_cost_gbp,
            extra={"started_first_in_year": np.array(self.first_starts[year] * inverse)})
        record = year_record(totals, rates)
        self._add_capacity_record(record, year)
        return record

    def _add_capacity_record(self, record: dict[str, Array], year: int) -> None:
        """The queue variables, present only when the scenario limits places."""
        inverse = 1.0 / self.scale
        if self.foster is not None:
            total, count = self.foster.waits[year]
            record["foster_waiting"] = np.array(self.foster.waiting_at(year) * inverse)
            record["foster_wait_months"] = np.array(total / count if count else np.nan)
        if self.family_help is not None:
            total, count = self.family_help.waits[year]
            record["family_help_waiting"] = np.array(self.family_help.waiting_at(year)
                                                     * inverse)
            record["family_help_wait_months"] = np.array(total / count if count else np.nan)

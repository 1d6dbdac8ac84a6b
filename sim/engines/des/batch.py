"""The batch path: one replicate without the simpy heap, for scenarios without capacity.

Without ``[capacity]`` no event changes anything: an episode's whole life (stages, exit,
home spell, re-entry) is drawn when it starts, and a child's numbers depend only on its
id and episode number (:mod:`sim.rng`), not on when or with whom they are drawn.  So
this path draws in a handful of large batches what the month-by-month paths draw in
over a thousand small ones (the per-call overhead of numpy was most of a small-scale
replicate):

1. the initial state (as every path does);
2. every month's entrants at once: Poisson counts for every (month, cell), the children
   registered in the month-by-month order (so they get the same indices), their entry
   times and the births' placements;
3. their episodes in one batch (with the re-entries filed by the initial home spells),
   the home spells of those who return home, then the re-entries those spells end in,
   in rounds, until no child re-enters (a child's episodes and spells are drawn in
   order, one per round, so each gets its own episode number);
4. every flow counted from the finished table with ``bincount``.

The records, the episode tables (returned in child order,
:meth:`ReplicateState._episode_tables`), ``heap_events`` (the events the event path
would process) and ``transitions`` are identical, bit for bit, to the event path's
(``tests/unit/test_des_batch.py``): the draws are the same element-wise operations on
the same numbers, and every count is a sum.

Why the 31 March stock can be read from the finished table: every episode drawn after
a 31 March starts after it (entries at ``month + u`` with ``u > 0``, births at the
month's end, re-entries inside the month they are drawn for), so it is never in care at
that 31 March, exactly as on the event path, which reads the table as it stands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from sim import rng
from sim.engines.des.common import (
    AGE_ROWS,
    BAND_OF_AGE_ROW,
    MONTH_IN_YEARS,
    MONTHS_PER_YEAR,
    N_BANDS,
    N_REASONS,
    N_STREAMS,
    ORIGIN_BIRTH,
    ORIGIN_CIN,
    ORIGIN_FAMILY_HELP,
    ORIGIN_UASC,
    SOURCE_BIRTH,
    SOURCE_CIN,
    SOURCE_INITIAL,
    SOURCE_REENTRY,
    SOURCE_UASC,
    STILL_IN_CARE,
    STREAM_ENTRY_TIMES,
    UASC,
    IntArray,
    _year_of_time,
)
from sim.engines.des.model import CompiledModel
from sim.engines.des.state import ReplicateResult, ReplicateState
from sim.model.parameters import Array

# Children per draw: large enough that numpy's per-call cost vanishes, small enough that
# the temporaries of a national batch (Philox words, paths) stay a few tens of MB.
CHUNK = 65_536


@dataclass
class Entrants:
    """Children starting care, to be drawn in one round (see :class:`RoundsReplicate`).

    ``placements``: -1 where drawn from the year's mix; ``call_month``: the month whose
    draws start the episode on the month-by-month paths (-1: the initial state);
    ``scheduled``: when those paths put its start on the heap (the month's start, or
    the moment a child leaves family help)."""

    children: IntArray
    times: Array
    sources: IntArray
    streams: IntArray
    placements: IntArray
    call_month: IntArray
    scheduled: Array

    @classmethod
    def join(cls, parts: list[Entrants]) -> Entrants:
        return cls(*(np.concatenate([getattr(p, name) for p in parts])
                     for name in cls.__dataclass_fields__))


class RoundsReplicate(ReplicateState):
    """The draws of the batch and capacity paths: every month's entrants at once, then
    re-entries in rounds (module docstring)."""

    def __init__(self, model: CompiledModel, replicate: int) -> None:
        super().__init__(model, replicate)
        self.heap_events = 0
        self.reentries: list[tuple[IntArray, Array]] = []
        # per child, of its latest episode: the month whose draws started it (-1: the
        # initial state) and when its start went on the heap (see Entrants)
        self.child_call_month = np.zeros(0, dtype=np.int64)
        self.child_scheduled = np.zeros(0)
        self.batch_scheduled = np.zeros(0)  # of the episodes being drawn

    def _reenter(self, children: IntArray, times: Array) -> None:
        """Keep re-entries for the next round (see the module docstring)."""
        self.reentries.append((children, times))

    def _draw_rounds(self, entrants: Entrants) -> None:
        """Draw ``entrants``' episodes, then the re-entries their home spells end in,
        round after round.  A re-entry is drawn within the month of the episode before
        it on the month-by-month paths (and put on the heap with it) if it falls in
        that episode's month; otherwise when its own month starts."""
        size = self.children.size
        # room for the entrants' episodes and their re-entries (about 4 % more
        # nationally) at once: a table doubled while full holds old and new copies, and
        # at this point it is the replicate's memory peak (capacity example: ~30 MB)
        self.episodes.reserve(self.episodes.size + int(1.1 * entrants.children.size) + 1024)
        self.child_call_month = np.full(size, -1, dtype=np.int64)
        self.child_scheduled = np.zeros(size)
        batch = entrants
        while batch.children.size:
            for first in range(0, batch.children.size, CHUNK):
                part = slice(first, first + CHUNK)
                children = batch.children[part]
                self.batch_scheduled = batch.scheduled[part]
                self._start_episodes(children, batch.times[part], batch.sources[part],
                                     batch.streams[part], placements=batch.placements[part])
                self.child_call_month[children] = batch.call_month[part]
                self.child_scheduled[children] = batch.scheduled[part]
            children = np.concatenate([c for c, _ in self.reentries] or [np.zeros(0, int)])
            times = np.concatenate([t for _, t in self.reentries] or [np.zeros(0)])
            self.reentries = []
            month = np.floor(times).astype(np.int64)
            within = month == self.child_call_month[children]
            n = children.size
            batch = Entrants(children, times, np.full(n, SOURCE_REENTRY),
                             np.zeros(n, dtype=np.int64), np.full(n, -1), month,
                             np.where(within, self.child_scheduled[children], month))

    def _draw_entrants(self, family_help: bool = False) -> tuple[Entrants, IntArray, IntArray]:
        """Every month's entrants, as :meth:`_draw_month` and :meth:`_enter_at_birth`
        draw them month by month (same cells, same keyed numbers, children registered
        in the same order: month by month, the CIN pool and UASC cells, births, then,
        with ``family_help``, the month's referrals as :meth:`_new_referrals` draws
        them).  Returns the entrants, and the referred children with their months."""
        model = self.model
        n_months = model.n_months
        ages = np.arange(AGE_ROWS)
        origin_row = [np.full(AGE_ROWS, ORIGIN_CIN), np.full(AGE_ROWS, ORIGIN_UASC),
                      [ORIGIN_BIRTH]]
        row_row = [ages, ages, [0]]
        year = np.arange(n_months) // MONTHS_PER_YEAR
        scale = self.scale
        # the same products, in the same order, as the month-by-month draws
        birth_means = np.array([scale * r.birth_entry_share * r.population_by_age_month[0]
                                for r in model.rates])[year]
        means = [scale * model.pool.expected_entries,
                 scale * (model.uasc_arrivals * MONTH_IN_YEARS),  # constant in the month
                 birth_means[:, None]]
        if family_help:
            origin_row.append(np.full(AGE_ROWS, ORIGIN_FAMILY_HELP))
            row_row.append(ages)
            means.append(scale * model.population * model.capacity.family_help_referral_share
                         * model.referral_rate[year][:, None] * MONTH_IN_YEARS)
        per_month = sum(len(r) for r in row_row)
        origins = np.tile(np.concatenate(origin_row), n_months)
        rows = np.tile(np.concatenate(row_row), n_months)
        months = np.repeat(np.arange(n_months), per_month)
        columns = np.zeros(rows.size, dtype=np.int64)
        counts = self._poisson_cells(origins, months, rows, columns,
                                     np.concatenate(means, axis=1).ravel())
        births = np.where(origins == ORIGIN_BIRTH, months + 1, months - rows)
        children, cell = self._new_children(origins, months, rows, columns, counts, births)
        origin, month = origins[cell], months[cell]
        referred = origin == ORIGIN_FAMILY_HELP
        referrals, referral_months = children[referred], month[referred]
        children, cell, origin, month = (children[~referred], cell[~referred],
                                         origin[~referred], month[~referred])
        uniforms = rng.keyed_uniforms(self.keys[STREAM_ENTRY_TIMES],
                                      self.children["id"][children], 0, 1)[:, 0]
        start = month + uniforms
        from_pool = np.flatnonzero(origin == ORIGIN_CIN)
        start[from_pool] = model.pool.entry_times(month[from_pool], rows[cell][from_pool],
                                                  uniforms[from_pool])
        born = np.flatnonzero(origin == ORIGIN_BIRTH)
        start[born] = month[born] + 1.0
        placements = np.full(children.size, -1, dtype=np.int64)
        cumulative = model.placement_cumulative[month[born] // MONTHS_PER_YEAR, 0]
        placements[born] = (uniforms[born, None] > cumulative[:, :-1]).sum(axis=1)
        sources = np.select([origin == ORIGIN_CIN, origin == ORIGIN_UASC],
                            [SOURCE_CIN, SOURCE_UASC], SOURCE_BIRTH)
        streams = np.where(origin == ORIGIN_UASC, UASC, 0)
        entrants = Entrants(children, start, sources, streams, placements, month,
                            month.astype(float))
        return entrants, referrals, referral_months

    def _pending_entrants(self) -> Entrants:
        """The re-entries filed by the initial state's home spells (each in its month)."""
        children = np.concatenate([c for c, _ in self.reentries] or [np.zeros(0, int)])
        times = np.concatenate([t for _, t in self.reentries] or [np.zeros(0)])
        self.reentries = []
        n, month = children.size, np.floor(times).astype(np.int64)
        return Entrants(children, times, np.full(n, SOURCE_REENTRY),
                        np.zeros(n, dtype=np.int64), np.full(n, -1), month,
                        month.astype(float))


class BatchReplicate(RoundsReplicate):
    """Draw every month's episodes, then count the flows from the table."""

    def __init__(self, model: CompiledModel, replicate: int) -> None:
        if model.foster_places or model.family_help_places:
            raise ValueError("the batch path has no queues: a scenario with [capacity] "
                             "runs on the event path")
        super().__init__(model, replicate)

    def run(self) -> ReplicateResult:
        start = time.perf_counter()
        base_record = self._draw_initial_state()
        entrants, _, _ = self._draw_entrants()
        self._draw_rounds(Entrants.join([entrants, self._pending_entrants()]))
        self.heap_events = count_flows(self)
        records = [base_record, *(self._year_record(year)
                                  for year in range(1, self.n_years + 1))]
        episodes, home = self._episode_tables()
        return ReplicateResult(self.replicate, list(self.model.years), records, episodes,
                               home, self.heap_events, self.transitions,
                               time.perf_counter() - start, extra={"path": "batch"})


def count_flows(state: ReplicateState) -> int:
    """Set ``state``'s flows by year as the event path counts them in its start and end
    callbacks (same definitions: year of the event, age band in the month it starts),
    from the finished episode table; returns the care events the event path processes
    (a start and an end per episode, a month start per month, a snapshot per year)."""
    model, e = state.model, state.episodes
    size = state.n_years + 1
    source = e["source"]
    started = np.flatnonzero(source != SOURCE_INITIAL)
    start = e["start"][started]
    year = _year_of_time(start)
    month = np.minimum(np.floor(start).astype(np.int64), model.n_months - 1)
    band = BAND_OF_AGE_ROW[np.clip(month - e["birth"][started], 0, AGE_ROWS - 1)]
    cell = year * N_BANDS + band
    kind = source[started]
    state.started = np.bincount(cell, minlength=size * N_BANDS).reshape(
        size, N_BANDS).tolist()
    state.started_uasc = np.bincount(cell[kind == SOURCE_UASC],
                                    minlength=size * N_BANDS).reshape(
        size, N_BANDS).tolist()
    state.reentered = np.bincount(year[kind == SOURCE_REENTRY], minlength=size).tolist()
    # DfE's first start in the year: one per (child, year) with any start.  Only a
    # child with more than one episode can have two starts in a year, so only those
    # go through np.unique (the rest are a few per cent of the starts).
    child = e["child"][started]
    repeated = state.children["care_episodes"][child] > 1
    pairs = np.unique(child[repeated] * size + year[repeated])
    state.first_starts = (np.bincount(year[~repeated], minlength=size)
                         + np.bincount(pairs % size, minlength=size)).tolist()
    ended = np.flatnonzero(e["reason"] != STILL_IN_CARE)
    end_year = _year_of_time(e["end"][ended])
    exits = (end_year * N_STREAMS + e["stream"][ended]) * N_REASONS + e["reason"][ended]
    state.ceased = np.bincount(exits, minlength=size * N_STREAMS * N_REASONS).reshape(
        size, N_STREAMS, N_REASONS).tolist()
    return int(started.size + ended.size + model.n_months + state.n_years)

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


class BatchReplicate(ReplicateState):
    """Draw every month's episodes, then count the flows from the table."""

    def __init__(self, model: CompiledModel, replicate: int) -> None:
        if model.foster_places or model.family_help_places:
            raise ValueError("the batch path has no queues: a scenario with [capacity] "
                             "runs on the event path")
        super().__init__(model, replicate)
        self.heap_events = 0

    def run(self) -> ReplicateResult:
        start = time.perf_counter()
        self.reentries: list[tuple[IntArray, Array]] = []
        base_record = self._draw_initial_state()
        children, times, sources, streams, placements = self._draw_entrants()
        self._draw_episodes(children, times, sources, streams, placements)
        while self.reentries:
            children = np.concatenate([c for c, _ in self.reentries])
            times = np.concatenate([t for _, t in self.reentries])
            self.reentries = []
            self._draw_episodes(children, times, SOURCE_REENTRY,
                                np.zeros(children.size, dtype=np.int64), None)
        self.heap_events = count_flows(self)
        records = [base_record, *(self._year_record(year)
                                  for year in range(1, self.n_years + 1))]
        episodes, home = self._episode_tables()
        return ReplicateResult(self.replicate, list(self.model.years), records, episodes,
                               home, self.heap_events, self.transitions,
                               time.perf_counter() - start, extra={"path": "batch"})

    def _reenter(self, children: IntArray, times: Array) -> None:
        """Keep re-entries for the next round (see the module docstring)."""
        self.reentries.append((children, times))

    def _draw_episodes(self, children: IntArray, times: Array, sources: int | IntArray,
                       streams: IntArray, placements: IntArray | None) -> None:
        """:meth:`_start_episodes` in slices of at most CHUNK children: the draws are
        element-wise, so slicing changes no number, and it bounds the temporaries."""
        sources = np.broadcast_to(np.asarray(sources, dtype=np.int64), children.shape)
        for first in range(0, children.size, CHUNK):
            part = slice(first, first + CHUNK)
            self._start_episodes(children[part], times[part], sources[part],
                                 streams[part],
                                 placements=None if placements is None else placements[part])

    def _draw_entrants(self) -> tuple[IntArray, Array, IntArray, IntArray, IntArray]:
        """Every month's entrants, as :meth:`_draw_month` and :meth:`_enter_at_birth`
        draw them month by month (same cells, same keyed numbers, children registered
        in the same order: month by month, the CIN pool and UASC cells, then births).
        Returns (children, start times, sources, streams, placements: -1 where drawn
        from the year's mix, the births' own otherwise)."""
        model = self.model
        n_months = model.n_months
        per_month = 2 * AGE_ROWS + 1  # CIN pool rows, UASC rows, births
        origin_row = np.concatenate([np.full(AGE_ROWS, ORIGIN_CIN),
                                     np.full(AGE_ROWS, ORIGIN_UASC), [ORIGIN_BIRTH]])
        row_row = np.concatenate([np.arange(AGE_ROWS), np.arange(AGE_ROWS), [0]])
        origins = np.tile(origin_row, n_months)
        rows = np.tile(row_row, n_months)
        months = np.repeat(np.arange(n_months), per_month)
        year = np.arange(n_months) // MONTHS_PER_YEAR
        scale = self.scale
        # the same products, in the same order, as the month-by-month draws
        birth_means = np.array([scale * r.birth_entry_share * r.population_by_age_month[0]
                                for r in model.rates])[year]
        means = np.concatenate([
            scale * model.pool.expected_entries,
            scale * (model.uasc_arrivals * MONTH_IN_YEARS),  # constant within the month
            birth_means[:, None]], axis=1).ravel()
        columns = np.zeros(rows.size, dtype=np.int64)
        counts = self._poisson_cells(origins, months, rows, columns, means)
        births = np.where(origins == ORIGIN_BIRTH, months + 1, months - rows)
        children, cell = self._new_children(origins, months, rows, columns, counts, births)
        uniforms = rng.keyed_uniforms(self.keys[STREAM_ENTRY_TIMES],
                                      self.children["id"][children], 0, 1)[:, 0]
        origin, month = origins[cell], months[cell]
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
        return children, start, sources, streams, placements


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

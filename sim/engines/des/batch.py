"""The batch path: one replicate without the simpy heap, for scenarios without capacity.

Without ``[capacity]`` no event changes anything: an episode's whole life (stages, exit,
home spell, re-entry) is drawn when it starts, and the events on the event path only
count starts and ends.  So this path draws the same children in the same order
(:class:`~sim.engines.des.state.ReplicateState`: the initial state, then each month's
entries), and then counts every flow at once from the episode table with ``bincount``.
The records, episode tables, ``heap_events`` (the events the event path would process)
and ``transitions`` are identical, bit for bit, to the event path's
(``tests/unit/test_des_batch.py``); it is about three times faster.

Why the 31 March stock can be read from the finished table: every episode drawn after
a 31 March starts after it (entries at ``month + u`` with ``u > 0``, births at the
month's end, re-entries inside the month they are drawn for), so it is never in care at
that 31 March, exactly as on the event path, which reads the table as it stands.
"""

from __future__ import annotations

import time

import numpy as np

from sim.engines.des.common import (
    AGE_ROWS,
    BAND_OF_AGE_ROW,
    N_BANDS,
    N_REASONS,
    N_STREAMS,
    SOURCE_INITIAL,
    SOURCE_REENTRY,
    SOURCE_UASC,
    STILL_IN_CARE,
    _year_of_time,
)
from sim.engines.des.model import CompiledModel
from sim.engines.des.state import ReplicateResult, ReplicateState


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
        base_record = self._draw_initial_state()
        for month in range(self.model.n_months):
            self._draw_month(month)
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

"""The event path: one replicate on a simpy heap, for scenarios with ``[capacity]``.

Only the points where children meet capacity or are counted are events (docs/des.md,
"Events"): the start and the end of every care episode, each month start, each 31
March, and with family-help capacity the referral, start and end of help and leaving
the pool.  Events are plain :class:`simpy.events.Event` objects with one callback each.

Order of the steps within month ``m`` (clock in months; month ``m`` is ``[m, m + 1)``):

1. At time ``m``, the month start (priority ``MONTH_START``, after every child event
   and the 31 March snapshot at that instant):
   a. the ends filed under month ``m`` in the calendar go onto the heap;
   b. the month's entries are drawn (:meth:`ReplicateState._draw_month`): entries from
      the CIN pool and UASC arrivals, re-entries due this month, then babies entering
      care at birth at ``m + 1``.  Each batch's episodes (and home spells, and any
      re-entry in this same month) are drawn whole, and a start event is put on the
      heap for each new episode; an end in a month already started goes straight onto
      the heap, a later one into the calendar;
   c. with family-help capacity, the month's referrals are drawn and scheduled;
   d. the next month start is scheduled at ``m + 1``.
2. During the month, child events in time order (priority ``CHILD_EVENT``): starts
   (count the start, request a foster place), ends (count the exit, free the place),
   family-help events.
3. At ``m + 1``: child events at that instant first (18th birthdays, births into
   care), then, if ``m + 1`` is 31 March, the year-end snapshot (``YEAR_END``), then
   the next month start.

Without capacity no event changes anything, and :mod:`.batch` computes the same
records without the heap (the runner picks the path).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy
from simpy.events import EventPriority

from sim.engines.des.capacity import FamilyHelp, FosterQueue
from sim.engines.des.common import (
    AGE_ROWS,
    BAND_OF_AGE_ROW,
    CHILD_EVENT,
    FOSTER,
    MONTH_START,
    MONTHS_PER_YEAR,
    N_BANDS,
    N_REASONS,
    N_STREAMS,
    SOURCE_INITIAL,
    SOURCE_REENTRY,
    SOURCE_UASC,
    STILL_IN_CARE,
    YEAR_END,
    At,
    IntArray,
    _year_of_time,
)
from sim.engines.des.model import CompiledModel
from sim.engines.des.state import ReplicateResult, ReplicateState
from sim.model.parameters import Array


class EventReplicate(ReplicateState):
    """The state and event callbacks of one replicate (one simpy environment)."""

    def __init__(self, model: CompiledModel, replicate: int) -> None:
        super().__init__(model, replicate)
        self.env = simpy.Environment()
        n_years = self.n_years
        self.heap_events = 0
        self.last_start_year: list[int] = []
        # Two-level schedule: an episode's end is filed under the month it falls in
        # and put on the simpy heap when that month starts, so the heap holds about a
        # month of events (~5,000 nationally) instead of one per child in care
        # (~85,000): heap operations are memory-bound and 3x slower on the big heap.
        self.calendar: dict[int, list[tuple[float, tuple[int, int, int, int]]]] = {}
        self.scheduled_events = 0
        # events on the heap just before and just after each month start fills it (the
        # heap drains roughly linearly in between): their mean approximates the time
        # average, reported for the benchmark's like-for-like heapq loop
        self.pending_samples: list[int] = []
        # flows kept as flat Python lists: callbacks add to them one child at a time
        self.started = [[0] * N_BANDS for _ in range(n_years + 1)]
        self.started_uasc = [[0] * N_BANDS for _ in range(n_years + 1)]
        self.reentered = [0] * (n_years + 1)
        self.first_starts = [0] * (n_years + 1)
        self.ceased = [[[0] * N_REASONS for _ in range(N_STREAMS)]
                       for _ in range(n_years + 1)]
        self.snapshots: list[dict[str, Array]] = []
        if model.foster_places:
            self.foster = FosterQueue(self)
        if model.family_help_places:
            self.family_help = FamilyHelp(self)

    def at(self, moment: float, priority: EventPriority, callback: Callable[[Any], None],
           payload: Any) -> None:
        """Schedule ``callback(event)`` at time ``moment`` (months)."""
        self.scheduled_events += 1
        At(self.env, moment - self.env.now, priority, callback, payload)

    def run(self) -> ReplicateResult:
        start = time.perf_counter()
        base_record = self._draw_initial_state()
        for year in range(1, len(self.model.years)):
            self.at(MONTHS_PER_YEAR * year, YEAR_END, self._on_year_end, year)
        self.at(0.0, MONTH_START, self._on_month_start, 0)
        # Every child in care has a pending end (on the heap or in the calendar):
        # ~100,000 live objects at national scale, which Python's cyclic garbage
        # collector, triggered by allocations, would traverse again and again
        # (measured: a national run takes 5.1 s with it, 3.4 s without).  Nothing here
        # relies on it mid-run.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self.env.run()
        finally:
            if collecting:
                gc.enable()
        episodes, home = self._episode_tables()
        pending = self.pending_samples or [0]
        return ReplicateResult(self.replicate, list(self.model.years),
                               [base_record, *self.snapshots], episodes, home,
                               self.heap_events, self.transitions,
                               time.perf_counter() - start,
                               extra={"mean_pending_events": float(np.mean(pending)),
                                      "path": "simpy"})

    def _new_children(self, origins: int | IntArray, month: int, rows: IntArray,
                      columns: IntArray, counts: IntArray, births: IntArray,
                      ) -> tuple[IntArray, IntArray]:
        children, cell = super()._new_children(origins, month, rows, columns, counts,
                                               births)
        self.last_start_year.extend([0] * cell.size)
        return children, cell

    def _episodes_drawn(self, episodes: IntArray, children: IntArray, start: Array,
                        sources: IntArray, streams: IntArray, births: IntArray,
                        months: IntArray, placements: IntArray, end: Array,
                        reason: IntArray) -> None:
        """Schedule a start event per new episode; initial episodes only end."""
        finite_end = np.where(np.isfinite(end), end, 0.0)
        exit_year = _year_of_time(finite_end)
        # the month an end belongs to (an end on a boundary belongs to the month before)
        exit_month = np.ceil(finite_end).astype(np.int64) - 1
        if np.all(sources == SOURCE_INITIAL):
            for episode, stream, placement, end_time, month, why, year in zip(
                    episodes.tolist(), streams.tolist(), placements.tolist(), end.tolist(),
                    exit_month.tolist(), reason.tolist(), exit_year.tolist(), strict=True):
                if self.foster is not None and placement == FOSTER:
                    self.foster.request(episode)
                if why != STILL_IN_CARE:
                    self._schedule_end(end_time, month, (episode, stream, why, year))
            return
        band = BAND_OF_AGE_ROW[np.clip(months - births, 0, AGE_ROWS - 1)]
        start_year = _year_of_time(start)
        env, now, on_start = self.env, self.env.now, self._on_start
        self.scheduled_events += len(episodes)
        for start_time, payload in zip(
                start.tolist(),
                zip(episodes.tolist(), children.tolist(), start_year.tolist(), band.tolist(),
                    sources.tolist(), streams.tolist(),
                    placements.tolist(), end.tolist(), exit_month.tolist(),
                    reason.tolist(), exit_year.tolist(), strict=True), strict=True):
            At(env, start_time - now, CHILD_EVENT, on_start, payload)

    # -- event callbacks -------------------------------------------------------------

    def _on_start(self, event: At) -> None:
        (episode, child, year, band, source, stream, placement, end, end_month, reason,
         end_year) = event.payload
        self.heap_events += 1
        self.started[year][band] += 1
        if source == SOURCE_UASC:
            self.started_uasc[year][band] += 1
        elif source == SOURCE_REENTRY:
            self.reentered[year] += 1
        if self.last_start_year[child] != year:
            self.last_start_year[child] = year
            self.first_starts[year] += 1
        if self.foster is not None and placement == FOSTER:
            self.foster.request(episode)
        if reason != STILL_IN_CARE:
            self._schedule_end(end, end_month, (episode, stream, reason, end_year))

    def _schedule_end(self, end: float, month: int,
                      payload: tuple[int, int, int, int]) -> None:
        """Put an episode's end on the heap now if its ``month`` has started, else file
        it under that month.  An end on a month boundary (an 18th birthday) belongs to
        the month that finishes there, so it comes before that 31 March's snapshot."""
        if month <= self.current_month:
            self.scheduled_events += 1
            At(self.env, end - self.env.now, CHILD_EVENT, self._on_end, payload)
        else:
            bucket = self.calendar.get(month)
            if bucket is None:
                self.calendar[month] = [(end, payload)]
            else:
                bucket.append((end, payload))

    def _on_end(self, event: At) -> None:
        episode, stream, reason, year = event.payload
        self.heap_events += 1
        self.ceased[year][stream][reason] += 1
        if self.foster is not None and self.foster.requests:
            self.foster.leave(episode)

    def _on_month_start(self, event: At) -> None:
        """Steps 1a-1d of the module docstring."""
        self.heap_events += 1
        month: int = event.payload
        self.current_month = month
        self.pending_samples.append(self.scheduled_events - self.heap_events)
        env, now, on_end = self.env, self.env.now, self._on_end
        due_ends = self.calendar.pop(month, [])
        self.scheduled_events += len(due_ends)
        for end, payload in due_ends:
            At(env, end - now, CHILD_EVENT, on_end, payload)
        self._draw_month(month)
        if self.family_help is not None:
            self.family_help.referrals(month)
        if month + 1 < self.model.n_months:
            self.at(month + 1.0, MONTH_START, self._on_month_start, month + 1)
        self.pending_samples.append(self.scheduled_events - self.heap_events)

    def _on_year_end(self, event: At) -> None:
        """31 March: snapshot the stocks and close the year's flows."""
        self.heap_events += 1
        year: int = event.payload
        self.snapshots.append(self._year_record(year))

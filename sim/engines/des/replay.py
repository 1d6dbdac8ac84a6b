"""The capacity path: one replicate with ``[capacity]``, without the simpy heap.

Gives the records and episode tables of the simpy path (:mod:`.replicate`,
:mod:`.capacity`) bit for bit, some twenty times faster at national scale
(``tests/unit/test_des_capacity_replay.py``; docs/des.md, "Capacity without the heap").
Why it can skip the heap: nothing a queue decides feeds back into the draws of the
children in care.  A foster placement changes no hazard, and family help changes only
the hazards of the referred children, who meet nobody but each other.  So:

1. Every month's entrants and family-help referrals registered at once, in the heap's
   order (:meth:`.batch.RoundsReplicate._draw_entrants`).  Then the referrals, a
   year of months at a time, served at once (Kiefer-Wolfowitz recursion,
   :func:`.queues.serve_family_help`; the places carry over): a client's whole stay in
   the pool is known when it is served, including whether and when it enters care.
   Then every episode as on the batch path: all the entrants (with those from family
   help, each at the moment it leaves the pool) in one round, re-entries in rounds
   after it.  What the foster queue needs of the heap's order is
   when each start was put on the heap (its month's start; the moment of leaving
   family help; for a re-entry within the month of the episode before it, that
   episode's), kept per episode (:class:`.batch.Entrants`), and the table order of the
   initial episodes and of each month's births, which stays the heap's: they are the
   only episodes whose events tie in time, kind and start, which the heap breaks by
   insertion (:func:`.queues.foster_event_order`).
2. The flows from the finished table, as the batch path counts them.
3. The foster queue replayed on the finished table, in the heap's order
   (:func:`.queues.replay_foster_queue`): placements, waits and foster-from times.
4. The 31 March records, from the finished tables (every episode drawn after a 31
   March starts after it, as on the batch path).
"""

from __future__ import annotations

import gc
import itertools
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from sim import rng
from sim.engines.des.batch import Entrants, RoundsReplicate, count_flows
from sim.engines.des.common import (
    AGE_ROWS,
    FAMILY_HELP_ENTRY,
    FOSTER,
    MONTH_IN_YEARS,
    MONTHS_PER_YEAR,
    SOURCE_CIN,
    SOURCE_INITIAL,
    STREAM_ENTRY_TIMES,
    STREAM_FAMILY_HELP,
    IntArray,
)
from sim.engines.des.model import CompiledModel
from sim.engines.des.queues import (
    HelpChain,
    foster_event_order,
    heap_times,
    replay_foster_queue,
    serve_family_help,
)
from sim.engines.des.state import ReplicateResult, ReplicateState
from sim.model import spec
from sim.model.parameters import Array

# Months of referrals served per block (see FamilyHelpReplay.serve): ~100,000 clients
# nationally, whose temporaries take a few tens of MB.
BLOCK_MONTHS = 12


def _years_of(times: Array) -> IntArray:
    """``max(1, ceil(t / 12))``: the year a wait or a referral is counted in."""
    return np.maximum(1, np.ceil(times / MONTHS_PER_YEAR).astype(np.int64))


def arrival_order(times: Array) -> IntArray:
    """``np.argsort(times, kind="stable")``: by time, a tie (two referrals drawing the
    same 32-bit uniform in a month, about one a national replicate) in registration
    order.  numpy's default sort is 3x faster than its stable one and gives the same
    order when no two times are equal, so it is tried first."""
    order = np.argsort(times)
    ordered = times[order]
    if (ordered[1:] == ordered[:-1]).any():
        return np.argsort(times, kind="stable")
    return order


def _leaving(times: Array, months: IntArray, birthday: Array, n_months: int,
             ) -> tuple[Array, IntArray]:
    """``FamilyHelp._schedule_leaving``'s rule: a leaving time at or after the 18th
    birthday (or the horizon) becomes the birthday, month -1 (no choice), or none."""
    late = times >= np.minimum(birthday, n_months)
    times = np.where(late, np.where(birthday <= n_months, birthday, np.inf), times)
    return times, np.where(late, -1, months)


class FamilyHelpReplay:
    """Family-help clients served a block of months at a time; what the year records
    read of them."""

    def __init__(self, run: ReplicateState) -> None:
        self.run = run
        model = run.model
        assert model.family_help_pool is not None
        self.chain = model.family_help_pool
        self.heap = [-math.inf] * model.family_help_places
        n_years = run.n_years
        self.years = MONTHS_PER_YEAR * np.arange(1, n_years + 1, dtype=float)
        self.referred = [0] * (n_years + 1)
        self.helped = [0] * (n_years + 1)
        self.waits: list[list[float]] = [[0.0, 0] for _ in range(n_years + 1)]
        self.pool = np.zeros(n_years + 1, dtype=np.int64)  # in the pool on 31 March
        self.queue = np.zeros(n_years + 1, dtype=np.int64)  # waiting on 31 March
        # ends of waits by year (time, 1 if help started, arrival number, months waited)
        self.records: dict[int, list[tuple[Array, Array, IntArray, Array]]] = {}
        # children entering care from family help: (times, children) per block served
        self.entries: list[tuple[Array, IntArray]] = []
        self.clients = 0
        self.events = 0  # what the heap would process: referral, leaving, end of help
        # a million referred children nationally: room for them (and the entrants to
        # care, about a third as many) at once, rather than by doubling the table
        share = model.capacity.family_help_referral_share
        expected = float((run.scale * model.population * share * MONTH_IN_YEARS
                          * np.repeat(model.referral_rate, MONTHS_PER_YEAR)[:, None]).sum())
        run.children.reserve(int(1.4 * expected) + 100_000)
        # per cohort row (birth + AGE_ROWS - 1): the 18th birthday, and the earlier of it
        # and the horizon (a client's leaving at or after that is the birthday, or none)
        births = np.arange(self.chain.n_birth_rows) - (AGE_ROWS - 1)
        birthday = (births + AGE_ROWS).astype(float)
        limit = np.minimum(birthday, model.n_months)
        leaves_at = np.where(birthday <= model.n_months, birthday, np.inf)
        flat = self.chain.flat_cumulative[0]
        self.help_chain = HelpChain(flat, flat.tolist(), model.n_months,
                                    self.chain.n_birth_rows, limit, limit.tolist(),
                                    leaves_at, leaves_at.tolist())

    def serve(self, referrals: IntArray, months: IntArray) -> None:
        """Every month's referrals (registered as :meth:`ReplicateState._new_referrals`
        registers them, in month order), a block of months at a time: numpy's per-call
        cost would dominate a month (~8,000 clients nationally), and a block bounds the
        temporaries (a million clients in all)."""
        bounds = np.searchsorted(months, np.arange(0, self.run.model.n_months + 1,
                                                   BLOCK_MONTHS)).tolist()
        bounds.append(months.size)
        for first, last in itertools.pairwise(bounds):
            if last > first:
                self._serve_block(referrals[first:last], months[first:last])

    def _serve_block(self, children: IntArray, months: IntArray) -> None:
        """Draw the referrals as ``FamilyHelp.referrals`` does, serve them, and keep
        those who will enter care (with the moment they leave the pool) for
        :meth:`entrants`.  Every step is element-wise, so the block gives what month by
        month gives; arrivals sorted in the block are sorted month by month, since a
        month's arrivals fall within it."""
        run, model = self.run, self.run.model
        n = children.size
        ids = run.children["id"][children]
        times = months + rng.keyed_uniforms(run.keys[STREAM_ENTRY_TIMES], ids, 0, 1)[:, 0]
        draws = rng.keyed_uniforms(run.keys[STREAM_FAMILY_HELP], ids, 0, 3)
        order = arrival_order(times)  # the heap's order of referrals
        children, arrival, draws = children[order], times[order], draws[order]
        births = run.children["birth"][children]
        clock = -np.log(draws[:, 0])  # the simpy path takes numpy's log too
        help_log = model.capacity.family_help_mean_months * np.log(draws[:, 2])
        chain, n_months = self.chain, model.n_months
        unserved = chain.rows(np.zeros(n, dtype=np.int64), births)
        helped = chain.rows(np.ones(n, dtype=np.int64), births)
        birthday = (births + AGE_ROWS).astype(float)
        deadline, deadline_month = _leaving(*chain.next_times(0, unserved, arrival, clock),
                                            birthday, n_months)
        deadline = arrival + (deadline - arrival)  # as scheduled at the referral
        served = serve_family_help(self.heap, self.help_chain, arrival, deadline, clock,
                                   chain._position(0, unserved, arrival), help_log,
                                   unserved)
        start = served.start
        is_served = np.isfinite(start)
        help_first = np.isfinite(served.help_ends)
        # back in the pool after help: the clock left runs on at the un-served hazard
        leave, leave_month = deadline.copy(), deadline_month.copy()
        group = np.zeros(n, dtype=np.int64)
        during = is_served & ~help_first
        leave[during], leave_month[during] = served.helped_leave[during], \
            served.leave_month[during]
        group[during] = 1
        after = np.flatnonzero(help_first)
        if after.size:
            ends = served.help_ends[after]
            used = (chain._position(0, helped[after], ends)
                    - chain._position(0, helped[after], start[after]))
            left = np.maximum(served.clock[after] - used, 0.0)
            again, leave_month[after] = _leaving(
                *chain.next_times(0, unserved[after], ends, left), birthday[after],
                n_months)
            leave[after] = ends + (again - ends)
        # who enters care: the choice made in the month the child leaves the pool
        chooses = np.flatnonzero(leave_month >= 0)
        picked = chain.choose(0, group[chooses], leave_month[chooses], births[chooses],
                              draws[chooses, 1])
        entering = chooses[picked == FAMILY_HELP_ENTRY]
        sequence = self.clients + np.arange(n)
        self.entries.append((leave[entering], children[entering]))
        immediate = start == arrival
        self._count(arrival, start, immediate, deadline, leave, sequence)
        self.events += int(n + (~immediate & np.isfinite(deadline)).sum() + served.events
                           + np.isfinite(leave[after]).sum())
        self.clients += n

    def _count(self, arrival: Array, start: Array, immediate: Array, deadline: Array,
               leave: Array, sequence: IntArray) -> None:
        """Referrals, starts of help and waits by year; the pool and the queue on each
        31 March (after every event at that instant, as the snapshot is)."""
        is_served = np.isfinite(start)
        for year, count in enumerate(np.bincount(_years_of(arrival)).tolist()):
            self.referred[year] += count
        for year, count in enumerate(np.bincount(_years_of(start[is_served])).tolist()):
            self.helped[year] += count
        wait_end = np.where(is_served, start, deadline)
        waited = ~immediate
        self.queue[1:] += self._present(arrival[waited], wait_end[waited])
        self.pool[1:] += self._present(arrival, leave)
        # a wait ends when help starts or when the child leaves unserved; the simpy path
        # adds them up in the order it processes them: by time, leavings before the
        # hand-overs of the same instant, then by arrival
        ended = np.flatnonzero(waited & np.isfinite(wait_end))
        years = _years_of(wait_end[ended])
        for year in np.unique(years).tolist():
            these = ended[years == year]
            self.records.setdefault(year, []).append(
                (wait_end[these], is_served[these].astype(np.int64), sequence[these],
                 wait_end[these] - arrival[these]))

    def _present(self, arrival: Array, left: Array) -> IntArray:
        """How many clients are there on each 31 March ``y`` (``arrival <= y < left``):
        client i is there on the 31 Marches numbered from (31 Marches before its
        arrival) up to, not including, (31 Marches before it leaves)."""
        first = np.searchsorted(self.years, arrival, side="left")
        stop = np.searchsorted(self.years, left, side="left")
        there = stop > first
        size = self.years.size + 1
        changes = (np.bincount(first[there], minlength=size)
                   - np.bincount(stop[there], minlength=size))
        return np.cumsum(changes)[:-1]

    def entrants(self) -> Entrants:
        """Children entering care from family help, each at the moment it leaves the
        pool, which is also when the heap draws its episode (so its start is put on the
        heap then); in the month it falls in."""
        pieces, self.entries = self.entries, []
        times = np.concatenate([p[0] for p in pieces] or [np.zeros(0)])
        children = np.concatenate([p[1] for p in pieces] or [np.zeros(0, dtype=np.int64)])
        windows = np.ceil(times).astype(np.int64) - 1
        n = children.size
        return Entrants(children, times, np.full(n, SOURCE_CIN), np.zeros(n, dtype=np.int64),
                        np.full(n, -1), windows, times.copy())

    def finish(self) -> None:
        """Add up the waits in the order the simpy path does (float sums are not
        associative, and the records must be identical)."""
        for year, parts in sorted(self.records.items()):
            moment, kind, sequence, amount = (np.concatenate(columns)
                                              for columns in zip(*parts, strict=True))
            # by time, then kind, then arrival: kind and arrival in one integer key
            # (arrival numbers stay far below 2**40), one sort fewer than three keys
            order = np.lexsort((kind << 40 | sequence, moment))
            self.waits[year] = [float(np.cumsum(amount[order])[-1]), int(amount.size)]
        self.records = {}

    def in_pool(self, moment: float) -> int:
        return int(self.pool[round(moment / MONTHS_PER_YEAR)])

    def waiting_at(self, year: int) -> int:
        return int(self.queue[year])


def _scalars(values: Array, block: int = 1 << 16) -> Iterator[Any]:
    """``values`` as Python scalars, converted a block at a time.  Why: the loop of
    :func:`replay_foster_queue` reads Python scalars far faster than numpy elements,
    but whole-array ``tolist()`` of the three event columns (1.2 million events at
    national scale) held ~90 MB of Python objects at once, the replicate's memory
    peak; in blocks the cost is the same and the lists are 64k long."""
    return itertools.chain.from_iterable(values[lo:lo + block].tolist()
                                         for lo in range(0, values.size, block))


class FosterReplay:
    """The foster queue, replayed once every episode is drawn."""

    def __init__(self, run: ReplicateState) -> None:
        self.run = run
        self.places = run.model.foster_places
        self.overflow = spec.PLACEMENTS.index(run.model.capacity.foster_overflow_placement)
        self.waits: list[list[float]] = [[0.0, 0] for _ in range(run.n_years + 1)]
        self.waiting = [0] * (run.n_years + 1)

    def place_initial(self, episodes: IntArray, placements: IntArray) -> None:
        """The initial state's requests at time 0, in table order (the base record
        shows their placements): the first ``places`` get a place, the rest wait."""
        foster = episodes[placements == FOSTER]
        e = self.run.episodes
        e["foster_from"][foster[: self.places]] = 0.0
        waiting = foster[self.places:]
        e["placement"][waiting] = self.overflow
        e["wait_start"][waiting] = 0.0
        self.waiting[0] = int(waiting.size)

    def replay(self, scheduled: Array) -> None:
        """``scheduled``: when each episode's start was put on the heap."""
        e = self.run.episodes
        customers = np.flatnonzero(e["drawn_placement"] == FOSTER)
        initial = e["source"][customers] == SOURCE_INITIAL
        drawn_end = e["end"][customers]
        start, end = heap_times(e["start"][customers], scheduled[customers], drawn_end,
                                initial)
        codes, times = foster_event_order(start, end, drawn_end, initial)
        outcome = replay_foster_queue(self.places, _scalars(codes >> 1),
                                      _scalars(codes & 1), _scalars(times),
                                      customers.size, self.run.n_years)
        waited = customers[outcome.overflow]
        e["placement"][waited] = self.overflow
        e["wait_start"][waited] = start[outcome.overflow]
        e["foster_from"][customers] = outcome.foster_from
        e["wait_end"][customers] = outcome.wait_end
        self.waits, self.waiting = outcome.waits, outcome.waiting

    def waiting_at(self, year: int) -> int:
        return self.waiting[year]


class QueueReplicate(RoundsReplicate):
    """One replicate with capacity, identical to :class:`.replicate.EventReplicate`."""

    def __init__(self, model: CompiledModel, replicate: int) -> None:
        super().__init__(model, replicate)
        self.foster_replay = FosterReplay(self) if model.foster_places else None
        self.family_help_replay = (FamilyHelpReplay(self) if model.family_help_places
                                   else None)
        self.foster = self.foster_replay
        self.family_help = self.family_help_replay
        self.scheduled: list[Array] = []  # per batch of episodes, see _episodes_drawn

    def run(self) -> ReplicateResult:
        """Steps 1-4 of the module docstring, with the cyclic garbage collector paused:
        the queue loops make millions of short-lived floats, and each collection they
        trigger would walk every live container (a full collection at national scale
        takes tens of milliseconds); nothing here makes reference cycles."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if collecting:
                gc.enable()

    def _run(self) -> ReplicateResult:
        began = time.perf_counter()
        base_record = self._draw_initial_state()
        family_help = self.family_help_replay
        entrants, referrals, referral_months = self._draw_entrants(family_help is not None)
        parts = [entrants, self._pending_entrants()]
        if family_help is not None:
            family_help.serve(referrals, referral_months)
            parts.append(family_help.entrants())
        self._draw_rounds(Entrants.join(parts))
        self.heap_events = count_flows(self)
        if family_help is not None:
            family_help.finish()
            self.heap_events += family_help.events
        if self.foster_replay is not None:
            self.foster_replay.replay(np.concatenate(self.scheduled))
        records = [base_record, *(self._year_record(year)
                                  for year in range(1, self.n_years + 1))]
        episodes, home = self._episode_tables()
        return ReplicateResult(self.replicate, list(self.model.years), records, episodes,
                               home, self.heap_events, self.transitions,
                               time.perf_counter() - began, extra={"path": "events"})

    def _episodes_drawn(self, episodes: IntArray, children: IntArray, start: Array,
                        sources: IntArray, streams: IntArray, births: IntArray,
                        months: IntArray, placements: IntArray, end: Array,
                        reason: IntArray) -> None:
        if np.all(sources == SOURCE_INITIAL):
            self.scheduled.append(np.zeros(episodes.size))
            if self.foster_replay is not None:
                self.foster_replay.place_initial(episodes, placements)
        else:
            self.scheduled.append(self.batch_scheduled.copy())

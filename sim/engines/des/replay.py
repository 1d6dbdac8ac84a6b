"""The capacity path: one replicate with ``[capacity]``, without the simpy heap.

Gives the records and episode tables of the simpy path (:mod:`.replicate`,
:mod:`.capacity`) bit for bit, some twenty times faster at national scale
(``tests/unit/test_des_capacity_replay.py``; docs/des.md, "Capacity without the heap").
Why it can skip the heap: nothing a queue decides feeds back into the draws of the
children in care.  A foster placement changes no hazard, and family help changes only
the hazards of the referred children, who meet nobody but each other.  So:

1. Months in order, as on the heap: the month's entries (:meth:`_draw_month`), then
   the month's family-help referrals, drawn and served at once (Kiefer-Wolfowitz
   recursion, :func:`.queues.serve_family_help`); a client's whole stay in the pool is
   known when it is served, and those who enter care are filed under the month they
   leave in.  Then those of the month's children entering care from family help, in
   the order of their times, as the heap would start them one by one (one
   :meth:`_start_episodes` call per month, split only where a child re-enters care
   within the month, which the heap would draw before the next child).
2. The flows from the finished table, as the batch path counts them.
3. The foster queue replayed on the finished table, in the heap's order
   (:func:`.queues.replay_foster_queue`): placements, waits and foster-from times.
4. The 31 March records, from the finished tables (every episode drawn after a 31
   March starts after it, as on the batch path).
"""

from __future__ import annotations

import gc
import math
import time
from typing import Any

import numpy as np

from sim import rng
from sim.engines.des.batch import count_flows
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


def _years_of(times: Array) -> IntArray:
    """``max(1, ceil(t / 12))``: the year a wait or a referral is counted in."""
    return np.maximum(1, np.ceil(times / MONTHS_PER_YEAR).astype(np.int64))


def _leaving(times: Array, months: IntArray, birthday: Array, n_months: int,
             ) -> tuple[Array, IntArray]:
    """``FamilyHelp._schedule_leaving``'s rule: a leaving time at or after the 18th
    birthday (or the horizon) becomes the birthday, month -1 (no choice), or none."""
    late = times >= np.minimum(birthday, n_months)
    times = np.where(late, np.where(birthday <= n_months, birthday, np.inf), times)
    return times, np.where(late, -1, months)


class FamilyHelpReplay:
    """Family-help clients served month by month; what the year records read of them."""

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
        self.entries: dict[int, list[tuple[Array, Array, IntArray]]] = {}
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

    def referrals(self, month: int) -> None:
        """Draw the month's referrals as ``FamilyHelp.referrals`` does, serve them, and
        file those who will enter care under the month they leave the pool in."""
        run, model = self.run, self.run.model
        children = run._new_referrals(month)
        n = children.size
        if n == 0:
            return
        ids = run.children["id"][children]
        times = month + rng.keyed_uniforms(run.keys[STREAM_ENTRY_TIMES], ids, 0, 1)[:, 0]
        draws = rng.keyed_uniforms(run.keys[STREAM_FAMILY_HELP], ids, 0, 3)
        order = np.argsort(times, kind="stable")  # the heap's order of referrals
        children, arrival, draws = children[order], times[order], draws[order]
        births = run.children["birth"][children]
        # the scalar path's math.log, not numpy's (which may differ in the last bit)
        clock = -np.array(list(map(math.log, draws[:, 0].tolist())))
        mean = model.capacity.family_help_mean_months
        help_log = mean * np.array(list(map(math.log, draws[:, 2].tolist())))
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
        windows = np.ceil(leave[entering]).astype(np.int64) - 1
        sequence = self.clients + np.arange(n)
        for window in np.unique(windows).tolist():
            here = entering[windows == window]
            self.entries.setdefault(window, []).append(
                (leave[here], sequence[here], children[here]))
        immediate = start == arrival
        self._count(month, arrival, start, immediate, deadline, leave, sequence)
        self.events += int(n + (~immediate & np.isfinite(deadline)).sum() + served.events
                           + np.isfinite(leave[after]).sum())
        self.clients += n

    def _count(self, month: int, arrival: Array, start: Array, immediate: Array,
               deadline: Array, leave: Array, sequence: IntArray) -> None:
        """Referrals, starts of help and waits by year; the pool and the queue on each
        31 March (after every event at that instant, as the snapshot is)."""
        is_served = np.isfinite(start)
        for year, count in enumerate(np.bincount(_years_of(arrival)).tolist()):
            self.referred[year] += count
        for year, count in enumerate(np.bincount(_years_of(start[is_served])).tolist()):
            self.helped[year] += count
        wait_end = np.where(is_served, start, deadline)
        waited = ~immediate
        years = self.years[None, :]
        before = arrival[:, None] <= years
        self.queue[1:] += (before & waited[:, None] & (years < wait_end[:, None])).sum(0)
        self.pool[1:] += (before & (years < leave[:, None])).sum(axis=0)
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

    def entries_due(self, month: int) -> tuple[IntArray, Array]:
        """Children entering care from family help during ``month``, in time order."""
        pieces = self.entries.pop(month, [])
        if not pieces:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        times = np.concatenate([p[0] for p in pieces])
        sequence = np.concatenate([p[1] for p in pieces])
        children = np.concatenate([p[2] for p in pieces])
        order = np.lexsort((sequence, times))
        return children[order], times[order]

    def finish(self) -> None:
        """Add up the waits in the order the simpy path does (float sums are not
        associative, and the records must be identical)."""
        for year, parts in sorted(self.records.items()):
            moment, kind, sequence, amount = (np.concatenate(columns)
                                              for columns in zip(*parts, strict=True))
            order = np.lexsort((sequence, kind, moment))
            self.waits[year] = [float(np.cumsum(amount[order])[-1]), int(amount.size)]
        self.records = {}

    def in_pool(self, moment: float) -> int:
        return int(self.pool[round(moment / MONTHS_PER_YEAR)])

    def waiting_at(self, year: int) -> int:
        return int(self.queue[year])


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
        outcome = replay_foster_queue(self.places, (codes >> 1).tolist(),
                                      (codes & 1).tolist(), times.tolist(),
                                      customers.size, self.run.n_years)
        waited = customers[outcome.overflow]
        e["placement"][waited] = self.overflow
        e["wait_start"][waited] = start[outcome.overflow]
        e["foster_from"][customers] = outcome.foster_from
        e["wait_end"][customers] = outcome.wait_end
        self.waits, self.waiting = outcome.waits, outcome.waiting

    def waiting_at(self, year: int) -> int:
        return self.waiting[year]


class QueueReplicate(ReplicateState):
    """One replicate with capacity, identical to :class:`.replicate.EventReplicate`."""

    def __init__(self, model: CompiledModel, replicate: int) -> None:
        super().__init__(model, replicate)
        self.heap_events = 0
        self.foster_replay = FosterReplay(self) if model.foster_places else None
        self.family_help_replay = (FamilyHelpReplay(self) if model.family_help_places
                                   else None)
        self.foster = self.foster_replay
        self.family_help = self.family_help_replay
        # when each episode's start event would be put on the heap: its month's start,
        # or (None) its own start for children leaving family help, who start at once
        self.now: float | None = 0.0
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
        for month in range(self.model.n_months):
            self.now = float(month)
            self._draw_month(month)
            if family_help is not None:
                family_help.referrals(month)
                self._enter_care_in_order(*family_help.entries_due(month))
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
        self.scheduled.append(start.copy() if self.now is None else
                              np.full(episodes.size, self.now))
        if self.foster_replay is not None and np.all(sources == SOURCE_INITIAL):
            self.foster_replay.place_initial(episodes, placements)

    def _enter_care_in_order(self, children: IntArray, times: Array) -> None:
        """Start these children's episodes as the heap would, one at a time in this
        order, but with as few batches as that allows.

        A batch appends all its episodes, then all their home spells, then any re-entry
        within the current month; one at a time, a child's re-entry comes before the next
        child's episode.  So a batch is tried, and if some child re-entered within the
        month it is undone and split before that child, who then goes alone."""
        zeros = np.zeros(children.size, dtype=np.int64)
        first = 0
        while first < children.size:
            batch, when = children[first:], times[first:]
            saved = self._save(batch)
            self.now = None
            self._start_episodes(batch, when, SOURCE_CIN, zeros[first:])
            extra = self.episodes["child"][saved["episodes"] + batch.size:]
            if extra.size == 0:
                return
            split = int(np.flatnonzero(np.isin(batch, extra))[0])
            self._restore(batch, saved)
            if split:
                self._start_episodes(batch[:split], when[:split], SOURCE_CIN,
                                     zeros[:split])
            self.now = float(when[split])  # its re-entry is put on the heap then
            self._start_episodes(batch[split:split + 1], when[split:split + 1],
                                 SOURCE_CIN, zeros[:1])
            first += split + 1

    def _save(self, children: IntArray) -> dict[str, Any]:
        return {"episodes": self.episodes.size, "home": self.home.size,
                "scheduled": len(self.scheduled),
                "transitions": self.transitions,
                "care_episodes": self.children["care_episodes"][children].copy(),
                "home_spells": self.children["home_spells"][children].copy(),
                "pending": {m: len(v) for m, v in self.pending_reentries.items()}}

    def _restore(self, children: IntArray, saved: dict[str, Any]) -> None:
        self.episodes.size, self.home.size = saved["episodes"], saved["home"]
        del self.scheduled[saved["scheduled"]:]
        self.transitions = saved["transitions"]
        self.children["care_episodes"][children] = saved["care_episodes"]
        self.children["home_spells"][children] = saved["home_spells"]
        pending: dict[int, int] = saved["pending"]
        for month in list(self.pending_reentries):
            if month not in pending:
                del self.pending_reentries[month]
            else:
                del self.pending_reentries[month][pending[month]:]

"""Capacity without an event heap: the two queues of :mod:`.capacity`, replayed exactly.

The simpy path (:mod:`.replicate`, :mod:`.capacity`) handles every child who meets a
limited place in its own callbacks, which at national scale is about a million
family-help referrals and 400,000 foster requests and releases: minutes per replicate.
Both queues are first come first served with identical places, and everything a queue
needs to know about a customer is known when the customer arrives, so each can be
replayed in arrival order with a few integers and floats per customer:

* :func:`serve_family_help`, the family-help places: a FIFO queue with ``c`` places and
  abandonment (a referred child leaves the pool anyway at a time drawn at referral).
  Processing clients in arrival order with a min-heap of the times the places come free
  (Kiefer and Wolfowitz's recursion) gives each client's start of help: the earliest
  release not yet taken, or its arrival if a place is free; a client whose leaving comes
  no later than that start leaves unserved and takes no place.  The time a place comes
  free (end of help, or leaving the pool while helped) depends on the start, and is
  computed here with the same floating-point operations as
  :class:`~sim.engines.des.chains.ScalarChain`, so the result is bit for bit the simpy
  path's.
* :func:`replay_foster_queue`, the foster places: every request (an episode's start)
  and every release or withdrawal (its end) is known once the episodes are drawn, since
  a placement changes no hazard.  The events are sorted in the order the simpy heap
  processes them, ties included, and replayed against a copy of :class:`.Places`'s
  rules (a release frees the place at once but hands it over only after the events
  already due at that instant; a request grants the head of the queue).  Ties matter
  here: at a month boundary, 18th birthdays end episodes and babies start care at the
  same instant, and which comes first decides who waits.

Why the ties come out as on the heap (docs/des.md, "Capacity without the heap"): simpy
orders events by (time, priority, insertion).  Everything due at a given instant was
inserted before that instant began, except the hand-over of a freed place and the
callback of a granted request, which therefore come after all of them.  A family-help
client's leaving is on the heap from its referral, so when it falls at the instant a
place is freed (a birthday) the client leaves first and is not served.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain

import numpy as np

from sim.engines.des.chains import sorted_search
from sim.engines.des.common import MONTHS_PER_YEAR, IntArray
from sim.model.parameters import Array

INF = math.inf


@dataclass
class ServedMonth:
    """Outcome of one month's referrals, in arrival order (see :func:`serve_family_help`).

    Times are as the heap holds them: an event scheduled at ``now`` for time ``t`` happens
    at ``now + (t - now)``, which can differ from ``t`` in the last bit.  ``start`` is the
    start of help (``inf`` if never helped; equal to the arrival for a client who found a
    free place, and so did not wait); ``clock`` is the Exp(1) clock left when help
    starts and ``helped_leave`` the leaving time drawn then (``inf`` for none);
    ``help_ends`` is when help ends for clients whose help ends before they leave the
    pool (``inf`` for the others), after which their clock runs on; ``events`` counts the
    leavings and ends of help the heap would hold for them.
    """

    start: Array
    clock: Array
    helped_leave: Array
    leave_month: IntArray  # the month ``helped_leave`` falls in, -1 for none or a birthday
    help_ends: Array
    events: int


@dataclass(frozen=True)
class HelpChain:
    """The one-stage family-help chain as :func:`serve_family_help` reads it.

    ``flat`` holds the cumulative hazards (:class:`~sim.engines.des.chains.ScalarChain`):
    ``n_rows`` rows of ``width`` (``n_months + 1``) per group, un-served rows first, the
    helped rows ``n_rows`` further on; ``flat_list`` is the same as a list (the loop's
    scalar reads).  By row: ``limit``, the earlier of the 18th birthday and the horizon;
    ``birthday``, the time a client leaves at that limit (``inf`` past the horizon).
    """

    flat: Array
    flat_list: list[float]
    n_months: int
    n_rows: int
    limit: Array
    limit_list: list[float]
    birthday: Array
    birthday_list: list[float]

    @property
    def width(self) -> int:
        return self.n_months + 1


def serve_family_help(heap: list[float], chain: HelpChain, arrival: Array,
                      deadline: Array, clock: Array, used_from: Array, help_log: Array,
                      rows: IntArray) -> ServedMonth:
    """Serve clients in arrival order; ``heap`` (release times of the places, ``-inf`` for
    a free place) carries over from call to call.

    Per client: ``deadline`` is when it leaves the pool if never helped (``inf`` if not
    before the horizon), ``clock`` its Exp(1) draw, ``used_from`` the un-served
    cumulative hazard at arrival, ``help_log`` the mean length of help times the log of
    its uniform (help ends at ``start - help_log``), ``rows`` its un-served row in
    ``chain.flat``.  The arithmetic repeats ``FamilyHelp._switch``,
    ``_schedule_leaving`` and ``ScalarChain.next_time`` operation for operation.

    The loop needs only when each place comes free, and only the smallest of those
    times at each arrival.  Three things keep its Python work down (a million clients
    nationally):

    * The smallest release time never decreases (a place taken at ``s`` comes free
      after ``s``), so a client whose ``deadline`` is no later than the smallest
      release at the start of its chunk, and who arrives before it, leaves unserved:
      those (about a third of all clients) are dropped in numpy before the loop.
    * Help lowers the hazard of leaving the pool (``family_help_entry_effect`` is a
      share, so the helped hazard is at most the un-served one in every month), so a
      helped client leaves no earlier than its ``deadline``: when help ends before
      that, the place comes free when help ends (about two clients in three).
    * The others' place comes free no earlier than their ``deadline`` either (help
      ends or they leave the pool).  When that is more than ``DEFER_MONTHS`` after the
      start of help, their release time is not computed in the loop: they take a place
      off the heap and wait in ``deferred``; all of them are computed in numpy
      (:func:`_helped_stay`) and put back on the heap before the smallest release
      could reach the earliest of their deadlines (``RELEASE_MARGIN`` below it).  The
      heap then holds the same times whenever its smallest is read.

    Every served client's outcome is then computed in numpy from its start of help
    (:func:`_served_outcome`), with the same operations.
    """
    n = len(arrival)
    start = [INF] * n
    deferred: list[int] = []
    deferred_start: list[float] = []
    for first in range(0, n, SERVE_CHUNK):
        if heap[0] >= _due(deadline, deferred):  # the heap's top is the smallest release
            _put_back(heap, chain, deferred, deferred_start, arrival, clock, used_from,
                      help_log, rows, deadline)
        top = heap[0]
        part = slice(first, first + SERVE_CHUNK)
        candidates = first + np.flatnonzero((deadline[part] > top) | (arrival[part] >= top))
        _serve_chunk(heap, chain, candidates, arrival, deadline, clock, used_from,
                     help_log, rows, start, deferred, deferred_start)
    _put_back(heap, chain, deferred, deferred_start, arrival, clock, used_from, help_log,
              rows, deadline)
    return _served_outcome(chain, np.array(start), arrival, clock, used_from, help_log,
                           rows)


# Clients per numpy pre-filter in serve_family_help (the smallest release at the chunk's
# start filters it): about half a month nationally.
SERVE_CHUNK = 4096
# A helped client's release is deferred when its deadline is this far after the start of
# help: the deferred clients are put back whenever the smallest release passes about as
# much time (a few hundred times per national replicate).
DEFER_MONTHS = 0.5
# Deferred releases are computed before the smallest release comes this close to a
# deferred client's deadline: a release computed in numpy can differ from the bound by
# rounding (~1e-11 months, see SURE_MARGIN).
RELEASE_MARGIN = 1e-3


def _serve_chunk(heap: list[float], chain: HelpChain, candidates: IntArray, arrival: Array,
                 deadline: Array, clock: Array, used_from: Array, help_log: Array,
                 rows: IntArray, start: list[float], deferred: list[int],
                 deferred_start: list[float]) -> None:
    """The loop of :func:`serve_family_help` over ``candidates`` (indices in arrival
    order); fills ``start`` and ``deferred``."""
    flat, width, n_months = chain.flat_list, chain.width, chain.n_months
    limit, birthday = chain.limit_list, chain.birthday_list
    last_month = n_months - 1
    horizon = float(n_months)
    heapreplace, heappop = heapq.heapreplace, heapq.heappop
    helped_offset = chain.n_rows * width
    # the earliest deadline less the margin among deferred clients (inf if none)
    due = _due(deadline, deferred)
    d_list = deadline[candidates]
    for i, a, d, sure, hl in zip(candidates.tolist(), arrival[candidates].tolist(),
                                 d_list.tolist(), (d_list - SURE_MARGIN).tolist(),
                                 help_log[candidates].tolist(), strict=True):
        top = heap[0]
        if top >= due:
            _put_back(heap, chain, deferred, deferred_start, arrival, clock, used_from,
                      help_log, rows, deadline)
            due = INF
            top = heap[0]
        if top <= a:  # a free place: help starts on arrival, the clock is untouched
            s = a
        elif top >= d:
            continue  # leaves the pool (or the horizon comes) before a place frees
        else:
            s = top
        start[i] = s
        ends = s - hl
        has_end = ends < horizon
        if has_end:
            ends = s + (ends - s)  # as the heap holds it
            if ends < sure:  # help ends first (see the docstring)
                heapreplace(heap, ends)
                continue
        if d - s > DEFER_MONTHS:
            heappop(heap)
            deferred.append(i)
            deferred_start.append(s)
            if d - RELEASE_MARGIN < due:
                due = d - RELEASE_MARGIN
            continue
        c, used, row = float(clock[i]), float(used_from[i]), int(rows[i])
        month = int(s)
        if month > last_month:
            month = last_month
        if s == a:
            left = c
        else:
            k = row * width + month
            low = flat[k]
            left = c - ((low + (s - month) * (flat[k + 1] - low)) - used)
            if left < 0.0:
                left = 0.0
        hb = row * width + helped_offset
        k = hb + month
        low = flat[k]
        target = low + (s - month) * (flat[k + 1] - low) + left
        index = bisect_left(flat, target, hb, hb + width)
        position = index - hb
        if position <= n_months:
            low = flat[index - 1]
            leave = position - 1 + (target - low) / (flat[index] - low)
            if leave >= limit[row]:
                leave = birthday[row]
        else:
            leave = birthday[row]
        if leave != INF:  # the heap holds an event at ``now + (t - now)``
            leave = s + (leave - s)
        # equal: the leaving, put on the heap first, comes first
        heapreplace(heap, ends if has_end and ends < leave else leave)


def _due(deadline: Array, deferred: list[int]) -> float:
    """The smallest release the heap may reach before the deferred releases must be
    back on it: the earliest of their deadlines, less ``RELEASE_MARGIN``."""
    if not deferred:
        return INF
    return float(deadline[deferred].min()) - RELEASE_MARGIN


def _put_back(heap: list[float], chain: HelpChain, deferred: list[int],
              deferred_start: list[float], arrival: Array, clock: Array,
              used_from: Array, help_log: Array, rows: IntArray, deadline: Array) -> None:
    """Compute the deferred clients' release times (as the loop would) and put them on
    the heap; empties ``deferred``."""
    if not deferred:
        return
    index = np.array(deferred)
    s = np.array(deferred_start)
    leave, _, _ = _helped_stay(chain, s, arrival[index], clock[index], used_from[index],
                               rows[index])
    ends, has_end = _help_end(s, help_log[index], chain.n_months)
    release = np.where(has_end & (ends < leave), ends, leave)
    # the bound the deferral relies on (a helped client leaves no earlier than its
    # deadline, help ends no earlier than it less SURE_MARGIN): every release taken
    # while these were deferred came before their deadline less RELEASE_MARGIN
    if np.any(release < deadline[index] - RELEASE_MARGIN):
        raise AssertionError("a deferred family-help release came before its bound")
    for time in release.tolist():
        heapq.heappush(heap, time)
    deferred.clear()
    deferred_start.clear()


# A helped client's leaving computed in the loop and in numpy can differ from the bound
# by rounding (~1e-11 months); help ending this close to the deadline takes the exact way.
SURE_MARGIN = 1e-6


def _helped_stay(chain: HelpChain, s: Array, a: Array, c: Array, used_from: Array,
                 row: IntArray) -> tuple[Array, Array, Array]:
    """When clients helped from ``s`` leave the pool, as the loop of
    :func:`serve_family_help` (and ``ScalarChain``) computes it, operation for operation
    (``+ - * /`` round the same in numpy as in Python, and ``searchsorted`` over the
    rows laid end to end finds what ``bisect_left`` finds within the row, or a
    position past the row's end in both).  Returns (leaving time as the heap holds it,
    the clock left at ``s``, the month of the leaving or -1 for none or a birthday)."""
    flat, width, n_months, n_rows = chain.flat, chain.width, chain.n_months, chain.n_rows
    month = np.minimum(s.astype(np.int64), n_months - 1)  # int(s): s >= 0
    k = row * width + month
    low = flat[k]
    waited = c - ((low + (s - month) * (flat[k + 1] - low)) - used_from)
    waited = np.where(waited < 0.0, 0.0, waited)
    left = np.where(s == a, c, waited)
    k = row * width + n_rows * width + month
    low = flat[k]
    target = low + (s - month) * (flat[k + 1] - low) + left
    index = sorted_search(flat, target)
    position = index - (row * width + n_rows * width)
    reached = position <= n_months
    safe = np.where(reached, index, 1)
    low = flat[safe - 1]
    leave = np.where(reached, position - 1 + (target - low) / (flat[safe] - low), INF)
    within = reached & (leave < chain.limit[row])
    leave = np.where(within, leave, chain.birthday[row])
    leave = s + (leave - s)  # inf stays inf
    return leave, left, np.where(within, position - 1, -1)


def _help_end(s: Array, help_log: Array, n_months: int) -> tuple[Array, Array]:
    """When help started at ``s`` ends (``s - help_log``, as the heap holds it) and
    whether that is within the horizon: the loop of :func:`serve_family_help`, for
    many clients at once."""
    ends = s - help_log
    has_end = ends < float(n_months)
    return s + (ends - s), has_end


def _served_outcome(chain: HelpChain, start: Array, arrival: Array, clock: Array,
                    used_from: Array, help_log: Array, rows: IntArray) -> ServedMonth:
    """Each served client's stay from its start of help (:func:`_helped_stay`)."""
    n_months = chain.n_months
    n = start.size
    clock_left = np.zeros(n)
    helped_leave = np.full(n, INF)
    leave_month = np.full(n, -1, dtype=np.int64)
    help_ends = np.full(n, INF)
    served = np.flatnonzero(np.isfinite(start))
    if served.size == 0:
        return ServedMonth(start, clock_left, helped_leave, leave_month, help_ends, 0)
    s = start[served]
    leave, left, month = _helped_stay(chain, s, arrival[served], clock[served],
                                      used_from[served], rows[served])
    ends, has_end = _help_end(s, help_log[served], n_months)
    first = has_end & (ends < leave)
    clock_left[served] = left
    helped_leave[served] = leave
    leave_month[served] = month
    help_ends[served] = np.where(first, ends, INF)
    events = int(np.isfinite(leave).sum() + has_end.sum())
    return ServedMonth(start, clock_left, helped_leave, leave_month, help_ends, events)


@dataclass
class FosterOutcome:
    """What the foster queue decides per customer (in the order given), and by year."""

    overflow: Array  # bool: no place on arrival (overflow placement, wait starts)
    foster_from: Array  # when a place was taken (inf if never)
    wait_end: Array  # nan unless the customer waited and got a place or left
    waits: list[list[float]]  # [year] -> [total months, count], accumulated in event order
    waiting: list[int]  # [year] -> customers waiting on 31 March (index 0: time 0)


def foster_event_order(start: Array, end: Array, drawn_end: Array, initial: Array,
                       ) -> tuple[IntArray, Array]:
    """The simpy heap's processing order of the foster customers' requests (starts) and
    releases (ends): returns (event codes in order, event times in order).

    ``start`` and ``end`` are the times the heap holds (see :class:`ServedMonth`),
    ``drawn_end`` the end as drawn (it decides the month an end is filed under).  Code
    ``2 i`` is customer i's request, ``2 i + 1`` its end.  Ties occur at month
    boundaries: 18th birthdays end episodes and babies born into care start them.  At
    boundary ``m + 1`` the heap holds, in insertion order: ends filed in the calendar
    for month ``m`` (episodes started by month ``m``'s start, inserted when month ``m``
    began), babies' starts (inserted by month ``m``'s draw), then ends of episodes that
    started during month ``m`` (inserted at their start, in order of starting).  Initial
    episodes request at time 0 before anything else, in table order.
    """
    n = len(start)
    customer = np.arange(n)
    finite = np.flatnonzero(np.isfinite(drawn_end))
    exit_month = np.ceil(drawn_end[finite]) - 1.0
    started_month = np.where(initial[finite], -1.0, np.ceil(start[finite]) - 1.0)
    end_class = np.where(exit_month > started_month, 0, 2)  # calendar, or at the start
    times = np.concatenate([start, end[finite]])
    classes = np.concatenate([np.where(initial, -1, 1), end_class])
    starts = np.concatenate([start, start[finite]])
    index = np.concatenate([customer, finite])
    codes = np.concatenate([2 * customer, 2 * finite + 1])
    order = np.lexsort((index, starts, classes, times))
    return codes[order], times[order]


def heap_times(start: Array, scheduled: Array, drawn_end: Array, initial: Array,
               ) -> tuple[Array, Array]:
    """The times the heap holds for episodes' starts and ends: an event put on the heap
    at ``now`` for time ``t`` happens at ``now + (t - now)``.  A start is scheduled at
    ``scheduled`` (its month's start, or the moment a child left family help); an end
    at the start of its month if that month had not begun when the episode started
    (the calendar), else at the start.  Initial episodes start at 0."""
    start = np.where(initial, 0.0, scheduled + (start - scheduled))
    finite = np.isfinite(drawn_end)
    safe_end = np.where(finite, drawn_end, 0.0)
    exit_month = np.ceil(safe_end) - 1.0
    started_month = np.where(initial, -1.0, np.ceil(start) - 1.0)
    at = np.where(exit_month > started_month, exit_month, start)
    end = np.where(finite, at + (safe_end - at), np.inf)
    return start, end


def replay_foster_queue(places: int, customers: Iterable[int], ends: Iterable[int],
                        times: Iterable[float], n: int, n_years: int) -> FosterOutcome:
    """Replay :class:`~sim.engines.des.capacity.Places` and ``FosterQueue`` on events in
    heap order (:func:`foster_event_order`: customer, 1 for an end, time).

    Within an instant: requests grant the head of the queue (itself if nobody waits);
    an end releases a held place (its hand-over is queued for after the instant's
    pre-scheduled events) or withdraws a waiting request; after those, each hand-over
    grants the head if a place is free, and granted requests record their wait, in the
    order granted, unless the child left at that same instant.
    """
    overflow = [False] * n
    foster_from = [INF] * n
    wait_end = [math.nan] * n
    arrival = [0.0] * n
    status = [0] * n  # 0 not yet, 1 waiting, 2 holding a place, 3 gone
    granted: list[int] = []  # waiting customers granted this instant, in grant order
    total = [0.0] * (n_years + 1)
    count = [0] * (n_years + 1)
    waiting_at = [0] * (n_years + 1)
    queue: deque[int] = deque()
    popleft, append = queue.popleft, queue.append
    free = places
    waiting = 0
    handovers = 0
    now = 0.0
    next_year = 0  # next 31 March to snapshot (0: the base record, at time 0)
    year_end = 0.0
    ceil = math.ceil
    for customer, end, t in zip(chain(customers, (-1,)), chain(ends, (0,)),
                                chain(times, (INF,)), strict=True):
        if t != now:
            # close the instant ``now``: hand-overs of freed places, then the callbacks
            # of the requests granted during it (children who left at ``now`` excepted)
            while handovers:
                handovers -= 1
                while queue and status[queue[0]] != 1:
                    popleft()
                if free > 0 and queue:
                    head = popleft()
                    waiting -= 1
                    free -= 1
                    status[head] = 2
                    granted.append(head)
            if granted:
                year = ceil(now / MONTHS_PER_YEAR)
                if year < 1:
                    year = 1
                for head in granted:
                    if status[head] == 2:
                        foster_from[head] = now
                        wait_end[head] = now
                        total[year] += now - arrival[head]
                        count[year] += 1
                granted.clear()
            while t > year_end and next_year <= n_years:
                waiting_at[next_year] = waiting  # after every event at the 31 March
                next_year += 1
                year_end += MONTHS_PER_YEAR
            now = t
            if customer < 0:
                break
        if end:  # the episode ends: release the place or leave the queue
            state = status[customer]
            status[customer] = 3
            if state == 2:
                free += 1
                handovers += 1
                if not overflow[customer] or wait_end[customer] == wait_end[customer]:
                    continue  # no wait to record (granted at once, or recorded)
            elif state == 1:
                waiting -= 1
            else:
                continue
            wait_end[customer] = t
            year = ceil(t / MONTHS_PER_YEAR)
            if year < 1:
                year = 1
            total[year] += t - arrival[customer]
            count[year] += 1
        else:  # request: join the queue; the head takes a free place
            arrival[customer] = t
            if free > 0:
                while queue and status[queue[0]] != 1:
                    popleft()
                free -= 1
                if queue:  # the longest waiting takes it; this child waits
                    head = popleft()
                    status[head] = 2
                    granted.append(head)
                    append(customer)
                    status[customer] = 1
                    overflow[customer] = True
                else:
                    status[customer] = 2
                    foster_from[customer] = t
            else:
                append(customer)
                waiting += 1
                status[customer] = 1
                overflow[customer] = True
    waits: list[list[float]] = [[t, c] for t, c in zip(total, count, strict=True)]
    return FosterOutcome(np.array(overflow, dtype=bool), np.array(foster_from),
                         np.array(wait_end), waits, waiting_at)

"""Capacity (``[capacity]``, :mod:`sim.model.capacity`): the foster-place queue and
children referred for family help.  Both live on the event path's simpy heap, because
this is where children meet each other: who gets a place depends on who holds one.

* :class:`Places`: a FIFO pool of identical places, ``simpy.Resource``'s behaviour
  without its linear-time list removals (quadratic at national scale).
* :class:`FosterQueue`: foster places.  A child drawn into
  foster care without a free place goes to the overflow placement and waits, first
  come first served.  Placement changes no hazard, so only the placement mix moves.
* :class:`FamilyHelp`: a share of the children joining the CIN pool, followed one by
  one while in the pool, waiting for a place (FIFO) and, while helped, with a lower
  entry hazard.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import numpy as np
import simpy
from simpy.events import EventPriority

from sim import rng
from sim.engines.des.chains import ScalarChain
from sim.engines.des.common import (
    AGE_ROWS,
    CHILD_EVENT,
    FAMILY_HELP_ENTRY,
    MONTHS_PER_YEAR,
    SOURCE_CIN,
    STREAM_ENTRY_TIMES,
    STREAM_FAMILY_HELP,
    At,
    IntArray,
)
from sim.engines.des.model import CompiledModel
from sim.model import spec
from sim.model.parameters import Array


class EventHost(Protocol):
    """What the queues use of the event-driven replicate
    (:class:`sim.engines.des.replicate.EventReplicate`): its simpy clock and scheduler,
    and the shared replicate state (:class:`sim.engines.des.state.ReplicateState`).
    A protocol, so this module does not import the replicate that imports it."""

    env: simpy.Environment
    model: CompiledModel
    episodes: Any
    children: Any
    keys: Any
    heap_events: int
    n_years: int
    scale: float

    def at(self, moment: float, priority: EventPriority, callback: Callable[[Any], None],
           payload: Any) -> None: ...

    def _poisson_cells(self, origins: Any, month: int, rows: IntArray, columns: IntArray,
                       means: Array) -> IntArray: ...

    def _new_referrals(self, month: int) -> IntArray: ...

    def _new_children(self, origins: Any, month: int, rows: IntArray, columns: IntArray,
                      counts: IntArray, births: IntArray) -> tuple[IntArray, IntArray]: ...

    def _start_episodes(self, children: IntArray, start: Array, source: Any,
                        streams: IntArray, start_stages: IntArray | None = None,
                        placements: IntArray | None = None) -> None: ...


class Ticket:
    """A request for a place: ``triggered`` once granted, ``callbacks`` run (with the
    ticket) when a queued request is granted, as on a simpy request event."""

    __slots__ = ("callbacks", "cancelled", "triggered")

    def __init__(self) -> None:
        self.triggered = False
        self.cancelled = False
        self.callbacks: list[Callable[[Ticket], None]] = []

    def cancel(self) -> None:
        """Leave the queue (the place, if any, is released with :meth:`Places.release`)."""
        self.cancelled = True


class Places:
    """``capacity`` identical places, granted first come first served.

    Reproduces ``simpy.Resource`` step for step, so results are unchanged: a request
    joins the queue and the head is granted if a place is free; a release frees the
    place at once but hands it to the head only when its release event is processed
    (at the same instant, NORMAL priority); a queued request's callbacks run from its
    own event after that.  What differs is the cost: simpy removes a released user and
    a cancelled request from Python lists (linear in places held and in the queue),
    which at national scale (40,000 foster places, tens of thousands waiting for family
    help) made a replicate take many minutes.  Here a release is a counter and a
    cancellation a flag, skipped when it reaches the head.
    """

    def __init__(self, env: simpy.Environment, capacity: int) -> None:
        self.env = env
        self.free = capacity
        self.queue: deque[Ticket] = deque()
        self.waiting = 0  # tickets in the queue not cancelled

    def request(self) -> Ticket:
        ticket = Ticket()
        self.queue.append(ticket)
        self.waiting += 1
        self._grant_head()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Withdraw a ticket that is still waiting."""
        if not ticket.triggered and not ticket.cancelled:
            ticket.cancel()
            self.waiting -= 1

    def release(self, ticket: Ticket) -> None:
        """Free the place ``ticket`` holds; the longest-waiting ticket takes it when
        the release event is processed."""
        self.free += 1
        _Callback(self.env, self._grant_head)

    def _grant_head(self) -> None:
        """Grant the head of the queue if a place is free (at most one, as simpy)."""
        queue = self.queue
        while queue and queue[0].cancelled:
            queue.popleft()
        if self.free > 0 and queue:
            head = queue.popleft()
            self.waiting -= 1
            self.free -= 1
            head.triggered = True
            if head.callbacks:
                _Callback(self.env, partial(_run_callbacks, head))


def _run_callbacks(ticket: Ticket) -> None:
    for callback in ticket.callbacks:
        callback(ticket)


class _Callback(simpy.Event):
    """An event that calls ``action()`` now, after the events already due (NORMAL
    priority), as a simpy resource's release and request events do."""

    def __init__(self, env: simpy.Environment, action: Callable[[], None]) -> None:
        self.env = env
        self.callbacks = [lambda _: action()]
        self._value = None
        self._ok = True
        env.schedule(self, CHILD_EVENT, 0.0)


class FosterQueue:
    """Foster places (:class:`Places`); an episode's request lives from its start (or,
    for the initial state, time 0) to its end."""

    def __init__(self, run: EventHost) -> None:
        self.run = run
        model = run.model
        self.resource = Places(run.env, model.foster_places)
        self.requests: dict[int, Ticket] = {}
        self.overflow = spec.PLACEMENTS.index(model.capacity.foster_overflow_placement)
        self.waits = [[0.0, 0] for _ in range(run.n_years + 1)]  # (total months, count)

    def request(self, episode: int) -> None:
        """Take a free place, or move to the overflow placement and queue for one."""
        run = self.run
        request = self.resource.request()
        self.requests[episode] = request
        if not request.triggered:  # no free place: overflow placement, and wait
            run.episodes["placement"][episode] = self.overflow
            run.episodes["wait_start"][episode] = run.env.now
            request.callbacks.append(partial(self._granted, episode))
        else:
            run.episodes["foster_from"][episode] = run.env.now

    def _granted(self, episode: int, request: Ticket) -> None:
        if self.requests.get(episode) is not request:
            return  # the child left care at the instant the place came free
        now = self.run.env.now
        self.run.episodes["foster_from"][episode] = now
        self._record_wait(episode, now)

    def _record_wait(self, episode: int, now: float) -> None:
        episodes = self.run.episodes
        episodes["wait_end"][episode] = now
        waited = now - float(episodes["wait_start"][episode])
        year = max(1, math.ceil(now / MONTHS_PER_YEAR))
        self.waits[year][0] += waited
        self.waits[year][1] += 1

    def waiting_at(self, year: int) -> int:
        """Requests waiting now (called at ``year``'s 31 March snapshot)."""
        return self.resource.waiting

    def leave(self, episode: int) -> None:
        """The episode ended: free its place, or leave the queue (recording the wait)."""
        request = self.requests.pop(episode, None)
        if request is None:
            return
        episodes = self.run.episodes
        waiting = np.isnan(episodes["wait_end"][episode]) and not np.isnan(
            episodes["wait_start"][episode])
        if request.triggered:  # holding a place (or granted at this very instant)
            self.resource.release(request)
        else:
            self.resource.cancel(request)
        if waiting:
            self._record_wait(episode, self.run.env.now)


class FamilyHelp:
    """Children referred for family help, followed one by one while in the CIN pool.

    Each has one Exp(1) clock for leaving the pool; when its hazard changes (help starts
    or ends) the unused part of the clock carries over (the cumulative hazard already
    used is subtracted), which keeps the exit time exact under changing hazards.
    """

    UNSERVED, HELPED = 0, 1

    def __init__(self, run: EventHost) -> None:
        self.run = run
        model = run.model
        assert model.family_help_pool is not None
        self.chain = ScalarChain.of(model.family_help_pool)
        self.resource = Places(run.env, model.family_help_places)
        n_years = len(model.years) - 1
        self.referred = [0] * (n_years + 1)
        self.helped = [0] * (n_years + 1)
        self.waits = [[0.0, 0] for _ in range(n_years + 1)]
        self.mean_help_months = model.capacity.family_help_mean_months
        # per client (index = client number)
        self.child: list[int] = []
        self.birth: list[int] = []
        self.referred_at: list[float] = []
        self.left_at: list[float] = []
        self.group: list[int] = []
        self.clock_left: list[float] = []
        self.clock_since: list[float] = []
        self.version: list[int] = []
        self.choice_draw: list[float] = []  # the uniform that picks the pool exit
        self.help_log: list[float] = []  # mean length of help x log of its uniform
        self.request: list[Any] = []
        self.wait_from: list[float] = []

    def referrals(self, month: int) -> None:
        """Draw this month's referrals (a share of the CIN inflow) and schedule them."""
        run = self.run
        children = run._new_referrals(month)
        ids = run.children["id"][children]
        times = month + rng.keyed_uniforms(run.keys[STREAM_ENTRY_TIMES], ids, 0, 1)[:, 0]
        draws = rng.keyed_uniforms(run.keys[STREAM_FAMILY_HELP], ids, 0, 3)
        # numpy's log, as the capacity replay takes it for a million clients at once
        clocks = (-np.log(draws[:, 0])).tolist()
        help_logs = (self.mean_help_months * np.log(draws[:, 2])).tolist()
        for child, when, choice_draw, clock, help_log in zip(
                children.tolist(), times.tolist(), draws[:, 1].tolist(), clocks, help_logs,
                strict=True):
            client = len(self.child)
            self.child.append(child)
            self.birth.append(int(run.children["birth"][child]))
            self.referred_at.append(when)
            self.left_at.append(math.inf)
            self.group.append(self.UNSERVED)
            self.clock_left.append(clock)
            self.clock_since.append(when)
            self.version.append(0)
            self.choice_draw.append(choice_draw)
            self.help_log.append(help_log)
            self.request.append(None)
            self.wait_from.append(when)
            run.at(when, CHILD_EVENT, self._on_referral, client)

    def _schedule_leaving(self, client: int) -> None:
        """(Re)draw when the client leaves the pool under its current hazard."""
        run = self.run
        now = run.env.now
        self.version[client] += 1
        row = self.group[client] * self.chain.chain.n_birth_rows + self.birth[client] + (
            AGE_ROWS - 1)
        leave_time, month = self.chain.next_time(row, now, self.clock_left[client])
        birthday = float(self.birth[client] + AGE_ROWS)
        if leave_time >= min(birthday, run.model.n_months):
            if birthday > run.model.n_months:
                return  # still in the pool at the horizon
            leave_time, month = birthday, -1
        run.at(leave_time, CHILD_EVENT, self._on_leaving,
               (client, self.version[client], month))

    def _switch(self, client: int, group: int) -> None:
        """Change the client's hazard at now, carrying over the unused clock."""
        run = self.run
        now = run.env.now
        row = self.group[client] * self.chain.chain.n_birth_rows + self.birth[client] + (
            AGE_ROWS - 1)
        used = self.chain.position(row, now) - self.chain.position(
            row, self.clock_since[client])
        self.clock_left[client] = max(self.clock_left[client] - used, 0.0)
        self.clock_since[client] = now
        self.group[client] = group
        self._schedule_leaving(client)

    def _on_referral(self, event: At) -> None:
        run = self.run
        run.heap_events += 1
        client: int = event.payload
        now = run.env.now
        self.referred[max(1, math.ceil(now / MONTHS_PER_YEAR))] += 1
        request = self.resource.request()
        self.request[client] = request
        if request.triggered:  # a free place: no wait to record
            self.wait_from[client] = math.nan
            self._start_help(client)
        else:
            request.callbacks.append(partial(self._granted, client))
            self._schedule_leaving(client)

    def _granted(self, client: int, request: Ticket) -> None:
        if self.request[client] is request and self.left_at[client] == math.inf:
            self._start_help(client)

    def _start_help(self, client: int) -> None:
        run = self.run
        now = run.env.now
        year = max(1, math.ceil(now / MONTHS_PER_YEAR))
        self.helped[year] += 1
        if not math.isnan(self.wait_from[client]):
            self.waits[year][0] += now - self.wait_from[client]
            self.waits[year][1] += 1
            self.wait_from[client] = math.nan
        self._switch(client, self.HELPED)
        help_ends = now - self.help_log[client]
        if help_ends < run.model.n_months:
            run.at(help_ends, CHILD_EVENT, self._on_help_end,
                   (client, self.request[client]))

    def _on_help_end(self, event: At) -> None:
        self.run.heap_events += 1
        client, request = event.payload
        if self.left_at[client] != math.inf or self.request[client] is not request:
            return
        self.resource.release(request)
        self.request[client] = None
        self._switch(client, self.UNSERVED)

    def _on_leaving(self, event: At) -> None:
        run = self.run
        client, version, month = event.payload
        run.heap_events += 1
        if version != self.version[client]:
            return  # superseded by a change of hazard
        now = run.env.now
        self.left_at[client] = now
        request = self.request[client]
        if request is not None:
            if request.triggered:
                self.resource.release(request)
            else:
                self.resource.cancel(request)
                year = max(1, math.ceil(now / MONTHS_PER_YEAR))
                self.waits[year][0] += now - self.wait_from[client]
                self.waits[year][1] += 1
            self.request[client] = None
        if month < 0:
            return  # 18th birthday: leaves the pool
        choice = self.chain.choose(self.group[client], month, self.birth[client],
                                   self.choice_draw[client])
        if choice == FAMILY_HELP_ENTRY:
            child = self.child[client]
            run._start_episodes(np.array([child]), np.array([now]), SOURCE_CIN,
                                np.zeros(1, dtype=np.int64))

    def in_pool(self, moment: float) -> int:
        return sum(1 for referred, left in zip(self.referred_at, self.left_at, strict=True)
                   if referred <= moment < left)

    def waiting_at(self, year: int) -> int:
        """Clients waiting now (called at ``year``'s 31 March snapshot)."""
        return self.resource.waiting


"""The DES's capacity path (queues replayed without a heap) against the simpy path.

Both queues are first come first served and every customer's fate is known once it
arrives, so :mod:`sim.engines.des.replay` replays them in arrival order instead of
running a simpy heap (docs/des.md, "Capacity without the heap").  It must give the simpy
path's replicate bit for bit: records, episode tables, event and transition counts, for
the capacity example and for each kind of capacity alone.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np
import pytest
import xarray as xr

from sim.engines import des
from sim.engines.des import queues
from sim.engines.des.chains import sorted_search
from sim.engines.des.queues import replay_foster_queue, serve_family_help
from sim.engines.des.replay import QueueReplicate, _leaving, arrival_order
from sim.engines.des.state import ReplicateResult
from sim.model.parameters import ModelParameters
from sim.scenarios.loader import load_scenario

SMALL = ["run.population_scale=0.02", "run.replicates=2"]
VARIANTS = {
    "capacity-example": [],
    "foster-only": ["capacity.family_help_places=0"],
    "family-help-only": ["capacity.foster_places=0"],
    # scarce places: long queues, many leaving unserved, ties at birthdays
    "scarce": ["capacity.foster_places=20000", "capacity.family_help_places=5000"],
}


def _config(*overrides: str) -> dict:
    return load_scenario("scenarios/capacity-example.toml", [*SMALL, *overrides]).config


def _assert_identical(a: ReplicateResult, b: ReplicateResult) -> None:
    assert len(a.records) == len(b.records)
    for year, (x, y) in enumerate(zip(a.records, b.records, strict=True)):
        assert x.keys() == y.keys()
        for name in x:
            assert np.array_equal(np.asarray(x[name]), np.asarray(y[name]),
                                  equal_nan=True), (year, name)
    for table in ("episodes", "home_spells"):
        x, y = getattr(a, table), getattr(b, table)
        assert x.keys() == y.keys()
        for name in x:
            assert np.array_equal(x[name], y[name], equal_nan=True), (table, name)
    assert a.heap_events == b.heap_events
    assert a.transitions == b.transitions


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("replicate", [0, 1])
def test_replay_and_simpy_paths_give_identical_replicates(
        baseline_params: ModelParameters, variant: str, replicate: int) -> None:
    model = des.compile_model(baseline_params, _config(*VARIANTS[variant]))
    assert des.chosen_path(model) == "events"
    replayed = des.simulate_replicate(model, replicate)
    simpy = des.simulate_replicate(model, replicate, "simpy")
    assert replayed.extra["path"] == "events" and simpy.extra["path"] == "simpy"
    _assert_identical(replayed, simpy)


def test_replay_and_simpy_runs_give_identical_datasets(
        baseline_params: ModelParameters) -> None:
    config = _config("run.end_year=2026")
    xr.testing.assert_identical(des.run(baseline_params, config, workers=1),
                                des.run(baseline_params, config, workers=1, path="simpy"))


def test_without_capacity_every_path_agrees(baseline_params: ModelParameters) -> None:
    """The simpy path stays the reference for the batch path too."""
    config = load_scenario("scenarios/baseline.toml", SMALL).config
    model = des.compile_model(baseline_params, config)
    batch = des.simulate_replicate(model, 0)
    assert batch.extra["path"] == "batch"
    _assert_identical(batch, des.simulate_replicate(model, 0, "simpy"))
    _assert_identical(batch, des.simulate_replicate(model, 0, "events"))


def test_foster_replay_follows_simpy_at_a_tied_instant() -> None:
    """Two places, held by customers 0 and 1.  At time 5, in heap order: customer 0's
    end (a release: its hand-over waits for the instant's other events), customer 3's
    request (grants the head of the queue, customer 2, and joins it), customer 1's end.
    Then both hand-overs run: the first grants customer 3 (who waited 0 months but did
    wait), the second finds nobody."""
    customers = [0, 1, 2, 0, 3, 1]
    ends = [0, 0, 0, 1, 0, 1]
    times = [0.0, 0.0, 1.0, 5.0, 5.0, 5.0]
    outcome = replay_foster_queue(2, customers, ends, times, 4, n_years=1)
    assert outcome.overflow.tolist() == [False, False, True, True]
    assert outcome.foster_from.tolist() == [0.0, 0.0, 5.0, 5.0]
    assert np.isnan(outcome.wait_end[:2]).all() and outcome.wait_end[2:].tolist() == [5, 5]
    assert outcome.waits[1] == [4.0, 2]
    assert outcome.waiting == [0, 0]


def test_family_help_recursion_matches_a_direct_queue() -> None:
    """The recursion behind :func:`~sim.engines.des.queues.serve_family_help`
    (Kiefer-Wolfowitz with abandonment) against a direct event simulation of a FIFO
    queue with ``c`` places, on random arrivals, patience and service times."""
    rng = np.random.default_rng(3)
    n, places = 400, 3
    arrival = np.sort(rng.uniform(0, 50, n)).tolist()
    deadline = (np.array(arrival) + rng.exponential(2.0, n)).tolist()
    service = rng.exponential(1.5, n).tolist()
    heap = [-math.inf] * places
    start = [math.inf] * n
    for i in range(n):
        s = max(arrival[i], heap[0])
        if s < deadline[i]:
            start[i] = s
            heapq.heapreplace(heap, s + service[i])
    # direct: events (time, kind, customer); kind 0 release, 1 leaving, 2 arrival
    events = [(t, 2, i) for i, t in enumerate(arrival)] + [
        (t, 1, i) for i, t in enumerate(deadline)]
    heapq.heapify(events)
    free, queue, direct = places, [], [math.inf] * n
    while events:
        now, kind, i = heapq.heappop(events)
        if kind == 0:
            free += 1
        elif kind == 1:
            if i in queue:
                queue.remove(i)
        else:
            queue.append(i)
        while free and queue:
            head = queue.pop(0)
            direct[head] = now
            free -= 1
            heapq.heappush(events, (now + service[head], 0, head))
    assert start == direct
    assert n // 10 < sum(map(math.isfinite, start)) < n


@pytest.mark.slow
def test_a_reentry_within_the_month_of_leaving_family_help(
        baseline_params: ModelParameters, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child entering care from family help whose episode and home spell both end
    within the month re-enters at once: the heap draws that re-entry when the child
    leaves the pool (not at a month start), which decides when its foster request is
    put on the heap; the replay must schedule it the same way (replicate 1 at
    population_scale 0.05 has one such re-entry).  Slow: the simpy path takes about ten
    seconds here."""
    chained: list[int] = []
    drawn = QueueReplicate._episodes_drawn

    def counted(self: QueueReplicate, episodes: Any, children: Any, start: Any,
                sources: Any, *args: Any) -> None:
        reentry = sources == des.SOURCE_REENTRY
        if reentry.any():
            scheduled = self.batch_scheduled[reentry]
            chained.append(int((scheduled != np.floor(scheduled)).sum()))
        drawn(self, episodes, children, start, sources, *args)

    monkeypatch.setattr(QueueReplicate, "_episodes_drawn", counted)
    config = load_scenario("scenarios/capacity-example.toml",
                           ["run.population_scale=0.05"]).config
    model = des.compile_model(baseline_params, config)
    replayed = des.simulate_replicate(model, 1)
    assert sum(chained) >= 1
    _assert_identical(replayed, des.simulate_replicate(model, 1, "simpy"))


def _plain_family_help(heap: list[float], chain: queues.HelpChain, arrival: Any,
                       deadline: Any, clock: Any, used_from: Any, help_log: Any,
                       rows: Any) -> Any:
    """The recursion without its shortcuts: every client looked at, every release
    computed when help starts and put straight on the heap."""
    start = np.full(arrival.size, math.inf)
    for i in range(arrival.size):
        top = heap[0]
        if top <= arrival[i]:
            s = float(arrival[i])
        elif top >= deadline[i]:
            continue
        else:
            s = top
        start[i] = s
        one = slice(i, i + 1)
        leave = queues._helped_stay(chain, np.array([s]), arrival[one], clock[one],
                                    used_from[one], rows[one])[0][0]
        ends = s - help_log[i]
        has_end = ends < chain.n_months
        ends = s + (ends - s)
        heapq.heapreplace(heap, ends if has_end and ends < leave else leave)
    return start


def test_family_help_shortcuts_serve_as_the_plain_recursion(
        baseline_params: ModelParameters, monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`serve_family_help` drops clients sure to leave unserved before its loop and
    defers the releases of helped clients whose deadline is far: with few places
    (long queues, most clients leaving unserved) and small chunks both happen often,
    and every start of help and the places left must still be the plain recursion's,
    over two calls (the heap carries over).  (Checked to fail if deferred releases are
    put back only at the end of a call, or if the pre-filter drops clients whose
    deadline is within 0.05 months after the smallest release.)"""
    model = des.compile_model(baseline_params, _config())
    replay = QueueReplicate(model, 0).family_help_replay
    assert replay is not None
    chain, pool = replay.help_chain, replay.chain
    rng = np.random.default_rng(11)
    n, places = 3000, 60
    arrival = np.sort(rng.uniform(0.0, 30.0, n))
    births = np.floor(arrival).astype(np.int64) - rng.integers(0, 216, n)
    clock = rng.exponential(1.0, n)
    help_log = 6.0 * np.log(rng.uniform(size=n))
    rows = pool.rows(np.zeros(n, dtype=np.int64), births)
    deadline, _ = _leaving(*pool.next_times(0, rows, arrival, clock),
                           (births + des.AGE_ROWS).astype(float), chain.n_months)
    deadline = arrival + (deadline - arrival)
    used_from = pool._position(0, rows, arrival)
    put_back: list[int] = []
    original = queues._put_back

    def counted(heap: list[float], chain: Any, deferred: list[int], *args: Any) -> None:
        put_back.append(len(deferred))
        original(heap, chain, deferred, *args)

    monkeypatch.setattr(queues, "_put_back", counted)
    monkeypatch.setattr(queues, "SERVE_CHUNK", 16)  # the pre-filter at work throughout
    heap, plain_heap = [-math.inf] * places, [-math.inf] * places
    for part in (slice(0, n // 2), slice(n // 2, n)):
        columns = (arrival[part], deadline[part], clock[part], used_from[part],
                   help_log[part], rows[part])
        served = serve_family_help(heap, chain, *columns)
        plain = _plain_family_help(plain_heap, chain, *columns)
        assert np.array_equal(served.start, plain)
        assert sorted(heap) == sorted(plain_heap)
    # the shortcuts were taken: many left unserved, many releases deferred, and put
    # back within the calls too
    start = _plain_family_help([-math.inf] * places, chain, arrival, deadline, clock,
                               used_from, help_log, rows)
    assert n // 3 < np.isinf(start).sum() < n - n // 10
    assert sum(put_back) > 100 and sum(1 for count in put_back if count) > 2


def test_a_deferred_release_before_its_bound_is_an_error(
        baseline_params: ModelParameters) -> None:
    """The deferral relies on a helped client's place coming free no earlier than its
    deadline (less a margin); a release computed before that would have changed the
    queue, so it fails loudly instead."""
    model = des.compile_model(baseline_params, _config())
    replay = QueueReplicate(model, 0).family_help_replay
    assert replay is not None
    chain = replay.help_chain
    one = np.ones(1)
    with pytest.raises(AssertionError, match="before its bound"):
        queues._put_back([0.0], chain, [0], [1.0], one, one, np.zeros(1), -one,
                         np.array([300]), np.array([50.0]))


def test_sorted_search_is_searchsorted() -> None:
    rng = np.random.default_rng(5)
    flat = np.sort(rng.uniform(0, 100, 5000))
    for size in (10, 3000):
        target = np.concatenate([rng.uniform(-5, 105, size), flat[:7], [flat[-1]]])
        assert np.array_equal(sorted_search(flat, target),
                              np.searchsorted(flat, target, side="left"))


def test_clients_present_on_each_31_march_are_counted_by_year(
        baseline_params: ModelParameters) -> None:
    """``arrival <= 31 March < left``, as the year-end snapshot sees the pool."""
    model = des.compile_model(baseline_params, _config())
    replay = QueueReplicate(model, 0).family_help_replay
    assert replay is not None
    rng = np.random.default_rng(2)
    arrival = rng.uniform(0, 120, 500)
    arrival[:5] = [12.0, 24.0, 0.0, 119.5, 36.0]  # on a 31 March, or before the first
    left = arrival + np.where(rng.uniform(size=500) < 0.1, np.inf,
                              rng.exponential(10.0, 500))
    left[5:8] = [12.0, 24.0, 48.0]
    years = replay.years[None, :]
    direct = ((arrival[:, None] <= years) & (years < left[:, None])).sum(axis=0)
    assert np.array_equal(replay._present(arrival, left), direct)


def test_referrals_are_ordered_by_time_then_registration() -> None:
    """Ties (equal times) keep registration order, as the heap's insertion order does."""
    rng = np.random.default_rng(8)
    times = rng.uniform(0, 12, 2000)
    assert np.array_equal(arrival_order(times), np.argsort(times, kind="stable"))
    times[rng.integers(0, 2000, 600)] = times[:600]  # many ties
    times[-50:] = 3.0
    order = arrival_order(times)
    assert np.array_equal(order, np.argsort(times, kind="stable"))
    assert np.all(np.diff(order[times[order] == 3.0]) > 0)

"""Constants, child ids and counting helpers shared by every part of the DES.

Kept in one module so the event path (:mod:`.replicate`) and the batch path
(:mod:`.batch`) cannot disagree on a numbering: a child id, a stream name or a
source code is defined once here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats
import simpy
from numpy.typing import NDArray
from simpy.events import NORMAL, EventPriority

from sim.model import spec
from sim.model.parameters import Array

IntArray = NDArray[np.int64]
ProgressCallback = Callable[[int, int], None]

LAYOUT = spec.LAYOUT
MONTHS_PER_YEAR = spec.MONTHS_PER_YEAR
AGE_ROWS = spec.MAX_AGE_MONTHS  # 216 monthly cohorts, ages 0 to 17 years 11 months
MONTH_IN_YEARS = 1.0 / MONTHS_PER_YEAR
BAND_OF_AGE_ROW = np.array([spec.band_of_age_month(a) for a in range(AGE_ROWS)])
N_BANDS = len(spec.AGE_BANDS)
N_STREAMS = len(spec.STREAMS)
N_PLACEMENTS = len(spec.PLACEMENTS)
N_CARE_STAGES = len(spec.CARE_STAGES)
N_HOME_STAGES = len(spec.HOME_STAGES)
N_REASONS = len(spec.CEASED_REASONS)
UASC = spec.STREAMS.index("uasc")
FOSTER = spec.PLACEMENTS.index("foster")
# reason index (spec.CEASED_REASONS) of each hazard exit route (spec.EXIT_ROUTES)
REASON_OF_ROUTE = np.array([spec.CEASED_REASONS.index(r) for r in spec.EXIT_ROUTES])
RETURNED_HOME = spec.CEASED_REASONS.index("returned_home")
TURNED_18 = spec.CEASED_REASONS.index("turned_18")
CARE_STOCK_SHAPE = (N_BANDS, N_STREAMS, N_PLACEMENTS, N_CARE_STAGES)
CARE_STOCK_SIZE = int(np.prod(CARE_STOCK_SHAPE))
STILL_IN_CARE = -1  # episode not ended by the horizon
# state-matrix column of each (stream, placement, stage), from the model's own layout
CARE_COLUMN = np.array([[[LAYOUT.care(g, p, k) for k in range(N_CARE_STAGES)]
                         for p in range(N_PLACEMENTS)] for g in range(N_STREAMS)])

# Where an episode started (``started`` counts all but INITIAL).
SOURCE_INITIAL, SOURCE_CIN, SOURCE_UASC, SOURCE_REENTRY, SOURCE_BIRTH = 0, 1, 2, 3, 4
# How a home spell ended.
HOME_COMPLETED, HOME_REENTERED, HOME_AGED_OUT, HOME_STILL_AT_HOME = 0, 1, 2, 3
# Origins of child ids (see child_ids).
ORIGIN_INITIAL, ORIGIN_CIN, ORIGIN_UASC, ORIGIN_FAMILY_HELP, ORIGIN_BIRTH = 0, 1, 2, 3, 4

# Choices of the family-help pool chain (choice 0, the next stage, never happens).
FAMILY_HELP_ENTRY, FAMILY_HELP_CLOSURE = 1, 2

# Event priorities at equal times: children first, then the 31 March snapshot (after
# every 18th birthday at that instant, as the stock-flow engine ages before it

# Choices of the family-help pool chain (choice 0, the next stage, never happens).
FAMILY_HELP_ENTRY, FAMILY_HELP_CLOSURE = 1, 2

# Event priorities at equal times (event path): children first, then the 31 March
# snapshot (after every 18th birthday at that instant, as the stock-flow engine ages
# before it records), then the month start that draws the next month's entries.
CHILD_EVENT = NORMAL
YEAR_END = EventPriority(NORMAL + 1)
MONTH_START = EventPriority(NORMAL + 2)

# Named random streams (sim.rng): one per kind of draw, so adding a draw of one kind
# never shifts another.
STREAM_CELL_COUNTS = "cell_counts"  # Poisson counts of children per cell
STREAM_ENTRY_TIMES = "entry_times"  # time of an entry within its month
STREAM_CARE = "care_episodes"  # placement, stage clocks and exit-route choices
STREAM_HOME = "home_spells"  # home-stage clocks and re-entry choices
STREAM_FAMILY_HELP = "family_help"  # pool clock, route choice, length of help
CARE_DRAWS = 1 + 2 * N_CARE_STAGES  # placement, then a clock and a route per stage
HOME_DRAWS = 2 * N_HOME_STAGES


def child_ids(origin: int | IntArray, month: int | IntArray, row: int | IntArray,
              column: int | IntArray, ordinal: IntArray) -> NDArray[np.uint64]:
    """Stable 53-bit child ids: (origin, month, age row, state column, ordinal).

    A child is identified by where it came from, not by the order of the simulation:
    the 3rd child entering care from the CIN pool in month 40 at age row 100 has the
    same id (and so the same random numbers) in every scenario.
    """
    # Composed in int64 (every field is non-negative and the id has 53 bits, so the
    # bits are those of the uint64 composition) in one buffer: at 1.4 million children
    # a replicate, converting each field to uint64 first took most of the time.
    fields = [np.asarray(value, dtype=np.int64)
              for value in (ordinal, column, row, month, origin)]
    ids = np.zeros(np.broadcast_shapes(*(field.shape for field in fields)), dtype=np.int64)
    for field, shift in zip(fields, (0, 24, 31, 39, 51), strict=True):
        ids |= field << shift if shift else field
    return ids.view(np.uint64)


def _year_of_time(times: Array) -> IntArray:
    """Projected-year index (1 = first projected year) of events at ``times`` (months).

    An event at a month boundary belongs to the month that ends there, so an 18th
    birthday on 31 March is counted in the year ending that day.
    """
    return np.ceil(np.asarray(times) / MONTHS_PER_YEAR).astype(np.int64)


def _counts(values: IntArray, size: int) -> Array:
    return np.bincount(values, minlength=size).astype(np.float64)


def poisson_quantile(uniforms: Array, means: Array) -> IntArray:
    """Smallest k with P(Poisson(mean) <= k) >= u, element-wise (inversion, so counts
    are monotone in the mean for a fixed uniform).  Small means are summed term by
    term; large ones (where exp(-mean) would underflow) go to scipy."""
    counts = np.zeros(len(means), dtype=np.int64)
    small = np.flatnonzero(means <= 200.0)
    if small.size:
        u, mean = uniforms[small], means[small]
        term = np.exp(-mean)
        cumulative = term.copy()
        k = np.zeros(small.size, dtype=np.int64)
        below = np.flatnonzero(cumulative < u)
        while below.size:
            k[below] += 1
            term[below] *= mean[below] / k[below]
            cumulative[below] += term[below]
            below = below[cumulative[below] < u[below]]
            if below.size and (term[below] == 0.0).all():
                break  # the remaining mass is below float resolution
        counts[small] = k
    large = np.flatnonzero(means > 200.0)
    if large.size:
        counts[large] = scipy.stats.poisson.ppf(uniforms[large], means[large])
    return counts


class At(simpy.Event):
    """A triggered event with one callback at ``delay`` from now and a priority.

    simpy's ``Timeout`` is the same thing at NORMAL priority; like it, this inlines
    ``Event.__init__`` (a per-child event must be cheap).  ``payload`` carries the data
    the callback needs.
    """

    def __init__(self, env: simpy.Environment, delay: float, priority: EventPriority,
                 callback: Callable[[Any], None], payload: Any) -> None:
        self.env = env
        self.callbacks = [callback]
        self.payload = payload
        self._value = None
        self._ok = True
        env.schedule(self, priority, delay)

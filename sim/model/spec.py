"""The structure of the cicsim model: states, stages, routes.  Pure data, no I/O.

Both engines compile this.  The stock-flow engine turns each state into a stock; the
discrete-event engine gives each child one state at a time.  Durations are phase-type
(chains of exponential stages), the only family both engines represent exactly, so the
DES mean converges to the stock-flow trajectory.

Diagram (years end 31 March)::

    child population (by month of age 0-17)
          | referral (per child per year)
          v
    children-in-need pool --closure--> back to population
          | entry to care (hazard by age band x trend x family-help effect)
          v                                    <-- UASC arrivals (own stream)
    in care: stream (non-UASC, UASC) x placement x time-in-care stage
          | exits by route (hazard by route x age band x stage)
          +-- returned home --> returned-home stages --re-entry--> back into care
          |                      (after the last stage: back to population)
          +-- adoption, SGO / child arrangements, other
          +-- turned 18 (at the 18th birthday, by exact ageing)
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.model import flows

# --- ages ---------------------------------------------------------------------------
MONTHS_PER_YEAR = 12
MAX_AGE_MONTHS = 18 * MONTHS_PER_YEAR  # children leave care on their 18th birthday

# DfE age bands used for published breakdowns and for age-specific hazards:
# (name, first month of age, last month of age + 1)
AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("under_1", 0, 12),
    ("1_to_4", 12, 60),
    ("5_to_9", 60, 120),
    ("10_to_15", 120, 192),
    ("16_and_over", 192, 216),
)
AGE_BAND_NAMES: tuple[str, ...] = tuple(b[0] for b in AGE_BANDS)
# [trends] keys of the age-band entry trends, in AGE_BANDS order.
ENTRY_BAND_TREND_KEYS: tuple[str, ...] = tuple(f"entry_{b}_trend_per_year"
                                               for b in AGE_BAND_NAMES)


def band_of_age_month(age_month: int) -> int:
    for index, (_, start, stop) in enumerate(AGE_BANDS):
        if start <= age_month < stop:
            return index
    raise ValueError(f"age in months {age_month} is outside 0-{MAX_AGE_MONTHS - 1}")


# --- in care (derived from the declarations in sim/model/flows.py) -------------------
STREAMS: tuple[str, ...] = flows.STREAMS
PLACEMENTS: tuple[str, ...] = flows.PLACEMENTS
CARE_STAGES: tuple[str, ...] = tuple(s.name for s in flows.CARE_STAGE_DECLS)
CARE_STAGE_MEAN_YEARS: tuple[float, ...] = tuple(s.mean_years for s in flows.CARE_STAGE_DECLS)

# Exit routes before the 18th birthday (hazards); "turned_18" happens by ageing.
# Routes that are hazards (all but ageing out at 18), with their declared keys.
HAZARD_ROUTE_DECLS: tuple[flows.ExitRoute, ...] = tuple(r for r in flows.EXIT_ROUTE_DECLS
                                                        if r.hazard)
EXIT_ROUTES: tuple[str, ...] = tuple(r.name for r in HAZARD_ROUTE_DECLS)
# Reasons reported in results: the hazard routes plus ageing out at 18.
CEASED_REASONS: tuple[str, ...] = tuple(r.name for r in flows.EXIT_ROUTE_DECLS)
# The reason reached by ageing (the one non-hazard route).
AGEING_REASON: str = next(r.name for r in flows.EXIT_ROUTE_DECLS if not r.hazard)

# --- after returning home ----------------------------------------------------------
HOME_STAGES: tuple[str, ...] = tuple(s.name for s in flows.HOME_STAGE_DECLS)
HOME_STAGE_MEAN_YEARS: tuple[float, ...] = tuple(s.mean_years for s in flows.HOME_STAGE_DECLS)


@dataclass(frozen=True)
class StateLayout:
    """Column index of every state in the stock-flow state matrix (rows = month of age).

    Columns hold, in order: the exogenous child population of the cohort, the UASC
    arrival intensity of the cohort (both *sources*: constant within a month), the
    children-in-need pool, in-care states, returned-home states, and flow counters
    (absorbing columns that integrate flows exactly within a step).
    ``collapse_placements`` maps every care cell to one column per stream x stage (the
    batched engine's reduced layout, :data:`sim.engines.flow_compiler.REDUCED`).
    """

    population: int
    uasc_source: int
    cin_pool: int
    care_start: int
    home_start: int
    counter_start: int
    size: int
    collapse_placements: bool = False

    def care(self, stream: int, placement: int, stage: int) -> int:
        if self.collapse_placements:
            return self.care_start + stream * len(CARE_STAGES) + stage
        return (self.care_start
                + (stream * len(PLACEMENTS) + placement) * len(CARE_STAGES) + stage)

    def home(self, stage: int) -> int:
        return self.home_start + stage

    def counter(self, name: str) -> int:
        return self.counter_start + COUNTERS.index(name)

    def group(self, name: str) -> int:
        """The column of a source or pool state group (``flows.StateGroup.name``)."""
        return int(getattr(self, name))


# Routes by which UASC leave care before 18 (ASSUMPTION, sim/model/rates.py: one
# "other" hazard; most leave at 18, by ageing).  The ``ceased_<route>`` counters count
# both streams; ``ceased_uasc_<route>`` counts the UASC stream alone, so ceased by stream
# is an exact integral too (non-UASC = all - UASC; turned-18 exits are counted per
# stream by ageing).  The engines refuse a UASC hazard on any other route rather than
# mis-report it.
UASC_EXIT_ROUTES: tuple[str, ...] = tuple(r.name for r in flows.EXIT_ROUTE_DECLS
                                          if r.hazard and r.uasc_rate is not None)
UASC_CEASED_COUNTERS: tuple[str, ...] = tuple(f"ceased_uasc_{r}" for r in UASC_EXIT_ROUTES)

# Flow counters: every flow the results report, integrated exactly by the engine.
COUNTERS: tuple[str, ...] = flows.counter_names()


def make_layout() -> StateLayout:
    """Columns in :data:`sim.model.flows.STATE_GROUPS` order: sources, pool, care cells
    (stream x placement x stage), home stages, then counters."""
    assert [g.name for g in flows.STATE_GROUPS] == ["population", "uasc_source", "cin_pool",
                                                    "care", "home"]
    n_care = len(STREAMS) * len(PLACEMENTS) * len(CARE_STAGES)
    care_start = 3
    home_start = care_start + n_care
    counter_start = home_start + len(HOME_STAGES)
    return StateLayout(
        population=0,
        uasc_source=1,
        cin_pool=2,
        care_start=care_start,
        home_start=home_start,
        counter_start=counter_start,
        size=counter_start + len(COUNTERS),
    )


LAYOUT = make_layout()

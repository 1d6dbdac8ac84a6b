"""The model's states, flows and exit routes as typed, frozen declarations.

Why data and not code: both stock-flow engines (the dense reference and the batched
reduced-state engine) *compile* their generators from :data:`FLOWS` by one loop over
flows, and every tuple other modules use (``spec.STREAMS``, ``spec.EXIT_ROUTES``,
``spec.COUNTERS``, ``spec.LAYOUT`` ...) is derived from these declarations.  Adding an
exit route (say, splitting residence orders out of ``sgo_cao``) or a placement is an
edit here (plus the estimation mapping from DfE columns and the scenario keys the
route names), never an edit to an engine.

A flow moves children from every cell of a *source* state group to a *target* group
at a hazard read from one :class:`~sim.model.rates.YearRates` field (:class:`Rate`),
and copies the same flow into its counters.  Cells of the care group are
stream x placement x stage; the home group's cells are returned-home stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# --- dimensions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One exponential stage of a phase-type duration (mean in years; inf = last)."""

    name: str
    mean_years: float


@dataclass(frozen=True)
class ExitRoute:
    """A reason for leaving care.

    ``hazard`` routes are flows at ``YearRates.exit_rate[..., route]``; the one route
    with ``hazard=False`` (``turned_18``) happens by ageing.  ``to_home`` routes lead
    the non-UASC stream into the returned-home chain.  ``uasc_rate`` names the
    parameter of the UASC stream's hazard on this route (None: the UASC stream has no
    such exit; the engines refuse a hazard there), and such routes get a per-stream
    counter ``ceased_uasc_<name>`` so ceased is exact by stream.  The scenario keys
    (``[rates] multiplier_key``, ``[trends] trend_key``) and the lever effect
    (``LeverEffects`` attribute) scale the non-UASC hazard in
    :func:`sim.model.rates.year_rates`.
    """

    name: str
    label: str = ""  # in descriptions: "the <label> hazard"
    hazard: bool = True
    to_home: bool = False
    uasc_rate: str | None = None
    multiplier_key: str = ""
    trend_key: str = ""
    lever: str | None = None


STREAMS: tuple[str, ...] = ("non_uasc", "uasc")
PLACEMENTS: tuple[str, ...] = ("foster", "kinship_foster", "residential", "other")
# Time-in-care stages: a Coxian phase-type duration, each stage the width of the DfE
# "duration of last period of care" band it stands for; the last has no next stage.
CARE_STAGE_DECLS: tuple[Stage, ...] = (
    Stage("0_to_6m", 0.5), Stage("6m_to_1y", 0.5), Stage("1y_to_2y", 1.0),
    Stage("2y_to_5y", 3.0), Stage("5y_plus", float("inf")))
# Erlang stages of one year each after returning home (re-entry is highest in year 1);
# after the last the child is no longer tracked (back to the population).
HOME_STAGE_DECLS: tuple[Stage, ...] = tuple(
    Stage(f"home_{j}_to_{j + 1}y", 1.0) for j in range(5))

# Reasons for leaving care, in the order results report them.
EXIT_ROUTE_DECLS: tuple[ExitRoute, ...] = (
    ExitRoute("returned_home", "returned-home", to_home=True,
              multiplier_key="reunification_multiplier",
              trend_key="returned_home_trend_per_year", lever="reunification_multiplier"),
    ExitRoute("adoption", "adoption", multiplier_key="adoption_multiplier",
              trend_key="adoption_trend_per_year"),
    ExitRoute("sgo_cao", "SGO/CAO", multiplier_key="sgo_cao_multiplier",
              trend_key="sgo_cao_trend_per_year", lever="sgo_cao_multiplier"),
    ExitRoute("turned_18", "turned-18", hazard=False),
    # ASSUMPTION (sim/model/rates.py): UASC leave before 18 by this route only.
    ExitRoute("other", "other-exit", uasc_rate="uasc_exit_rate_per_year",
              multiplier_key="other_exit_multiplier",
              trend_key="other_exit_trend_per_year"),
)

# --- states ---------------------------------------------------------------------------
GroupName = Literal["population", "uasc_source", "cin_pool", "care", "home"]


@dataclass(frozen=True)
class StateGroup:
    """A block of columns of the state matrix.  ``source`` groups are exogenous
    (constant within a month, never depleted); the others are stocks."""

    name: GroupName
    source: bool = False


STATE_GROUPS: tuple[StateGroup, ...] = (
    StateGroup("population", source=True),
    StateGroup("uasc_source", source=True),
    StateGroup("cin_pool"),
    StateGroup("care"),   # stream x placement x stage
    StateGroup("home"),   # returned-home stage
)

# --- flows ----------------------------------------------------------------------------
Axis = Literal["band", "stream", "stage", "home_stage", "route"]


@dataclass(frozen=True)
class Rate:
    """A hazard: ``YearRates.<field>`` indexed by ``axes`` (resolved from the source
    cell and the flow's route; ``band`` stays a vector over age bands).  ``field=""``
    is the constant 1 (a source's intensity is its own rate)."""

    field: str
    axes: tuple[Axis, ...] = ()


@dataclass(frozen=True)
class Counter:
    """A flow counter; ``stream`` restricts it to source cells of that stream."""

    name: str
    stream: str | None = None


Target = Literal["cin_pool", "care_first", "care_next", "home_first", "home_next", "out"]


@dataclass(frozen=True)
class Flow:
    """Children move from each cell of ``source`` (restricted to ``streams`` for care)
    to ``target`` at ``rate`` per year, and each of ``counters`` receives the same flow.

    Targets: ``care_first`` is the first care stage of ``target_stream``, split across
    placements by ``YearRates.placement_mix[target_stream]``; ``care_next`` and
    ``home_next`` the next stage of the same cell (the last stage has no such flow;
    ``home_next`` from the last home stage leaves the model); ``out`` leaves the model.
    ``at_birth`` flows are events at each month end (a share of the newborn cohort),
    not hazards; the engines apply them outside the generator.
    """

    name: str
    source: GroupName
    target: Target
    rate: Rate
    counters: tuple[Counter, ...] = ()
    streams: tuple[str, ...] = STREAMS
    target_stream: str = "non_uasc"
    route: str | None = None
    at_birth: bool = False


def _exit_flows() -> tuple[Flow, ...]:
    """One flow per (hazard route, stream that has it)."""
    flows = []
    for route in EXIT_ROUTE_DECLS:
        if not route.hazard:
            continue
        streams = STREAMS if route.uasc_rate is not None else ("non_uasc",)
        for stream in streams:
            counters = (Counter(f"ceased_{route.name}"),)
            if stream == "uasc":
                counters += (Counter(f"ceased_uasc_{route.name}", "uasc"),)
            target: Target = "home_first" if route.to_home and stream == "non_uasc" else "out"
            flows.append(Flow(f"exit_{route.name}_{stream}", "care", target,
                              Rate("exit_rate", ("stream", "band", "stage", "route")),
                              counters, streams=(stream,), route=route.name))
    return tuple(flows)


FLOWS: tuple[Flow, ...] = (
    Flow("entry", "cin_pool", "care_first", Rate("entry_rate", ("band",)),
         (Counter("started_from_cin"),)),
    Flow("uasc_arrival", "uasc_source", "care_first", Rate(""),
         (Counter("started_uasc"),), target_stream="uasc"),
    Flow("reentry", "home", "care_first", Rate("reentry_rate", ("home_stage",)),
         (Counter("reentered"),)),
    *_exit_flows(),
    Flow("referral", "population", "cin_pool", Rate("referral_rate"),
         (Counter("cin_referrals"),)),
    Flow("closure", "cin_pool", "out", Rate("cin_closure_rate"), (Counter("cin_closures"),)),
    Flow("entry_at_birth", "population", "care_first", Rate("birth_entry_share"),
         (Counter("started_at_birth"),), at_birth=True),
    Flow("stage_progress", "care", "care_next", Rate("stage_progress_rate", ("stage",))),
    Flow("home_progress", "home", "home_next", Rate("home_stage_rate", ("home_stage",))),
)


def counter_names() -> tuple[str, ...]:
    """Counters in the order flows declare them, stream-specific counters last (the
    state layout of ``params.initial_state`` depends on this order)."""
    names = [c.name for f in FLOWS for c in f.counters]
    unique = list(dict.fromkeys(names))
    streamed = {c.name for f in FLOWS for c in f.counters if c.stream is not None}
    return tuple(n for n in unique if n not in streamed) + tuple(
        n for n in unique if n in streamed)

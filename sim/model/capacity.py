"""Capacity limits for the discrete-event engine: family-help places and foster places.

The ``[capacity]`` scenario section.  Every default means "off": with no limit set the
discrete-event engine runs the same model as the stock-flow engine, and the two agree
in expectation (``tests/statistical``).  The stock-flow engine has no queues and
ignores this section (it is stated in ``docs/des.md`` and in each DES output's
``capacity`` attribute).

Foster places (``foster_places`` > 0): a simpy resource with that many places.  A child
whose drawn placement is foster care takes a free place; when none is free the child
is placed in ``foster_overflow_placement`` (by default the next placement type in
:data:`sim.model.spec.PLACEMENTS`) and waits, first come first served, for a foster
place, moving into it when one frees up.  Placement does not change any hazard in this
model, so the number in care is unchanged; the placement mix (and so cost) moves.

Family help (``family_help_places`` > 0): a share of the children joining the CIN pool
are referred for family help and are followed individually; the rest of the pool stays
aggregate (``docs/des.md``).  A referred child waits for one of the places (FIFO); while
waiting, or after help ends, the child keeps the un-served entry hazard; while being
helped the entry hazard is multiplied by ``1 - family_help_entry_effect``.

Places are for England; the engine scales them by ``run.population_scale``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.model import spec
from sim.model.fields import Field

OVERFLOW_PLACEMENTS: tuple[str, ...] = tuple(p for p in spec.PLACEMENTS if p != "foster")

CAPACITY_FIELDS: dict[str, Field] = {
    "foster_places": Field(
        int, 0, "DES only: foster placements available at once in England (0 = no limit). "
        "Scaled by run.population_scale", 0, 1_000_000),
    "foster_overflow_placement": Field(
        OVERFLOW_PLACEMENTS, OVERFLOW_PLACEMENTS[0],
        "DES only: placement of a child waiting for a foster place (default: the next "
        "placement type after foster)"),
    "family_help_places": Field(
        int, 0, "DES only: children who can receive family help at once in England "
        "(0 = no queue: family help acts only through levers, as in the stock-flow "
        "engine). Scaled by run.population_scale", 0, 10_000_000),
    "family_help_referral_share": Field(
        "prob", 0.3, "DES only: ASSUMPTION: share of children joining the CIN pool who "
        "are referred for family help (used when family_help_places > 0)"),
    "family_help_mean_months": Field(
        float, 6.0, "DES only: ASSUMPTION: mean length of family help in months "
        "(exponential)", 0.25, 120.0),
    "family_help_entry_effect": Field(
        "prob", 0.2, "DES only: ASSUMPTION: relative reduction of the entry-to-care hazard "
        "while a child receives family help"),
}


@dataclass(frozen=True)
class CapacitySettings:
    """The resolved ``[capacity]`` section (England-wide places)."""

    foster_places: int
    foster_overflow_placement: str
    family_help_places: int
    family_help_referral_share: float
    family_help_mean_months: float
    family_help_entry_effect: float

    @property
    def foster_limited(self) -> bool:
        return self.foster_places > 0

    @property
    def family_help_limited(self) -> bool:
        return self.family_help_places > 0

    @property
    def any_limited(self) -> bool:
        return self.foster_limited or self.family_help_limited

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CapacitySettings:
        section = {name: field.default for name, field in CAPACITY_FIELDS.items()}
        section.update(config.get("capacity", {}))
        return cls(**section)

"""Funding levers: money -> capacity -> coverage -> effect on a hazard.

This module is the hook the rate builder (:mod:`sim.model.rates`) calls every year.
With no levers configured every effect is neutral (multiplier 1), so a scenario with
zero funding reproduces the baseline exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from sim.scenarios.fields import Field

if TYPE_CHECKING:
    from sim.model.parameters import ModelParameters


# Scenario keys: [levers.NAME] tables (NAME one of LEVER_NAMES) and the [costs] section.
LEVER_NAMES: tuple[str, ...] = ()
LEVER_TABLE_FIELDS: dict[str, Field] = {}
COST_FIELDS: dict[str, Field] = {}


@dataclass(frozen=True)
class LeverEffects:
    """Relative changes to hazards in one year (1.0 = no change)."""

    entry_multiplier: float = 1.0
    reunification_multiplier: float = 1.0
    reentry_multiplier: float = 1.0
    sgo_cao_multiplier: float = 1.0
    # maps the non-UASC entry placement mix to a new mix (None = unchanged)
    placement_shift: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None
    family_help_served: float = 0.0  # children served by family help in the year
    programme_cost_gbp: float = 0.0


def lever_effects(config: dict[str, Any], params: ModelParameters, year: int) -> LeverEffects:
    """Combined effect of every configured lever in ``year`` (neutral when none)."""
    return LeverEffects()

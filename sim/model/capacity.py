"""Capacity limits for the discrete-event engine (family-help places, foster places).

Declares the [capacity] scenario section; empty until capacity is implemented.
"""

from __future__ import annotations

from sim.scenarios.fields import Field

CAPACITY_FIELDS: dict[str, Field] = {}

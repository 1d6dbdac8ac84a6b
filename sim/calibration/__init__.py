"""Calibration and backtesting of the stock-flow model (issue #4, docs/calibration.md).

``cicsim calibrate`` fits trend parameters to DfE's national series (targets declared in
``targets.toml``), writes ``scenarios/calibrated.toml`` and its uncertainty; ``cicsim
backtest`` repeats it from earlier base years.  The DES engine draws parameter sets from
the calibrated uncertainty with :func:`sample_parameter_sets`.
"""

from __future__ import annotations

from typing import Any


def sample_parameter_sets(n: int, seed: int, path: Any = None) -> list[dict[str, float]]:
    """``n`` ``--set``-style override dicts drawn from the calibrated uncertainty (see
    :func:`sim.calibration.layer.sample_parameter_sets`; imported lazily so that
    ``import sim.calibration`` stays light)."""
    from sim.calibration.layer import sample_parameter_sets as sample

    return sample(n, seed, path)


__all__ = ["sample_parameter_sets"]

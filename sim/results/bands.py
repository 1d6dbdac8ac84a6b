"""Prediction intervals from how wrong past projections were.

Why empirical: the only honest answer to "how far can I trust the do-nothing line?" is
how far such lines have been from what DfE later published.  ``cicsim backtest``
re-runs the whole pipeline from each origin 2014-2020 with data up to the origin only
and records the log error ``log(published / projected)`` of the chosen trend treatment
at horizons 1-3.  Their root-mean-square by horizon (``s_h``, bias included) is
written into the generated forecast layer (``[bands]`` in
``scenarios/layers/forecast.toml``) and turned here into quantiles of every
projection: ``projected * exp(z_q * s_h)``.

* Beyond the tested horizons the scale grows as ``s_H * (h / H) ** growth_exponent``
  (the exponent fitted on h = 1..H and kept between 0.5, random-walk growth, and 1,
  trend-error growth): an extrapolation, stated as such.
* Parameter uncertainty is already inside these errors (each origin re-fits the
  trends), so the Jacobian covariance is not added again; for the discrete-event
  engine the spread between replicates (process noise) is added in quadrature.
* The bands describe the *level* of one scenario.  Differences between scenarios
  share the trend error (common parameters and random numbers), so they are much
  narrower: :mod:`sim.results.compare` reports them separately.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

# ndtri is the standard normal quantile function that scipy.stats.norm.ppf calls (same
# bits), without importing scipy.stats (~1 s of start-up for every run).
from scipy.special import ndtri

QUANTILES: tuple[float, ...] = (0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975)
# results variable -> [bands] key holding its log-error scale by horizon
BANDED: dict[str, str] = {"looked_after": "looked_after_log_sd",
                          "started": "started_log_sd", "ceased": "ceased_log_sd"}


def log_scale(scales: list[float], horizon: int, exponent: float) -> float:
    """Log-error scale at ``horizon`` years after the base year (0 at the base year,
    which is published)."""
    if horizon <= 0 or not scales:
        return 0.0
    if horizon <= len(scales):
        return float(scales[horizon - 1])
    return float(scales[-1] * (horizon / len(scales)) ** exponent)


def _total(ds: xr.Dataset, name: str) -> xr.DataArray:
    data = ds[name]
    return data.sum([d for d in data.dims if d not in ("area", "year", "replicate")])


def add_bands(ds: xr.Dataset, config: dict[str, Any]) -> xr.Dataset:
    """Add ``<variable>_quantiles`` (dims year x quantile) for every banded variable
    whose scales the scenario's ``[bands]`` section gives; unchanged otherwise."""
    bands = config.get("bands", {})
    base = int(config["run"]["base_year"])
    exponent = float(bands.get("growth_exponent", 1.0))
    quantiles = np.asarray(QUANTILES)
    z = ndtri(quantiles)
    out = ds.copy()
    for variable, key in BANDED.items():
        scales = list(bands.get(key, []))
        if not scales or variable not in ds:
            continue
        total = _total(ds, variable)
        by_area = "area" in total.dims
        total = total.transpose(*[d for d in ("area", "replicate", "year")
                                  if d in total.dims])
        years = total["year"].values
        sd = np.array([log_scale(scales, int(y) - base, exponent) for y in years])
        if "replicate" in total.dims and total.sizes["replicate"] > 1:
            logs = np.log(np.clip(total.values, 1e-9, None))
            process = logs.std(axis=total.dims.index("replicate"), ddof=1)
            sd = np.sqrt(sd ** 2 + process ** 2)
            centre = total.mean("replicate").values
        elif "replicate" in total.dims:
            centre = total.isel(replicate=0, drop=True).values
        else:
            centre = total.values
        values = centre[..., :, None] * np.exp(sd[..., :, None] * z)
        out[f"{variable}_quantiles"] = xr.DataArray(
            values, dims=("area", "year", "quantile") if by_area else ("year", "quantile"),
            coords={"year": years, "quantile": quantiles,
                    **({"area": total["area"].values} if by_area else {})},
            attrs={"units": ds[variable].attrs.get("units", ""),
                   "long_name": f"prediction interval quantiles of {variable} (total)",
                   "method": "projection x exp(z_q x s_h): s_h = root-mean-square log "
                             "error of rolling-origin backtests at horizon h "
                             f"({bands.get('source', 'scenario [bands]')}); beyond the "
                             f"tested horizons s grows as h**{exponent:g}"
                             + ("; DES process spread added in quadrature"
                                if "replicate" in total.dims else "")
                             + ("; by area: England's scales for every authority "
                                "(ASSUMPTION: an authority's own errors are larger, "
                                "so its band is too narrow)" if by_area else "")})
    return out

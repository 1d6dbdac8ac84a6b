"""Summaries of replicate ensembles: quantile bands across the ``replicate`` dimension.

Used by ``cicsim run ... --engine des --quantiles``: the bands go beside the run's own
output as ``<stem>_quantiles.nc`` and ``.csv``, in the same schema with a ``quantile``
coordinate instead of ``replicate``, so any tool that reads results reads them too.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from sim.results.io import write_results

QUANTILES: tuple[float, ...] = (0.05, 0.5, 0.95)


def quantile_bands(ds: xr.Dataset, quantiles: Sequence[float] = QUANTILES) -> xr.Dataset:
    """Quantiles over replicates of every variable that has a ``replicate`` dimension.

    NaN entries (e.g. a mean wait in a year with no waits) are skipped; a value that is
    NaN in every replicate stays NaN.
    """
    if "replicate" not in ds.dims:
        raise ValueError("quantile bands need a dataset with a 'replicate' dimension "
                         "(a discrete-event run)")
    # Prediction bands (sim/results/bands.py) are already quantiles, of the level, not
    # of the replicates: they stay in the main file only.
    ds = ds.drop_vars([v for v in ds.data_vars if "quantile" in ds[v].dims]
                      + (["quantile"] if "quantile" in ds.coords else []))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="All-NaN slice encountered")
        bands = ds.quantile(list(quantiles), dim="replicate", skipna=True, keep_attrs=True)
    bands.attrs.update(ds.attrs)
    bands.attrs["summary"] = (f"quantiles {', '.join(f'{q:g}' for q in quantiles)} over "
                              f"{ds.sizes['replicate']} replicates")
    return bands


def quantiles_path(nc_path: str | Path) -> Path:
    """``outputs/x.nc`` -> ``outputs/x_quantiles.nc`` (stable, so make can track it)."""
    path = Path(nc_path)
    return path.with_name(f"{path.stem}_quantiles.nc")


def write_quantiles(ds: xr.Dataset, nc_path: str | Path) -> tuple[Path, Path]:
    """Write 5/50/95 % bands beside ``nc_path``; returns the NetCDF and CSV paths."""
    return write_results(quantile_bands(ds), quantiles_path(nc_path))

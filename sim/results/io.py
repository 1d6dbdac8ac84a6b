"""Write and read results: NetCDF plus a tidy CSV beside it, both written atomically.

Atomic means: each file is written to a temporary name in the same folder and renamed
into place, so an interrupted or failed run never leaves a half-written output that
``make`` would take as up to date.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import xarray as xr


def _atomic_path(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                    dir=target.parent)
    os.close(handle)
    os.chmod(name, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
    return Path(name)


def tidy_frame(ds: xr.Dataset) -> pd.DataFrame:
    """One row per value: scenario, variable, year, any breakdown coordinates, value, unit.

    Values are rounded by unit (:mod:`sim.results.precision`: children to 0.1, money to
    whole pounds); the NetCDF beside the CSV keeps every digit.  ``scenario`` is the
    run's name, so tidy files of several runs can be stacked and still told apart."""
    from sim.results.precision import rounded

    frames = []
    for name, variable in ds.data_vars.items():
        unit = str(variable.attrs.get("units", ""))
        frame = variable.to_dataframe(name=name).reset_index()
        frame = frame.rename(columns={name: "value"})
        frame["value"] = rounded(frame["value"].to_numpy(), unit)
        frame.insert(0, "variable", name)
        frame["unit"] = unit
        frames.append(frame)
    tidy = pd.concat(frames, ignore_index=True, sort=False)
    tidy.insert(0, "scenario", str(ds.attrs.get("scenario", "")))
    first = ("scenario", "variable", "year")
    last = ("value", "unit")
    columns = [*first, *(c for c in tidy.columns if c not in first + last), *last]
    return tidy[columns]


def write_results(ds: xr.Dataset, nc_path: str | Path) -> tuple[Path, Path]:
    """Write ``ds`` to ``nc_path`` and a tidy CSV with the same stem; return both paths."""
    nc_path = Path(nc_path)
    csv_path = nc_path.with_suffix(".csv")
    tmp_nc, tmp_csv = _atomic_path(nc_path), _atomic_path(csv_path)
    try:
        ds.to_netcdf(tmp_nc)
        tidy_frame(ds).to_csv(tmp_csv, index=False)
        os.replace(tmp_csv, csv_path)
        os.replace(tmp_nc, nc_path)
    finally:
        for tmp in (tmp_nc, tmp_csv):
            if tmp.exists():
                tmp.unlink()
    return nc_path, csv_path


def read_results(nc_path: str | Path) -> xr.Dataset:
    with xr.open_dataset(nc_path) as ds:
        return ds.load()

"""Write and read results: NetCDF plus a tidy CSV beside it, both written atomically.

Atomic means: each file is written to a temporary name in the same folder and renamed
into place, so an interrupted or failed run never leaves a half-written output that
``make`` would take as up to date.

* **Temporary files** are named ``.<target>.<pid>.<random>.tmp`` (``<pid>``: the
  writing process).  A kill during a write can leave one; the next write into the same
  folder removes every *stale* one (:func:`clean_stale_temps`): its pid is not a running
  process, or it has not been modified for an hour (a recycled pid, or a name without
  one).  A live run's temporary files are therefore never touched.  ``make clean``
  removes them all.
* **The pair.**  The ``.nc`` and its ``.csv`` are renamed one after the other, so a kill
  between the two renames can leave files from two runs side by side.  Both carry the
  run's ``run_id`` (the NetCDF attribute ``run_id``; the CSV's first column
  ``run_id``), and :func:`read_results` refuses a pair whose ids differ.  The id is the
  run's :func:`data_hash` (16 hex digits): two runs with identical results get the same
  id, so the outputs stay byte-reproducible (same seed, any worker count), and a pair
  can only be refused when its two files really hold different results.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from sim.errors import InputError

STALE_AFTER_S = 3600.0  # a temporary file untouched this long is not being written


def _atomic_path(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=target.parent)
    os.close(handle)
    os.chmod(name, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
    return Path(name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _temp_owner(path: Path) -> int | None:
    """The pid in ``.<target>.<pid>.<random>.tmp``, if the name has one."""
    parts = path.name[1:-len(".tmp")].split(".")
    for part in reversed(parts[:-1]):  # the random suffix is last
        if part.isdigit():
            return int(part)
    return None


def clean_stale_temps(folder: str | Path, now: float | None = None) -> list[Path]:
    """Remove the stale temporary files (``.*.tmp``) in ``folder``; return them.

    Stale: the owning pid (in the name) is not running, or the file has not been
    modified for :data:`STALE_AFTER_S` seconds."""
    folder = Path(folder)
    now = time.time() if now is None else now
    removed = []
    for path in folder.glob(".*.tmp") if folder.is_dir() else ():
        owner = _temp_owner(path)
        try:
            old = now - path.stat().st_mtime > STALE_AFTER_S
            if old or (owner is not None and owner != os.getpid() and not _pid_alive(owner)):
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # another run cleaned it first
            continue
    return removed


def data_hash(ds: xr.Dataset) -> str:
    """SHA-256 of a dataset's values: every variable and coordinate (name, dims, values),
    not its attributes (which hold the wall time and the creation time).  Numbers are
    hashed as float64 and labels as text, so a NetCDF round trip keeps the hash."""
    digest = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        variable = ds.variables[name]
        values = np.asarray(variable.values)
        digest.update(json.dumps([name, list(variable.dims), list(values.shape)]).encode())
        if values.dtype.kind in "biuf":
            digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        else:
            labels = [str(label) for label in values.ravel().tolist()]
            digest.update(json.dumps(labels).encode("utf-8"))
    return digest.hexdigest()


def save_atomically(path: str | Path, save: Callable[[Path], object]) -> Path:
    """Write ``path`` through ``save(temporary path)`` in the same folder, then rename.

    Every file cicsim writes goes through here (NetCDF, CSV, report, workbook, layers),
    so a killed write never leaves half a file that make would take as up to date, and
    its temporary file carries the pid that :func:`clean_stale_temps` checks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path.parent)
    tmp = _atomic_path(path)
    try:
        save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text (UTF-8) atomically: :func:`save_atomically`."""
    return save_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_atomic_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write one NetCDF file atomically (no CSV; e.g. a batch task's result)."""
    return save_atomically(path, ds.to_netcdf)


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
    if "scenario" not in tidy.columns:  # a batch has a scenario dimension already
        tidy.insert(0, "scenario", str(ds.attrs.get("scenario", "")))
    first = ("scenario", "variable", "year")
    last = ("value", "unit")
    columns = [*first, *(c for c in tidy.columns if c not in first + last), *last]
    return tidy[columns]


def member_means(ds: xr.Dataset, dim: str) -> xr.Dataset:
    """``ds`` with every variable that has ``dim`` (``replicate`` or ``draw``) replaced by
    its mean over it (units and definitions kept); the rest, the bands included, as is.

    Why: the tidy CSV beside a batch would otherwise hold a row per replicate or draw
    of every breakdown, 1.5 GB for 100 draws of every authority; the NetCDF keeps every
    member."""
    if dim not in ds.dims:
        return ds
    means = {name: var.mean(dim, keep_attrs=True) for name, var in ds.data_vars.items()
             if dim in var.dims}
    return ds.drop_vars([dim, *means], errors="ignore").assign(means)[list(ds.data_vars)]


def write_results(ds: xr.Dataset, nc_path: str | Path,
                  csv_source: xr.Dataset | None = None) -> tuple[Path, Path]:
    """Write ``ds`` to ``nc_path`` and a tidy CSV with the same stem; return both paths.

    Both carry the ``run_id`` (module docstring); ``ds`` itself is not changed.
    ``csv_source``: what the CSV holds, when not ``ds`` itself (a batch writes its
    :func:`member_means`); the run id is still ``ds``'s."""
    nc_path = Path(nc_path)
    csv_path = nc_path.with_suffix(".csv")
    nc_path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(nc_path.parent)
    run_id = data_hash(ds)[:16]
    tmp_nc, tmp_csv = _atomic_path(nc_path), _atomic_path(csv_path)
    try:
        ds.assign_attrs(run_id=run_id).to_netcdf(tmp_nc)
        frame = tidy_frame(ds if csv_source is None else csv_source)
        frame.insert(0, "run_id", run_id)
        frame.to_csv(tmp_csv, index=False)
        os.replace(tmp_csv, csv_path)
        os.replace(tmp_nc, nc_path)
    finally:
        for tmp in (tmp_nc, tmp_csv):
            if tmp.exists():
                tmp.unlink()
    return nc_path, csv_path


def csv_run_id(csv_path: str | Path) -> str | None:
    """The ``run_id`` of a results CSV (its first data row), or None if it has none."""
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        row = next(reader, [])
    if not header or header[0] != "run_id" or not row:
        return None
    return row[0]


def check_pair(nc_path: str | Path, ds: xr.Dataset) -> None:
    """Refuse a ``.nc`` whose ``.csv`` beside it comes from another run (a kill between
    the two renames, or a file copied over one of them).  Files written before run ids
    existed, and a ``.nc`` without its CSV, pass."""
    nc_path = Path(nc_path)
    csv_path = nc_path.with_suffix(".csv")
    nc_id = ds.attrs.get("run_id")
    if nc_id is None or not csv_path.is_file():
        return
    other = csv_run_id(csv_path)
    if other is not None and other != nc_id:
        raise InputError(f"{nc_path}: key 'run_id' = {nc_id} but {csv_path.name} has "
                         f"run_id {other}: the two files come from different runs; "
                         "rerun the scenario")


def read_results(nc_path: str | Path) -> xr.Dataset:
    """Load a results file, after checking its CSV comes from the same run."""
    with xr.open_dataset(nc_path) as ds:
        loaded = ds.load()
    check_pair(nc_path, loaded)
    return loaded

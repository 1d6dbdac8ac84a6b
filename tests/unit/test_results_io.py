"""sim/results/io.py: NetCDF + tidy CSV written atomically, read back identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sim.model.parameters import ModelParameters
from sim.results import io
from sim.results.io import read_results, tidy_frame, write_results
from sim.run import project_stockflow


@pytest.fixture(scope="module")
def projection(small_model_session: tuple[ModelParameters, dict]) -> xr.Dataset:
    params, config = small_model_session
    ds = project_stockflow(params, config)
    ds.attrs["scenario_toml"] = 'name = "small"\n'
    return ds


def test_round_trip_is_identical(projection: xr.Dataset, tmp_path: Path) -> None:
    nc, csv = write_results(projection, tmp_path / "run.nc")
    assert (nc, csv) == (tmp_path / "run.nc", tmp_path / "run.csv")
    again = read_results(nc)
    run_id = again.attrs["run_id"]  # the pair's id (io.py): the only attribute added
    assert io.csv_run_id(csv) == run_id
    xr.testing.assert_identical(again, projection.assign_attrs(run_id=run_id))
    assert again.attrs == {**projection.attrs, "run_id": run_id}


def test_read_results_does_not_hold_the_file_open(projection: xr.Dataset,
                                                  tmp_path: Path) -> None:
    nc, _ = write_results(projection, tmp_path / "run.nc")
    ds = read_results(nc)
    nc.unlink()  # loaded into memory: the values survive the file
    assert float(ds.looked_after.isel(year=-1)) == float(projection.looked_after.isel(year=-1))


def test_atomic_write_leaves_no_temporary_files(projection: xr.Dataset,
                                                tmp_path: Path) -> None:
    out = tmp_path / "nested" / "folder" / "run.nc"  # parents are created
    write_results(projection, out)
    write_results(projection, out)  # overwriting is fine too
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.csv", "run.nc"]


def test_a_failed_write_leaves_the_old_files_and_no_temporary_ones(
        projection: xr.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run.nc"
    write_results(projection, out)
    before = out.read_bytes(), out.with_suffix(".csv").read_bytes()

    def broken(ds: xr.Dataset) -> pd.DataFrame:
        raise RuntimeError("disk full")

    monkeypatch.setattr(io, "tidy_frame", broken)
    changed = projection.assign(looked_after=projection.looked_after * 2)
    with pytest.raises(RuntimeError, match="disk full"):
        write_results(changed, out)
    assert (out.read_bytes(), out.with_suffix(".csv").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.csv", "run.nc"]


def test_written_files_are_readable_by_others(projection: xr.Dataset,
                                              tmp_path: Path) -> None:
    nc, csv = write_results(projection, tmp_path / "run.nc")
    for path in (nc, csv):
        assert path.stat().st_mode & 0o044 == 0o044  # not mkstemp's 0600


def test_csv_columns_and_values(projection: xr.Dataset, tmp_path: Path) -> None:
    _, csv = write_results(projection, tmp_path / "run.nc")
    frame = pd.read_csv(csv)
    columns = list(frame.columns)
    # run_id first (the pair's id, io.py), then the tidy frame
    assert columns[:4] == ["run_id", "scenario", "variable", "year"]
    assert columns[-2:] == ["value", "unit"]
    assert frame["run_id"].nunique() == 1
    for dim in ("age_group", "reason", "placement", "stream"):
        assert dim in columns
    assert set(frame["variable"]) == set(projection.data_vars)
    # one row per value
    assert len(frame) == sum(int(v.size) for v in projection.data_vars.values())
    rows = frame[(frame.variable == "looked_after_by_age") & (frame.year == 2025)]
    by_band = dict(zip(rows.age_group, rows.value, strict=True))
    expected = projection.looked_after_by_age.sel(year=2025)
    for band in expected.age_group.values:
        # children are written to 0.1 (sim/results/precision.py)
        assert by_band[band] == pytest.approx(float(expected.sel(age_group=band)), abs=0.05)
    total = frame[(frame.variable == "looked_after")].set_index("year")["value"]
    np.testing.assert_allclose(total.loc[projection.year.values],
                               projection.looked_after.values, atol=0.05, rtol=0)


def test_tidy_frame_of_a_two_variable_dataset() -> None:
    ds = xr.Dataset({"a": ("year", [1.0, 2.0]),
                     "b": (("year", "reason"), [[3.0, 4.0], [5.0, 6.0]])},
                    coords={"year": [2022, 2023], "reason": ["x", "y"]})
    frame = tidy_frame(ds)
    assert list(frame.columns) == ["scenario", "variable", "year", "reason", "value", "unit"]
    assert frame["value"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert frame["reason"].isna().tolist() == [True, True, False, False, False, False]

"""The results schema declares which engines must produce each variable, and a record
that lacks one is refused rather than silently dropped."""

from __future__ import annotations

import numpy as np
import pytest

from sim.engines.schema import ENGINES, VARIABLES, build_dataset


def _record(engine: str) -> dict[str, np.ndarray]:
    coords = {"age_group": 5, "stream": 2, "placement": 4, "reason": 5, "care_stage": 5,
              "cost_component": 7}
    return {name: np.zeros(tuple(coords[d] for d in v.dims))
            for name, v in VARIABLES.items() if engine in v.engines}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_complete_record_builds(engine: str) -> None:
    ds = build_dataset([2022, 2023], [_record(engine), _record(engine)], engine=engine)
    assert set(ds.data_vars) == {n for n, v in VARIABLES.items() if engine in v.engines}
    assert ds["looked_after_by_age"].dims == ("year", "age_group")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_missing_required_variable_is_an_error(engine: str) -> None:
    record = _record(engine)
    del record["ceased_by_stream"]
    with pytest.raises(KeyError, match="ceased_by_stream"):
        build_dataset([2022], [record], engine=engine)


def test_des_only_variables_are_required_of_the_des_alone() -> None:
    stockflow = _record("stockflow")
    assert "started_first_in_year" not in stockflow
    build_dataset([2022], [stockflow], engine="stockflow")
    with pytest.raises(KeyError, match="started_first_in_year"):
        build_dataset([2022], [stockflow], engine="des")


def test_unknown_names_and_engines_are_errors() -> None:
    record = _record("stockflow") | {"looked_afterr": np.zeros(())}
    with pytest.raises(KeyError, match="looked_afterr"):
        build_dataset([2022], [record])
    with pytest.raises(ValueError, match="unknown engine"):
        build_dataset([2022], [_record("stockflow")], engine="abm")

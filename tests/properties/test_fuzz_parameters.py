"""Every value inside a documented range runs (issue 12): random valid scenario
settings on the shipped baseline keep every stock and flow non-negative and finite and
close the stock identity every year.

Drawn: every ``[rates]`` multiplier across its whole documented range, the endpoints 0
and 10 included (``scenarios/schema.py``); the trend treatment and its settings, the
route and age-band trend slopes, the trend floor and ceiling; UASC arrivals by year;
and the estimated entry and exit slopes across their documented range (set on the
parameters, where the projection reads them).  Each draw goes through the scenario
loader (so it is a value a user may type) and the stock-flow engine, for a short run on
the parameters estimated from the shipped data; the base-year estimate cannot depend on
any of these (``sim.model.rates.base_year_config``), so one estimate serves every draw.

Balances are exact in exact arithmetic (the engine integrates the flows it counts), so
the tolerance is floating-point rounding only: 1e-9 of the largest stock, far above
the ~1e-13 the engine achieves and far below any modelling error.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from fixtures import assert_balanced
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.model.parameters import ModelParameters
from sim.model.rates import MULTIPLIER_KEYS
from sim.run import project_stockflow
from sim.scenarios import schema
from sim.scenarios.loader import load_scenario

END_YEAR = 2027
RATES = schema.SECTIONS["rates"]
TRENDS = schema.SECTIONS["trends"]
SLOPE_KEYS = sorted(k for k, f in TRENDS.items()
                    if k.endswith("_trend_per_year") and not f.estimate_ok)


def in_range(key: str, section: dict = RATES) -> st.SearchStrategy[float]:
    """The documented range of a key, its ends drawn often."""
    field = section[key]
    return st.one_of(st.sampled_from([field.low, field.high]),
                     st.floats(field.low, field.high, allow_nan=False))


settings_drawn = st.fixed_dictionaries({
    **{f"rates.{key}": in_range(key) for key in MULTIPLIER_KEYS},
    "trends.method": st.sampled_from(TRENDS["method"].kind),
    "trends.entry_damping": in_range("entry_damping", TRENDS),
    "trends.exit_damping": in_range("exit_damping", TRENDS),
    "trends.stop_after_years": st.integers(0, 50),
    "trends.floor": in_range("floor", TRENDS),
    "trends.ceiling": in_range("ceiling", TRENDS),
    "trends.trend_change_year": st.integers(2022, END_YEAR),
    "trends.entry_trend_change_per_year": in_range("entry_trend_change_per_year", TRENDS),
    **{f"trends.{key}": in_range(key, TRENDS) for key in SLOPE_KEYS},
})
arrivals = st.dictionaries(st.integers(2022, END_YEAR).map(str),
                           st.floats(0.0, 1e5, allow_nan=False), max_size=3)
slope = st.floats(-0.2, 0.2, allow_nan=False)


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(values=settings_drawn, arrivals_by_year=arrivals, entry_trend=slope,
       exit_trend=slope)
def test_documented_ranges_keep_stocks_and_balances(
        baseline_params: ModelParameters, values: dict[str, float],
        arrivals_by_year: dict[str, float], entry_trend: float, exit_trend: float) -> None:
    overrides = [f"run.end_year={END_YEAR}", *(f"{k}={v!r}" for k, v in values.items())]
    overrides = [o.replace("'", '"') for o in overrides]
    table = ", ".join(f'"{y}" = {a!r}' for y, a in arrivals_by_year.items())
    overrides.append(f"uasc.arrivals_by_year={{{table}}}")
    config = load_scenario(None, overrides).config
    params = replace(baseline_params, entry_trend_per_year=entry_trend,
                     exit_trend_per_year=exit_trend)
    ds = project_stockflow(params, config)

    assert_balanced(ds)
    # the base year is the data's, whatever the draw
    assert float(ds.looked_after.sel(year=2022)) == pytest.approx(
        baseline_params.looked_after_base, rel=1e-12)

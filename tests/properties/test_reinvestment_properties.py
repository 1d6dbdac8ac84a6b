"""Savings reinvested never exceed the savings made, for any ceilings, lags, end years
and savings paths (sim/reinvestment.py allocate), and no lever gets above its ceiling."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.model.levers import ResolvedLever
from sim.reinvestment import allocate

YEARS = list(range(2023, 2041))

levers = st.lists(st.fixed_dictionaries({
    "end": st.sampled_from(YEARS),
    "money": st.floats(0, 2_000),
    "share": st.floats(0, 1),
    "lag": st.integers(1, 3),
}), min_size=1, max_size=3)
savings_paths = st.dictionaries(st.sampled_from(YEARS), st.floats(-5_000, 5_000))


def lever(index: int, end: int, money: float, share: float, lag: int) -> ResolvedLever:
    return ResolvedLever(name=f"lever{index}", funding_gbp_m={end: money}, area_share=1.0,
                         area_share_by_year={},
                         values={"sustained_share": share, "reinvest_lag_years": lag},
                         sustain="reinvest_savings")


@settings(max_examples=300, deadline=None)
@given(levers, savings_paths)
def test_reinvested_never_exceeds_savings_made(specs: list[dict], savings: dict) -> None:
    resolved = {f"lever{i}": lever(i, **s) for i, s in enumerate(specs)}
    paths = allocate(resolved, savings, YEARS)
    drawn: dict[int, float] = {}  # savings year -> money drawn from it, all levers
    for name, path in paths.items():
        ceiling = resolved[name].sustained_ceiling_gbp_m
        lag = int(resolved[name].values["reinvest_lag_years"])
        for year, money in path.items():
            assert 0.0 <= money <= ceiling + 1e-9
            assert year > resolved[name].end_year
            drawn[year - lag] = drawn.get(year - lag, 0.0) + money
    for year, money in drawn.items():
        assert money <= max(savings.get(year, 0.0), 0.0) * (1 + 1e-12) + 1e-9

"""Empirical-Bayes relative rates, the suppression rule and the boundary rule, on
synthetic data (sim.estimation.area_rates, sim.estimation.area_data)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.datasets import Observed
from sim.estimation.area_data import area_observed, route_count, successor_observed
from sim.estimation.area_rates import _expected, gamma_poisson
from sim.estimation.area_registry import Area, AreaRecord


def _population(seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """60 authorities, expected counts 2-5,000, true relative rates Gamma(mean 1,
    sd 0.3), counts Poisson."""
    rng = np.random.default_rng(seed)
    expected = np.geomspace(2.0, 5000.0, 60)
    theta = rng.gamma(1 / 0.09, 0.09, size=60)
    counts = rng.poisson(theta * expected).astype(float)
    return counts, expected, theta


def test_little_data_lands_near_england_and_much_data_near_its_own() -> None:
    counts, expected, _ = _population()
    # an authority with almost no data and an extreme raw rate, one with much data
    counts = np.append(counts, [3.0, 20000.0])
    expected = np.append(expected, [0.5, 10000.0])
    fit = gamma_poisson(counts, expected)
    small, large = fit.ratio[-2], fit.ratio[-1]
    assert fit.raw[-2] == pytest.approx(6.0)
    assert abs(small - 1.0) < 0.25 * abs(fit.raw[-2] - 1.0)  # pulled most of the way
    assert large == pytest.approx(2.0, rel=0.03)  # sampling sd of raw is 0.7 %
    assert fit.weight[-2] < 0.1 < 0.95 < fit.weight[-1]
    # weights rise with the data
    assert np.all(np.diff(fit.weight[:60]) > 0)


def test_prior_variance_recovers_the_generating_spread() -> None:
    """Method-of-moments between-area variance: true 0.09; with 60 areas its
    sampling sd is about 0.09 * sqrt(2 / 59) = 0.017, so 0.09 +- 0.05 (3 sd)."""
    counts, expected, _ = _population()
    fit = gamma_poisson(counts, expected)
    variance = fit.prior_shape / fit.prior_rate**2
    assert variance == pytest.approx(0.09, abs=0.05)


def test_shrinkage_beats_raw_rates_on_the_truth() -> None:
    """Mean squared error against the generating rates, over 20 seeded populations:
    the posterior mean is never worse on average (it is the Bayes rule)."""
    better = 0
    for seed in range(20):
        counts, expected, theta = _population(seed)
        fit = gamma_poisson(counts, expected)
        raw = gamma_poisson(counts, expected, "raw").ratio
        better += np.mean((fit.ratio - theta) ** 2) < np.mean((raw - theta) ** 2)
    assert better >= 18


def test_methods_and_benchmarking() -> None:
    counts, expected, _ = _population()
    for method in ("shrinkage", "raw", "national"):
        fit = gamma_poisson(counts, expected, method)
        # raked: expected counts at the fitted rates sum to the observed counts
        assert (fit.ratio * expected).sum() == pytest.approx(counts.sum(), rel=1e-12)
    raw = gamma_poisson(counts, expected, "raw")
    assert raw.ratio == pytest.approx(counts / expected)
    assert np.allclose(gamma_poisson(counts, expected, "national").ratio,
                       counts.sum() / expected.sum())
    with pytest.raises(ValueError, match="unknown area method"):
        gamma_poisson(counts, expected, "median")


def test_no_spread_beyond_poisson_pools_completely() -> None:
    rng = np.random.default_rng(3)
    expected = np.full(40, 200.0)
    counts = rng.poisson(expected).astype(float)
    fit = gamma_poisson(counts, expected)
    if fit.prior_rate == np.inf:
        assert np.allclose(fit.ratio, fit.ratio[0])
    else:  # a little sampling spread left: still pulled far in
        assert np.std(fit.ratio) < 0.5 * np.std(counts / expected)


def test_a_suppressed_year_is_left_out_never_read_as_zero() -> None:
    """Authority 0's counts are suppressed (nan) in every year: it gets England's
    rate, not the zero a suppressed cell read as 0 would pull it toward."""
    rng = np.random.default_rng(11)
    exposure = rng.uniform(100, 2000, size=(30, 3))
    counts = rng.poisson(0.1 * exposure).astype(float)
    suppressed = counts.copy()
    suppressed[0, :] = np.nan
    zeroed = counts.copy()
    zeroed[0, :] = 0.0
    y, e = _expected(suppressed, exposure)
    assert y[0] == 0.0 and e[0] == 0.0  # neither count nor exposure enters
    assert gamma_poisson(y, e).ratio[0] == pytest.approx(1.0, abs=0.02)
    y0, e0 = _expected(zeroed, exposure)
    assert gamma_poisson(y0, e0).ratio[0] < 0.5
    # one suppressed year of three: the other two years still count
    partly = counts.copy()
    partly[1, 0] = np.nan
    y1, e1 = _expected(partly, exposure)
    y_all, e_all = _expected(counts, exposure)
    assert 0 < e1[1] < e_all[1] and y1[1] == y_all[1] - counts[1, 0]


def _obs(series: dict[str, dict[int, float]], suppressed: dict[str, set[int]] | None = None,
         max_year: int = 2022) -> Observed:
    return Observed(max_year=max_year, series=series, suppressed=suppressed or {})


C = "ceased_during_year__reason__"


def test_route_count_suppression() -> None:
    published = {f"{C}returned_home_planned": {2020: 10.0},
                 f"{C}returned_home_not_planned": {2020: 4.0},
                 f"{C}sgo": {2020: 7.0},
                 f"{C}residence_or_child_arrangements_order": {2020: 2.0}}
    obs = _obs(published)
    assert route_count(obs, "returned_home", 2020) == 14.0
    assert route_count(obs, "sgo_cao", 2020) == 9.0
    # a suppressed part makes the route missing, not smaller
    obs = _obs({**published, f"{C}returned_home_not_planned": {}},
               {f"{C}returned_home_not_planned": {2020}})
    assert route_count(obs, "returned_home", 2020) is None
    # an optional part that is not collected is 0; a suppressed one is missing
    no_order = {k: v for k, v in published.items() if "residence" not in k}
    assert route_count(_obs(no_order), "sgo_cao", 2020) == 7.0
    assert route_count(_obs(no_order, {f"{C}residence_or_child_arrangements_order":
                                       {2020}}), "sgo_cao", 2020) is None
    # adoption at authority level before 2018: the two consent columns
    split = _obs({f"{C}adopted_consent_dispensed": {2016: 5.0},
                  f"{C}adopted_unopposed": {2016: 3.0}})
    assert route_count(split, "adoption", 2016) == 8.0


def _record(code: str, name: str, predecessors: tuple[str, ...] = (),
            first: int | None = None) -> AreaRecord:
    return AreaRecord(Area(f"E0{code}", code, name, "Somewhere"), (), (), predecessors, first)


def test_boundary_rule_splits_predecessors_by_first_published_share() -> None:
    """Successors S1, S2 of A + B from 2020: before 2020 each gets (A + B) x its share
    of the successors' total of the same measure family in 2020."""
    stock = "looked_after_31_march"
    starts = "started_during_year"
    by_code = {
        "A": _obs({stock: {2018: 100.0, 2019: 110.0}, starts: {2019: 40.0}}),
        "B": _obs({stock: {2018: 50.0, 2019: 60.0}, starts: {2019: 20.0}},
                  {starts: {2018}}),
        "S1": _obs({stock: {2020: 120.0}, starts: {2020: 30.0}}),
        "S2": _obs({stock: {2020: 40.0}, starts: {2020: 30.0}}),
    }
    s1 = _record("S1", "One", ("A", "B"), 2020)
    s2 = _record("S2", "Two", ("A", "B"), 2020)
    out = successor_observed(s1, by_code, [s1, s2])
    assert out.get(stock, 2020) == 120.0  # own figures from the first own year
    assert out.get(stock, 2019) == pytest.approx(170.0 * 0.75)  # share of stock 120/160
    assert out.get(starts, 2019) == pytest.approx(60.0 * 0.5)  # share of starts 30/60
    assert out.get(starts, 2018) is None and out.is_suppressed(starts, 2018)
    # the two successors' shares add back to the predecessors' total
    other = successor_observed(s2, by_code, [s1, s2])
    assert out.get(stock, 2018) + other.get(stock, 2018) == pytest.approx(150.0)
    # data ending before the first own year: the successor does not exist yet
    early = {k: _obs({m: {y: v for y, v in s.items() if y <= 2019}
                      for m, s in o.series.items()}, max_year=2019)
             for k, o in by_code.items()}
    series = area_observed([s1, s2, _record("A", "Alpha")], early)
    assert set(series) == {"A"}


def test_loader_records_suppression_codes_and_prefers_a_published_number(tmp_path) -> None:
    """load_area_observed on a tiny copy of the data layout: every suppression code is
    missing (not 0) and recorded; a number in a later file fills a cell an earlier file
    suppressed; national rows and later years are not read."""
    import shutil

    from sim.datasets import AREA_FILES, DATA_DIR, SINGLE_AGE_FILE, load_area_observed

    header = ("year,geography_level,la_code,old_la_code,la_name,measure,value,release,"
              "source_id,source_label,note\n")
    rows = {
        AREA_FILES[0]: ["2020,local_authority,E1,101,A,started_during_year,c",
                        "2020,local_authority,E1,101,A,ceased_during_year,x",
                        "2020,local_authority,E1,101,A,looked_after_31_march,0",
                        "2021,local_authority,E1,101,A,looked_after_31_march,[x]",
                        "2023,local_authority,E1,101,A,looked_after_31_march,99",
                        "2020,national,E9,,England,looked_after_31_march,500"],
        AREA_FILES[1]: ["2020,local_authority,E1,101,A,started_during_year,7",
                        "2020,local_authority,E1,101,A,uasc_31_march,z"],
    }
    for name in AREA_FILES:
        path = tmp_path / name
        text = header + "".join(f"{r},rel,S1,label,\n" for r in rows.get(name, []))
        if name.endswith(".gz"):
            import gzip

            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
    shutil.copy(DATA_DIR / SINGLE_AGE_FILE, tmp_path / SINGLE_AGE_FILE)
    areas = load_area_observed(2022, tmp_path)
    assert set(areas) == {"101"}
    a = areas["101"]
    assert a.get("started_during_year", 2020) == 7.0 and not a.is_suppressed(
        "started_during_year", 2020)
    assert a.get("ceased_during_year", 2020) is None and a.is_suppressed(
        "ceased_during_year", 2020)
    assert a.get("looked_after_31_march", 2020) == 0.0  # a published zero stays zero
    assert a.get("looked_after_31_march", 2021) is None
    assert a.is_suppressed("looked_after_31_march", 2021)
    assert a.is_suppressed("uasc_31_march", 2020)
    assert a.years("looked_after_31_march") == [2020]  # 2023 is after max_year


def test_own_slopes_shrink_noisy_slopes_and_keep_englands_aggregate() -> None:
    """Relative entry slopes over three years: true slopes N(0, 0.05); an authority
    with tiny counts keeps little of its estimate, a large one most of it; the
    exposure-weighted mean is 0 (England's own trend unchanged)."""
    from sim.estimation.area_rates import own_slopes

    rng = np.random.default_rng(5)
    n = 80
    size = np.geomspace(5, 20000, n)
    truth = rng.normal(0.0, 0.05, n)
    t = np.arange(3) - 1.0
    expected = np.repeat(size[:, None], 3, axis=1)
    counts = rng.poisson(expected * np.exp(truth[:, None] * t[None, :])).astype(float)
    slopes = own_slopes(counts, expected)
    raw = np.array([np.polyfit(t, np.log(np.maximum(c, 0.5) / e), 1)[0]
                    for c, e in zip(counts, expected, strict=True)])
    # small authorities (5-8 a year): sampling sd of a slope ~0.3, true sd 0.05, so
    # they keep about 3 % of their spread; the largest (~20,000) keep ~99 %
    assert np.std(slopes[:5]) < 0.2 * np.std(raw[:5])
    big = (slopes[-1] - slopes[-2]) / (raw[-1] - raw[-2])
    assert big == pytest.approx(1.0, abs=0.1)
    weights = expected.sum(axis=1)
    assert (slopes * weights).sum() == pytest.approx(0.0, abs=1e-12 * weights.sum())
    # nothing beyond noise: every slope the same (0 before centring)
    flat = rng.poisson(expected).astype(float)
    assert np.allclose(own_slopes(flat, expected), 0.0, atol=0.01)
    # one usable year (two suppressed) gives England's slope, as no data at all does
    counts[3, :2] = np.nan
    counts[4, :] = np.nan
    shrunk = own_slopes(counts, expected)
    assert shrunk[3] == shrunk[4]


def test_regional_prior_with_one_region_is_the_england_prior() -> None:
    counts, expected, _ = _population()
    england = gamma_poisson(counts, expected)
    one_region = gamma_poisson(counts, expected, "regional", ["North East"] * 60)
    assert one_region.ratio == pytest.approx(england.ratio, rel=1e-12)
    with pytest.raises(ValueError, match="one group per authority"):
        gamma_poisson(counts, expected, "regional")


def test_regional_prior_pulls_toward_the_region() -> None:
    """Two regions whose authorities run at 1.6 and 0.6 times the mean: an authority
    with almost no data lands near its region's level (not England's), and over 20
    seeded populations the regional prior is closer to the truth than England's on
    average (the Bayes rule when the regions differ; single populations can go either
    way, so the claim is on the mean squared error over all 20)."""
    errors = {"regional": [], "national": []}
    for seed in range(20):
        counts, expected, theta = _population(seed)
        regions = np.array(["A", "B"] * 30)
        level = np.where(regions == "A", 1.6, 0.6)
        rng = np.random.default_rng(100 + seed)
        counts = rng.poisson(theta * level * expected).astype(float)
        truth = theta * level
        national = gamma_poisson(counts, expected)
        regional = gamma_poisson(counts, expected, "regional", regions)
        errors["regional"].append(np.mean((regional.ratio - truth) ** 2))
        errors["national"].append(np.mean((national.ratio - truth) ** 2))
        assert (regional.ratio * expected).sum() == pytest.approx(counts.sum(), rel=1e-12)
    assert np.mean(errors["regional"]) < 0.9 * np.mean(errors["national"])
    counts, expected, _ = _population()
    counts = np.append(counts * np.where(np.arange(60) % 2 == 0, 1.6, 0.6).round(), 0.0)
    expected = np.append(expected, 0.05)  # almost nothing observed, in region A
    regions = [*(["A", "B"] * 30), "A"]
    fit = gamma_poisson(counts, expected, "regional", regions)
    a_level = counts[:60:2].sum() / expected[:60:2].sum()
    mean = counts.sum() / expected.sum()
    assert abs(fit.ratio[-1] - a_level) < 0.1 * abs(a_level - mean)

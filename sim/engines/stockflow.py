"""Batched exact stock-flow engine on a reduced state (leading axis: runs).

The dense reference (:mod:`sim.engines.stockflow_reference`) carries 59 columns per
month of age: two exogenous sources, the CIN pool, 40 care cells (stream x placement x
stage), 5 returned-home stages and 11 counters.  This engine carries the same model in
far less, and is exact (not an approximation) for three reasons:

* **Placement is a deviation from the year's mix.**  No hazard depends on placement
  and every flow into care of stream ``g`` is split by the year's mix ``w[g]`` (the
  declared ``care_first`` target), so writing care as ``w[g, p] * T[g, k] + D[g, p, k]``
  with ``T`` the stream x stage total, ``D`` has no inflow: it evolves by the care
  sub-block of the generator alone (``F = expm(A_TT dt)``).  On 1 April, when the mix
  changes, ``D`` absorbs the change (``D += (w_old - w_new) T``).  The coupled state is
  pool + T + home: 16 columns.
* **Sources are an affine term.**  Population and UASC arrivals are constant within a
  month, so their contribution to a month's step is ``s @ E[source, state]``, computed
  once per year for each row instead of carried as columns.
* **Counters stay out of the row shift.**  Counters only need the age band, not the
  cohort: the month's flows are ``x @ E[state, counter] + s @ E[source, counter]``, so
  summing ``x`` and ``s`` over the year's months row by row and reducing by band once a
  year gives the same integrals as the dense engine's absorbing counter columns.

The pieces of ``E = expm(G dt)`` (``G`` the reduced generator compiled from the flow
declarations, :mod:`sim.engines.flow_compiler`) come from one Taylor series of the
16 x 16 state block ``X = A dt``: ``expm(X)``, ``dt phi1(X)`` and ``dt^2 phi2(X)`` share
its powers (``E[source, state] = S_T dt phi1``, ``E[state, counter] = dt phi1 R``,
``E[source, counter] = S_C dt + S_T dt^2 phi2 R``).  Age-band edges are multiples of 12
months, so the 216 rows reshape to (18 years, 12 months) and one batched matmul per
month with ``matrices[band_of_year]`` advances every band of every run at once.
Agreement with the reference is tested to 1e-12 for every shipped scenario.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.linalg

from sim.engines import flow_compiler as fc
from sim.engines.stockflow_reference import (  # noqa: F401  (the state-level API)
    BAND_ROWS,
    ProgressCallback,
    YearTally,
    advance_year,
    band_sums,
    build_generators,
    care_stock,
    equilibrium_state,
    instantaneous_flows,
    propagators,
    record_from_totals,
    scale_to_observed,
    snapshot,
)
from sim.model import spec
from sim.model.parameters import Array, ModelParameters
from sim.model.rates import YearRates, year_rates

R = fc.REDUCED
N_AGE = spec.MAX_AGE_MONTHS
MONTHS = spec.MONTHS_PER_YEAR
N_YEARS_OF_AGE = N_AGE // MONTHS
N_G, N_P, N_K = fc.N_STREAMS, fc.N_PLACEMENTS, fc.N_STAGES
N_T = N_G * N_K
SRC = np.array([R.population, R.uasc_source])
STATE = slice(R.cin_pool, R.counter_start)  # pool, T (stream x stage), home
CTR = slice(R.counter_start, R.size)
T_IN_STATE = slice(R.care_start - R.cin_pool, R.home_start - R.cin_pool)
N_STATE = R.counter_start - R.cin_pool
BAND_OF_ROW = np.array([spec.band_of_age_month(a) for a in range(N_AGE)])
BAND_OF_YEAR = BAND_OF_ROW[::MONTHS]
BAND_STARTS = np.array([s for _, s, _ in spec.AGE_BANDS])
assert all(s % MONTHS == 0 for _, s, _ in spec.AGE_BANDS), "band edges must be whole years"
_BIRTH = fc.birth_flow()
_BIRTH_STREAM = spec.STREAMS.index(_BIRTH.target_stream)
_BIRTH_COLUMN = R.care(_BIRTH_STREAM, 0, 0) - R.cin_pool
_BIRTH_COUNTER = spec.COUNTERS.index(_BIRTH.counters[0].name)
_DL = spec.LAYOUT


def _taylor_order(theta: float) -> int | None:
    """Fewest Taylor terms with truncation below 2^-60 at norm ``theta``; None if the
    norm is too large for an unscaled series."""
    if theta > 1.0:
        return None
    for n in range(1, 40):
        if theta ** (n + 1) / math.factorial(n + 1) < 2.0 ** -60:
            return n
    return None


def _phi_series(x: Array) -> tuple[Array, Array, Array]:
    """expm(x), phi1(x), phi2(x) from one Taylor series (shared powers)."""
    theta = float(np.abs(x).sum(axis=-1).max()) if x.size else 0.0
    order = _taylor_order(theta)
    if order is None:
        raise OverflowError
    eye = np.broadcast_to(np.eye(x.shape[-1]), x.shape)
    e, p1, p2 = eye.copy(), eye.copy(), eye / 2.0
    power = eye
    for n in range(1, order + 1):
        power = power @ x
        e += power / math.factorial(n)
        p1 += power / math.factorial(n + 1)
        p2 += power / math.factorial(n + 2)
    return e, p1, p2


def step_matrices(g: Array, dt: float) -> dict[str, Array]:
    """The blocks of ``expm(g dt)`` the monthly step needs, for generators ``g`` of
    shape (..., S, S) in the reduced layout, plus ``dd = expm(A_TT dt)`` for the
    placement deviation."""
    a = g[..., STATE, STATE] * dt
    s_t, s_c = g[..., SRC, STATE], g[..., SRC, CTR]
    rates_to_counters = g[..., STATE, CTR]
    tt = a[..., T_IN_STATE, T_IN_STATE]
    try:
        e, p1, p2 = _phi_series(a)
        dd = _phi_series(tt)[0]
        return {"ett": e, "src_t": dt * (s_t @ p1),
                "t_ctr": dt * (p1 @ rates_to_counters),
                "src_ctr": dt * s_c + dt * dt * (s_t @ p2 @ rates_to_counters),
                "dd": dd}
    except OverflowError:  # large rates: scaling and squaring on the full generator
        full = np.asarray(scipy.linalg.expm(g * dt))
        return {"ett": full[..., STATE, STATE], "src_t": full[..., SRC, STATE],
                "t_ctr": full[..., STATE, CTR], "src_ctr": full[..., SRC, CTR],
                "dd": np.asarray(scipy.linalg.expm(tt))}


def _weights(mix: Array) -> Array:
    """Placement weights (..., streams, placements): the mix normalised per stream."""
    total = mix.sum(axis=-1, keepdims=True)
    return np.divide(mix, total, out=np.zeros_like(mix), where=total > 0)


def reduce_state(x: Array, mix: Array) -> tuple[Array, Array, Array]:
    """Dense state (216, LAYOUT.size) -> (sources (216, 2), state (216, 16),
    deviation (216, placements, streams x stages)) relative to weights of ``mix``."""
    care = x[:, _DL.care_start:_DL.home_start].reshape(N_AGE, N_G, N_P, N_K)
    total = care.sum(axis=2)
    w = _weights(mix)
    deviation = care - w[None, :, :, None] * total[:, :, None, :]
    state = np.concatenate([x[:, [_DL.cin_pool]], total.reshape(N_AGE, N_T),
                            x[:, _DL.home_start:_DL.counter_start]], axis=1)
    sources = x[:, [_DL.population, _DL.uasc_source]]
    return sources, state, deviation.transpose(0, 2, 1, 3).reshape(N_AGE, N_P, N_T)


def _care_stock(state: Array, deviation: Array, w: Array) -> Array:
    """(B, bands, streams, placements, stages) from the reduced state."""
    total = np.add.reduceat(state[..., T_IN_STATE], BAND_STARTS, axis=1)
    dev = np.add.reduceat(deviation, BAND_STARTS, axis=1)  # (B, bands, P, T)
    total = total.reshape(*total.shape[:2], N_G, N_K)
    dev = dev.reshape(*dev.shape[:3], N_G, N_K).transpose(0, 1, 3, 2, 4)
    return w[:, None, :, :, None] * total[:, :, :, None, :] + dev


class _Batch:
    """Inputs of a batch of runs, stacked: rates fields (B, years, ...), sources."""

    def __init__(self, params_seq: Sequence[ModelParameters],
                 configs: Sequence[dict[str, Any]]) -> None:
        self.base = params_seq[0].base_year
        self.end = configs[0]["run"]["end_year"]
        if any(p.base_year != self.base for p in params_seq) or any(
                c["run"]["end_year"] != self.end for c in configs):
            raise ValueError("project_batch: every run needs the same base and end year")
        self.years = list(range(self.base, self.end + 1))
        self.rates = [[year_rates(p, c, y) for y in self.years]
                      for p, c in zip(params_seq, configs, strict=True)]
        self.params = params_seq

    def fields(self, j: int) -> dict[str, Array]:
        return fc.stack_rates([r[j] for r in self.rates])

    def sources(self, j: int) -> Array:
        return np.stack([np.stack([r[j].population_by_age_month,
                                   r[j].uasc_arrivals_by_age_month], axis=-1)
                         for r in self.rates])

    def scalar(self, j: int, name: str) -> Array:
        return np.array([float(getattr(r[j], name)) for r in self.rates])

    def effects(self, j: int, name: str) -> Array:
        return np.array([float(getattr(r[j].effects, name)) for r in self.rates])


def _band_sum(rows: Array) -> Array:
    return np.add.reduceat(rows, BAND_STARTS, axis=1)


def _record(batch: _Batch, j: int, care: Array, counters: Array, turned_18: Array,
            state: Array) -> dict[str, Array]:
    share = np.array([p.repeat_start_share for p in batch.params])[:, None]
    return record_from_totals(
        care, counters, turned_18, home=state[..., T_IN_STATE.stop:].sum(axis=(1, 2)),
        pool=state[..., 0].sum(axis=1), family_help_served=batch.effects(
            j, "family_help_served"), programme_cost_gbp=batch.effects(j, "programme_cost_gbp"),
        repeat_start_share=share)


def _initial(batch: _Batch, mix: Array) -> tuple[Array, Array, Array]:
    """Reduced initial states, one reduction per distinct parameter set."""
    done: dict[int, tuple[Array, Array, Array]] = {}
    parts = []
    for b, p in enumerate(batch.params):
        key = id(p.initial_state) if np.array_equal(mix[b], mix[0]) else -1 - b
        if key not in done:
            done[key] = reduce_state(p.initial_state, mix[b])
        parts.append(done[key])
    return tuple(np.stack(x) for x in zip(*parts, strict=True))  # type: ignore[return-value]


# Below this many runs one matmul over (18 years of age x 12 months) rows is fastest
# (fewest calls); above it, one matmul per band (fewer, larger stacked products).
BANDWISE_FROM = 16


def _step(x: Array, d: Array, m: dict[str, Array], ett: Array, dd: Array,
          x_out: Array | None, d_out: Array | None) -> tuple[Array, Array]:
    """One month's exact propagation of the state and the placement deviation
    (without the source term)."""
    n = x.shape[0]
    if n < BANDWISE_FROM or x_out is None or d_out is None:
        x = (x.reshape(n, N_YEARS_OF_AGE, MONTHS, N_STATE) @ ett).reshape(x.shape)
        d = (d.reshape(n, N_YEARS_OF_AGE, MONTHS * N_P, N_T) @ dd).reshape(d.shape)
        return x, d
    for b, (start, stop) in enumerate(BAND_ROWS):
        np.matmul(x[:, start:stop], m["ett"][:, b], out=x_out[:, start:stop])
        np.matmul(d[:, start:stop].reshape(n, -1, N_T), m["dd"][:, b],
                  out=d_out[:, start:stop].reshape(n, -1, N_T))
    return x_out, d_out


def project_batch(params_seq: Sequence[ModelParameters], configs: Sequence[dict[str, Any]],
                  progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Project a batch of runs (one parameter set and config each, same years).

    Returns ``{"years", "records", "wall_time_s"}`` as :func:`project`, with a leading
    batch axis on every record array."""
    start_time = time.perf_counter()
    batch = _Batch(params_seq, configs)
    n = len(params_seq)
    base_fields = batch.fields(0)
    w = _weights(base_fields["placement_mix"])
    s_prev, x, d = _initial(batch, base_fields["placement_mix"])
    g = fc.reduced_generators(base_fields)  # (B, bands, S, S)
    full = np.concatenate([s_prev, x], axis=-1)
    counters = np.einsum("bzs,bzsc->bzc", _band_sum(full), g[..., :R.counter_start, CTR])
    pop0 = batch.sources(0)[:, 0, 0]
    counters[:, 0, _BIRTH_COUNTER] = base_fields["birth_entry_share"] * pop0 * MONTHS
    turned = x[:, -1, T_IN_STATE].reshape(n, N_G, N_K).sum(-1) * MONTHS
    records = [_record(batch, 0, _care_stock(x, d, w), counters, turned, x)]
    for j in range(1, len(batch.years)):
        fields = batch.fields(j)
        m = step_matrices(fc.reduced_generators(fields), 1.0 / MONTHS)
        w_new = _weights(fields["placement_mix"])
        change = (w - w_new).transpose(0, 2, 1)  # (B, P, G)
        t_now = x[..., T_IN_STATE].reshape(n, N_AGE, 1, N_G, N_K)
        d += (change[:, None, :, :, None] * t_now).reshape(n, N_AGE, N_P, N_T)
        w = w_new
        s_cur = batch.sources(j)
        src_t_rows = m["src_t"][:, BAND_OF_ROW]  # (B, 216, 2, T)
        affine_prev = np.einsum("brs,brst->brt", s_prev, src_t_rows)
        affine_cur = np.einsum("brs,brst->brt", s_cur, src_t_rows)
        ett, dd = m["ett"][:, BAND_OF_YEAR], m["dd"][:, BAND_OF_YEAR]
        x_buffer, d_buffer = np.empty_like(x), np.empty_like(d)
        entering = fields["birth_entry_share"] * s_cur[:, 0, 0]
        birth_stock = entering * fields["placement_mix"][:, _BIRTH_STREAM].sum(-1)
        x_sum = np.zeros_like(x)
        turned = np.zeros((n, N_G))
        affine = affine_prev
        for _ in range(MONTHS):
            x_sum += x
            new_x, new_d = _step(x, d, m, ett, dd, x_buffer, d_buffer)
            if new_x is x_buffer:  # swap buffers
                x_buffer, d_buffer = x, d
            x, d = new_x, new_d
            x += affine
            turned += x[:, -1, T_IN_STATE].reshape(n, N_G, N_K).sum(-1)
            x[:, 1:] = x[:, :-1]
            x[:, 0] = 0.0
            x[:, 0, _BIRTH_COLUMN] = birth_stock
            d[:, 1:] = d[:, :-1]
            d[:, 0] = 0.0
            affine = affine_cur
        s_sum = s_prev + (MONTHS - 1) * s_cur
        counters = (np.einsum("bzs,bzsc->bzc", _band_sum(x_sum), m["t_ctr"])
                    + np.einsum("bzs,bzsc->bzc", _band_sum(s_sum), m["src_ctr"]))
        counters[:, 0, _BIRTH_COUNTER] += MONTHS * entering
        s_prev = s_cur
        records.append(_record(batch, j, _care_stock(x, d, w), counters, turned, x))
        if progress is not None:
            progress(j, len(batch.years) - 1)
    return {"years": batch.years, "records": records,
            "wall_time_s": time.perf_counter() - start_time}


def project(params: ModelParameters, config: dict[str, Any], steps_per_month: int = 1,
            progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Project from the base year to ``config['run']['end_year']`` (one run).

    Returns ``{"years": [...], "records": [per-year dict], "wall_time_s": float}``;
    the base year's stock is the published one and its flows the model's annualised
    rates at that state.  ``steps_per_month`` > 1 (a check of the exact propagator)
    runs the dense reference."""
    if steps_per_month != 1:
        from sim.engines import stockflow_reference

        return stockflow_reference.project(params, config, steps_per_month, progress)
    start_time = time.perf_counter()
    result = project_batch([params], [config], progress)
    records = [{k: v[0] for k, v in r.items()} for r in result["records"]]
    return {"years": result["years"], "records": records,
            "wall_time_s": time.perf_counter() - start_time}


__all__ = ["BAND_ROWS", "ProgressCallback", "YearRates", "YearTally", "advance_year",
           "band_sums", "build_generators", "care_stock", "equilibrium_state",
           "instantaneous_flows", "project", "project_batch", "propagators",
           "scale_to_observed", "snapshot", "step_matrices", "year_rates"]

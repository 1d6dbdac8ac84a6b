"""Compile the flow declarations (:mod:`sim.model.flows`) into stock-flow generators.

One loop over :data:`~sim.model.flows.FLOWS` expands each flow over its source cells
into a :class:`Term` (column indices, where its hazard lives in ``YearRates``, which
counters copy it); :func:`build` turns terms plus rate values into generators with any
leading batch dimensions.  Two column maps share the loop: the dense reference layout
(:data:`sim.model.spec.LAYOUT`, one column per placement) and the reduced layout of the
batched engine (:data:`REDUCED`, placements collapsed).  Because hazards do not depend
on placement, the reduced layout keeps one representative source cell (placement 0)
per stream x stage; a flow into care adds ``rate x mix[p]`` once per placement, so the
reduced target receives ``rate x sum(mix)``, exactly the dense total.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sim.model import flows, spec
from sim.model.parameters import Array
from sim.model.rates import YearRates

N_BANDS = len(spec.AGE_BANDS)
N_STREAMS, N_PLACEMENTS = len(spec.STREAMS), len(spec.PLACEMENTS)
N_STAGES, N_HOME = len(spec.CARE_STAGES), len(spec.HOME_STAGES)

# Fields of YearRates that generators read, with their axes (band axis included).
RATE_FIELDS: tuple[str, ...] = ("referral_rate", "cin_closure_rate", "entry_rate",
                                "birth_entry_share", "exit_rate", "stage_progress_rate",
                                "home_stage_rate", "reentry_rate", "placement_mix")


# The dense layout is spec.LAYOUT; the reduced one collapses placements (same class).
DENSE = spec.LAYOUT
_R_HOME = 3 + N_STREAMS * N_STAGES
REDUCED = spec.StateLayout(0, 1, 2, 3, _R_HOME, _R_HOME + N_HOME,
                           _R_HOME + N_HOME + len(spec.COUNTERS), collapse_placements=True)


@dataclass(frozen=True)
class Term:
    """One flow expanded over its ``n`` source cells."""

    flow: flows.Flow
    src: Array  # (n,) source columns
    tgt: Array  # (n, m) target columns, m = placements for care_first, else 1; -1 = out
    split_stream: int | None  # targets weighted by placement_mix[split_stream]
    rate_index: tuple[Array, ...]  # index arrays (n,) for the field's non-band axes
    has_band: bool
    counters: tuple[tuple[int, Array], ...]  # (counter column, mask (n,))
    deplete: bool  # False for sources (never depleted)


def _cells(flow: flows.Flow, cols: spec.StateLayout) -> list[dict[str, int]]:
    """Source cells of a flow as coordinate dicts."""
    if flow.source == "care":
        placements = range(1) if cols.collapse_placements else range(N_PLACEMENTS)
        last = N_STAGES - 1 if flow.target == "care_next" else N_STAGES
        return [{"stream": spec.STREAMS.index(s), "placement": p, "stage": k}
                for s in flow.streams for p in placements for k in range(last)]
    if flow.source == "home":
        return [{"home_stage": j} for j in range(N_HOME)]
    return [{}]


def _source_column(flow: flows.Flow, cell: dict[str, int], cols: spec.StateLayout) -> int:
    if flow.source == "care":
        return cols.care(cell["stream"], cell["placement"], cell["stage"])
    if flow.source == "home":
        return cols.home(cell["home_stage"])
    return cols.group(flow.source)


def _targets(flow: flows.Flow, cell: dict[str, int], cols: spec.StateLayout) -> list[int]:
    target = flow.target
    if target == "care_first":
        g = spec.STREAMS.index(flow.target_stream)
        return [cols.care(g, p, 0) for p in range(N_PLACEMENTS)]
    if target == "care_next":
        return [cols.care(cell["stream"], cell["placement"], cell["stage"] + 1)]
    if target == "home_first":
        return [cols.home(0)]
    if target == "home_next":
        j = cell["home_stage"] + 1
        return [cols.home(j) if j < N_HOME else -1]
    if target == "cin_pool":
        return [cols.cin_pool]
    return [-1]


def compile_terms(cols: spec.StateLayout) -> tuple[Term, ...]:
    """Every hazard flow as a :class:`Term` in ``cols`` (the one loop over flows)."""
    sources = {g.name for g in flows.STATE_GROUPS if g.source}
    terms = []
    for flow in flows.FLOWS:
        if flow.at_birth:
            continue
        cells = _cells(flow, cols)
        axes = [a for a in flow.rate.axes if a != "band"]
        route = {"route": spec.EXIT_ROUTES.index(flow.route)} if flow.route else {}
        rate_index = tuple(np.array([{**c, **route}[a] for c in cells], dtype=int)
                           for a in axes)
        counters = []
        for counter in flow.counters:
            mask = np.array([counter.stream is None
                             or c.get("stream") == spec.STREAMS.index(counter.stream)
                             for c in cells])
            counters.append((cols.counter(counter.name), mask))
        terms.append(Term(
            flow=flow,
            src=np.array([_source_column(flow, c, cols) for c in cells], dtype=int),
            tgt=np.array([_targets(flow, c, cols) for c in cells], dtype=int),
            split_stream=(spec.STREAMS.index(flow.target_stream)
                          if flow.target == "care_first" else None),
            rate_index=rate_index, has_band="band" in flow.rate.axes,
            counters=tuple(counters), deplete=flow.source not in sources))
    return tuple(terms)


def _covered_exit_hazards() -> Array:
    """(streams, routes): which exit hazards some flow carries."""
    covered = np.zeros((N_STREAMS, len(spec.EXIT_ROUTES)), dtype=bool)
    for flow in flows.FLOWS:
        if flow.route is not None:
            for s in flow.streams:
                covered[spec.STREAMS.index(s), spec.EXIT_ROUTES.index(flow.route)] = True
    return covered


_UNCOVERED = ~_covered_exit_hazards()


def rate_fields(rates: YearRates | Mapping[str, Array]) -> dict[str, Array]:
    """The generator inputs of one YearRates (or an already stacked mapping)."""
    if isinstance(rates, YearRates):
        return {name: np.asarray(getattr(rates, name), dtype=float) for name in RATE_FIELDS}
    return {name: np.asarray(rates[name], dtype=float) for name in RATE_FIELDS}


def stack_rates(rates: list[YearRates]) -> dict[str, Array]:
    """Stack the generator inputs of many YearRates along a new leading axis."""
    return {name: np.stack([np.asarray(getattr(r, name), dtype=float) for r in rates])
            for name in RATE_FIELDS}


def _values(term: Term, fields: Mapping[str, Array], batch: tuple[int, ...]) -> Array:
    """Hazard of each source cell, shape (*batch, bands, n)."""
    field = term.flow.rate.field
    n = len(term.src)
    if not field:
        return np.ones((*batch, N_BANDS, n))
    value = fields[field]
    nb = len(batch)
    if term.has_band:
        band_axis = nb + term.flow.rate.axes.index("band")
        value = np.moveaxis(value, band_axis, nb)  # (*batch, bands, rest...)
        picked = value[(Ellipsis, *term.rate_index)] if term.rate_index else value[..., None]
        return np.broadcast_to(picked, (*batch, N_BANDS, n))
    picked = value[(Ellipsis, *term.rate_index)] if term.rate_index else value[..., None]
    return np.broadcast_to(picked[..., None, :], (*batch, N_BANDS, n))


def check_exit_hazards(fields: Mapping[str, Array]) -> None:
    """Refuse an exit hazard no flow carries (it would vanish from the counters)."""
    exit_rate = np.moveaxis(fields["exit_rate"], -1, -3)  # (..., streams, routes, bands, stages)
    if np.any(exit_rate[..., _UNCOVERED, :, :]):
        raise ValueError("a UASC exit hazard on a route outside spec.UASC_EXIT_ROUTES "
                         "would be missing from ceased_by_stream; add the route there")


def build(terms: tuple[Term, ...], cols: spec.StateLayout, fields: Mapping[str, Array]) -> Array:
    """Generators, shape (*batch, bands, S, S): row = from, column = to, per year.

    Sources have a zero diagonal (they feed flows without being depleted); counter
    columns receive a copy of the flows they count."""
    check_exit_hazards(fields)
    batch = fields["referral_rate"].shape
    q = np.zeros((*batch, N_BANDS, cols.size, cols.size))
    mix = fields["placement_mix"]
    for term in terms:
        rate = _values(term, fields, batch)  # (*batch, bands, n)
        src = term.src
        if term.deplete:
            q[..., src, src] -= rate
        if term.split_stream is not None:
            weights = mix[..., term.split_stream, :]  # (*batch, placements)
            for p in range(term.tgt.shape[1]):
                q[..., src, term.tgt[:, p]] += rate * weights[..., None, p:p + 1]
        else:
            keep = term.tgt[:, 0] >= 0  # -1: the flow leaves the model
            q[..., src[keep], term.tgt[keep, 0]] += rate[..., keep]
        for column, mask in term.counters:
            q[..., src[mask], column] += rate[..., mask]
    return q


DENSE_TERMS = compile_terms(DENSE)
REDUCED_TERMS = compile_terms(REDUCED)

_AXIS_SIZE = {"band": N_BANDS, "stream": N_STREAMS, "stage": N_STAGES,
              "home_stage": N_HOME, "route": len(spec.EXIT_ROUTES)}
# Unbatched shape of every hazard field, from the axes the flows declare it with.
FIELD_SHAPES: dict[str, tuple[int, ...]] = {
    f.rate.field: tuple(_AXIS_SIZE[a] for a in f.rate.axes)
    for f in flows.FLOWS if f.rate.field and not f.at_birth}


@dataclass(frozen=True)
class ScatterMap:
    """:func:`build` precompiled into flat index arrays, so compiling a stack of
    generators is two gathers, a product and one ``np.bincount`` (no Python loop over
    flows per call).  Why: the batched engine compiles every year of every run at once,
    and the per-term loop of :func:`build` cost more than the projection itself.

    Entry ``e`` adds ``sign[e] * values[gather[e]] * weights[weight[e]]`` to the flat
    generator element ``target[e]`` of (bands, S, S), where ``values`` is every hazard
    field flattened and concatenated (``offsets``) followed by a constant 1, and
    ``weights`` is 1 followed by the flattened placement mix.  Entries come in the
    order :func:`build` adds them, so the sums are the same floating-point sums.
    """

    offsets: dict[str, int]
    gather: Array
    weight: Array
    sign: Array
    target: Array
    size: int  # S

    @property
    def n_values(self) -> int:
        return int(sum(math.prod(FIELD_SHAPES[f]) for f in self.offsets)) + 1


def compile_scatter(terms: tuple[Term, ...], cols: spec.StateLayout) -> ScatterMap:
    """The :class:`ScatterMap` of ``terms`` (mirrors :func:`build` statement by
    statement)."""
    offsets: dict[str, int] = {}
    for name in FIELD_SHAPES:
        offsets[name] = sum(math.prod(FIELD_SHAPES[f]) for f in offsets)
    ones = sum(math.prod(s) for s in FIELD_SHAPES.values())
    size = cols.size
    gather: list[int] = []
    weight: list[int] = []
    sign: list[float] = []
    target: list[int] = []

    def add(value: Array, w: int, s: float, b: int, src: Array, tgt: Array) -> None:
        gather.extend(value.tolist())
        weight.extend([w] * len(value))
        sign.extend([s] * len(value))
        target.extend((b * size * size + src * size + tgt).tolist())

    for term in terms:
        field = term.flow.rate.field
        n = len(term.src)
        for b in range(N_BANDS):
            if not field:
                value = np.full(n, ones)
            else:
                index = iter(term.rate_index)
                multi = [np.full(n, b) if a == "band" else next(index)
                         for a in term.flow.rate.axes]
                value = offsets[field] + (np.ravel_multi_index(multi, FIELD_SHAPES[field])
                                          if multi else np.zeros(n, dtype=int))
            src = term.src
            if term.deplete:
                add(value, 0, -1.0, b, src, src)
            if term.split_stream is not None:
                for p in range(term.tgt.shape[1]):
                    add(value, 1 + term.split_stream * N_PLACEMENTS + p, 1.0, b, src,
                        term.tgt[:, p])
            else:
                keep = term.tgt[:, 0] >= 0
                add(value[keep], 0, 1.0, b, src[keep], term.tgt[keep, 0])
            for column, mask in term.counters:
                add(value[mask], 0, 1.0, b, src[mask], np.full(int(mask.sum()), column))
    return ScatterMap(offsets, np.array(gather), np.array(weight), np.array(sign),
                      np.array(target), size)


def scatter_generators(smap: ScatterMap, fields: Mapping[str, Array]) -> Array:
    """Generators (*batch, bands, S, S) from a :class:`ScatterMap`: equal to
    :func:`build` with the same terms (same additions in the same order)."""
    check_exit_hazards(fields)
    batch = np.shape(fields["referral_rate"])
    n = math.prod(batch)
    values = np.empty((n, smap.n_values))
    for name, start in smap.offsets.items():
        width = math.prod(FIELD_SHAPES[name])
        values[:, start:start + width] = np.reshape(fields[name], (n, width))
    values[:, -1] = 1.0
    mix = np.reshape(fields["placement_mix"], (n, N_STREAMS * N_PLACEMENTS))
    weights = np.concatenate([np.ones((n, 1)), mix], axis=1)
    contributions = values[:, smap.gather] * weights[:, smap.weight]
    contributions *= smap.sign
    block = N_BANDS * smap.size * smap.size
    index = (np.arange(n) * block)[:, None] + smap.target
    q = np.bincount(index.ravel(), contributions.ravel(), minlength=n * block)
    return q.reshape(*batch, N_BANDS, smap.size, smap.size)


REDUCED_SCATTER = compile_scatter(REDUCED_TERMS, REDUCED)


def dense_generators(rates: YearRates | Mapping[str, Array]) -> Array:
    """Generators of the dense reference layout (:data:`sim.model.spec.LAYOUT`)."""
    return build(DENSE_TERMS, DENSE, rate_fields(rates))


def reduced_generators(fields: Mapping[str, Array]) -> Array:
    """Generators of the reduced layout (:data:`REDUCED`), any leading batch dims."""
    return scatter_generators(REDUCED_SCATTER, fields)


def birth_flow() -> flows.Flow:
    """The declared entry-at-birth event (share of each newborn cohort into care)."""
    return next(f for f in flows.FLOWS if f.at_birth)

"""Discrete-event engine: individual children in care and returned home.

Compiled from the same model as the stock-flow engine: every hazard comes from
:func:`sim.model.rates.year_rates` and every state from :mod:`sim.model.spec`; the
package adds no rate of its own.  ``docs/des.md`` is the full account.  Modules:

``common``     constants, child ids, Poisson counts by inversion
``pool``       the aggregate CIN pool (expected trajectory in closed form)
``chains``     Coxian stage chains on the month grid; whole-path sampling
``model``      ``compile_model``: every table a replicate needs
``state``      one replicate's children, episodes and home spells, and their draws
``batch``      the batch path (no capacity): draw, then count with ``bincount``
``replicate``  the event path (simpy): the order of the steps within a month
``capacity``   foster-place queue and family-help places (event path)
``runner``     ``run``: path choice, worker processes, the stacked dataset

Who is simulated
    Every child in care and every child returned home (tracked for five years), with an
    exact birth month, a time-in-care stage, a placement and a stream (UASC or not).
    The children-in-need pool is aggregate (expected values); with family-help capacity
    the children referred for help are followed individually.

Randomness
    One root seed -> ``SeedSequence(root, spawn_key=(replicate, stable_hash(stream)))``
    per named stream -> numbers keyed by child id (:mod:`sim.rng`).  The same child
    draws the same numbers in every scenario, on either path and whatever the number of
    worker processes.

Results
    The stock-flow schema (:mod:`sim.engines.schema`) per replicate, scaled back by
    ``1 / population_scale``, stacked along ``replicate``.
"""

from sim.engines.des.chains import Paths, PhaseChain, ScalarChain, sample_paths
from sim.engines.des.common import (
    AGE_ROWS,
    BAND_OF_AGE_ROW,
    CARE_STOCK_SHAPE,
    FOSTER,
    HOME_AGED_OUT,
    HOME_COMPLETED,
    HOME_REENTERED,
    HOME_STILL_AT_HOME,
    MONTH_IN_YEARS,
    MONTHS_PER_YEAR,
    ORIGIN_BIRTH,
    ORIGIN_CIN,
    ORIGIN_FAMILY_HELP,
    ORIGIN_INITIAL,
    ORIGIN_UASC,
    SOURCE_BIRTH,
    SOURCE_CIN,
    SOURCE_INITIAL,
    SOURCE_REENTRY,
    SOURCE_UASC,
    STILL_IN_CARE,
    UASC,
    ProgressCallback,
    child_ids,
    poisson_quantile,
)
from sim.engines.des.model import CompiledModel, compile_model
from sim.engines.des.pool import PoolTrajectory, _pool_time
from sim.engines.des.runner import (
    DesPath,
    chosen_path,
    run,
    simulate_replicate,
)
from sim.engines.des.state import ReplicateResult
from sim.engines.parallel import default_workers

__all__ = [
    "AGE_ROWS", "BAND_OF_AGE_ROW", "CARE_STOCK_SHAPE", "FOSTER", "HOME_AGED_OUT",
    "HOME_COMPLETED", "HOME_REENTERED", "HOME_STILL_AT_HOME", "MONTHS_PER_YEAR",
    "MONTH_IN_YEARS", "ORIGIN_BIRTH", "ORIGIN_CIN", "ORIGIN_FAMILY_HELP", "ORIGIN_INITIAL",
    "ORIGIN_UASC", "SOURCE_BIRTH", "SOURCE_CIN", "SOURCE_INITIAL", "SOURCE_REENTRY",
    "SOURCE_UASC", "STILL_IN_CARE", "UASC", "CompiledModel", "DesPath", "Paths",
    "PhaseChain", "PoolTrajectory", "ProgressCallback", "ReplicateResult", "ScalarChain",
    "_pool_time", "child_ids", "chosen_path", "compile_model", "default_workers",
    "poisson_quantile", "run", "sample_paths", "simulate_replicate",
]

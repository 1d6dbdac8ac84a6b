"""placeholder"""
from sim.engines.stockflow_reference import *  # noqa: F403
from sim.engines.stockflow_reference import (  # noqa: F401
    BAND_ROWS, ProgressCallback, YearTally, advance_year, band_sums, build_generators,
    care_stock, equilibrium_state, instantaneous_flows, project, propagators,
    scale_to_observed, snapshot, year_rates)

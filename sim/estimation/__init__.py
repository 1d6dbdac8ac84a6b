"""Parameters from data: the base-year estimation and recent published slopes.

Sits above the engines (the base-year state is the engine's own equilibrium, scaled to
the published stock) and below results and calibration."""

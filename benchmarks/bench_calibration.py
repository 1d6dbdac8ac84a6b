"""Calibration: wall time of ``cicsim calibrate`` without writing files.

Prints the wall time of the history-only fit (estimation at 2012 and 2022 included:
that is what a user waits for) split into set-up (estimates, targets) and the
least-squares fit, the number of objective evaluations, and the same for the
review-target variant.  Target (issue #4): <= 30 s on the 2-core CI machine.
"""

from __future__ import annotations

import time

from sim.calibration.fit import calibrate
from sim.calibration.targets import DEFAULT_TARGETS, REVIEW_TARGETS

TARGET_S = 30.0


def main() -> dict[str, float]:
    out: dict[str, float] = {"target_s": TARGET_S}
    for label, targets in (("history only", DEFAULT_TARGETS),
                           ("history + review targets", REVIEW_TARGETS)):
        start = time.perf_counter()
        result = calibrate("scenarios/uncalibrated.toml", targets)
        total = time.perf_counter() - start
        evaluations = result.problem.objective_evaluations
        print(f"calibration ({label}): {total:6.2f} s wall (target <= {TARGET_S:.0f} s) = "
              f"set-up {total - result.fit_time_s:5.2f} s (estimation at 2012 and 2022, "
              f"targets) + fit {result.fit_time_s:5.2f} s; {len(result.names)} free "
              f"parameters, {evaluations} objective evaluations (incl. Jacobians), "
              f"{1e3 * result.fit_time_s / max(evaluations, 1):5.1f} ms each")
        out[f"{label.replace(' ', '_').replace('+', 'and')}_wall_s"] = total
        out["calibration_history_s" if targets is DEFAULT_TARGETS
            else "calibration_review_s"] = total
    return out


if __name__ == "__main__":
    main()

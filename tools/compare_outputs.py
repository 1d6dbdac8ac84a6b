"""Compare two folders of cicsim NetCDF outputs variable by variable.

    python tools/compare_outputs.py BEFORE_DIR AFTER_DIR [--rtol 1e-12]

For every ``*.nc`` in both folders it prints the largest relative difference of each
data variable (absolute where the reference is zero) and lists variables present in
only one.  Exit 1 if any difference exceeds ``--rtol``.  Used to show that a refactor
left every shipped scenario's outputs unchanged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import xarray as xr


def max_relative_difference(a: xr.DataArray, b: xr.DataArray) -> float:
    x = np.asarray(a.values, dtype=float)
    y = np.asarray(b.transpose(*a.dims).values, dtype=float)
    if x.shape != y.shape:
        return float("inf")
    both_nan = np.isnan(x) & np.isnan(y)
    scale = np.maximum(np.abs(x), 1.0)  # absolute below 1 (counts of children, pounds)
    diff = np.where(both_nan, 0.0, np.abs(x - y) / scale)
    return float(np.nanmax(diff, initial=0.0)) if diff.size else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-12)
    args = parser.parse_args(argv)
    worst_overall = 0.0
    failed = False
    for before in sorted(args.before.glob("*.nc")):
        after = args.after / before.name
        if not after.exists():
            print(f"{before.name}: missing in {args.after}")
            failed = True
            continue
        with xr.open_dataset(before) as a, xr.open_dataset(after) as b:
            names = sorted(set(a.data_vars) | set(b.data_vars))
            worst, worst_name, only = 0.0, "", []
            for name in names:
                if name not in a or name not in b:
                    only.append(f"{name} ({'after' if name in b else 'before'} only)")
                    continue
                difference = max_relative_difference(a[name], b[name])
                if difference > worst:
                    worst, worst_name = difference, name
            worst_overall = max(worst_overall, worst)
            status = "ok" if worst <= args.rtol else "DIFFERS"
            failed |= worst > args.rtol
            extra = f"; {', '.join(only)}" if only else ""
            print(f"{before.name:40s} {len(names):3d} variables  max rel diff {worst:.3g}"
                  f"{' (' + worst_name + ')' if worst_name else ''}  {status}{extra}")
    print(f"largest relative difference over all files: {worst_overall:.3g} "
          f"(tolerance {args.rtol:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

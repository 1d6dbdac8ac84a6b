"""``cicsim synth-903``, ``cicsim check-903`` and ``cicsim run ... --ssda903 DIR``.

An authority's own SSDA903 extract (docs/ssda903.md): validated before anything runs,
its rates estimated into the authority's parameters, the scenario run with them.  The
outputs' provenance records the extract files' SHA-256 hashes, never their contents.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import xarray as xr

from sim.estimation.ssda903.authority import authority_parameters
from sim.estimation.ssda903.reader import Extract, Issue, read_extract
from sim.estimation.ssda903.synth import parse_settings, write_extract
from sim.results.io import write_results
from sim.run import simulate
from sim.scenarios.loader import Scenario

ISSUES_FILE = "ssda903_issues.csv"
SHOWN_ISSUES = 20  # issue lines printed to stderr; all of them go to the CSV


def report_issues(extract: Extract, destination: str) -> None:
    """Each skipped row on stderr (the first :data:`SHOWN_ISSUES`), then a count."""
    for issue in extract.issues[:SHOWN_ISSUES]:
        print(f"ssda903: {issue}", file=sys.stderr)
    rows = sum(extract.rows.values())
    if extract.issues:
        more = len(extract.issues) - SHOWN_ISSUES
        print(f"ssda903: {len(extract.issues)} of {rows} rows skipped"
              + (f" ({more} more not shown)" if more > 0 else "")
              + f"; all in {destination}", file=sys.stderr)


def write_issues(issues: tuple[Issue, ...], path: Path) -> Path:
    """``file, line, rule, child, detail`` for every skipped row (header only if none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file", "line", "rule", "child", "detail"])
        writer.writerows([i.file, i.line, i.rule, i.child, i.detail] for i in issues)
    return path


def provenance(extract: Extract) -> str:
    """What the outputs record about the extract: file hashes and counts, no data."""
    return json.dumps({"directory": str(extract.directory), "sha256": extract.file_hashes,
                       "rows": extract.rows, "skipped_rows": len(extract.issues),
                       "start": extract.start_date.isoformat(),
                       "end": extract.end_date.isoformat()})


def run_with_extract(scenario: Scenario, directory: str, out: str | None = None,
                     population: float | None = None,
                     **kwargs: Any) -> tuple[xr.Dataset, Path, Path]:
    """Validate the extract, estimate the authority's parameters, run, write the
    results and ``ssda903_issues.csv`` beside them.  Nothing is written if the extract
    is rejected or the run fails."""
    out_path = Path(out) if out is not None else Path("outputs") / f"{scenario.name}.nc"
    extract = read_extract(directory)
    params, rates = authority_parameters(extract, scenario.config, population=population)
    # after every check that can fail: bad input stays one line on stderr
    issues_path = out_path.parent / ISSUES_FILE
    report_issues(extract, str(issues_path))
    print(f"ssda903: {rates.n_children} children, {rates.n_periods} periods of care, "
          f"{extract.start_date:%d/%m/%Y}-{extract.end_date:%d/%m/%Y}; "
          f"{params.looked_after_base:.0f} in care at the end"
          + (f"; {rates.short_breaks} short-break periods left out" if rates.short_breaks
             else ""), file=sys.stderr)
    ds = simulate(scenario, params=params, **kwargs)
    ds.attrs["ssda903_extract"] = provenance(extract)
    nc_path, csv_path = write_results(ds, out_path)
    write_issues(extract.issues, issues_path)
    return ds, nc_path, csv_path


def _cmd_synth(args: argparse.Namespace) -> int:
    settings = parse_settings(args.set)
    header, episodes = write_extract(args.out, args.children, args.seed, settings)
    print(f"wrote {header} and {episodes} ({args.children} children, seed {args.seed}, "
          f"collection years {settings.start_year}-{settings.end_year})")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    extract = read_extract(args.directory, reject=False)
    destination = args.issues or "(no --issues file)"
    report_issues(extract, destination)
    if args.issues:
        write_issues(extract.issues, Path(args.issues))
    rows = ", ".join(f"{name}: {n} rows" for name, n in extract.rows.items())
    print(f"{args.directory}: {rows}; {len(extract.issues)} skipped; "
          f"{extract.start_date:%d/%m/%Y}-{extract.end_date:%d/%m/%Y}"
          + ("" if extract.accepted else " -- REJECTED: more than the allowed share of "
             "rows fail validation"))
    return 0 if extract.accepted else 2


def register(subparsers: Any) -> None:
    """Add ``synth-903`` and ``check-903`` to ``cicsim``."""
    synth = subparsers.add_parser(
        "synth-903", help="write a seeded synthetic SSDA903 extract (header + episodes "
        "CSV) drawn from known rates")
    synth.add_argument("--out", required=True, help="directory to write into")
    synth.add_argument("--seed", type=int, required=True, help="root seed")
    synth.add_argument("--children", type=int, default=5000,
                       help="children (first entries) to draw (default 5000)")
    synth.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a generating rate, e.g. --set returned_home_rate=0.4 "
                            "(keys: docs/ssda903.md)")
    synth.set_defaults(func=_cmd_synth)

    check = subparsers.add_parser(
        "check-903", help="validate an SSDA903 extract and list every bad row")
    check.add_argument("directory", help="directory with header*.csv and episodes*.csv")
    check.add_argument("--issues", default=None, metavar="CSV",
                       help="also write every skipped row to this CSV")
    check.set_defaults(func=_cmd_check)

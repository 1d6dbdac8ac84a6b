"""Read an authority's SSDA903 header and episodes files and validate every row.

The format is the DfE SSDA903 return as authorities export it, one CSV per table, dates
``dd/mm/YYYY``.  The files are found in a directory by name (``header*.csv`` and
``episodes*.csv``, any case).  Columns are matched by name (case and surrounding spaces
ignored); extra columns are ignored; the columns the estimation reads
(:data:`REQUIRED`) must be present or the file is rejected.

Every row that fails a rule (:data:`RULES`, documented in ``docs/ssda903.md``) is
reported with its file, line and rule, then skipped together with the rest of that
child's rows (so a period of care is never estimated from a broken chain of episodes;
each of those rows is reported too, as ``child_skipped``).  If more than
:data:`REJECT_SHARE` of the episode rows are skipped, or of the header rows for a
header rule, the whole extract is rejected:
an extract that bad says more about the export than about the children.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sim.datasets import file_sha256
from sim.errors import InputError
from sim.estimation.ssda903.codes import CONTINUES, NEW_PERIOD, CodeLists, load_codes

HEADER_COLUMNS = ("CHILD", "SEX", "DOB", "ETHNIC", "UPN", "MOTHER", "MC_DOB")
EPISODE_COLUMNS = ("CHILD", "DECOM", "RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "DEC",
                   "REC", "REASON_PLACE_CHANGE", "HOME_POST", "PL_POST", "URN")
# What the estimation reads; the other standard columns may be absent.
REQUIRED = {"header": ("CHILD", "DOB"),
            "episodes": ("CHILD", "DECOM", "RNE", "LS", "PLACE", "DEC", "REC")}
# Reject the extract when more than this share of a file's rows are skipped.
REJECT_SHARE = 0.05

RULES: dict[str, str] = {
    "missing_child_id": "CHILD is blank",
    "missing_dob": "DOB is blank in the header",
    "unparseable_date": "a date (DOB, DECOM, DEC) is not a dd/mm/YYYY date",
    "duplicate_child": "the same CHILD appears on more than one header row",
    "child_not_in_header": "an episode's CHILD has no (valid) header row",
    "unknown_code": "REC, RNE, LS or PLACE is not in sim/data/ssda903_reason_codes.csv",
    "dec_before_decom": "the episode ends (DEC) before it starts (DECOM)",
    "decom_before_dob": "the episode starts (DECOM) before the child's DOB",
    "dec_rec_mismatch": "DEC without REC, or REC without DEC",
    "overlapping_episodes": "an episode starts before the child's previous episode ends",
    "broken_chain": "episodes of one period do not join: X1 not followed by a same-day "
                    "episode, or a new episode after a real exit that is not RNE = S",
    "child_skipped": "a valid row of a child who has a bad row elsewhere",
}

DATE_PATTERN = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


@dataclass(frozen=True)
class Issue:
    """One bad row: where it is and which rule it broke."""

    file: str
    line: int
    rule: str
    child: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.detail}"


@dataclass(frozen=True)
class Episode:
    """A valid episode row (codes upper-cased; ``dec`` None while it is open)."""

    child: str
    line: int
    decom: dt.date
    dec: dt.date | None
    rne: str
    ls: str
    place: str
    rec: str


@dataclass(frozen=True)
class Extract:
    """The rows that passed validation, the issues, and the extract's window.

    ``end_date`` is the 31 March closing the collection year of the latest date in the
    extract (open episodes are censored there).  ``start_date`` is the 1 April opening
    the collection year of the earliest exit (a DEC whose REC is not X1): an annual
    SSDA903 return holds the episodes open during its year, so periods that ended before
    the first stacked year are absent while long-running ones still show their old
    DECOM.  Time and events before ``start_date`` are therefore not observed for
    everyone, and the estimation counts none of them (left truncation); with no exit at
    all, the earliest DECOM sets it."""

    directory: Path
    dob: dict[str, dt.date]
    episodes: dict[str, list[Episode]]  # by child, in DECOM order
    issues: tuple[Issue, ...]
    start_date: dt.date
    end_date: dt.date
    rows: dict[str, int]  # data rows read per file
    file_hashes: dict[str, str]  # file name -> SHA-256 (provenance; never the data)
    codes: CodeLists = field(repr=False, default_factory=load_codes)
    accepted: bool = True  # False only from read_extract(..., reject=False)

    @property
    def years(self) -> float:
        return (self.end_date - self.start_date).days / 365.25 + 1 / 365.25


def find_file(directory: Path, stem: str) -> Path:
    """The one ``<stem>*.csv`` in ``directory`` (case-insensitive), else InputError."""
    pattern = re.compile(rf"{stem}.*\.csv", re.IGNORECASE)
    matches = sorted(p for p in directory.iterdir() if p.is_file() and pattern.fullmatch(p.name))
    if not matches:
        raise InputError(f"{directory}: no {stem}*.csv file (SSDA903 extract)")
    if len(matches) > 1:
        raise InputError(f"{directory}: more than one {stem}*.csv file: "
                         f"{', '.join(p.name for p in matches)}")
    return matches[0]


def parse_date(text: str) -> dt.date | None:
    """``dd/mm/YYYY`` (leading zeros optional) -> date; None if blank; ValueError if odd."""
    text = text.strip()
    if not text:
        return None
    match = DATE_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(text)
    day, month, year = (int(g) for g in match.groups())
    return dt.date(year, month, day)


def _rows(path: Path, kind: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) with upper-cased column names; InputError if a required
    column is missing.  Line 1 is the column names."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            names = [n.strip().upper() for n in next(reader)]
        except StopIteration:
            raise InputError(f"{path}: empty file (expected columns "
                             f"{', '.join(REQUIRED[kind])})") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a readable CSV file ({exc})") from None
        for column in REQUIRED[kind]:
            if column not in names:
                raise InputError(f"{path}: required column {column} is missing")
        index = {n: names.index(n) for n in dict.fromkeys(names)}
        try:
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                yield reader.line_num, {n: (values[i].strip() if i < len(values) else "")
                                        for n, i in index.items()}
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a readable CSV file at line {reader.line_num} "
                             f"({exc})") from None


def read_extract(directory: str | Path, codes: CodeLists | None = None,
                 reject: bool = True) -> Extract:
    """Read and validate the extract in ``directory`` (see the module docstring).
    ``reject=False`` (``cicsim check-903``) returns an extract that fails the
    :data:`REJECT_SHARE` rule with ``accepted`` False instead of raising."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: SSDA903 extract directory does not exist")
    codes = codes or load_codes()
    header_path, episodes_path = find_file(directory, "header"), find_file(directory, "episodes")
    hname, ename = header_path.name, episodes_path.name
    issues: list[Issue] = []
    bad: dict[str, Issue] = {}  # child -> the first issue that made it bad

    def report(file: str, line: int, rule: str, child: str, detail: str) -> None:
        issue = Issue(file, line, rule, child, detail)
        issues.append(issue)
        if child:
            bad.setdefault(child, issue)

    dob: dict[str, dt.date] = {}
    header_lines: dict[str, list[int]] = {}
    header_rows = 0
    for line, row in _rows(header_path, "header"):
        header_rows += 1
        child = row["CHILD"]
        if not child:
            report(hname, line, "missing_child_id", "", "CHILD is blank")
            continue
        header_lines.setdefault(child, []).append(line)
        if len(header_lines[child]) > 1:
            report(hname, line, "duplicate_child", child,
                   f"CHILD {child} also on line {header_lines[child][0]}")
            continue
        try:
            born = parse_date(row["DOB"])
        except ValueError:
            report(hname, line, "unparseable_date", child, f"DOB {row['DOB']!r}")
            continue
        if born is None:
            report(hname, line, "missing_dob", child, f"CHILD {child} has no DOB")
            continue
        dob[child] = born

    parsed: dict[str, list[Episode]] = {}
    episode_rows = 0
    for line, row in _rows(episodes_path, "episodes"):
        episode_rows += 1
        child = row["CHILD"]
        if not child:
            report(ename, line, "missing_child_id", "", "CHILD is blank")
            continue
        if child not in header_lines:
            report(ename, line, "child_not_in_header", child,
                   f"CHILD {child} is not in {hname}")
            continue
        dates = {}
        for column in ("DECOM", "DEC"):
            try:
                dates[column] = parse_date(row[column])
            except ValueError:
                dates[column] = None
                report(ename, line, "unparseable_date", child, f"{column} {row[column]!r}")
        if dates["DECOM"] is None:
            if row["DECOM"] == "":
                report(ename, line, "unparseable_date", child, "DECOM is blank")
            continue
        if row["DEC"] and dates["DEC"] is None:
            continue
        values = {c: row[c].upper() for c in ("REC", "RNE", "LS", "PLACE")}
        unknown = [f"{c} {v!r}" for c, v in values.items()
                   if v not in codes.known(c) and not (c == "REC" and v == "")]
        if unknown:
            report(ename, line, "unknown_code", child, "; ".join(unknown))
            continue
        decom, dec = dates["DECOM"], dates["DEC"]
        if (dec is None) != (values["REC"] == ""):
            report(ename, line, "dec_rec_mismatch", child,
                   f"DEC {row['DEC']!r} with REC {row['REC']!r}")
            continue
        if dec is not None and dec < decom:
            report(ename, line, "dec_before_decom", child, f"DEC {dec} before DECOM {decom}")
            continue
        born = dob.get(child)
        if born is not None and decom < born:
            report(ename, line, "decom_before_dob", child, f"DECOM {decom} before DOB {born}")
            continue
        parsed.setdefault(child, []).append(Episode(child, line, decom, dec, values["RNE"],
                                                    values["LS"], values["PLACE"],
                                                    values["REC"]))
    for episodes in parsed.values():
        episodes.sort(key=lambda e: (e.decom, e.line))
        _check_chain(episodes, codes, ename, report)

    _report_skipped(bad, header_lines, parsed, hname, ename, issues)
    episodes_ok = {c: e for c, e in parsed.items() if c not in bad and c in dob}
    dob_ok = {c: d for c, d in dob.items() if c not in bad}
    rejection = _rejection(directory, issues, {hname: header_rows, ename: episode_rows})
    if rejection and reject:
        raise InputError(rejection)
    if not episodes_ok:
        raise InputError(f"{directory}: no valid episodes in {ename}")
    all_dates = [d for eps in episodes_ok.values() for e in eps for d in (e.decom, e.dec)
                 if d is not None]
    ends = [e.dec for eps in episodes_ok.values() for e in eps
            if e.dec is not None and codes.rec[e.rec] != CONTINUES]
    first = min(ends) if ends else min(e.decom for eps in episodes_ok.values() for e in eps)
    return Extract(
        directory=directory, dob=dob_ok, episodes=episodes_ok,
        issues=tuple(sorted(issues, key=lambda i: (i.file, i.line))),
        start_date=dt.date(first.year if first.month >= 4 else first.year - 1, 4, 1),
        end_date=collection_year_end(max(all_dates)),
        rows={hname: header_rows, ename: episode_rows},
        file_hashes={p.name: file_sha256(p) for p in (header_path, episodes_path)},
        codes=codes, accepted=not rejection)


def collection_year_end(day: dt.date) -> dt.date:
    """The 31 March that closes the collection year containing ``day``."""
    return dt.date(day.year if day <= dt.date(day.year, 3, 31) else day.year + 1, 3, 31)


Report = Callable[[str, int, str, str, str], None]


def _check_chain(episodes: list[Episode], codes: CodeLists, file: str,
                 report: Report) -> None:
    """Overlaps and broken period chains among one child's parsed episodes."""
    for previous, current in zip(episodes, episodes[1:], strict=False):
        if previous.dec is None or current.decom < previous.dec:
            report(file, current.line, "overlapping_episodes", current.child,
                   f"DECOM {current.decom} before the end of the episode on line "
                   f"{previous.line} ({previous.dec or 'open'})")
            return
        continues = codes.rec[previous.rec] == CONTINUES
        new_period = codes.rne[current.rne] == NEW_PERIOD
        if continues and (new_period or current.decom != previous.dec):
            report(file, current.line, "broken_chain", current.child,
                   f"line {previous.line} ends with {previous.rec} on {previous.dec} but this "
                   f"episode is RNE {current.rne} from {current.decom}")
            return
        if not continues and not new_period:
            report(file, current.line, "broken_chain", current.child,
                   f"line {previous.line} ended the period ({previous.rec}) but this "
                   f"episode is RNE {current.rne}, not S")
            return
    last = episodes[-1]
    if last.dec is not None and codes.rec[last.rec] == CONTINUES:
        report(file, last.line, "broken_chain", last.child,
               f"ends with {last.rec} on {last.dec} but no episode follows")


def _report_skipped(bad: dict[str, Issue], header_lines: dict[str, list[int]],
                    parsed: dict[str, list[Episode]], hname: str, ename: str,
                    issues: list[Issue]) -> None:
    """Report every other row of a bad child as skipped: nothing dropped silently."""
    reported = {(i.file, i.line) for i in issues}
    for child, cause in bad.items():
        rows = [(hname, line) for line in header_lines.get(child, [])]
        rows += [(ename, e.line) for e in parsed.get(child, [])]
        for file, line in rows:
            if (file, line) not in reported:
                issues.append(Issue(file, line, "child_skipped", child,
                                    f"CHILD {child} skipped: {cause.rule} at "
                                    f"{cause.file}:{cause.line}"))


def _rejection(directory: Path, issues: list[Issue], rows: dict[str, int]) -> str:
    """Why the extract is rejected ("" if it is not)."""
    header_file = next(iter(rows))
    for file, total in rows.items():
        # A header row skipped only because the child's episodes are bad is counted
        # once, in the episodes file.
        skipped = len({i.line for i in issues if i.file == file
                       and not (i.rule == "child_skipped" and file == header_file)})
        if total and skipped / total > REJECT_SHARE:
            first = min((i for i in issues if i.file == file), key=lambda i: i.line)
            return (
                f"{directory / file}: {skipped} of {total} rows ({skipped / total:.1%}) fail "
                f"validation, more than {REJECT_SHARE:.0%}: extract rejected (first: {first}; "
                f"list them all with cicsim check-903 {directory})")
    return ""

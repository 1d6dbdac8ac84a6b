"""SSDA903 reader: finding the files, required columns, and one test per validation rule
(every rule in ``reader.RULES`` is exercised and documented in docs/ssda903.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sim.errors import InputError
from sim.estimation.ssda903 import reader
from sim.estimation.ssda903.reader import read_extract

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ssda903.md"
HEADER = ["CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB",
          "A1,1,01/06/2010,WBRI,UN1,,",
          "A2,2,15/02/2015,WBRI,UN1,0,",
          "A3,1,29/02/2008,WBRI,UN1,,"]
EPISODES = ["CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,"
            "HOME_POST,PL_POST,URN",
            # A1: one period, a placement change, returned home, then a new period (open)
            "A1,01/05/2019,S,C2,N1,U4,PR1,01/09/2019,X1,,ZZ99,ZZ99,XXXXXXX",
            "A1,01/09/2019,P,C2,N1,K2,PR4,10/01/2020,E4A,CARPL,ZZ99,ZZ99,XXXXXXX",
            "A1,01/07/2020,S,V2,N1,U6,PR1,,,,ZZ99,ZZ99,XXXXXXX",
            # A2: adopted
            "A2,03/03/2019,S,C1,N1,U5,PR1,20/12/2020,E11,,ZZ99,ZZ99,XXXXXXX",
            # A3: open
            "A3,10/10/2020,S,C2,N2,U1,PR1,,,,ZZ99,ZZ99,XXXXXXX"]


def write(directory: Path, header: list[str] = HEADER, episodes: list[str] = EPISODES,
          names: tuple[str, str] = ("header.csv", "episodes.csv")) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, lines in zip(names, (header, episodes), strict=True):
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def issues_of(directory: Path) -> list[tuple[str, int, str]]:
    extract = read_extract(directory, reject=False)
    return [(i.file, i.line, i.rule) for i in extract.issues]


def test_clean_extract_reads_every_row(tmp_path: Path) -> None:
    extract = read_extract(write(tmp_path))
    assert extract.issues == ()
    assert [len(extract.episodes[c]) for c in ("A1", "A2", "A3")] == [3, 1, 1]
    # the earliest episode end (01/09/2019) opens the window; A2's earlier DECOM does not
    assert extract.start_date == dt.date(2019, 4, 1)
    assert extract.end_date == dt.date(2021, 3, 31)
    assert set(extract.file_hashes) == {"header.csv", "episodes.csv"}
    assert extract.dob["A3"] == dt.date(2008, 2, 29)


def test_files_found_by_name_case_insensitive_and_extra_columns_ignored(tmp_path: Path
                                                                        ) -> None:
    header = [HEADER[0] + ",EXTRA"] + [line + ",x" for line in HEADER[1:]]
    write(tmp_path, header=header, names=("Header_2021.CSV", "EPISODES-2021.csv"))
    extract = read_extract(tmp_path)
    assert len(extract.dob) == 3 and extract.issues == ()


def test_missing_directory_or_file_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_extract(tmp_path / "nowhere")
    (tmp_path / "header.csv").write_text("\n".join(HEADER))
    with pytest.raises(InputError, match=rf"{tmp_path}: no episodes\*\.csv"):
        read_extract(tmp_path)


def test_two_candidate_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "header_old.csv").write_text("\n".join(HEADER))
    with pytest.raises(InputError, match="more than one header"):
        read_extract(tmp_path)


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    episodes = [line.replace(",REC,", ",REASON,") for line in EPISODES]
    write(tmp_path, episodes=episodes)
    with pytest.raises(InputError, match=r"episodes\.csv: required column REC is missing"):
        read_extract(tmp_path)


def with_episode(line: str, replace: int | None = None) -> list[str]:
    rows = list(EPISODES)
    if replace is None:
        rows.append(line)
    else:
        rows[replace] = line
    return rows


def with_header(line: str, replace: int | None = None) -> list[str]:
    rows = list(HEADER)
    if replace is None:
        rows.append(line)
    else:
        rows[replace] = line
    return rows


# (rule, header lines, episode lines, (file, line) of the reported row)
CASES = {
    "missing_child_id": (HEADER, with_episode(",01/01/2020,S,C2,N1,U4,PR1,,,,,,"),
                         ("episodes.csv", 7)),
    "missing_dob": (with_header("A2,2,,WBRI,UN1,0,", 2), EPISODES, ("header.csv", 3)),
    "unparseable_date": (HEADER, with_episode(
        "A2,2019-03-03,S,C1,N1,U5,PR1,20/12/2020,E11,,,,", 4), ("episodes.csv", 5)),
    "duplicate_child": (with_header("A3,1,01/01/2009,WBRI,UN1,,"), EPISODES,
                        ("header.csv", 5)),
    "child_not_in_header": (HEADER, with_episode("B9,01/01/2020,S,C2,N1,U4,PR1,,,,,,"),
                            ("episodes.csv", 7)),
    "unknown_code": (HEADER, with_episode(
        "A2,03/03/2019,S,C1,N1,U5,PR1,20/12/2020,E99,,,,", 4), ("episodes.csv", 5)),
    "dec_before_decom": (HEADER, with_episode(
        "A2,03/03/2019,S,C1,N1,U5,PR1,20/12/2018,E11,,,,", 4), ("episodes.csv", 5)),
    "decom_before_dob": (HEADER, with_episode(
        "A2,03/03/2014,S,C1,N1,U5,PR1,20/12/2020,E11,,,,", 4), ("episodes.csv", 5)),
    "dec_rec_mismatch": (HEADER, with_episode(
        "A2,03/03/2019,S,C1,N1,U5,PR1,20/12/2020,,,,,", 4), ("episodes.csv", 5)),
    "overlapping_episodes": (HEADER, with_episode(
        "A2,01/06/2020,S,C1,N1,U5,PR1,,,,,,"), ("episodes.csv", 7)),
    "broken_chain": (HEADER, with_episode(
        "A1,01/09/2019,S,C2,N1,K2,PR4,10/01/2020,E4A,,,,", 2), ("episodes.csv", 3)),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_reports_file_line_and_skips_the_child(tmp_path: Path, rule: str) -> None:
    header, episodes, where = CASES[rule]
    write(tmp_path, header=header, episodes=episodes)
    extract = read_extract(tmp_path, reject=False)
    found = [(i.file, i.line, i.rule) for i in extract.issues]
    assert (*where, rule) in found
    # nothing silently dropped: every row of a skipped child is reported
    bad = {i.child for i in extract.issues if i.child}
    assert not bad & set(extract.episodes)
    reported = {(i.file, i.line) for i in extract.issues}
    for child in bad:
        lines = [n for n, text in enumerate(episodes[1:], start=2)
                 if text.split(",")[0] == child]
        assert all(("episodes.csv", n) in reported for n in lines)


@pytest.mark.parametrize("column, value", [("RNE", "Q"), ("LS", "ZZ"), ("PLACE", "U9"),
                                           ("REC", "E99")])
def test_unknown_code_in_each_coded_column(tmp_path: Path, column: str, value: str) -> None:
    row = dict(zip(EPISODES[0].split(","), EPISODES[4].split(","), strict=True))
    row[column] = value
    write(tmp_path, episodes=with_episode(",".join(row.values()), 4))
    extract = read_extract(tmp_path, reject=False)
    assert [(i.file, i.line, i.rule) for i in extract.issues] == [
        ("episodes.csv", 5, "unknown_code"), ("header.csv", 3, "child_skipped")]
    assert f"{column} '{value}'" in extract.issues[0].detail


def test_child_skipped_reports_the_other_rows(tmp_path: Path) -> None:
    """A1's third episode is bad; its first two are reported as child_skipped, and its
    header row too."""
    write(tmp_path, episodes=with_episode("A1,01/07/2020,S,V2,N1,U6,PR1,01/06/2020,E8,,,,",
                                          3))
    assert issues_of(tmp_path) == [
        ("episodes.csv", 2, "child_skipped"), ("episodes.csv", 3, "child_skipped"),
        ("episodes.csv", 4, "dec_before_decom"), ("header.csv", 2, "child_skipped")]


def test_every_rule_is_tested_and_documented() -> None:
    tested = set(CASES) | {"child_skipped"}
    assert tested == set(reader.RULES)
    text = DOCS.read_text(encoding="utf-8")
    assert all(f"`{rule}`" in text for rule in reader.RULES)


def test_too_many_bad_rows_reject_the_extract(tmp_path: Path) -> None:
    """One bad row of six is 17 % > REJECT_SHARE: the extract is rejected (InputError
    naming the file), unless asked for the check only."""
    write(tmp_path, episodes=CASES["dec_before_decom"][1])
    with pytest.raises(InputError, match=r"episodes\.csv: .*extract rejected"):
        read_extract(tmp_path)
    assert not read_extract(tmp_path, reject=False).accepted


def test_few_bad_rows_are_skipped_not_rejected(tmp_path: Path) -> None:
    """40 more clean children: one bad row of 45 episodes (with A2 skipped, 2 %) passes."""
    header = HEADER + [f"C{i},1,01/01/2012,WBRI,UN1,," for i in range(40)]
    episodes = CASES["dec_before_decom"][1] + [
        f"C{i},01/01/2020,S,C2,N1,U4,PR1,,,,,," for i in range(40)]
    write(tmp_path, header=header, episodes=episodes)
    extract = read_extract(tmp_path)
    assert extract.accepted and "A2" not in extract.episodes and len(extract.episodes) == 42

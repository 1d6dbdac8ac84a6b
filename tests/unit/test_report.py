"""``cicsim compare`` builds a self-contained HTML report whose charts are real PNGs."""

from __future__ import annotations

import base64
import html
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_compare import YEARS, synthetic, write

from sim.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ReportParser(HTMLParser):
    """Collects image sources, element ids and every external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, str]] = []  # (alt, src)
        self.ids: set[str] = set()
        self.external: list[str] = []
        self.tables: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "table":
            self.tables.append(values.get("id", ""))
        if tag == "img":
            self.images.append((values.get("alt", ""), values.get("src", "")))
        for key in ("src", "href"):
            if key in values and not values[key].startswith(("data:", "#")):
                self.external.append(values[key])


def sensitivity_table() -> pd.DataFrame:
    rows = []
    for parameter, low, high in (("levers.family_help.effect", 300.0, 1_900.0),
                                 ("levers.family_help.lag_years", 1_000.0, 1_300.0),
                                 ("levers.foster_recruitment.effect", 1_103.0, 1_103.0)):
        rows.append({"scenario": "reform", "parameter": parameter, "metric": "kept_at_home_2032",
                     "central": 1_103.0, "value_central": 0.2, "value_low": 0.1,
                     "value_high": 0.3, "result_low": low, "result_high": high,
                     "swing": abs(high - low), "source": "test"})
    rows.append({"scenario": "reform", "parameter": "costs.residential_gbp_per_year",
                 "metric": "net_saving_discounted_gbp_m", "central": -1_500.0,
                 "value_central": 2e5, "value_low": 1.4e5, "value_high": 3.2e5,
                 "result_low": -1_700.0, "result_high": -1_200.0, "swing": 500.0,
                 "source": "test"})
    return pd.DataFrame(rows)


def sweep_table() -> pd.DataFrame:
    values = [0.0, 1_000.0, 2_000.0]
    return pd.DataFrame({"scenario": [f"fh-{v:g}" for v in values], "value": values,
                         "label": "family help, £m", "key": "levers.family_help.funding_gbp_m",
                         "kept_at_home_2032": [0.0, 550.0, 1_100.0],
                         "net_saving_discounted_gbp_m": [0.0, -640.0, -1_280.0]})


def as_kind(ds: xr.Dataset, kind: str, engine: str = "stockflow") -> xr.Dataset:
    """The run as if its scenario declared ``kind`` and ran on ``engine``."""
    ds.attrs["scenario_toml"] += f'kind = "{kind}"\n'
    ds.attrs["engine"] = engine
    return ds


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs, a sensitivity table and a sweep summary, compared through the CLI."""
    tmp_path = tmp_path_factory.mktemp("report")
    stock = np.where(YEARS >= 2025, 79_000.0, 80_000.0)
    runs = [write(tmp_path, synthetic("baseline")),
            write(tmp_path, synthetic("review-full", looked_after=stock, programme=5e8)),
            write(tmp_path, as_kind(synthetic("des-run", replicates=4), "demo", "des"))]
    sensitivity = tmp_path / "sens.csv"
    sensitivity_table().to_csv(sensitivity, index=False)
    sweep = tmp_path / "family-help.csv"
    sweep_table().to_csv(sweep, index=False)
    out = tmp_path / "out"
    code = main(["compare", *map(str, runs), "--out", str(out), "--sensitivity",
                 str(sensitivity), "--sweep", str(sweep)])
    assert code == 0
    return out


def test_report_is_self_contained_with_non_empty_pngs(report_dir: Path) -> None:
    parser = ReportParser()
    parser.feed((report_dir / "report.html").read_text(encoding="utf-8"))
    assert parser.external == []  # nothing outside the file
    assert len(parser.images) >= 6
    for alt, src in parser.images:
        assert src.startswith("data:image/png;base64,"), alt
        data = base64.b64decode(src.split(",", 1)[1])
        assert data.startswith(PNG_SIGNATURE), alt
        assert len(data) > 5_000, f"{alt}: suspiciously small PNG"
    for anchor in ("history", "kept-at-home", "costs", "fans", "comparison",
                   "tornado-sens-kept_at_home_2032", "sweep-family-help", "review-30000",
                   "policy", "demo", "history-demo", "sensitivity"):
        assert anchor in parser.ids, anchor
    assert "variant" not in parser.ids  # no variant run, no variant section
    for table in ("comparison-policy", "comparison-demo", "sensitivity-table", "runs"):
        assert table in parser.tables


def test_compare_writes_table_and_chart_files(report_dir: Path) -> None:
    table = pd.read_csv(report_dir / "comparison.csv")
    assert list(table["scenario"]) == ["baseline", "review-full", "des-run"]
    assert table.loc[1, "kept_at_home_2032"] == pytest.approx(1_000)
    assert (report_dir / "comparison.md").read_text(encoding="utf-8").startswith("| scenario")
    for name in ("history_projection", "history_projection-demo", "kept_at_home", "costs",
                 "fan_charts",
                 "tornado-sens-kept_at_home_2032",
                 "tornado-sens-net_saving_discounted_gbp_m", "sweep-family-help"):
        png = report_dir / f"{name}.png"
        assert png.exists(), name
        assert png.read_bytes().startswith(PNG_SIGNATURE), name
        assert png.stat().st_size > 5_000, name


def test_report_states_the_review_comparison(report_dir: Path) -> None:
    text = (report_dir / "report.html").read_text(encoding="utf-8")
    assert "review-full minus baseline in 2032: 1,000 children kept at home" in text
    assert "30,000 more children living safely with their families" in text


def test_compare_rejects_a_malformed_sensitivity_table(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = write(tmp_path, synthetic("baseline"))
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"parameter": ["x"]}).to_csv(bad, index=False)
    code = main(["compare", str(run), "--out", str(tmp_path / "out"), "--sensitivity",
                 str(bad)])
    assert code == 2
    assert "bad.csv: not a sensitivity table (missing columns: scenario, metric" in (
        capsys.readouterr().err)
    assert not (tmp_path / "out").exists()  # bad input writes nothing
    code = main(["compare", str(run), "--out", str(tmp_path / "out"), "--sweep",
                 str(tmp_path / "absent.csv")])
    assert code == 2
    assert "absent.csv: sweep file not found" in capsys.readouterr().err


def test_compare_without_extras_finds_none_in_an_empty_folder(tmp_path: Path) -> None:
    run = write(tmp_path, synthetic("baseline"))
    out = tmp_path / "out"
    assert main(["compare", str(run), "--out", str(out)]) == 0
    parser = ReportParser()
    parser.feed((out / "report.html").read_text(encoding="utf-8"))
    history = "Policy scenarios: children looked after, published and projected"
    assert {alt for alt, _ in parser.images} == {history, "Policy scenarios: cost per year"}
    # the first chart is the published history joined to the projection
    assert parser.images[0][0] == history


def test_report_keeps_policies_variants_and_demos_apart(report_dir: Path) -> None:
    text = (report_dir / "report.html").read_text(encoding="utf-8")
    # policies first, opening with the history chart; the demo after them
    assert text.index('id="policy"') < text.index('id="history"') < text.index(
        'id="comparison-policy"') < text.index('id="demo"') < text.index(
        'id="comparison-demo"')
    policy = text[text.index('id="comparison-policy"'):text.index('id="demo"')]
    demo = text[text.index('id="comparison-demo"'):]
    assert "des-run" not in policy.split("</table>")[0]  # the demo is not among policies
    assert "des-run" in demo.split("</table>")[0]
    assert "DES, 4 replicates" in demo  # the engine column
    assert "stock\u2011flow" in policy  # kept on one line by a non-breaking hyphen
    assert str(report_dir.parent) not in text  # no absolute local path anywhere


def test_compare_says_when_no_baseline_is_present(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    runs = [write(tmp_path, synthetic("reform-a")), write(tmp_path, synthetic("reform-b"))]
    out = tmp_path / "out"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if line]
    assert len(notes) == 1 and notes[0].startswith("note: no baseline: no run is named "
                                                   "'baseline' (runs: reform-a, reform-b)")
    assert "no run is named 'baseline'" in html.unescape(
        (out / "report.html").read_text(encoding="utf-8"))
    # the last line lists every file written, the report last
    last = captured.out.strip().splitlines()[-1]
    assert last.startswith(f"wrote {out / 'comparison.csv'}, ")
    assert last.endswith(str(out / "report.html"))
    for written in last.removeprefix("wrote ").split(", "):
        assert Path(written).exists(), written


def test_compare_names_the_files_behind_a_name_clash(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    first = write(tmp_path, synthetic("baseline"))
    other = tmp_path / "fewer-entries.nc"
    first.rename(other)
    second = write(tmp_path, synthetic("baseline"))
    out = tmp_path / "out"
    assert main(["compare", str(second), str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert f"'baseline' in {second}, {other}" in err and "--name" in err
    assert not out.exists()

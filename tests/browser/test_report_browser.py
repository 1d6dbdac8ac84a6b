"""The report in a real browser: headless Chromium loads ``report.html`` at 1,000 px and
a script in the page records whether every chart image decoded (``naturalWidth > 0``)
and whether anything is wider than the window (``scrollWidth <= innerWidth``, and the
elements whose right edge passes it).  ``--dump-dom`` prints the page after its load
event, checks included; no browser driver is needed.

The report is built by ``cicsim compare`` from real stock-flow runs of shipped scenarios
(policies and variants, with their long names and the reconciliation tables) and a
small synthetic discrete-event demo with replicates (fan charts).  Skipped only when no
Chromium is installed (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sim.cli import main
from sim.results.io import write_results
from sim.run import simulate
from sim.scenarios.loader import load_scenario

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH = 1000
SCENARIOS = ("baseline", "review-full", "uasc-high", "review-assumptions-full")

CHECKS = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
    .map(function (i) { return i.alt; });
  var wide = Array.prototype.slice.call(document.querySelectorAll('body *'))
    .filter(function (e) { return e.getBoundingClientRect().right > window.innerWidth + 0.5; })
    .slice(0, 10).map(function (e) { return e.tagName + '#' + e.id + '.' + e.className; });
  var out = document.createElement('pre');
  out.id = 'cicsim-checks';
  out.textContent = JSON.stringify({images: images.length, broken: broken,
    innerWidth: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
    wide: wide});
  document.body.appendChild(out);
});
"""


def browser_checks(page: Path, width: int = WIDTH) -> dict[str, object]:
    """Load a copy of ``page`` with the checking script in headless Chromium."""
    probe = page.with_name(f"probe-{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace(
        "</body>", f"<script>{CHECKS}</script></body>"), encoding="utf-8")
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--hide-scrollbars", f"--window-size={width},900", "--virtual-time-budget=5000",
         "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="cicsim-checks">([^<]*)</pre>', result.stdout)
    assert found, f"no checks in the dumped page (exit {result.returncode}): " \
                  f"{result.stderr[-500:]}"
    return json.loads(found.group(1))


def demo_run(tmp_path: Path) -> Path:
    """A discrete-event-like demo: the baseline's looked_after with replicate noise."""
    ds = xr.open_dataset(tmp_path / "baseline.nc").load()
    banded = [v for v in ds.data_vars if "quantile" in ds[v].dims]  # not per replicate
    noise = np.linspace(-300.0, 300.0, 4)
    runs = xr.concat([ds.drop_vars(banded) + n for n in noise], dim="replicate",
                     combine_attrs="override").assign(ds[banded])
    runs.attrs.update(scenario="des-demo-with-a-long-name", engine="des",
                      scenario_toml=ds.attrs["scenario_toml"].replace(
                          'name = "baseline"', 'name = "des-demo-with-a-long-name"')
                      .replace('kind = "policy"', 'kind = "demo"'))
    return write_results(runs, tmp_path / "des-demo-with-a-long-name.nc")[0]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does)")
    tmp_path = tmp_path_factory.mktemp("browser")
    paths = []
    for name in SCENARIOS:
        ds = simulate(load_scenario(REPO / "scenarios" / f"{name}.toml"))
        paths.append(write_results(ds, tmp_path / f"{name}.nc")[0])
    paths.append(demo_run(tmp_path))
    for name in ("baseline", "families-first-pathfinders"):  # runs by area: long names
        ds = simulate(load_scenario(REPO / "scenarios" / f"{name}.toml"), area="pathfinders")
        paths.append(write_results(ds, tmp_path / f"{name}-pathfinders.nc")[0])
    out = tmp_path / "out"
    assert main(["compare", *map(str, paths), "--out", str(out)]) == 0
    return out / "report.html"


def test_every_chart_renders_and_nothing_overflows_at_1000_px(report: Path) -> None:
    checks = browser_checks(report)
    assert checks["innerWidth"] == WIDTH
    assert checks["images"] >= 8  # 3 policy, 3 variant, the demo's 2, the area multiples
    assert checks["broken"] == []
    assert checks["wide"] == []
    assert checks["scrollWidth"] <= checks["innerWidth"]


def test_the_checks_catch_a_broken_chart_and_a_wide_table(tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does)")
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><img alt=\"chart\" "
                    "src=\"data:image/png;base64,AAAA\"><table id=\"t\"><tr><td "
                    "style=\"min-width:1500px\">x</td></tr></table></body></html>",
                    encoding="utf-8")
    checks = browser_checks(page)
    assert checks["broken"] == ["chart"]
    assert checks["scrollWidth"] > checks["innerWidth"]
    assert any(w.startswith("TABLE#t") for w in checks["wide"])


if __name__ == "__main__":  # a quick look: python tests/browser/test_report_browser.py R
    print(browser_checks(Path(sys.argv[1]).resolve()))

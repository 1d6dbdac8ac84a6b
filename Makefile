# cicsim: `make run` (every scenario + comparison report), `make test`, `make bench`.
# A fresh machine needs only python3 (>= 3.11): the first target creates .venv here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCENARIOS := $(wildcard scenarios/*.toml)
LAYERS := $(wildcard scenarios/layers/*.toml)
OUTPUTS := $(patsubst scenarios/%.toml,outputs/%.nc,$(SCENARIOS))
# Runs by local authority (docs/areas-runs.md): the pathfinders against their own baseline.
AREA_OUTPUTS := outputs/families-first-pathfinders-pathfinders.nc outputs/baseline-pathfinders.nc
# Sweeps expand into many runs, so they live in their own folder (not scenarios/*.toml).
SWEEPS := $(wildcard scenarios/sweeps/*.toml)
SWEEP_SUMMARIES := $(patsubst scenarios/sweeps/%.toml,outputs/sweeps/%.csv,$(SWEEPS))
SENSITIVITY := outputs/sensitivity/review-full.csv
# Small matrices: threaded BLAS only slows the engines down (see sim/cli.py one_blas_thread).
ONE_THREAD := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
SIM_SOURCES := $(shell find sim -name '*.py' -o -name '*.csv' -o -name '*.gz')

.PHONY: run test test-fast bench lint install clean

run: $(OUTPUTS) $(AREA_OUTPUTS) outputs/report.html

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> installing cicsim and its dependencies into $(VENV) (once; about 2 minutes)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# Each scenario's output depends on its own file, the files it extends (directly or
# not: outputs/.deps/scenarios.d, written by `cicsim deps`), the code and the data, so
# only the scenarios a change reaches re-run.  The venv is order-only: reinstalling
# (pyproject.toml changed) does not re-run every scenario; after upgrading numpy or
# xarray, `make clean run`.
DEPS := outputs/.deps/scenarios.d outputs/.deps/sweeps.d

outputs/%.nc: scenarios/%.toml $(SIM_SOURCES) | $(STAMP)
	@echo "==> scenario $< -> $@"
	$(ONE_THREAD) $(PY) -m sim run $< --out $@ --quiet

# One file for all scenarios (one process, not one per scenario); it names itself as a
# target of every layer it found, so a changed `extends` regenerates it.
outputs/.deps/scenarios.d: $(SCENARIOS) $(LAYERS) | $(STAMP)
	$(PY) -m sim deps $(SCENARIOS) --out $@

outputs/.deps/sweeps.d: $(SWEEPS) $(SCENARIOS) $(LAYERS) | $(STAMP)
	$(PY) -m sim deps $(SWEEPS) --target 'outputs/sweeps/%.csv' --out $@

# Only the goals that build outputs need the rules (make clean, install, test... must
# not create a venv or run python to read them).
ifneq ($(filter run outputs/%,$(or $(MAKECMDGOALS),run)),)
-include $(DEPS)
endif

# A run by area depends on what the national run of its scenario depends on.
outputs/%-pathfinders.nc: scenarios/%.toml outputs/%.nc $(SIM_SOURCES) | $(STAMP)
	@echo "==> scenario $< by area (pathfinders) -> $@"
	$(ONE_THREAD) $(PY) -m sim run $< --area pathfinders --name $* --out $@ --quiet

outputs/sweeps/%.csv: scenarios/sweeps/%.toml $(SIM_SOURCES) | $(STAMP)
	@echo "==> sweep $< (one run per value)"
	$(ONE_THREAD) $(PY) -m sim sweep $< --out-dir outputs/sweeps --quiet

outputs/sensitivity/%.csv: scenarios/%.toml outputs/%.nc $(SIM_SOURCES) | $(STAMP)
	@echo "==> sensitivity of $< (each assumption at both ends of its range)"
	$(ONE_THREAD) $(PY) -m sim sensitivity $< --out-dir outputs/sensitivity --quiet

# Comparison table, charts and the self-contained report (cicsim compare).
outputs/report.html: $(OUTPUTS) $(AREA_OUTPUTS) $(SWEEP_SUMMARIES) $(SENSITIVITY)
	@echo "==> comparison table, charts and report (outputs/report.html)"
	$(ONE_THREAD) $(PY) -m sim compare $(OUTPUTS) $(AREA_OUTPUTS) --out outputs \
		$(addprefix --sensitivity ,$(SENSITIVITY)) $(addprefix --sweep ,$(SWEEP_SUMMARIES))

# Tests in tiers (tests/conftest.py marks them by folder; README "Tests").  Two xdist
# workers, each running DES replicates in one process (CICSIM_WORKERS=1).
TEST_WORKERS ?= 2
PYTEST = $(ONE_THREAD) CICSIM_WORKERS=1 $(PY) -m pytest -n $(TEST_WORKERS)

# Everything (what CI runs): unit, verification, properties, statistical, slow.
test: $(STAMP)
	$(PYTEST) --durations=15

# The inner loop: unit + verification + properties, minus tests marked slow.
test-fast: $(STAMP)
	$(PYTEST) -q -x -m "not slow" tests/unit tests/verification tests/properties

bench: $(STAMP)
	$(ONE_THREAD) $(PY) benchmarks/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check sim tests benchmarks

# Calibration (docs/calibration.md): the history-only fit writes scenarios/calibrated.toml
# (a runnable layer), its uncertainty and outputs/calibration/; the review-target variant
# writes outputs/calibration_review/.  Backtests re-calibrate from earlier base years.
# One BLAS thread: the engine's matrices are small, and threads only contend.
.PHONY: calibrate backtest backtest-areas

calibrate: $(STAMP)
	$(ONE_THREAD) $(PY) -m sim calibrate --scenario scenarios/uncalibrated.toml --out scenarios/layers/calibrated.toml \
		--report-dir outputs/calibration
	$(ONE_THREAD) $(PY) -m sim calibrate --scenario scenarios/uncalibrated.toml --targets sim/calibration/targets_review.toml \
		--out outputs/calibration_review/calibrated_review.toml --name calibrated-review \
		--report-dir outputs/calibration_review
	$(ONE_THREAD) $(PY) -m sim calibrate --targets sim/calibration/targets_review_reform.toml

# Rolling origins 2014-2020, horizons 1-3: scores every trend treatment and the naive
# benchmarks, picks the default treatment and writes it, with the band scales, to
# scenarios/layers/forecast.toml (which baseline.toml extends).  Run after calibrate.
backtest: $(STAMP)
	$(ONE_THREAD) $(PY) -m sim backtest --origins 2014:2020 --horizon 3 \
		--out-dir outputs/backtest --layer scenarios/layers/forecast.toml

# Rolling-origin backtest by local authority (docs/areas.md): shrinkage vs own rates vs
# England's rates for everyone, scored on each authority's published stock.
backtest-areas: $(STAMP)
	$(ONE_THREAD) $(PY) -m sim backtest-areas --origins 2016:2020 --horizon 2 \
		--out-dir outputs/backtest-areas

# Also the hidden ones: temporary files a killed write left (.NAME.PID.*.tmp), batch
# task results (outputs/.batch) and the dependency rules (outputs/.deps).
clean:
	rm -f outputs/*.nc outputs/*.csv outputs/*.png outputs/*.html outputs/*.md
	rm -rf outputs/sweeps outputs/sensitivity outputs/calibration outputs/calibration_review outputs/backtest
	rm -rf outputs/.batch outputs/.deps
	find outputs -name '.*.tmp' -type f -delete 2>/dev/null || true

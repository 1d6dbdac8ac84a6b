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

# Every scenario depends on all scenario files (they extend each other) and the code.
outputs/%.nc: scenarios/%.toml $(SCENARIOS) $(LAYERS) $(SIM_SOURCES) $(STAMP)
	@echo "==> scenario $< -> $@"
	$(ONE_THREAD) $(PY) -m sim run $< --out $@ --quiet

outputs/%-pathfinders.nc: scenarios/%.toml $(SCENARIOS) $(LAYERS) $(SIM_SOURCES) $(STAMP)
	@echo "==> scenario $< by area (pathfinders) -> $@"
	$(ONE_THREAD) $(PY) -m sim run $< --area pathfinders --name $* --out $@ --quiet

outputs/sweeps/%.csv: scenarios/sweeps/%.toml $(SCENARIOS) $(SIM_SOURCES) $(STAMP)
	@echo "==> sweep $< (one run per value)"
	$(ONE_THREAD) $(PY) -m sim sweep $< --out-dir outputs/sweeps --quiet

outputs/sensitivity/%.csv: scenarios/%.toml $(SCENARIOS) $(SIM_SOURCES) $(STAMP)
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

clean:
	rm -f outputs/*.nc outputs/*.csv outputs/*.png outputs/*.html outputs/*.md
	rm -rf outputs/sweeps outputs/sensitivity outputs/calibration outputs/calibration_review outputs/backtest

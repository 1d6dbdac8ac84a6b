# cicsim: `make run` (every scenario + comparison report), `make test`, `make bench`.
# A fresh machine needs only python3 (>= 3.11): the first target creates .venv here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCENARIOS := $(wildcard scenarios/*.toml)
OUTPUTS := $(patsubst scenarios/%.toml,outputs/%.nc,$(SCENARIOS))
SIM_SOURCES := $(shell find sim -name '*.py' -o -name '*.csv' -o -name '*.gz')

.PHONY: run test bench lint install clean

run: $(OUTPUTS)

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# Every scenario depends on all scenario files (they extend each other) and the code.
outputs/%.nc: scenarios/%.toml $(SCENARIOS) $(SIM_SOURCES) $(STAMP)
	$(PY) -m sim run $< --out $@ --quiet

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check sim tests benchmarks

clean:
	rm -f outputs/*.nc outputs/*.csv outputs/*.png outputs/*.html outputs/*.md

# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/demo.toml

.PHONY: run test check bench backtest rebalance clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: start the daemon on the bundled offline demo snapshot
run: $(STAMP)
	$(BIN)/aggregator run --config $(CONFIG)

## test: the whole test suite (what CI runs)
test: $(STAMP)
	$(BIN)/pytest -q

## check: format check, lint, types
check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

## rebalance: one dry-run proposal on the demo config
rebalance: $(STAMP)
	$(BIN)/aggregator rebalance --config $(CONFIG)

## backtest: replay the bundled history through the optimizer and the baselines (report in var/backtest/)
backtest: $(STAMP)
	$(BIN)/aggregator backtest --config $(CONFIG)

## bench: the optimizer benchmarks (prints tables; not part of the tests)
bench: $(STAMP)
	$(BIN)/python benchmarks/optimizer_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

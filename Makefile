# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/demo.toml

# The dependencies come from the lock files, every file checked against its hash; the project itself is installed
# without dependencies on top (`make lock` regenerates the locks from pyproject.toml).
LOCK_DEV := requirements-dev.lock
LOCK_RUN := requirements.lock
UV_VERSION ?= 0.13.9
UV_VENV    := .venv-uv
LOCK_FLAGS := --generate-hashes --universal --python-version 3.11 --quiet

.PHONY: run test check bench backtest rebalance clean lock audit

$(STAMP): pyproject.toml $(LOCK_DEV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK_DEV)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

## lock: regenerate requirements-dev.lock (runtime + dev extra) and requirements.lock (runtime, the image's) with
## hashes, after a change to the dependencies in pyproject.toml; kept pins stay (LOCK_ARGS=--upgrade moves them)
lock:
	test -x $(UV_VENV)/bin/uv || { $(PYTHON) -m venv $(UV_VENV) && $(UV_VENV)/bin/pip install --quiet uv==$(UV_VERSION); }
	$(UV_VENV)/bin/uv pip compile pyproject.toml requirements-build.in --extra dev $(LOCK_FLAGS) $(LOCK_ARGS) -o $(LOCK_DEV)
	$(UV_VENV)/bin/uv pip compile pyproject.toml requirements-build.in $(LOCK_FLAGS) -c $(LOCK_DEV) -o $(LOCK_RUN)

## audit: known vulnerabilities in the locked dependencies (pip-audit); where its vulnerability database cannot be
## reached it prints "audit skipped: <why>" and exits 0
audit: $(STAMP)
	$(BIN)/python scripts/audit.py $(LOCK_RUN) $(LOCK_DEV)

## run: start the daemon on the bundled offline demo snapshot
run: $(STAMP)
	$(BIN)/aggregator run --config $(CONFIG)

## test: the whole test suite (what CI runs)
test: $(STAMP)
	$(BIN)/pytest -q

## check: format check, lint, types, the layer contract (.importlinter: no import runs up a layer)
check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

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
	rm -rf $(VENV) $(UV_VENV) .pytest_cache .mypy_cache .ruff_cache

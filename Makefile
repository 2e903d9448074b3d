# One target per task; CI runs the same targets (.ci/run -> make test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Two test processes: most tests wait on real servers, browsers and git, so two overlap well
# even on two cores. PYTEST_WORKERS= runs the suite in one process.
PYTEST_WORKERS ?= -n 2 --dist worksteal

.PHONY: run test check bench soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: start camvault on 127.0.0.1:8000 with its data in ./camvault-data
run: $(STAMP)
	$(BIN)/camvault serve

## make test: install what the tests need (git-lfs, chromium) and run the whole suite
test: $(STAMP)
	scripts/test-deps
	$(MAKE) check
	$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

## make check: lint, format check and strict typing
check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict

## make bench: run every benchmark in bench/, write bench/results/<date>-<commit>.{json,md} + charts
## (BENCH_ARGS="--quick" for a short run, or names to run a subset, e.g. BENCH_ARGS="checkin")
bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

## make soak: SOAK_USERS simulated users for SOAK_SECONDS against a real server, every
## invariant checked as they go (e.g. make soak SOAK_SECONDS=3600 for an hour)
SOAK_SECONDS ?= 60
SOAK_USERS ?= 20
soak: $(STAMP)
	$(BIN)/python bench/soak.py --seconds $(SOAK_SECONDS) --users $(SOAK_USERS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info

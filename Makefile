# Two commands for a newcomer: `make run` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?= -n 2

.PHONY: run test lint typecheck pytest bench soak clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

## make run: install and start the demo (SQLite, http://127.0.0.1:8000)
PORT ?= 8000
run: $(VENV)/.installed
	$(BIN)/tidings demo --port $(PORT)

## make test: lint, type-check and the whole suite on SQLite and PostgreSQL
test: $(VENV)/.installed-test lint typecheck pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy src

pytest: $(VENV)/.installed-test
	$(BIN)/pytest $(PYTEST_ARGS)

## make bench: the performance table (bench/results.json)
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

## make soak: a bounded load run against PostgreSQL with two workers
soak: $(VENV)/.installed-test
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tidings.db* outbox artifacts

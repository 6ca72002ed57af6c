# Two commands for a newcomer: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test install lint typecheck check clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Sidestep needs Python 3.11 or newer; set PYTHON=python3.12 or similar")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

# The test extras (Synapse, Playwright, hypothesis, mypy...) only for those who run the tests.
$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

install: $(VENV)/.installed

## Start Sidestep on SQLite with a demo workspace (its login is printed) on http://127.0.0.1:8000
run: $(VENV)/.installed
	$(VENV)/bin/sidestep demo

## Install what the tests need (Python and Debian packages) and run the whole suite
test: $(VENV)/.installed-test
	scripts/ensure-test-packages.sh
	scripts/with-postgres.sh $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests

typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy src

check: lint typecheck test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .test-pg

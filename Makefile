# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint migration clean
# A failed recipe removes its target: a venv that ensurepip could not finish is made again next time.
.DELETE_ON_ERROR:

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

demo: $(VENV)/.runtime
	bash scripts/demo.sh

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# mypy's files and settings are in pyproject.toml ([tool.mypy]: lib/ for now).
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy

migration: $(VENV)/.dev
	$(BIN)/python scripts/new_migration.py "$(MSG)"

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .mypy_cache test-artifacts

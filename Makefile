# Two entry points (see README): `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# DVC stages call `python`; run them with the project's environment.
export PATH := $(BIN):$(PATH)

.PHONY: demo test venv lint clean-data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	fer-data sample data/raw
	dvc repro
	fer-data stats data/interim/ingest/* data/interim/crop/* data/interim/dedup data/processed
	dvc metrics show

test: venv
	python -m pytest $(PYTEST_ARGS)

lint: venv
	ruff check fer pipeline tests benchmarks

clean-data:
	rm -rf data/raw data/interim data/processed

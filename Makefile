# The two set-up commands of the README: `make demo` and `make test`. Both install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint typecheck unit bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/northflank-backup-exporter --demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy exporter tests scripts $(wildcard bench)

test: lint typecheck
	$(BIN)/python -m pytest -q -n 3

bench: install
	$(BIN)/python bench/freshness.py
	$(BIN)/python bench/freshness_webhook.py
	$(BIN)/python bench/scrape.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

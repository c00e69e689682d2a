# Two commands for a newcomer: `make run` and `make test`. Each creates or
# updates .venv itself (reinstalling only when pyproject.toml changed).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint demo venv clean-data help

help:
	@echo "make run    start the gateway on 127.0.0.1:8000 (embedded PostgreSQL unless DATABASE_URL is set)"
	@echo "make test   run the test suite"
	@echo "make lint   ruff + mypy"
	@echo "make demo   the gateway with a demo account and simulated customers"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/inbox-gateway serve

test: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider

demo: $(STAMP)
	$(BIN)/inbox-gateway demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Removes the embedded database and stored media of `make run`.
clean-data:
	rm -rf .inbox-gateway

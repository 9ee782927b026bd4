# The two commands for a fresh machine: `make repro` (set up, run the pipeline) and
# `make test` (set up, run the tests). Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# dvc runs each stage's `python -m stages.<name>`: put the venv's python first.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test test-all bench readme clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

repro: setup
	dvc repro

test: setup
	python -m pytest

test-all: setup
	python -m pytest -m ''

# Each stage's seconds, training images/s against the course's loop, share of fp32 peak.
bench: setup
	python benchmarks/bench.py

# Rewrite README.md's results block from the committed metrics/ and reports/.
readme: setup
	python -m stages.core.results

clean:
	rm -rf $(VENV)

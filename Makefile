# The two commands for a fresh machine: `make repro` (set up, run the pipeline) and
# `make test` (set up, run the tests). Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# dvc runs each stage's `python -m stages.<name>`: put the venv's python first.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test test-all bench readme sweep sweep-report clean

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

# The latent-size sweep through DVC's own queue (README, "Latent-size sweep"): queue one
# experiment per size, start JOBS workers; `make sweep-report` waits for the queue and
# writes reports/sweep.md and plots/sweep/. Commit first: the queue runs HEAD.
SWEEP ?= 2,4,8,16,32
JOBS ?= 1
sweep: setup
	dvc exp run --queue -S 'latent_dim=$(SWEEP)'
	dvc queue start -j $(JOBS)

sweep-report: setup
	python -m stages.core.sweep

clean:
	rm -rf $(VENV)

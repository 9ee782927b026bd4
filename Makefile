# The two commands for a fresh machine: `make repro` (set up, run the pipeline) and
# `make test` (set up, run the tests). Both create .venv when it is missing.
#
# Python 3.11, 3.12 or 3.13: the first of python3, python3.13, python3.12, python3.11 that
# is one of them, or the one you name: `make PYTHON=python3.12 test`. PYTHON only makes the
# venv; to switch an existing one, `make clean` first (or keep both: VENV=.venv-3.12).
SUPPORTED := 3.11 3.12 3.13
SUPPORTED_TEXT := 3.11, 3.12 or 3.13
IS_SUPPORTED := import sys; sys.exit("%d.%d" % sys.version_info[:2] not in "$(SUPPORTED)".split())
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c '$(IS_SUPPORTED)' >/dev/null 2>&1 && { echo $$p; break; }; done)
PYTHON_FROM := found
else
PYTHON_FROM := named
endif
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# dvc runs each stage's `python -m stages.<name>`: put the venv's python first.
export PATH := $(BIN):$(PATH)

# `make` alone lists the targets; each target's line ends with its `## ` description.
.DEFAULT_GOAL := help
.PHONY: help setup check-python repro test test-all test-pythons bench readme sweep sweep-report seeds seeds-report exercises exercises-report course course-report bottleneck budget budget-report compare verify same-outputs exps check-page clean

help: ## list the targets, one line each
	@echo "make <target>; variables such as PYTHON, A, B, SEEDS are described in the Makefile."
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z][a-z-]*:.*## / {printf "  %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: check-python $(VENV)/.installed ## create .venv if missing, install the pinned packages

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# One line naming what is wrong: no supported Python to make the venv with, a named one
# that is not supported, or a venv of another version than the PYTHON named.
VERSION_OF = $$($(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
check-python: ## say in one line why no supported Python makes the venv, if none does
	@if [ -x $(BIN)/python ]; then \
	  if [ "$(PYTHON_FROM)" = named ] && [ "$(call VERSION_OF,$(BIN)/python)" != "$(call VERSION_OF,$(PYTHON))" ]; then \
	    echo "make: $(VENV) is Python $(call VERSION_OF,$(BIN)/python), not PYTHON=$(PYTHON)'s; make clean first, or keep both: make PYTHON=$(PYTHON) VENV=$(VENV)-$(call VERSION_OF,$(PYTHON)) $(MAKECMDGOALS)" >&2; exit 1; fi; \
	elif [ -z "$(PYTHON)" ]; then \
	  echo "make: no Python $(SUPPORTED_TEXT) found (tried python3, python3.13, python3.12, python3.11); install one, or name it: make PYTHON=/path/to/python3.12 $(MAKECMDGOALS)" >&2; exit 1; \
	elif ! command -v $(PYTHON) >/dev/null || ! $(PYTHON) --version >/dev/null 2>&1; then \
	  echo "make: PYTHON=$(PYTHON) is not a Python that runs here; name one of $(SUPPORTED_TEXT): make PYTHON=python3.12 $(MAKECMDGOALS)" >&2; exit 1; \
	elif ! $(PYTHON) -c '$(IS_SUPPORTED)' 2>/dev/null; then \
	  echo "make: PYTHON=$(PYTHON) is $$($(PYTHON) --version 2>&1 | head -n 1); this project supports Python $(SUPPORTED_TEXT): make PYTHON=python3.12 $(MAKECMDGOALS)" >&2; exit 1; fi

repro: setup ## set up, then run the pipeline (dvc repro)
	dvc repro

test: setup ## set up, then the default tests (CPU only, no network, about 1 min)
	python -m pytest

test-all: setup ## the default tests and the slow ones (what CI runs)
	python -m pytest -m ''

# On each of PYTHONS (default python3.11 python3.12 python3.13): a fresh clone of HEAD under
# build/pythons/, `make repro` then `make test` there, timed, and its metrics against HEAD's.
test-pythons: ## make repro, then make test, in a fresh clone per Python version
	bash tools/test_pythons.sh

exps: setup ## every experiment: its changed params and headline metrics, under 120 columns
	python -m tools.exps $(ARGS)

check-page: setup ## the dvc plots show page in headless Chromium, offline: did every plot draw?
	python -m tools.check_page --screenshot build/plots_page.png

bench: setup ## where a d = 8 experiment's seconds go, training img/s against the course's loop, share of fp32 peak
	python benchmarks/bench.py $(ARGS)

readme: setup ## rewrite the generated blocks of README.md and docs/ from metrics/ and reports/
	python -m tools.readme_results

# The latent-size sweep through DVC's own queue (docs/experiments.md): queue one
# experiment per size (SEEDS_PER_SIZE > 1: that many training seeds per size, 0, 1, ..., one sweep),
# start JOBS workers; `make sweep-report` waits for the queue, printing its progress, and
# writes reports/sweep.{md,json} and plots/sweep/. Commit first: the queue runs HEAD. MNIST:
# make sweep SET="-S data.dataset=mnist"; make sweep-report REPORT_ARGS="--set data.dataset=mnist --out sweep_mnist"
SWEEP ?= 2,4,8,16,32
SEEDS_PER_SIZE ?= 1
# JOBS > 1 runs that many experiments at once, each with cores / JOBS torch and BLAS
# threads (docs/experiments.md, "Parallel workers"): on 2 cores two one-thread workers
# train 1.29x the steps of one two-thread worker, whole runs gain less; their numbers may
# differ from a 2-thread run's in the last bits, as another machine's would.
JOBS ?= 1
# Each study queues its own runs (tools/study.py): `python -m tools.<study> --queue`.
QUEUE_ARGS = --jobs $(JOBS) $(SET)
size_seeds = --seeds $(shell seq -s, 0 $$(($(SEEDS_PER_SIZE) - 1)))
sweep: setup ## queue one experiment per latent size (SWEEP) and start the queue
	python -m tools.sweep --queue --grid latent_dim=$(SWEEP) $(size_seeds) $(QUEUE_ARGS)

sweep-report: setup ## wait for the sweep, write reports/sweep.md and plots/sweep/
	python -m tools.sweep $(REPORT_ARGS)

# The noise floor (docs/experiments.md): HEAD's params with params.yaml's `seed` set to
# each of SEEDS (HEAD's committed run is seed 0) as one DVC sweep through the queue,
# dvc exp run --queue --name [TAG]seeds-<MACHINE> -S 'seed=range(1,5)', whose runs DVC
# names [TAG]seeds-<MACHINE>-1, -2, ...; SET adds params (SET="-S data.dataset=mnist"
# TAG=mnist- SEEDS="0 1 2"). `make seeds-report` waits for the queue and writes
# reports/seeds.{json,md}, plots/seeds/ (REPORT_ARGS="--set data.dataset=mnist --out
# seeds_mnist" for such a SET).
SEEDS ?= 1 2 3 4
SET ?=
MACHINE ?= $(shell hostname)
seeds: setup ## queue HEAD's params with the training seed swept over SEEDS, start the queue
	python -m tools.seeds --queue --seeds "$(SEEDS)" --name '$(TAG)seeds-$(MACHINE)' $(QUEUE_ARGS)

seeds-report: setup ## wait for the seed runs, write reports/seeds.{json,md} and plots/seeds/
	python -m tools.seeds $(REPORT_ARGS)

# The course's exercises (docs/course.md): the β sweep (0.25 and 4; HEAD's run is 1)
# and MNIST with an 8-D latent, through DVC's queue; `make exercises-report` waits for it
# and writes reports/exercises.md and plots/exercises/beta.png. Commit first.
exercises: setup ## queue the course's exercises (beta 0.25 and 4, MNIST at d = 8)
	python -m tools.exercises --queue --jobs $(JOBS)

exercises-report: setup ## wait for them, write reports/exercises.md and plots/exercises/
	python -m tools.exercises $(REPORT_ARGS)

# The course's models (docs/course.md): one experiment per model.arch on its
# course dataset, input and loss, through DVC's queue; `make course-report` waits for it
# and writes reports/course.md and plots/course/reconstructions.png. Commit first.
course: setup ## queue one experiment per course model, on its course settings
	python -m tools.course --queue --jobs $(JOBS)

course-report: setup ## wait for them, write reports/course.md and plots/course/
	python -m tools.course $(REPORT_ARGS)

# The bottleneck control (docs/results.md): the AE's encoder and a linear layer trained end
# to end on the labels at each size and seed, its d-wide code probed like the latents, on
# both datasets, beside the same encoder without a bottleneck (size none); ARGS="--sizes 2,8,none
# --seeds 0,1,2" are the defaults. Writes reports/bottleneck.{md,json}, a row per run; a rerun
# trains only the runs without a fresh row.
bottleneck: setup ## what d numbers can carry for the class: a classifier with a d-wide bottleneck, probed
	python -m tools.bottleneck_control $(ARGS)

# Size or budget (docs/results.md): the AE and the VAE trained for each of BUDGET epochs at
# each of BUDGET_SIZES with SEEDS_PER_SIZE seeds, through DVC's queue (SET as for sweep).
# `make budget-report` waits for the queue and writes reports/budget.{md,json} and
# plots/budget/; the params' own epochs come from the committed sweep report. Commit
# first; once HEAD moves on, REPORT_ARGS="--rev <the commit the runs were queued from>".
BUDGET ?= 21,50
BUDGET_SIZES ?= 2,8
budget: setup ## queue the AE and VAE at each of BUDGET epochs and BUDGET_SIZES, start the queue
	python -m tools.budget --queue --grid latent_dim=$(BUDGET_SIZES) --grid epochs=$(BUDGET) $(size_seeds) $(QUEUE_ARGS)

budget-report: setup ## wait for the budget runs, write reports/budget.{md,json} and plots/budget/
	python -m tools.budget $(REPORT_ARGS)

# Two revisions or experiments against the noise floor: make compare A=main B=<exp>.
A ?= main
B ?= workspace
compare: setup ## A against B (main, workspace), each headline metric against the noise floor
	python -m tools.compare $(A) $(B)

# Rerun every stage here and compare with HEAD's committed results: identical, within
# the noise floor, or beyond it (exit 1).
verify: setup ## rerun every stage here and compare with HEAD's committed results
	dvc repro --force
	python -m tools.compare HEAD workspace --strict

# After a change that should move no output: A's and B's dvc.lock (git revisions or experiment
# names; B default the workspace) compared; when only the code differs, the pair of code states
# is kept in reports/same_outputs.json with WHY (why it holds at every params) and the studies'
# rows carry over (docs/experiments.md).
same-outputs: setup ## A against B: every output identical? then the studies' rows carry over
	python -m tools.same_outputs $(A) $(B) --why "$(WHY)"

clean: ## remove .venv
	rm -rf $(VENV)

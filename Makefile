# Entry points; each sets the environment up first (once).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fusebench-setup

.PHONY: setup demo demo-seeds test test-slow test-all lint

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

# Main job on the embedded default (README, first command): build the trained zoo (a target
# and two specialist sources, trained here on training splits; cached), then one fusion run
# with its control: extract, align and fuse, train fused and CLM-only on 2 DeepSpeed
# processes, evaluate base / clm-only / fused / sources, compare, write runs/demo/report and
# print the headline. Every stage resumes; rerunning a finished demo takes seconds.
FB := $(VENV)/bin/fusebench
demo: $(STAMP)
	$(FB) zoo build --output zoo
	$(FB) fuse run configs/demo.yaml --nproc 2

# The demo over three training seeds (README, "The demo"): seed 0 is make demo's, reused; the
# fused model and its control are trained and evaluated at seeds 1 and 2 too, then pooled.
demo-seeds: $(STAMP)
	$(FB) zoo build --output zoo
	$(FB) fuse run configs/demo.yaml --nproc 2 --seeds 0,1,2

# The suite in two layers (README, Tests): `test` leaves out the tests marked `slow` (the
# longest end-to-end runs: multi-process fusion and training, resumes after SIGTERM, the merge
# memory goal), `test-slow` runs only those; CI (.ci/run) runs both. `test-all`: one session.
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

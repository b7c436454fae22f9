# Entry points; each sets the environment up first (once).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fusebench-setup

.PHONY: setup demo test test-slow test-all lint

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

# Main job on the embedded default, the whole pipeline on tiny models and the local data:
# build the zoo, fuse tiny-gpt2 and tiny-mistral into tiny-llama (extract, align, fuse, train
# on 2 DeepSpeed processes), evaluate base and fused on the model-card task set (0 and 5
# shots, 50 documents per task), compare them and write an HTML report. Reruns skip what is done.
FB := $(VENV)/bin/fusebench
demo: $(STAMP)
	$(FB) zoo build --output zoo
	$(FB) fuse run configs/tiny-fuse.yaml --nproc 2
	$(FB) eval zoo/tiny-llama --tasks ko_fusellm --num-fewshot 0,5 --limit 50 --output runs/demo-base
	$(FB) eval runs/tiny-fuse/train/final --tasks ko_fusellm --num-fewshot 0,5 --limit 50 --output runs/demo-fused
	$(FB) compare runs/demo-base runs/demo-fused
	$(FB) report runs/demo-base runs/demo-fused --format html --output runs/demo-report.html

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

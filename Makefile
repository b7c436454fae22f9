# Entry points; each sets the environment up first (once).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fusebench-setup

.PHONY: setup demo test test-all lint

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

# Main job on the embedded default: build the tiny-model zoo, evaluate one model on the
# fusion model-card task set (0 and 5 shots, 50 documents per task) on the local data.
demo: $(STAMP)
	$(VENV)/bin/fusebench zoo build --output zoo
	$(VENV)/bin/fusebench eval zoo/tiny-llama --tasks ko_fusellm --num-fewshot 0,5 --limit 50 --output runs/demo-tiny-llama

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

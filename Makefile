# The template's commands: `make demo` serves a freshly baked service, `make test` tests the template.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := .bake/demo
# checkov pins many libraries of its own, so it lives in a venv of its own.
CHECKOV := .bake/checkov-venv/bin/checkov
PORT ?= 8000
MANAGEMENT_PORT ?= 9000
# Most of the suite waits on installs, builds and the baked suites' servers: two workers overlap those waits.
TEST_WORKERS ?= 2

.PHONY: venv demo test lock bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(CHECKOV):
	$(PYTHON) -m venv .bake/checkov-venv
	.bake/checkov-venv/bin/python -m pip install -q --upgrade pip
	.bake/checkov-venv/bin/python -m pip install -q 'checkov>=3.2'

venv: $(BIN)/python $(CHECKOV)
	$(BIN)/python -m pip install -q -r requirements-test.txt

$(BIN)/cookiecutter: | $(BIN)/python
	$(BIN)/python -m pip install -q "$$(grep '^cookiecutter' requirements-test.txt)"

# make hands SIGTERM to its child: exec makes that child the baked project's make, whose `run` execs the server.
demo: $(BIN)/cookiecutter  ## bake the default answers and serve the API on 127.0.0.1:$(PORT), /metrics and /admin on 127.0.0.1:$(MANAGEMENT_PORT), embedded SQLite and cache
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(BIN)/cookiecutter --no-input -o $(DEMO_DIR) .
	@echo "the API on http://127.0.0.1:$(PORT), /metrics, /admin and /health/detailed on http://127.0.0.1:$(MANAGEMENT_PORT)"
	cd $(DEMO_DIR)/* && exec $(MAKE) run PORT=$(PORT) MANAGEMENT_PORT=$(MANAGEMENT_PORT)

test: venv  ## bake, lint, type-check and test the baked services, then the template's own checks (TEST_WORKERS=0: one process)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

lock: venv  ## refresh the locks every bake ships, for every answer combination; UPGRADE=1 takes the newest releases
	$(BIN)/python scripts/lock $(if $(UPGRADE),--upgrade)

bench: venv  ## the baked service against a bare FastAPI app (about 12 min); BENCH_ARGS="--quick", "--profile", "--ref REF"
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/python -m pip install -q matplotlib
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .bake .pytest_cache

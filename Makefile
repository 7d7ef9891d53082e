# The template's commands: `make new` bakes a service of yours, `make demo` serves the default bake, `make test` tests
# the template.
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
# The container path installs system packages and builds images (scripts/container-sandbox): only when asked,
# CONTAINERS=1, or in CI (which sets CI=true). tests/conftest.py reads the same variable.
CONTAINERS ?= $(if $(filter true,$(CI)),1,0)
export CONTAINERS
# What a demo is baked from: when none of it changed since the last demo, the bake and its venv are reused.
TEMPLATE_FILES := cookiecutter.json local_extensions.py hooks {{cookiecutter.project_slug}}
DIR ?= ..

.PHONY: venv new demo test lock bench clean

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

$(BIN)/cruft: | $(BIN)/python
	$(BIN)/python -m pip install -q "$$(grep '^cookiecutter' requirements-test.txt)" "$$(grep '^cruft' requirements-test.txt)"

quote = '$(subst ','\'',$(1))'

new: $(BIN)/cruft  ## bake a service with cruft into DIR (default ..): make new NAME="Billing API" [DIR=~/src] [ANSWERS="include_redis=no"]; no NAME: asks every question
	@$(BIN)/python scripts/new $(if $(filter command line,$(origin NAME)),--name $(call quote,$(NAME))) --dir $(call quote,$(DIR)) $(ANSWERS)

# The demo bakes the working tree (uncommitted edits included) and runs the bake's server as make's own child, so
# that SIGTERM reaches it straight from this make, which adds no "*** Terminated" line when it exits 0.
demo: $(BIN)/cookiecutter  ## bake the default answers and serve the API on 127.0.0.1:$(PORT), /metrics and /admin on 127.0.0.1:$(MANAGEMENT_PORT), embedded SQLite and cache
	@stamp=$$(git ls-files -z --cached --others --exclude-standard -- $(TEMPLATE_FILES) 2>/dev/null \
		| xargs -0 sha256sum 2>/dev/null | sha256sum | cut -c1-16); \
	if git rev-parse --git-dir >/dev/null 2>&1 && [ "$$(cat $(DEMO_DIR)/.template 2>/dev/null)" = "$$stamp" ]; then \
		echo "demo: reusing $$(ls -d $(DEMO_DIR)/*/) and its venv: the template has not changed since it was baked"; \
	else \
		echo "demo: baking the template's working tree into $(DEMO_DIR)/ (again each time it changes), then installing it"; \
		rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR) && $(BIN)/cookiecutter --no-input -o $(DEMO_DIR) . >/dev/null && \
		$(MAKE) -s -C $(DEMO_DIR)/*/ install && echo "$$stamp" > $(DEMO_DIR)/.template; \
	fi
	@echo "demo: the API on http://127.0.0.1:$(PORT), /metrics, /admin and /health/detailed on http://127.0.0.1:$(MANAGEMENT_PORT)"
	cd $(DEMO_DIR)/*/ && export PORT=$(PORT) MANAGEMENT_PORT=$(MANAGEMENT_PORT) && exec .venv/bin/python -m "$$(sed -n 's/^PACKAGE := //p' Makefile)" serve

test: venv  ## bake, lint, type-check and test the baked services, then the template's own checks (TEST_WORKERS=0: one process; CONTAINERS=1: the container path too, as root)
	@if [ "$(CONTAINERS)" = 1 ]; then scripts/container-sandbox plan; else \
		echo "make test: the container path is off (tests/test_containers.py, test_image.py, test_compose.py, test_kube_play.py are skipped);"; \
		echo "  CONTAINERS=1 make test runs it, as root: scripts/container-sandbox plan says what it would install and build"; fi
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

lock: venv  ## refresh the locks every bake ships, for every answer combination; UPGRADE=1 takes the newest releases
	$(BIN)/python scripts/lock $(if $(UPGRADE),--upgrade)

bench: venv  ## the baked service against a bare FastAPI app (about 12 min); BENCH_ARGS="--quick", "--profile", "--ref REF"
	command -v wrk >/dev/null || (echo "make bench: installing wrk with apt-get" && apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/python -m pip install -q matplotlib
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .bake .pytest_cache

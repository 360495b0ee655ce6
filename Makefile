# Local development and CI. Kafka and FerretDB run from deploy/local (no Docker needed):
# jars and binary are fetched/built once into .local/cache, state lives in .local/state
# (`make run`, `make services-up`) or a wiped .local/test-state (`make test`).
# Ports and external services: see deploy/local/kafka.sh and deploy/local/ferretdb.sh.

SHELL := bash
PYTHON311 ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
# Wheels are kept here between clean clones: the package proxy on these machines marks its
# answers uncacheable, so pip's own cache stays empty and torch (several GB with its CUDA
# libraries) would be downloaded again by every fresh checkout.
WHEELHOUSE ?= $(HOME)/.cache/studio-ai/wheels
SERVICES := deploy/local/services.sh

.PHONY: venv services-up services-down services-status lint test run bench clean-state docs

venv: $(STAMP)

# Reinstalls only when pyproject.toml changes. `pip download` fetches only the wheels the
# wheelhouse lacks; the install then reads the wheelhouse alone.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON311) -m venv $(VENV)
	mkdir -p $(WHEELHOUSE)
	$(VENV)/bin/pip download --quiet --dest $(WHEELHOUSE) --find-links $(WHEELHOUSE) \
		'setuptools>=75' wheel '.[dev]'
	$(VENV)/bin/pip install --no-index --find-links $(WHEELHOUSE) -e '.[dev]'
	touch $@

services-up: venv
	$(SERVICES) up

services-down:
	$(SERVICES) down

services-status: venv
	$(SERVICES) status

lint: venv
	deploy/local/run_tests.sh lint

# PYTEST_ARGS='-k name -x' passes options through.
test: venv
	deploy/local/run_tests.sh

run: venv
	$(SERVICES) exec -- $(VENV)/bin/studio-ai dev up

bench: venv
	$(SERVICES) exec -- bash -c 'rc=0; for f in bench/bench_*.py; do [[ -e "$$f" ]] || continue; echo "== $$f"; $(VENV)/bin/python "$$f" || rc=1; done; exit $$rc'

# docs/asyncapi.json (events) and docs/openapi.json (HTTP API), generated from the code;
# tests/contract fails when they are out of date.
docs: venv
	$(VENV)/bin/studio-ai docs generate --out docs

clean-state:
	STUDIO_LOCAL_STATE=.local/state $(SERVICES) down
	STUDIO_LOCAL_STATE=.local/test-state $(SERVICES) down
	rm -rf .local/state .local/test-state

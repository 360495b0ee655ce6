# Local development and CI. Kafka and FerretDB run from deploy/local (no Docker needed):
# jars and binary are fetched/built once into .local/cache, state lives in .local/state
# (`make run`, `make services-up`) or a wiped .local/test-state (`make test`).
# Ports and external services: see deploy/local/kafka.sh and deploy/local/ferretdb.sh.

SHELL := bash
PYTHON311 ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
SERVICES := deploy/local/services.sh

.PHONY: venv services-up services-down services-status lint test run bench clean-state

venv: $(STAMP)

# Reinstalls only when pyproject.toml changes; pip's cache keeps large wheels (torch).
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON311) -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
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

clean-state:
	STUDIO_LOCAL_STATE=.local/state $(SERVICES) down
	STUDIO_LOCAL_STATE=.local/test-state $(SERVICES) down
	rm -rf .local/state .local/test-state

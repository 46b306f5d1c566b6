# jobmaster — `make run` brings the stack up, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help deps sysdeps venv test test-single test-cluster run stop clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

deps: sysdeps venv  ## install everything that is missing (system packages and the venv)

sysdeps:  ## Debian packages that are missing (redis-server, nginx, wrk, systemd, chromium for the browser tests; gcc, python3-dev, python3-venv while uWSGI is to be compiled)
	@PYTHON=$(PYTHON) VENV=$(VENV) sh stack/sysdeps.sh

venv: $(STAMP)  ## the Python virtualenv with pinned requirements

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e ./client -e .
	touch $(STAMP)

test: test-single test-cluster  ## the whole test suite against real Redis, uWSGI and nginx, on a single Redis and on a Redis Cluster

test-single: deps  ## the whole suite on a single Redis
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-cluster: deps  ## the whole suite on a local Redis Cluster (3 masters, a replica each)
	JOBMASTER_TEST_REDIS=cluster $(PY) -m pytest -q $(PYTEST_ARGS)

run: deps  ## the stack in the foreground on http://127.0.0.1:8080 (Ctrl-C stops it)
	$(PY) -m stack run

stop:  ## stop a stack that `make run` left behind (by its PID files under var/)
	$(PYTHON) -m stack stop

clean:  ## remove the venv and var/
	rm -rf $(VENV) var

.PHONY: bench
bench: deps  ## load tests and benchmarks: writes docs/BENCHMARKS.md and docs/bench/*.png (BENCH_ARGS=--quick: a short run)
	$(PY) -m pip install -q -r loadtest/requirements.txt
	$(PY) -m loadtest.bench $(BENCH_ARGS)

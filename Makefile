# jobmaster — `make run` brings the stack up, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help deps sysdeps venv test run stop clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

deps: sysdeps venv  ## install everything that is missing (system packages and the venv)

sysdeps:  ## redis-server, nginx, wrk and chromium (the browser tests' browser) from Debian's packages, when missing
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	{ command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx; } || missing="$$missing nginx-light"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

venv: $(STAMP)  ## the Python virtualenv with pinned requirements

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e ./client -e .
	touch $(STAMP)

test: deps  ## run the whole test suite against real Redis, uWSGI and nginx
	$(PY) -m pytest -q $(PYTEST_ARGS)

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

# tutela: `make demo` runs a real lab cluster, `make test` runs the tests.
# Both install what they need: Debian packages (as root) and a virtualenv in .venv.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
APT_PACKAGES := python3-venv iproute2 util-linux e2fsprogs xfsprogs iputils-ping \
	iputils-arping psmisc procps nftables curl
PYTEST_ARGS ?=

.PHONY: all deps test lint demo clean

all: test

deps: .deps-apt $(VENV)/.installed

.deps-apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi
	@touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

test: deps
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

demo: deps
	$(BIN)/python -m tutela.lab.demo $(if $(KEEP),--keep)

clean:
	rm -rf $(VENV) .deps-apt .mypy_cache .ruff_cache .pytest_cache

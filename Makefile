# tutela: `make demo` runs a real lab cluster, `make test` runs the tests.
# Both install what they need: Debian packages (as root) and a virtualenv in .venv.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
# libfuse2: the lab's kernel-mode watchdogs (fusepy loads it).
APT_PACKAGES := python3-venv iproute2 util-linux e2fsprogs xfsprogs iputils-ping \
	iputils-arping psmisc procps nftables curl libfuse2
# the ocf kit's agents (Filesystem needs modprobe from kmod) and nginx for its lab test
APT_PACKAGES += resource-agents kmod nginx
# promtool for the metrics lab test (its server is never started: docs/metrics.md)
APT_PACKAGES += prometheus
# snmptrapd receives the SNMP notification tests' traps, snmptranslate and smilint check the MIB
APT_PACKAGES += snmptrapd snmp smitools
# a real 3-member etcd cluster for the etcd arbiter's lab test (docs/arbiter.md)
APT_PACKAGES += etcd-server etcd-client
# the mariadb and apache kits' servers (nginx is above) and wget, the web kits' page check;
# the tests run them in lab nodes' namespaces with their own ports, sockets and data, never
# the host's services
APT_PACKAGES += mariadb-server mariadb-client apache2 wget
# the GUI's browser tests: headless chromium driven by Selenium through chromedriver
APT_PACKAGES += chromium chromium-driver
# the postfix, samba and nfs kits' servers and their tests' clients (smbclient, libnfs'
# nfs-cat, aiosmtpd as the mail relay); the tests run the servers in lab nodes' namespaces
APT_PACKAGES += postfix samba smbclient nfs-ganesha nfs-ganesha-vfs libnfs-utils python3-aiosmtpd
# the postgresql kit's server and psql (its unit and lab tests, bench/db_failover.py)
APT_PACKAGES += postgresql-15 postgresql-client-15
BENCH_APT_PACKAGES := keepalived stress-ng
# make deb, make package-test (and the packaging checks in make test): systemd-analyze
# verifies the units, man lints the man pages, debootstrap makes the clean Debian 12 root.
PACKAGING_APT_PACKAGES := dpkg systemd man-db debootstrap
DEB_DIR := build/deb
PACKAGE_CACHE := .cache
PYTEST_ARGS ?=
# make test runs pytest three times: every test but the lab's (the simulation, unit, CLI and
# kit tests) spread over TEST_WORKERS processes (pytest-xdist); then the lab tests (real
# clusters), LAB_WORKERS files at once, the longest first (tests/lab/conftest.py's order, not
# xdist's); then the lab test files whose deadlines a second lab beside them made them miss
# (marker lab_alone, tests/lab/conftest.py's ALONE), one at a time. docs/lab.md, "Test suite
# time". LAB_WORKERS=0 runs every lab test in one process.
TEST_WORKERS ?= 2
LAB_WORKERS ?= 2

# $(call apt_install,PACKAGES): install those of the Debian PACKAGES that are missing.
apt_install = missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

# $(call pytest_run,ARGS): pytest with ARGS and PYTEST_ARGS, naming its 20 slowest tests (where
# CI's time goes); a failure sets the shell's `status` (the target's exit status, once both
# runs ran). Status 5 (no test selected) is a failure, unless PYTEST_ARGS picked tests of
# the other kind only.
pytest_run = $(BIN)/pytest -q --durations=20 $(1) $(PYTEST_ARGS); code=$$?; \
	$(if $(strip $(PYTEST_ARGS)),[ $$code != 5 ] || code=0;) [ $$code = 0 ] || status=$$code

.PHONY: all deps test lint demo bench clean

all: test

deps: .deps-apt $(VENV)/.installed

# postfix's install asks which mail setup to make: none (the tests' instances have their own
# configuration). On a systemd host the packages' units start host daemons the tests never
# use (they run their own in lab namespaces): stopped again, by unit.
POSTFIX_PRESEED := postfix postfix/main_mailer_type select No configuration
HOST_UNITS_STOPPED := smbd nmbd samba-ad-dc nfs-ganesha rpcbind.socket rpcbind
.deps-apt:
	@sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "$(POSTFIX_PRESEED)" | $$sudo debconf-set-selections
	@$(call apt_install,$(APT_PACKAGES))
	@if [ -d /run/systemd/system ]; then sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		for unit in $(HOST_UNITS_STOPPED); do \
			! systemctl is-active -q $$unit || $$sudo systemctl stop $$unit; done; fi
	@touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

test: deps .deps-packaging-apt
	status=0; $(call pytest_run,-n $(TEST_WORKERS) --dist worksteal -m "not lab"); \
	$(call pytest_run,-n $(LAB_WORKERS) --dist loadfile --no-loadscope-reorder \
		-m "lab and not lab_alone"); \
	$(call pytest_run,-m "lab and lab_alone"); exit $$status

lint: deps
	$(BIN)/ruff check src tests bench tools
	$(BIN)/mypy

demo: deps
	$(BIN)/python -m tutela.lab.demo $(if $(KEEP),--keep)

# `make bench` regenerates docs/benchmarks.md (long: every benchmark at full size); QUICK=1 a smoke
# run with small parameters, ONLY="detection failover" runs some benchmarks.
bench: deps .deps-bench-apt $(VENV)/.installed-bench
	$(BIN)/python bench/run_all.py $(if $(QUICK),--quick) $(if $(ONLY),--only $(ONLY))

.deps-bench-apt:
	@$(call apt_install,$(BENCH_APT_PACKAGES))
	@touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev,bench]'
	@touch $@

clean:
	rm -rf $(VENV) .deps-apt .deps-bench-apt .mypy_cache .ruff_cache .pytest_cache

# `make chaos` runs a randomized fault campaign (`tutela lab chaos`, docs/lab.md) against a lab
# of two nodes and a witness for 30 minutes, and fails on dual ownership or an unrecovered fault.
# DURATION=2h, NODES=3, NO_WITNESS=1, SEED=N (replay), FAULTS=power-off,freeze override.
DURATION ?= 30m
NODES ?= 2
.PHONY: chaos
chaos: deps
	$(BIN)/tutela lab chaos --duration $(DURATION) --nodes $(NODES) \
		$(if $(NO_WITNESS),--no-witness,--witness) $(if $(SEED),--seed $(SEED)) \
		$(if $(FAULTS),--faults $(FAULTS))

# `make deb` builds build/deb/tutela_VERSION-1_ARCH.deb: a private virtualenv in /opt/tutela
# (Debian's python3, this project's wheel, its dependencies from PyPI), the systemd units,
# /etc/tutela, man pages and completion (packaging/build-deb.sh). `make package-test`
# installs it into a clean Debian 12 root (debootstrap, cached in .cache/debian12-minbase.tar.gz)
# and purges it again (packaging/package-test.sh). Both need root and the network.
.PHONY: deb package-test
deb: deps .deps-packaging-apt
	packaging/build-deb.sh $(DEB_DIR) $(BIN)/python

package-test: deb
	packaging/package-test.sh $$(ls -t $(DEB_DIR)/tutela_*.deb | head -n 1) $(PACKAGE_CACHE)

.deps-packaging-apt:
	@$(call apt_install,$(PACKAGING_APT_PACKAGES))
	@touch $@

# make run   - install what is missing, then run Orthanc + the service + nginx
# make test  - install what is missing, then run the whole test suite
# make lint  - ruff (lint, format check) and mypy on the decision path
# make install - (as root) the system on a server, run by systemd; again: upgrade
# make uninstall - removes it, leaving its settings and data (docs/install.md)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= data
# Debian packages the system needs, and those only its tests need (a browser,
# and docker-compose to validate docker-compose.yml: no engine runs here).
DEBS := orthanc orthanc-webviewer orthanc-dicomweb nginx dcmtk python3-venv openssl fonts-dejavu-core
# npm (for axe-core, below) only where no npm is on the machine: a Node.js
# installed from elsewhere brings its own, and Debian's npm package would
# replace that Node.js.
TEST_DEBS := docker-compose chromium chromium-driver systemd $(if $(shell command -v npm),,npm)
# A server's install runs the units with systemd (and makes its user with
# systemd-sysusers); tests check the units with its systemd-analyze.
INSTALL_DEBS := $(DEBS) systemd
# axe-core, the accessibility checker the page tests inject into every staff
# page (tests/test_axe_browser.py): pinned, from the npm registry, into a
# cache in the repo that git ignores.
AXE_VERSION := 4.14.1
AXE_DIR := .cache/axe

.PHONY: run test deps test-deps venv configure admin-password rule-password backup restore bench \
        bench-phone audit-verify audit-checkpoint unmatched-tags

run: deps venv
	$(PY) -m deploy.trial run --data-dir $(DATA_DIR)

test: test-deps venv
	$(PY) -m pytest -v

# ruff's checks and formatting ([tool.ruff] in pyproject.toml), then mypy on
# the decision path ([tool.mypy]'s files). .ci/run runs it first.
.PHONY: lint
lint: venv
	$(PY) -m ruff check authsvc deploy tests bench && $(PY) -m ruff format --check authsvc deploy tests bench && $(PY) -m mypy

test-deps:
	@$(MAKE) --no-print-directory deps DEBS="$(DEBS) $(TEST_DEBS)"
	@$(MAKE) --no-print-directory axe

.PHONY: axe
axe:
	@grep -qs '"version": "$(AXE_VERSION)"' $(AXE_DIR)/node_modules/axe-core/package.json || \
	  { echo "installing axe-core $(AXE_VERSION) into $(AXE_DIR)"; \
	    npm install --prefix $(AXE_DIR) --no-save --no-audit --no-fund --loglevel=error axe-core@$(AXE_VERSION); }

deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@# Debian starts its own Orthanc service on install: an Orthanc without
	@# our filter, on the same ports. It must not run beside ours, unless it
	@# is ours: `make install`'s drop-in gives it the project's configuration.
	@if [ -d /run/systemd/system ] && [ ! -e $(ORTHANC_DROPIN) ] && systemctl is-enabled --quiet orthanc 2>/dev/null; then \
	  echo "stopping and disabling Debian's own orthanc.service (unfiltered, same ports)"; \
	  systemctl disable --now orthanc; \
	fi

# The system on a server (deploy/install.py; docs/install.md, "Install on a server"):
# /etc/orthanc-patient-access, /var/lib/orthanc-patient-access, systemd units,
# nginx's site. Again from a newer clone: the upgrade (data kept, migrated).
ORTHANC_DROPIN := /etc/systemd/system/orthanc.service.d/orthanc-patient-access.conf
.PHONY: install upgrade uninstall install-deps
install: install-deps venv
	$(PY) -m deploy.install install

upgrade: install

# Leaves /etc/orthanc-patient-access and /var/lib/orthanc-patient-access.
uninstall: venv
	$(PY) -m deploy.install uninstall

install-deps:
	@$(MAKE) --no-print-directory deps DEBS="$(INSTALL_DEBS)"

# make doctor's checks on the installed server (settings in /etc, data in /var/lib).
.PHONY: doctor-server
doctor-server: venv
	$(PY) -m deploy.install doctor

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

configure: venv
	$(PY) -m deploy.trial configure --data-dir $(DATA_DIR)

# A new generated password for the admin account, printed once.
admin-password: venv
	AUTHSVC_CONFIG=$(abspath $(DATA_DIR))/authsvc.json $(PY) -m flask --app authsvc reset-admin-password

# A new generated password for a rule login of data/rules.json, printed once.
rule-password: venv
	@test -n "$(LOGIN)" || { echo "usage: make rule-password LOGIN=<login of data/rules.json>"; exit 2; }
	AUTHSVC_CONFIG=$(abspath $(DATA_DIR))/authsvc.json $(PY) -m flask --app authsvc rule-password "$(LOGIN)"

# The audit log against its key and its newest checkpoint (exit 1 if tampered
# with); a checkpoint of its head now (the service writes one every 5 min);
# the tag values of the last 30 days' studies that no rule matches.
audit-verify audit-checkpoint unmatched-tags: venv
	AUTHSVC_CONFIG=$(abspath $(DATA_DIR))/authsvc.json $(PY) -m flask --app authsvc $@

# The whole suite again on PostgreSQL: the service on Debian's
# server, run as a throwaway cluster by deploy/with-postgres, and the real
# stack's Orthanc with its index in PostgreSQL too (Debian's orthanc-postgresql).
PG_TESTS := tests
.PHONY: test-postgres
test-postgres: venv axe
	@$(MAKE) --no-print-directory deps DEBS="$(DEBS) $(TEST_DEBS) postgresql orthanc-postgresql"
	deploy/with-postgres AUTHSVC_TEST_DATABASE_URL $(PY) -m pytest -v $(PG_TESTS)

# The tests that start the real stack (those using the `stack` fixture), on
# SQLite, against Debian 13 (trixie)'s Orthanc 1.12 instead of this host's:
# deploy/orthanc-trixie makes a Debian 13 tree with it once (debootstrap, kept
# in /var/cache/authsvc/orthanc-trixie or $AUTHSVC_ORTHANC_TRIXIE_DIR) and
# runs it through a wrapper (deploy/trial.py's AUTHSVC_ORTHANC_COMMAND).
.PHONY: test-orthanc-1.12
test-orthanc-1.12: venv axe
	@$(MAKE) --no-print-directory deps DEBS="$(DEBS) $(TEST_DEBS) debootstrap"
	env -u AUTHSVC_TEST_DATABASE_URL deploy/orthanc-trixie with $(PY) -m pytest -v --stack-only tests

# An online, consistent copy of the service's database under data/backups/.
backup: venv
	AUTHSVC_CONFIG=$(abspath $(DATA_DIR))/authsvc.json $(PY) -m flask --app authsvc backup

# Restore one (stop `make run` first): make restore BACKUP=data/backups/authsvc-....sqlite3
restore: venv
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=<file>"; exit 2; }
	AUTHSVC_CONFIG=$(abspath $(DATA_DIR))/authsvc.json $(PY) -m flask --app authsvc restore "$(abspath $(BACKUP))"

# The benchmarks (~6 min; BENCH_ARGS=--quick for a ~2 min smoke run):
# bench/results/report.md and chart.png, figures printed with their targets.
# B2 runs on the project's SQLite and on a throwaway PostgreSQL.
bench: venv
	@$(MAKE) --no-print-directory deps DEBS="$(DEBS) postgresql"
	$(PY) -m pip install -q -e '.[test,bench]'
	AUTHSVC_PG_AS_A_SITE=1 deploy/with-postgres AUTHSVC_BENCH_DATABASE_URL $(PY) -m bench.run $(BENCH_ARGS)

# The patient's phone on Slow 3G (~3 min): Chromium at 390x844
# through the real stack, the JPEG path beside the PNG one, with the targets.
bench-phone: venv
	@$(MAKE) --no-print-directory deps DEBS="$(DEBS) chromium chromium-driver"
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m bench.slow3g --json bench/results/slow3g.json $(BENCH_PHONE_ARGS)

# The first-day checks (deploy/doctor.py): public_url, HTTPS, modalities,
# permissions under the data folder, disk, Orthanc's version. Exit 1 on a WARN.
.PHONY: doctor
doctor: venv
	$(PY) -m deploy.trial doctor --data-dir $(DATA_DIR)

# A self-signed certificate for a hospital LAN without a domain (docs/install.md, HTTPS):
# make tls-self-signed HOST=10.0.0.5 (the address the phones open).
.PHONY: tls-self-signed
tls-self-signed: deps venv
	@test -n "$(HOST)" || { echo "usage: make tls-self-signed HOST=<the server's LAN address or name>"; exit 2; }
	$(PY) -m deploy.trial self-signed --data-dir $(DATA_DIR) --host "$(HOST)"

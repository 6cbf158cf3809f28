# make run   - install what is missing, then run Orthanc + the service + nginx
# make test  - install what is missing, then run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= data
# Debian packages the system and its tests need.
DEBS := orthanc orthanc-webviewer orthanc-dicomweb nginx dcmtk python3-venv

.PHONY: run test deps venv configure admin-password

run: deps venv
	$(PY) -m authsvc.stack run --data-dir $(DATA_DIR)

test: deps venv
	$(PY) -m pytest -v

deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@# Debian starts its own Orthanc service on install: an Orthanc without
	@# our filter, on the same ports. It must not run beside ours.
	@if [ -d /run/systemd/system ] && systemctl is-enabled --quiet orthanc 2>/dev/null; then \
	  echo "stopping and disabling Debian's own orthanc.service (unfiltered, same ports)"; \
	  systemctl disable --now orthanc; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

configure: venv
	$(PY) -m authsvc.stack configure --data-dir $(DATA_DIR)

# A new generated password for the admin account, printed once.
admin-password: venv
	AUTHSVC_CONFIG=$(DATA_DIR)/authsvc.json $(PY) -m flask --app authsvc reset-admin-password

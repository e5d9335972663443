# One command for everything a contributor runs. Each target sets up what it
# needs (venvs, pinned dependencies, the built layers) on a fresh clone.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
SAM := $(SAM_VENV)/bin/sam
CHECKOV := $(CHECKOV_VENV)/bin/checkov
BUILD_DIR := .aws-sam/build
PYTEST_ARGS ?=

# The built layers and the tools the tests call.
export PGBACKUPS_PGTOOLS_DIR := $(CURDIR)/$(BUILD_DIR)/PgToolsLayer
export PGBACKUPS_SAM := $(CURDIR)/$(SAM)
export PGBACKUPS_CHECKOV := $(CURDIR)/$(CHECKOV)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

BASE_PYTHON = $(shell scripts/find-python)

help:
	@echo "make demo    the whole flow on the local stack with an embedded PostgreSQL"
	@echo "make test    the whole suite (unit, integration, e2e) and the template checks"
	@echo "make lint    ruff and mypy"
	@echo "make build   sam build: both layers and every function into $(BUILD_DIR)"
	@echo "make local   the local stack in the foreground"
	@echo "make bench   backup throughput and memory, PITR recovery point and restore time, in bench/results/"

setup: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed $(PG15)

# Debian's PostgreSQL 15: the continuous-backup tests restore a server older than
# the pinned 18 with its own major's binaries. No cluster of its own is created.
PG15 := /usr/lib/postgresql/15/bin/postgres
$(PG15):
	@if [ "$$(id -u)" != 0 ]; then \
	    echo "PostgreSQL 15 is missing: sudo apt-get install postgresql-15" >&2; exit 1; fi
	mkdir -p /etc/postgresql-common
	grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf || \
	    echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15

$(VENV)/.installed: pyproject.toml constraints.txt
	@python=$$(scripts/find-python) || exit 1; \
	[ -x $(PY) ] || $$python -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt --editable '.[cli,local,dev]'
	touch $@

# aws-sam-cli and checkov pin their own boto3: each lives in a venv of its own.
$(SAM_VENV)/.installed:
	@python=$$(scripts/find-python) || exit 1; \
	[ -x $(SAM_VENV)/bin/python ] || $$python -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==1.170.0
	touch $@

$(CHECKOV_VENV)/.installed:
	@python=$$(scripts/find-python) || exit 1; \
	[ -x $(CHECKOV_VENV)/bin/python ] || $$python -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==3.3.30
	touch $@

# sam runs the layers' makefiles with the app venv's Python first on PATH (the
# python3.12 builder and the pip that fetches the Lambda wheels).
build: $(VENV)/.installed $(SAM_VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHON="$(CURDIR)/$(PY)" \
	    SAM_CLI_TELEMETRY=0 $(SAM) build --build-in-source
	@echo "Built: $$(ls $(BUILD_DIR) | grep -v template | tr '\n' ' ')"

test: setup build
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

local: setup build
	$(VENV)/bin/pgbackups local

demo: setup build
	$(PY) -m pgbackups_local.demo

bench: setup build
	$(PY) bench/run.py
	$(PY) bench/pitr.py

clean:
	rm -rf $(BUILD_DIR) .pytest_cache .mypy_cache .ruff_cache

.PHONY: help setup build test lint local demo bench clean

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
# The dashboard's browser tests drive Debian's chromium through Playwright
# (`playwright install` cannot download a browser on these machines).
CHROMIUM := /usr/bin/chromium
PYTEST_ARGS ?=

# The built layers and the tools the tests call.
export PGBACKUPS_PGTOOLS_DIR := $(CURDIR)/$(BUILD_DIR)/PgToolsLayer
# The server of each shipped major, one layer each (pgbackups/postgres/servers.py).
SERVER_MAJORS := 15 16 17 18
SPACE := $(subst ,, )
export PGBACKUPS_PGSERVER_DIRS := $(subst $(SPACE),:,$(foreach major,$(SERVER_MAJORS),$(CURDIR)/$(BUILD_DIR)/PgServer$(major)Layer))
export PGBACKUPS_SAM := $(CURDIR)/$(SAM)
export PGBACKUPS_CHECKOV := $(CURDIR)/$(CHECKOV)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

BASE_PYTHON = $(shell scripts/find-python)
# Debian's PostgreSQL 15: the tests restore into a server older than pg_restore 18.
PG15_DIR := /usr/lib/postgresql/15
export PGBACKUPS_PG15_DIR := $(PG15_DIR)
# What `sam build` reads: when none of it changed, the build is not redone.
BUILD_INPUTS := template.yaml pyproject.toml constraints.txt $(wildcard layers/*/Makefile) \
                $(shell find functions pgbackups -type f -not -path '*/__pycache__/*')
# pip, talking: one line per package it fetches, no progress bars, no version nag.
PIP_TALK := --progress-bar off
SAY = @printf '\033[1m==> %s\033[0m\n'

help:
	@echo "make demo    the whole flow on the local stack with an embedded PostgreSQL"
	@echo "make test    the whole suite (unit, integration, e2e) and the template checks"
	@echo "make test-unit, test-template, test-integration, test-e2e   one layer of it"
	@echo "make lint    ruff and mypy"
	@echo "make build   sam build: both layers and every function into $(BUILD_DIR)"
	@echo "make local   the local stack in the foreground"
	@echo "make bench   CLI start-up, backup throughput and memory, PITR recovery point and restore time, in bench/results/"
	@echo "make install-cli   puts \`pgbackups\` on PATH (a link in ~/.local/bin)"
	@echo "make screenshot  docs/dashboard-backups.png, from the dashboard's browser tests"

# Everything `make test` needs; `make demo` and `make local` need less (no checkov, no 15).
setup: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed postgresql-15

# The editable install's own notice ("Editable installation…") is not ours to act on.
$(VENV)/.installed: pyproject.toml constraints.txt
	@python=$$(scripts/find-python) || exit 1; \
	[ -x $(PY) ] || { printf '\033[1m==> %s\033[0m\n' "Creating $(VENV) with $$python"; $$python -m venv $(VENV); }
	$(SAY) "Installing the app, the CLI, the local stack and the dev tools into $(VENV) (first time: 1-3 min)"
	@$(PY) -m pip install --quiet --upgrade pip
	@PYTHONWARNINGS="ignore:Editable installation" \
	    $(PY) -m pip install $(PIP_TALK) --constraint constraints.txt --editable '.[cli,local,dev]' \
	    | grep --line-buffered -E '^(Collecting|Installing collected|Successfully installed)' | cut -c1-100; \
	    exit $${PIPESTATUS[0]}
	@touch $@

# aws-sam-cli and checkov pin their own boto3: each lives in a venv of its own.
$(SAM_VENV)/.installed:
	@python=$$(scripts/find-python) || exit 1; \
	[ -x $(SAM_VENV)/bin/python ] || $$python -m venv $(SAM_VENV)
	$(SAY) "Installing aws-sam-cli into $(SAM_VENV) (first time: 1-2 min)"
	@$(SAM_VENV)/bin/pip install $(PIP_TALK) aws-sam-cli==1.170.0 \
	    | grep --line-buffered -E '^(Collecting|Installing collected|Successfully installed)' | cut -c1-100; \
	    exit $${PIPESTATUS[0]}
	@touch $@

$(CHECKOV_VENV)/.installed:
	@python=$$(scripts/find-python) || exit 1; \
	[ -x $(CHECKOV_VENV)/bin/python ] || $$python -m venv $(CHECKOV_VENV)
	$(SAY) "Installing checkov into $(CHECKOV_VENV), for the template checks (first time: 1-2 min)"
	@$(CHECKOV_VENV)/bin/pip install $(PIP_TALK) checkov==3.3.30 \
	    | grep --line-buffered -E '^(Collecting|Installing collected|Successfully installed)' | cut -c1-100; \
	    exit $${PIPESTATUS[0]}
	@touch $@

# As root it is installed with apt-get (no cluster is created: the tests make their own);
# otherwise make stops with the command to run.
postgresql-15:
	@if [ -x $(PG15_DIR)/bin/postgres ]; then exit 0; fi; \
	command="apt-get install -y --no-install-recommends postgresql-15"; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	    echo "The tests need Debian's PostgreSQL 15 in $(PG15_DIR). Install it with:" >&2; \
	    echo "    sudo $$command" >&2; exit 1; \
	fi; \
	printf '\033[1m==> %s\033[0m\n' "Installing Debian's PostgreSQL 15 (the restore test's older server)"; \
	mkdir -p /etc/postgresql-common; \
	[ -e /etc/postgresql-common/createcluster.conf ] || \
	    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$command -o Dpkg::Options::=--force-confold -q || { apt-get update -q && $$command -o Dpkg::Options::=--force-confold -q; }

# sam runs the layers' makefiles with the app venv's Python first on PATH (the
# python3.12 builder and the pip that fetches the Lambda wheels). Skipped when
# nothing it reads has changed since the last build.
build: $(BUILD_DIR)/.inputs-built

$(BUILD_DIR)/.inputs-built: $(BUILD_INPUTS) | $(VENV)/.installed $(SAM_VENV)/.installed
	$(SAY) "sam build: the layers and the functions into $(BUILD_DIR)"
	@# Only the layers' own lines (indented) reach the terminal; the rest of sam's
	@# output, its notes on building in source and on the functions' missing
	@# requirements.txt (their dependencies are the shared layer) included, goes to
	@# .aws-sam/build.log, shown when the build fails.
	@mkdir -p .aws-sam; PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHON="$(CURDIR)/$(PY)" \
	    SAM_CLI_TELEMETRY=0 $(SAM) build --build-in-source 2>&1 | tee .aws-sam/build.log \
	    | grep --line-buffered -E '^    [^ ]'; \
	status=$${PIPESTATUS[0]}; \
	if [ "$$status" != 0 ]; then \
	    echo "sam build failed; the end of .aws-sam/build.log:" >&2; tail -n 40 .aws-sam/build.log >&2; \
	    exit "$$status"; \
	fi
	@echo "Built: $$(ls $(BUILD_DIR) | grep -v template | tr '\n' ' ')"
	@touch $@

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
	    echo "The dashboard's browser tests need Debian's chromium. Run:" >&2; \
	    echo "    sudo apt-get update && sudo apt-get install -y chromium" >&2; \
	    exit 1; \
	fi

# The suite in layers, fastest first; each target sets up only what its layer needs.
# tests/conftest.py refuses a test that is not in exactly one layer (folder and marker).
test: test-unit test-template test-integration test-e2e

# No server, no build: the venv alone.
test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# sam validate --lint, cfn-lint and checkov on template.yaml.
test-template: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed
	$(PY) -m pytest tests/template $(PYTEST_ARGS)

# Real PostgreSQL 18 and 15 clusters, a moto server, the built layers.
test-integration: $(VENV)/.installed postgresql-15 build
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# The local stack and the CLI in subprocesses, the dashboard in chromium.
test-e2e: $(VENV)/.installed postgresql-15 build $(CHROMIUM)
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

screenshot: setup build $(CHROMIUM)
	PGBACKUPS_SCREENSHOT=$(CURDIR)/docs/dashboard-backups.png \
	    $(PY) -m pytest tests/e2e/test_dashboard.py -q -k screenshot

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

local: build
	$(VENV)/bin/pgbackups local

demo: build
	$(PY) -m pgbackups_local.demo

# CLI start-up first (a minute), then the backup throughput (much longer).
bench: build
	$(PY) bench/cli_startup.py
	$(PY) bench/run.py
	$(PY) bench/pitr.py

# Puts `pgbackups` on PATH: a link in ~/.local/bin to this clone's .venv/bin/pgbackups.
install-cli: $(VENV)/.installed
	@mkdir -p $(HOME)/.local/bin
	ln -sf $(CURDIR)/$(VENV)/bin/pgbackups $(HOME)/.local/bin/pgbackups
	@case ":$$PATH:" in *":$(HOME)/.local/bin:"*) echo "pgbackups is on PATH: try \`pgbackups --help\`";; \
	    *) echo "Add ~/.local/bin to PATH: export PATH=\"$(HOME)/.local/bin:\$$PATH\"";; esac

clean:
	rm -rf $(BUILD_DIR) .pytest_cache .mypy_cache .ruff_cache

.PHONY: help setup build test test-unit test-template test-integration test-e2e lint local demo bench screenshot clean install-cli postgresql-15

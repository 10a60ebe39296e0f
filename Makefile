# rtap: every developer and CI command in one place. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .venv-tools
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
# Passed through to pytest, e.g. `make test PYTEST_ARGS="-k kafka -x"`.
PYTEST_ARGS ?=

.PHONY: help install jars system-deps run test test-unit lint fmt lock bench faults soak cluster-test clean

include deploy/compose/compose.mk
include deploy/aws.mk

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/rtap: pyproject.toml bench/pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (rtap needs Python >= 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,msk]'
	$(BIN)/pip install --quiet -c constraints.txt -e ./bench  # the benchmarks (bench/pyproject.toml): not in rtap's wheel
	@touch $@

# constraints.txt pins every package, transitive ones too; this re-resolves it from pyproject.toml's pins in a
# throwaway virtualenv (then `make install` and `make test` prove the new set).
LOCK_VENV := .venv-lock
lock: ## Re-resolve the full package set into constraints.txt (after changing a pin in a pyproject.toml)
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/pip install --quiet -e '.[dev,msk]' -e ./bench
	{ grep '^#' constraints.txt; $(LOCK_VENV)/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf $(LOCK_VENV)

$(TOOLS)/bin/checkov:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet checkov==3.3.30  # own venv: it pins an old `packaging`

# Confluent's JSON Schema serializer writes some of tests/e2e/test_outside_input.py's records: input from another
# client library. Its own venv: its registry client brings httpx2, which starlette's TestClient (the dashboard's and
# the collector's tests) switches to once it is installed.
SERIALIZERS := .venv-serializers
$(SERIALIZERS)/bin/python:
	$(PYTHON) -m venv $(SERIALIZERS)
	$(SERIALIZERS)/bin/pip install --quiet "confluent-kafka[json,schemaregistry]==2.16.1"

# actionlint checks .github/workflows (tests/unit/deploy/test_github_actions.py). Built from the Go module
# proxy at a pinned version: its PyPI wrappers download the binary from GitHub when they are installed.
GO ?= go
ACTIONLINT_VERSION := v1.7.12
$(TOOLS)/bin/actionlint:
	@command -v $(GO) >/dev/null || { echo "error: Go 1.24+ is required to build actionlint (https://go.dev/dl, or GO=/path/to/go)"; exit 1; }
	GOBIN=$(abspath $(TOOLS)/bin) $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# Caddy, the compose stack's TLS proxy and the Spark UI's (deploy/compose/*/Caddyfile), at its image's version
# (tests/unit/deploy/test_compose_caddy.py holds the two together): the tests validate every Caddyfile with it and run
# it in front of real rtap services. Built from the Go module proxy, like actionlint (about 2 minutes).
CADDY_VERSION := v2.10.2
$(TOOLS)/bin/caddy:
	@command -v $(GO) >/dev/null || { echo "error: Go 1.24+ is required to build Caddy (https://go.dev/dl, or GO=/path/to/go)"; exit 1; }
	GOBIN=$(abspath $(TOOLS)/bin) $(GO) install github.com/caddyserver/caddy/v2/cmd/caddy@$(CADDY_VERSION)

jars/lib/.resolved: jars/pom.xml jars/settings.xml
	@command -v java >/dev/null || { echo "error: Java 17+ is required (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "error: Maven is required to fetch the Kafka and Spark jars (apt-get install maven)"; exit 1; }
	rm -rf jars/lib
	mvn -q -s jars/settings.xml -f jars/pom.xml -P kafka dependency:copy-dependencies -DoutputDirectory=lib/kafka -DincludeScope=runtime
	mvn -q -s jars/settings.xml -f jars/pom.xml -P spark dependency:copy-dependencies -DoutputDirectory=lib/spark -DincludeScope=runtime
	mvn -q -s jars/settings.xml -f jars/pom.xml -P msk-iam dependency:copy-dependencies -DoutputDirectory=lib/msk-iam -DincludeScope=runtime
	@touch $@

# Class-data sharing archives of the broker's and Spark's JVMs (src/rtap/runtime/jvm.py): a brief pipeline run
# (~1 min, once) that makes every later JVM start ~40% faster; rebuilt when the jars or packages change.
jars/lib/cds/.built: $(BIN)/rtap jars/lib/.resolved
	$(BIN)/rtap jvm archive
	@touch $@

install: $(BIN)/rtap jars/lib/.resolved jars/lib/cds/.built ## Install Python packages, the Kafka/Spark jars and the JVM archives
jars: jars/lib/.resolved ## Resolve the Kafka broker and Spark connector jars from Maven Central

# Debian's prometheus package brings promtool (`promtool check/test rules` in tests/unit/metrics) and the server
# the e2e test starts on a free loopback port. Its packaged system service is disabled again: the tests need none.
# tmux runs `rtap up` in a terminal for tests/e2e/test_up_terminal.py.
system-deps: ## Debian packages the tests need (headless Chromium, shellcheck, tmux, Prometheus and promtool)
	@command -v chromium >/dev/null && command -v shellcheck >/dev/null && command -v tmux >/dev/null || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium shellcheck tmux >/dev/null; }
	@command -v promtool >/dev/null || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
	  && { ! command -v systemctl >/dev/null || $(SUDO) systemctl disable --now prometheus >/dev/null 2>&1 || true; }; }

run: install ## Install everything and run the pipeline locally (broker, warehouse, stream job, generator, dashboard)
	$(BIN)/rtap up

lint: $(BIN)/rtap ## ruff, mypy (src, bench, tests) and the import layers (pyproject.toml [tool.importlinter])
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: $(BIN)/rtap ## Format the code
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# Two pytest workers (pytest-xdist), each taking whole test files, so a module's services start once. The suite
# mostly waits (JVM start-ups, micro-batches, polling): one worker kept ~30% of the two cores busy and took
# 1,797 s on a slow day (2026-12-04), over the 30 minutes CI allows; two took 1,144 s there, every test passing.
# `make test PYTEST_WORKERS=` runs them one at a time.
PYTEST_WORKERS ?= -n 2 --dist loadfile
test: install system-deps $(TOOLS)/bin/checkov $(TOOLS)/bin/actionlint $(TOOLS)/bin/caddy $(SERIALIZERS)/bin/python ## Run every check: lint, unit, integration and end-to-end tests
	$(MAKE) lint
	$(BIN)/pytest $(PYTEST_WORKERS) --durations=20 $(PYTEST_ARGS)  # the slowest tests in the log

test-unit: $(BIN)/rtap ## Unit tests only (no services)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

faults: install ## Fault suite, large: 5 kill -9 at 20k events/s, broker restart, Spark JVM kill, warehouse, retention (bench/results/faults.md)
	RTAP_FAULTS_SCALE=large $(BIN)/pytest -m faults tests/e2e

cluster-test: install ## Cluster profile: 3 KRaft brokers, Spark master + 2 workers; kill a broker and a worker; exact
	$(BIN)/pytest -m cluster tests/e2e/test_cluster.py

# e.g. make soak SOAK_ARGS="--rate 10000 --duration 2h --name soak-2h" (the 2-hour run); bench/soak.py --help
SOAK_ARGS ?=
soak: install ## rtap up under realistic traffic for 30 min at 80% of its own search's rate, across an hour: freshness p99 per minute, memory (bench/results/soak.md; not in CI)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# K only: chDB 4.4.0 (rtap's pin) refuses ENGINE = Kafka; 3.7.2 creates it (see bench/README.md).
K_VENV := .venv-k
$(K_VENV)/bin/python:
	$(PYTHON) -m venv $(K_VENV)
	$(K_VENV)/bin/pip install --quiet chdb==3.7.2

bench: install $(K_VENV)/bin/python ## Benchmarks against the baselines and the Kafka engine (writes bench/results; ~20 min)
	$(BIN)/rtap bench --k-python $(K_VENV)/bin/python

clean: ## Remove local state (.rtap) and build outputs
	rm -rf .rtap .pytest_cache .mypy_cache .ruff_cache

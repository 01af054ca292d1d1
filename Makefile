# Two commands matter: `make demo` and `make test`. Every target sets up what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.stamp
DEPS_HASH := $(shell cat requirements.txt constraints.txt | sha256sum | cut -c1-16)

# Airflow and the project read these before anything imports airflow.
export PYTHONPATH := $(CURDIR)
export PATH := $(BIN):$(PATH)
export AIRFLOW_HOME ?= $(CURDIR)/var/airflow
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export GX_ANALYTICS_ENABLED := false
export MPLBACKEND := Agg
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv system-deps demo learn-stream test lint bench airflow-db clean-state
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

venv: ## create or refresh .venv only when requirements/constraints changed
	@if [ "$$(cat $(STAMP) 2>/dev/null)" = "$(DEPS_HASH)" ]; then \
	  echo "==> $(VENV) up to date ($(DEPS_HASH))"; \
	else \
	  echo "==> building $(VENV) ($(DEPS_HASH))"; \
	  [ -x $(PY) ] || python3 -m venv $(VENV) || exit 1; \
	  $(PIP) install -q torch==2.13.0 -c constraints.txt || exit 1; \
	  $(PIP) install -q -r requirements.txt -c constraints.txt || exit 1; \
	  echo "$(DEPS_HASH)" > $(STAMP); \
	fi

system-deps: ## install the Debian packages the tests need, only when missing
	@bash scripts/system_deps.sh

airflow-db: venv ## create/migrate the SQLite Airflow metadata DB inside the project
	@mkdir -p $(AIRFLOW_HOME)
	@airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -30 $(AIRFLOW_HOME)/db-migrate.log; exit 1)

# VERBOSE=1: every Airflow and task log line on the terminal (else in var/logs/demo-<UTC time>.log, path printed)
VERBOSE_FLAG = $(if $(filter-out 0,$(strip $(VERBOSE))),--verbose)

demo: venv airflow-db ## the main job: validate and learn every task through real Airflow DAG runs (VERBOSE=1: all logs here)
	@$(PY) -m include.airflow_glue.demo $(if $(DEMO_CONF),--conf '$(DEMO_CONF)') $(VERBOSE_FLAG)

learn-stream: venv airflow-db ## validate + learn any stream folder through the DAGs, own state (STREAM=<dir> [STATE=<dir>] [CONF='{"epochs": 5}'] [VERBOSE=1])
	@$(PY) -m include.airflow_glue.learn_stream "$(STREAM)" $(if $(STATE),--state '$(STATE)') $(if $(CONF),--conf '$(CONF)') $(VERBOSE_FLAG)

lint: venv ## ruff check + format check + the layer contracts (import-linter, pyproject.toml)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/lint-imports --no-cache --no-logo

test: venv system-deps lint ## set up and run the whole test suite
	@$(VENV)/bin/pytest

BENCHES := bench_continual bench_train_throughput bench_dag_parse bench_validation bench_backup bench_serving bench_demo bench_plugin_view bench_e2e_latency

bench: venv ## benchmarks that print numbers and write bench/results/*.json (quality and speed targets)
	@mkdir -p bench/results
	@set -e; for b in $(BENCHES); do echo "==> $$b"; $(PY) -m bench.$$b; done

clean-state: ## remove the local embedded state (var/): Airflow DB, MLflow store, checkpoints
	rm -rf var

-include mk/*.mk

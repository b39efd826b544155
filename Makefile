# Two commands set everything up: `make demo` and `make test`. Both create .venv when missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# All embedded state lives under MLOPS_HOME (git-ignored); Airflow's home is inside it and it
# reads the DAGs and plugins straight from the repository.
export MLOPS_HOME ?= $(CURDIR)/.local
export AIRFLOW_HOME ?= $(MLOPS_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER ?= $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER ?= $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False
export AIRFLOW__CORE__UNIT_TEST_MODE ?= False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(AIRFLOW_HOME)/airflow.db
export AIRFLOW__LOGGING__LOGGING_LEVEL ?= WARNING
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT ?= 120
export FEAST_REPO_PATH ?= $(CURDIR)/feature_repo


.PHONY: help venv demo test lint bench clean secrets docs

help:
	@echo "make demo   - run the pipeline on embedded defaults (state under $(MLOPS_HOME))"
	@echo "make airflow - Airflow (UI with the MLOps view), MLflow UI and the model server"
	@echo "make test   - run the test suite"
	@echo "make lint   - ruff (with Airflow's AIR rules) and mypy"
	@echo "make docs   - build the reference in docs/ as a site (.local/site; broken links fail)"
	@echo "make bench  - performance benchmarks (medians, this machine)"
	@echo "make clean  - remove embedded state (.local)"
	@echo "make secrets - write .env for docker compose with strong random secrets"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	@test -x $(VPY) || uv venv --quiet --python $(PYTHON) $(VENV)
	uv pip install --quiet --compile-bytecode --python $(VPY) -r requirements.txt
	uv pip install --quiet --python $(VPY) --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(VPY) -m mlops_pipeline.platform.demo

test: $(STAMP) chromium
	$(VPY) -m pytest $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium: installed here when missing (as root); where it
# cannot be, they skip with the reason (and fail under REQUIRE_SERVICES=1).
.PHONY: chromium airflow
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium; } \
	  || echo "Chromium could not be installed: the browser tests will skip"

# The whole platform on this machine until Ctrl-C (mlops_pipeline.platform.local_stack).
airflow: $(STAMP)
	$(VPY) -m mlops_pipeline.platform.local_stack

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(VPY) -m bench $(BENCH)

clean:
	rm -rf $(MLOPS_HOME)

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet

# The production stack's .env (docker-compose.yaml): every empty value of .env.example becomes
# a fresh random secret. Never overwrites an existing .env.
secrets: $(STAMP)
	$(VPY) -m mlops_pipeline.platform.secrets_env --example .env.example --output .env

# The production stack with podman where no image registry can be pulled from: every image
# built here (deploy/local/build-images.sh: only what is missing; podman's layer cache for the
# Dockerfile's targets), then brought up, driven through Airflow's REST API and taken down
# (deploy/stack_test/run.py; STACK_PORT_BASE picks its host ports): once on LocalExecutor, once
# on CeleryExecutor with two workers.
.PHONY: stack-images stack-test
stack-images:
	deploy/local/build-images.sh

stack-test: $(STAMP) stack-images
	STACK_EXECUTOR=local $(VPY) deploy/stack_test/run.py
	STACK_EXECUTOR=celery $(VPY) deploy/stack_test/run.py

# One entry point for developers and CI. Every target sets up what it needs.
# `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
ENV ?= dev
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk

# The interpreter writes no bytecode in some sandboxes (PYTHONDONTWRITEBYTECODE);
# bytecode is compiled at install time instead, which saves ~20 s per process on
# aws-cdk-lib alone. Node 20 is past its end of life for jsii but still works for
# synthesis; its banner on every process is silenced (Node 22 or 24 is recommended).
export UV_PYTHON_DOWNLOADS := never
export UV_COMPILE_BYTECODE := 1
export UV_PROJECT_ENVIRONMENT := $(VENV)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: help setup test test-unit lint check synth demo demo-drift bench clean deploy destroy diff \
	localstack-up localstack-deploy localstack-plan localstack-test localstack-down

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) scripts/check_prereqs.py
	@echo "==> installing uv $(UV_VERSION) into $(TOOLS)/"
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	@echo "==> installing locked Python dependencies into $(VENV)/"
	@$(UV) sync --frozen --python $(PYTHON)
	@touch $@

node_modules/.installed: package.json package-lock.json
	@echo "==> installing the pinned CDK CLI into node_modules/"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(VENV)/.synced node_modules/.installed ## Create .venv (locked deps) and install the pinned CDK CLI

test: setup ## Run the whole test suite (unit, integration, e2e, localstack: your endpoint or the in-process core)
	@$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

test-unit: setup ## Run only the fast unit tests
	@$(PY) -m pytest -m unit $(PYTEST_ARGS)

lint: setup ## ruff (lint + format check) and mypy
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy

check: lint test ## lint, then the whole test suite

synth: setup ## Synthesize every stack of ENV (default dev; ENV=prod, ENV=local) into cdk.out/
	@$(CDK) synth --quiet -c env=$(ENV)
	@echo "==> templates for ENV=$(ENV):"; ls cdk.out/*-$(ENV)-*.template.json

diff: setup ## cdk diff against the deployed ENV (needs AWS credentials)
	@$(CDK) diff --all -c env=$(ENV)

deploy: setup ## cdk deploy --all for ENV (needs AWS credentials and a bootstrapped account)
	@$(CDK) deploy --all -c env=$(ENV)

destroy: setup ## cdk destroy --all for ENV (prod keeps its retained data stores)
	@$(CDK) destroy --all -c env=$(ENV)

demo: setup ## Run the whole lifecycle on the local engine (no Docker, no AWS account)
	@$(PY) -m mlops demo

demo-drift: setup ## The lifecycle, then shifted traffic: drift detected, a retraining run started
	@$(PY) -m mlops demo --drift

LOCALSTACK_TIER ?= hobby
COMPOSE := docker compose -f localstack/docker-compose.yml

localstack-up: ## Start LocalStack + Redis with Docker (needs LOCALSTACK_AUTH_TOKEN)
	@docker compose version >/dev/null 2>&1 || { echo "error: needs Docker with the compose plugin (docs/localstack.md)" >&2; exit 2; }
	@$(COMPOSE) up -d --wait

localstack-deploy: setup ## Deploy the local environment to LocalStack for LOCALSTACK_TIER (core|hobby|base|ultimate)
	@$(PY) -m mlops.localstack deploy --tier $(LOCALSTACK_TIER)

localstack-plan: setup ## Print what LOCALSTACK_TIER leaves out or replaces, without deploying
	@$(PY) -m mlops.localstack plan --tier $(LOCALSTACK_TIER)

localstack-test: setup ## The LocalStack suite: your endpoint (LOCALSTACK_ENDPOINT) or the in-process core
	@$(PY) -m pytest -m localstack -p no:cacheprovider $(PYTEST_ARGS) tests/localstack

localstack-down: ## Stop the compose LocalStack and Redis
	@$(COMPOSE) down

bench: setup ## Run the benchmarks and print their results
	@$(PY) -m mlops bench

clean: ## Remove generated files (cdk.out, caches); keeps .venv and node_modules
	@rm -rf cdk.out cdk.out.localstack .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov .localaws

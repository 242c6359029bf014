# PAI — developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SERVERS := membrane gitlab gpu_jobs firewall dns mail verify
CLIENTS := tests/clients
PYTEST_ARGS ?=
# CPU build of torch for membrane's embeddings, installed before anything can ask for a CUDA one.
# Elsewhere: make install TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml shared/pyproject.toml $(foreach s,$(SERVERS),servers/$(s)/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e 'shared[neo4j,test-bolt]' $(foreach s,$(SERVERS),-e servers/$(s)) \
		-e 'servers/membrane[embeddings,qdrant,redis]' -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create .venv with every package editable plus dev tools

$(CLIENTS)/node_modules/.installed: $(CLIENTS)/package.json $(CLIENTS)/package-lock.json
	cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

clients: $(CLIENTS)/node_modules/.installed ## Install the npm MCP clients the tests drive (Inspector, conformance, Claude Code)

run: install ## Start every server over Streamable HTTP on loopback and write .mcp.json
	$(VENV)/bin/pai up

test: install clients ## Run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install ## ruff + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install clients ## Run the benchmarks; results go to benchmarks/results/
	$(PY) benchmarks/run.py

clean: ## Remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(CLIENTS)/node_modules

.PHONY: help install clients run test lint format bench clean

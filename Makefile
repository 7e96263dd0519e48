# datapipelines — developer entry points. `make demo` and `make test` are the two commands.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: help
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

.PHONY: venv
venv: $(STAMP) ## create .venv with the project and its dev tools

.PHONY: lint
lint: venv ## ruff over the whole tree, mypy over the packages
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy resources/datapipelines operator/datapipelines api/datapipelines runner-image/datapipelines mocks/datapipelines

.PHONY: unit
unit: venv ## unit tests (no cluster)
	$(PY) -m pytest tests/unit

.PHONY: test
test: venv ## everything: lint, unit, integration and end-to-end (starts what it needs)
	$(MAKE) lint
	$(PY) -m pytest tests

.PHONY: crds
crds: venv ## regenerate crds/ and the chart's copy from the typed models
	$(PY) -m datapipelines.resources.crdgen --write crds
	$(PY) -m datapipelines.resources.crdgen --write deploy/helm/datapipelines/files/crds

.PHONY: fmt
fmt: venv ## format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Component fragments: cluster-up/cluster-down/images (hack/cluster.mk), bench (runner-image/runner.mk), …
-include $(wildcard hack/*.mk) $(wildcard runner-image/*.mk) $(wildcard api/*.mk)

# api/api.mk — the API's targets (included by the root Makefile).

.PHONY: bench-access
bench-access: venv ## access bench: request latency with scoped keys and Kubernetes tokens vs an unscoped key (10,000 connections)
	$(PY) api/bench/access_bench.py $(BENCH_ARGS)

.PHONY: app-requirements
app-requirements: venv ## re-pin deploy/docker/requirements.txt (the operator + API image) from pyproject.toml
	$(PY) deploy/docker/lock.py

# runner-image/runner.mk — the runner's targets (included by the root Makefile).

.PHONY: bench
bench: venv ## runner benchmark: rows/s REST -> PostgreSQL/DuckDB vs a hand-written loader
	$(PY) runner-image/bench/bench.py $(BENCH_ARGS)

.PHONY: runner-requirements
runner-requirements: venv ## re-pin runner-image/requirements.txt from requirements.in
	$(PY) runner-image/lock.py

.PHONY: runner-test
runner-test: venv ## the runner's unit and integration tests (starts PostgreSQL)
	$(PY) -m pytest tests/unit/runner tests/integration/runner

# runner-image/runner.mk — the runner's targets (included by the root Makefile).

.PHONY: bench bench-1m
bench: venv ## runner benchmark: rows/s REST -> PostgreSQL/DuckDB vs a hand-written loader, start-up
	$(PY) runner-image/bench/bench.py $(BENCH_ARGS)

bench-1m: venv ## the benchmark plus 1,000,000 records through the runner (peak RSS; a few minutes more)
	$(PY) runner-image/bench/bench.py --million $(BENCH_ARGS)

.PHONY: bench-saas
bench-saas: venv ## a SaaS preset (type: trello) vs the same data as a generic rest_api source (100,000 cards)
	$(PY) runner-image/bench/saas_bench.py $(BENCH_ARGS)

.PHONY: runner-requirements
runner-requirements: venv ## re-pin runner-image/requirements.txt from requirements.in
	$(PY) runner-image/lock.py

.PHONY: runner-test
runner-test: venv ## the runner's unit and integration tests (starts PostgreSQL)
	$(PY) -m pytest tests/unit/runner tests/integration/runner

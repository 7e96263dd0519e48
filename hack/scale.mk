# hack/scale.mk — the scale harness (tests/scale/, docs/scale.md); included by the root Makefile.

.PHONY: bench-scale bench-scale-1k
bench-scale: venv ## scale benchmark on kwok: 10,000 connections, 20 namespaces, 2 shards, burst of 1,000 (SCALE_ARGS=...)
	$(PY) -m tests.scale --json .cluster/scale/last.json $(SCALE_ARGS)

bench-scale-1k: venv ## the scale benchmark at 1,000 connections (the API's 20 ms goal)
	$(PY) -m tests.scale --connections 1000 --namespaces 4 --json .cluster/scale/last-1k.json $(SCALE_ARGS)

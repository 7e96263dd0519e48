"""The scale harness (`make bench-scale`, docs/scale.md): the real operator (two shards), API,
apiserver and etcd under thousands of connections, with runner pods that "run" on kwok's fake
nodes (hack/kwok.sh) — only the runner's data work is simulated.

    fleet.py    what is created: namespaces, shard labels, connection manifests (pure)
    stats.py    percentiles and summaries (pure)
    probe.py    process RSS/CPU from /proc, Prometheus text parsing
    report.py   the figures against the goals, as lines (pure)
    harness.py  the run itself: set-up, burst, in-flight load, soak, clean-up
    __main__    `python -m tests.scale` (see --help)

`tests/integration/test_scale_small.py` runs a small variant in `make test`, asserting only that
no run is lost or duplicated and that every task answers.
"""

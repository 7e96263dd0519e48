"""ReportCache: finished runs' reports under a byte budget, each counted once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from datapipelines.api.kube import ReportCache


def test_a_key_put_twice_counts_once() -> None:
    cache = ReportCache()
    for _ in range(1000):
        cache.put(("ns", "run-1"), "7", "x" * 100, budget=10_000)
    assert cache.bytes == 100 and len(cache) == 1
    assert cache.get(("ns", "run-1"), "7") == (True, "x" * 100)
    # after the budget is reached by other reports, the first is dropped, not the newest
    for i in range(200):
        cache.put(("ns", f"r{i}"), "1", "y" * 100, budget=10_000)
    assert cache.bytes <= 10_000
    assert cache.get(("ns", "r199"), "1") == (True, "y" * 100)


def test_a_new_version_misses_and_releases_its_bytes() -> None:
    cache = ReportCache()
    cache.put(("ns", "r"), "1", "abc", budget=100)
    assert cache.get(("ns", "r"), "2") == (False, None)
    assert cache.bytes == 0 and len(cache) == 0


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 2), st.text(max_size=50) | st.none()),
        max_size=60,
    )
)
def test_the_byte_count_is_what_the_cache_holds(puts: list[tuple[int, int, str | None]]) -> None:
    cache = ReportCache()
    held: dict[tuple[str, str], tuple[str, str | None]] = {}
    for key, version, text in puts:
        cache.put(("ns", str(key)), str(version), text, budget=10**9)
        held[("ns", str(key))] = (str(version), text)
    assert cache.bytes == sum(len(t or "") for _, t in held.values())
    assert len(cache) == len(held)

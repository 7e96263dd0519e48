"""Resource quantities: parsing, the runner's merged resources, the sandbox's maxima."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datapipelines.resources import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Decimal("0.1")),
        ("2", Decimal(2)),
        ("2Gi", Decimal(2 * 1024**3)),
        ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
        (".5", Decimal("0.5")),
        (3, Decimal(3)),
    ],
)
def test_parse(text: str | int, value: Decimal) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "1.2.3", "1 Gi", "one", "1Xi"])
def test_parse_refuses_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity.parse(text)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["Ki", "Mi", "Gi", "k", "M"]))
def test_binary_suffixes_order_like_their_values(n: int, suffix: str) -> None:
    assert quantity.parse(f"{n}{suffix}") <= quantity.parse(f"{n + 1}{suffix}")


def test_merged_keeps_the_connections_keys_and_never_requests_above_its_limit() -> None:
    default = {"requests": {"memory": "256Mi", "cpu": "100m"}, "limits": {"memory": "2Gi"}}
    assert quantity.merged(default, None) == default
    assert quantity.merged(default, {"limits": {"memory": "64Mi"}}) == {
        "requests": {"memory": "64Mi", "cpu": "100m"},
        "limits": {"memory": "64Mi"},
    }
    assert quantity.merged({}, None) == {}


def test_over_names_every_value_above_the_maximum() -> None:
    maximum = {"limits": {"cpu": "8", "memory": "32Gi"}}
    assert quantity.over({"requests": {"cpu": "9"}, "limits": {"memory": "1Gi"}}, maximum) == [
        "requests.cpu 9 > 8"
    ]
    assert quantity.over(None, maximum) == []

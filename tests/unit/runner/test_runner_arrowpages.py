"""Flat pages as Arrow tables, typed the way dlt's own normalizer types rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention

from datapipelines.runner.arrowpages import (
    MIN_ROWS,
    FlatPagesToArrow,
    infer_type,
    page_to_arrow,
    remember_row_types,
)
from datapipelines.runner.demo_source import record

normalize = NamingConvention().normalize_identifier


def test_a_demo_page_gets_dlts_types() -> None:
    known: dict[str, str] = {}
    table = page_to_arrow([record(i) for i in range(1, 101)], known, normalize)
    assert table is not None and table.num_rows == 100
    assert table.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("price").type == pa.float64()
    assert table.schema.field("active").type == pa.bool_()
    assert known == {
        "id": "bigint",
        "updated_at": "timestamp",
        "name": "text",
        "category": "text",
        "price": "double",
        "quantity": "bigint",
        "active": "bool",
        "created_at": "timestamp",
        "description": "text",
        "score": "double",
    }
    assert table["updated_at"][0].as_py() == datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_first_value_decides_like_dlt() -> None:
    assert infer_type(True) == "bool"
    assert infer_type(3) == "bigint"
    assert infer_type(3.5) == "double"
    assert infer_type("2024-01-01T00:00:00Z") == "timestamp"
    assert infer_type("2024-01-01") == "text"  # dlt does not detect dates by default
    assert infer_type("") == "text"
    assert infer_type({"a": 1}) is None and infer_type([1]) is None


def test_pages_that_must_stay_rows() -> None:
    def rows(*values: object) -> list[dict[str, object]]:
        return [{"x": v} for v in values]

    assert page_to_arrow(rows(1, 2.5), {}, normalize) is None  # bigint, then a double: variant
    assert page_to_arrow(rows(True, 1), {}, normalize) is None
    assert page_to_arrow(rows("a", 1), {}, normalize) is None
    assert page_to_arrow(rows({"a": 1}), {}, normalize) is None  # nested: dlt flattens it
    assert page_to_arrow(rows([1, 2]), {}, normalize) is None  # a list: a nested table
    assert page_to_arrow(rows(2**70), {}, normalize) is None  # beyond bigint
    assert page_to_arrow(rows("2024-01-01T00:00:00Z", "soon"), {}, normalize) is None
    assert page_to_arrow(rows("2024-01-01T00:00:00.123456789Z"), {}, normalize) is None
    assert page_to_arrow(["not a record"], {}, normalize) is None
    assert page_to_arrow([{"aB": 1, "a_b": 2}], {}, normalize) is None  # one column, twice


def test_ints_fit_a_double_column_and_nulls_make_no_column() -> None:
    known: dict[str, str] = {}
    table = page_to_arrow([{"x": 1.5, "y": None}, {"x": 2, "y": None}], known, normalize)
    assert table is not None
    assert table.column_names == ["x"] and table["x"].to_pylist() == [1.5, 2.0]
    assert known == {"x": "double"}


def test_the_destinations_types_win() -> None:
    # a column created as text (its first value was ""): timestamps stay text
    table = page_to_arrow([{"t": "2024-01-01T00:00:00Z"}], {"t": "text"}, normalize)
    assert table is not None and table.schema.field("t").type == pa.string()
    # an existing double column takes ints
    assert page_to_arrow([{"p": 3}], {"p": "double"}, normalize) is not None
    # a bigint column meeting doubles, a decimal column: dlt decides
    assert page_to_arrow([{"p": 3.5}], {"p": "bigint"}, normalize) is None
    assert page_to_arrow([{"p": 3.5}], {"p": "decimal"}, normalize) is None


def test_earlier_pages_bind_later_ones() -> None:
    known: dict[str, str] = {}
    assert page_to_arrow([{"x": 1}], known, normalize) is not None
    assert page_to_arrow([{"x": 1.5}], known, normalize) is None  # bigint now: a variant
    remember_row_types([{"y": "a", "z": None, "n": [1]}], known, normalize)
    assert known == {"x": "bigint", "y": "text"}


def test_timestamps_with_or_without_offset_are_utc() -> None:
    with_offset = page_to_arrow([{"t": "2024-01-01T02:00:00+02:00"}], {}, normalize)
    naive = page_to_arrow([{"t": "2024-01-01 00:00:00"}], {}, normalize)
    assert with_offset is not None and naive is not None
    midnight = datetime(2024, 1, 1, tzinfo=UTC)
    assert with_offset["t"][0].as_py() == naive["t"][0].as_py() == midnight
    assert (
        page_to_arrow([{"t": "2024-01-01T00:00:00Z"}, {"t": "2024-01-01 00:00"}], {}, normalize)
        is None
    )


def test_required_columns_are_not_null() -> None:
    required = frozenset({"id"})
    table = page_to_arrow([{"id": 1}, {"id": 2}], {}, normalize, required)
    assert table is not None and not table.schema.field("id").nullable
    assert page_to_arrow([{"id": 1}, {"id": None}], {}, normalize, required) is None
    assert page_to_arrow([{"name": "x"}], {}, normalize, required) is None


def test_the_step_converts_long_flat_pages_only() -> None:
    step = FlatPagesToArrow({}, normalize)
    flat = [record(i) for i in range(1, MIN_ROWS + 1)]
    assert isinstance(step(flat), pa.Table)
    nested = [{**r, "tags": [{"tag": "a"}]} for r in flat]
    assert step(nested) is nested
    short = flat[:3]
    assert step(short) is short
    assert (step.pages_as_arrow, step.pages_as_rows) == (1, 1)
    step.enabled = False
    assert step(flat) is flat

"""Flat pages of a rest_api resource as Arrow tables, typed as dlt's own normalizer types them.

dlt skips its row-by-row normalizer for Arrow items (the slowest stage of a sync), so a page of
flat records (no field is a list or a dict) is converted to a `pyarrow.Table` right after dlt's
incremental filter. The rule for each field mirrors dlt's JSON path exactly, so a table created
by one path stays loadable by the other:

* the field's first non-null value on the page decides its type, as dlt's inference does:
  `bool` → bool, `int` → bigint, `float` → double, `str` → timestamp when dlt's own
  `iso_timestamp` detection accepts it, else text;
* every other value must fit that type the way dlt would coerce it (ints into a double
  column; ISO strings that Arrow parses into a timestamp column) — else the page stays rows
  and dlt decides (coercion, variant columns);
* a type the destination table already has for the field wins: a page disagreeing with it
  stays rows, as does a page whose type for a field differs from an earlier page's;
* fields that are null on the whole page are left out (dlt creates no column for them).

Pages with a list or dict anywhere stay rows: dlt unpacks them into nested tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from dlt.common.schema.detections import is_iso_timestamp
from dlt.extract.items_transform import ItemTransform

if TYPE_CHECKING:
    import pyarrow as pa

#: dlt data types a page may become in Arrow (anything else keeps the page as rows)
SUPPORTED_TYPES = ("bool", "bigint", "double", "text", "timestamp")
#: pages shorter than this stay rows: Arrow's per-table overhead outweighs what it saves
MIN_ROWS = 50

_PY_TYPES: dict[type, str] = {bool: "bool", int: "bigint", float: "double", str: "text"}


def infer_type(value: Any) -> str | None:
    """dlt's type for a first value (None for a value dlt would nest or that Arrow can't hold)."""
    data_type = _PY_TYPES.get(type(value))
    if data_type == "text" and is_iso_timestamp(str, value):
        return "timestamp"
    return data_type


def _fits(data_type: str, seen: set[type]) -> bool:
    """Whether values of the Python types `seen` coerce into `data_type` the way dlt would."""
    if data_type == "double":
        return seen <= {float, int}
    if data_type == "bigint":
        return seen == {int}
    if data_type == "bool":
        return seen == {bool}
    return seen == {str}  # text and timestamp


def _arrow_type(data_type: str) -> pa.DataType:
    import pyarrow as pa

    return {
        "bool": pa.bool_(),
        "bigint": pa.int64(),
        "double": pa.float64(),
        "text": pa.string(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }[data_type]


def _timestamps(values: list[Any]) -> pa.Array:
    """ISO strings → UTC timestamps (all with a zone offset, or all naive = UTC, as dlt reads
    them); raises when Arrow cannot parse one of them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    strings = pa.array(values, type=pa.string())
    utc = pa.timestamp("us", tz="UTC")
    try:
        return pc.cast(strings, utc)
    except pa.ArrowInvalid:
        naive = pc.cast(strings, pa.timestamp("us"))
        return pc.assume_timezone(naive, "UTC")


def page_to_arrow(
    page: list[Any],
    known: dict[str, str],
    normalize: Callable[[str], str],
    required: frozenset[str] = frozenset(),
) -> pa.Table | None:
    """The page as an Arrow table, or None when it must stay rows (see the module doc).

    `known` maps normalized column names to dlt types (the destination's, then what earlier
    pages decided); it is updated with this page's columns. `normalize` is the schema's
    naming convention for column names. `required` columns (a primary key: dlt makes them NOT
    NULL) are typed non-nullable; a page where one is null or missing stays rows.
    """
    import pyarrow as pa

    keys: dict[str, None] = {}
    for record in page:
        if type(record) is not dict:
            return None
        keys.update(dict.fromkeys(record))
    names = {key: normalize(key) for key in keys}
    if len(set(names.values())) != len(names):
        return None  # two fields become one column: let dlt sort it out
    if not required <= set(names.values()):
        return None
    columns: dict[str, pa.Array] = {}
    decided: dict[str, str] = {}
    for key, name in names.items():
        values = [record.get(key) for record in page]
        first = next((v for v in values if v is not None), None)
        if first is None:
            continue  # null on the whole page: no column, as in dlt
        data_type = known.get(name) or infer_type(first)
        if data_type not in SUPPORTED_TYPES:
            return None
        seen = {type(v) for v in values}
        seen.discard(type(None))
        if not _fits(data_type, seen):
            return None
        try:
            if data_type == "timestamp":
                columns[name] = _timestamps(values)
            else:
                columns[name] = pa.array(values, type=_arrow_type(data_type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return None
        decided[name] = data_type
    if any(name not in columns or columns[name].null_count for name in required):
        return None
    known.update(decided)
    schema = pa.schema(
        [
            pa.field(name, array.type, nullable=name not in required)
            for name, array in columns.items()
        ]
    )
    return pa.Table.from_arrays(list(columns.values()), schema=schema)


def dlt_types_to_known(columns: dict[str, Any]) -> dict[str, str]:
    """{column: data type} of a dlt table's columns that have a type."""
    return {name: str(c["data_type"]) for name, c in columns.items() if c.get("data_type")}


def remember_row_types(
    page: Iterable[Any], known: dict[str, str], normalize: Callable[[str], str]
) -> None:
    """For a page that stays rows: the types dlt will infer for its new scalar columns (the
    first value decides), so a later Arrow page cannot disagree with them."""
    for record in page:
        if type(record) is not dict:
            return
        for key, value in record.items():
            if value is None or type(value) in (dict, list):
                continue
            name = normalize(key)
            if name not in known and (data_type := infer_type(value)) is not None:
                known[name] = data_type


class FlatPagesToArrow(ItemTransform[Any, dict[str, Any]]):
    """A pipe step converting flat pages to Arrow tables; runs after dlt's incremental filter
    (affinity 1) and `add_limit` (1.1), so both still see rows."""

    placement_affinity: ClassVar[float] = 1.2

    def __init__(
        self,
        known: dict[str, str],
        normalize: Callable[[str], str],
        required: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(lambda item: item)
        self.known = known
        self.normalize = normalize
        self.required = required
        self.enabled = True
        self.pages_as_arrow = 0
        self.pages_as_rows = 0

    def __call__(self, item: Any, meta: Any = None) -> Any:
        if not self.enabled:
            return item
        if not isinstance(item, list) or len(item) < MIN_ROWS:
            if isinstance(item, list):
                remember_row_types(item, self.known, self.normalize)
            return item
        table = page_to_arrow(item, self.known, self.normalize, self.required)
        if table is None:
            self.pages_as_rows += 1
            remember_row_types(item, self.known, self.normalize)
            return item
        self.pages_as_arrow += 1
        return table

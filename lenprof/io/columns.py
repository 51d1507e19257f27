"""One Parquet schema for cleaned rows, whatever mix of values they hold.

JSON rows carry no schema and a key may hold a number in one row and a string in the next; a
Parquet file needs one type per column. The scan notes the kinds of value each key holds
(:class:`ColumnKinds`, which add up across shards like every other stat), and the schema follows
from them alone, so the same rows write the same file whatever the shard size, worker count or
engine:

- one kind (ignoring nulls) keeps its type: string, bool, int64, double, a list of one of them;
- ints beside floats widen to double (as JSON has one number type);
- anything else (mixed kinds, objects, nested lists, integers beyond 64 bits) is written as
  JSON text in a string column, so nothing is lost or refused.

    >>> k = ColumnKinds.of([{"a": 1, "b": "x"}, {"a": 2.5, "b": 3}])
    >>> [(f.name, str(f.type)) for f in schema(k)]
    [('a', 'double'), ('b', 'string')]
    >>> table([{"a": 1, "b": "x"}, {"a": 2.5, "b": 3}], schema(k)).to_pylist()
    [{'a': 1.0, 'b': '"x"'}, {'a': 2.5, 'b': '3'}]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lenprof.io.jsontext import dumps

INT64 = (-(1 << 63), (1 << 63) - 1)
JSON_TEXT = "json"


def kind(value: Any) -> str:
    """The kind of one JSON value: null, bool, int, float, str, list:<kind>, or json."""
    t = type(value)
    if value is None:
        return "null"
    if t is str:
        return "str"
    if t is bool:
        return "bool"
    if t is int:
        return "int" if INT64[0] <= value <= INT64[1] else JSON_TEXT
    if t is float:
        return "float"
    if t is list:
        items = {kind(v) for v in value} - {"null"}
        if not items:
            return "list:"  # empty (or all null): fits any list
        if items <= {"int", "float"} and "float" in items:
            return "list:float"
        if len(items) == 1 and not next(iter(items)).startswith(("list", JSON_TEXT)):
            return f"list:{next(iter(items))}"
        return JSON_TEXT
    return JSON_TEXT


@dataclass
class ColumnKinds:
    """For each key of the rows, in first-seen order, the kinds of value it held."""

    kinds: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: list[dict]) -> ColumnKinds:
        k = cls()
        k.add(rows)
        return k

    def add(self, rows: list[dict]) -> None:
        kinds = self.kinds
        for row in rows:
            for key, value in row.items():
                kinds.setdefault(key, set()).add(kind(value))

    def __iadd__(self, later: ColumnKinds) -> ColumnKinds:
        for key, ks in later.kinds.items():
            self.kinds.setdefault(key, set()).update(ks)
        return self


def _column_type(kinds: set[str]) -> str:
    """One kind for the whole column (``json`` when none fits all values)."""
    ks = kinds - {"null"}
    if not ks:
        return "null"
    if ks <= {"int", "float"}:
        return "float" if "float" in ks else "int"
    lists = {k for k in ks if k.startswith("list:")}
    if lists == ks:
        items = {k[5:] for k in lists} - {""}
        if not items:
            return "list:"
        if items <= {"int", "float"}:
            return "list:float" if "float" in items else "list:int"
        return f"list:{items.pop()}" if len(items) == 1 else JSON_TEXT
    return ks.pop() if len(ks) == 1 else JSON_TEXT


def schema(kinds: ColumnKinds) -> Any:
    import pyarrow as pa

    scalar = {
        "null": pa.null(),
        "bool": pa.bool_(),
        "int": pa.int64(),
        "float": pa.float64(),
        "str": pa.string(),
    }
    fields = []
    for name, ks in kinds.kinds.items():
        t = _column_type(ks)
        if t == JSON_TEXT:
            arrow = pa.string()
        elif t.startswith("list:"):
            arrow = pa.list_(scalar[t[5:] or "null"])
        else:
            arrow = scalar[t]
        fields.append(pa.field(name, arrow, metadata={"lenprof": "json"} if t == JSON_TEXT else None))
    return pa.schema(fields)


def table(rows: list[dict], arrow_schema: Any) -> Any:
    """Rows as an Arrow table of ``arrow_schema``; JSON-text columns hold each value's JSON."""
    import pyarrow as pa

    columns = []
    for f in arrow_schema:
        values = [row.get(f.name) for row in rows]
        if f.metadata and f.metadata.get(b"lenprof") == b"json":
            values = [None if v is None else dumps(v) for v in values]
        elif pa.types.is_floating(f.type):
            values = [float(v) if v is not None else None for v in values]
        elif pa.types.is_list(f.type) and pa.types.is_floating(f.type.value_type):
            values = [None if v is None else [None if x is None else float(x) for x in v] for v in values]
        columns.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(columns, schema=arrow_schema)

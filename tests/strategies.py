"""Reusable hypothesis strategies for Arrow types, schemas, tables and row filters.

Values come from small domains on purpose, so that random filters often match random rows
and files share values::

    @given(table=arrow_tables(min_rows=1), data=st.data())
    def test_something(table, data):
        expr = data.draw(row_filters(table.schema))
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import strategies as st

__all__ = [
    "COMPARISON_OPS",
    "DEFAULT_TYPES",
    "arrow_arrays",
    "arrow_schemas",
    "arrow_tables",
    "column_names",
    "dnf_filters",
    "predicates",
    "row_filters",
    "values_for",
]

DEFAULT_TYPES: tuple[pa.DataType, ...] = (
    pa.int64(), pa.int32(), pa.float64(), pa.string(), pa.date32(), pa.bool_(),
    pa.timestamp("us", tz="UTC"), pa.binary(), pa.decimal128(9, 2),
)
COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=")
_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)

column_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


def values_for(typ: pa.DataType, *, allow_nan: bool = False) -> st.SearchStrategy[Any]:
    """Non-null Python values of ``typ`` from a small domain (so that values repeat)."""
    if pa.types.is_boolean(typ):
        return st.booleans()
    if pa.types.is_integer(typ):
        low = 0 if pa.types.is_unsigned_integer(typ) else -5
        return st.integers(low, 5)
    if pa.types.is_floating(typ):
        finite = st.sampled_from([-2.5, -1.0, -0.0, 0.0, 0.5, 1.0, 2.0, 3.25])
        return st.one_of(finite, st.just(float("nan"))) if allow_nan else finite
    if pa.types.is_decimal(typ):
        return st.integers(-500, 500).map(lambda i: decimal.Decimal(i).scaleb(-2))
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return st.text(alphabet="abcé", max_size=2)
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        return st.binary(max_size=2)
    if pa.types.is_date(typ):
        return st.integers(0, 8).map(lambda d: dt.date(2024, 1, 1) + dt.timedelta(days=d))
    if pa.types.is_timestamp(typ):
        when = st.integers(0, 8).map(lambda h: _EPOCH + dt.timedelta(hours=h))
        return when if typ.tz else when.map(lambda t: t.replace(tzinfo=None))
    raise NotImplementedError(f"no strategy for {typ}")


def arrow_arrays(typ: pa.DataType, *, min_size: int = 0, max_size: int = 20, nullable: bool = True,
                 allow_nan: bool = False) -> st.SearchStrategy[pa.Array]:
    """Arrays of ``typ``; some elements are null when ``nullable``."""
    element = values_for(typ, allow_nan=allow_nan)
    if nullable:
        element = st.one_of(st.none(), element)
    return st.lists(element, min_size=min_size, max_size=max_size).map(lambda v: pa.array(v, type=typ))


@st.composite
def arrow_schemas(draw: st.DrawFn, *, types: Sequence[pa.DataType] = DEFAULT_TYPES, min_columns: int = 1,
                  max_columns: int = 5) -> pa.Schema:
    """Schemas with distinct column names and types drawn from ``types``."""
    names = draw(st.lists(column_names, min_size=min_columns, max_size=max_columns, unique=True))
    return pa.schema([(name, draw(st.sampled_from(list(types)))) for name in names])


@st.composite
def arrow_tables(draw: st.DrawFn, schema: pa.Schema | None = None, *, min_rows: int = 0, max_rows: int = 20,
                 nullable: bool = True, allow_nan: bool = False) -> pa.Table:
    """Tables of ``schema`` (a random one if None)."""
    if schema is None:
        schema = draw(arrow_schemas())
    rows = draw(st.integers(min_rows, max_rows))
    columns = [draw(arrow_arrays(f.type, min_size=rows, max_size=rows, nullable=nullable and f.nullable,
                                 allow_nan=allow_nan)) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _orderable(typ: pa.DataType) -> bool:
    return not pa.types.is_boolean(typ)


@st.composite
def _leaf(draw: st.DrawFn, schema: pa.Schema, allow_nan: bool) -> pc.Expression:
    field = draw(st.sampled_from(list(schema)))
    ref = pc.field(field.name)
    kind = draw(st.sampled_from(["compare", "compare", "compare", "isin", "null"]))
    values = values_for(field.type, allow_nan=allow_nan)
    if kind == "null":
        return ref.is_null() if draw(st.booleans()) else ref.is_valid()
    if kind == "isin":
        value_set = draw(st.lists(st.one_of(st.none(), values), max_size=4))
        return pc.is_in(ref, value_set=pa.array(value_set, type=field.type), skip_nulls=draw(st.booleans()))
    ops = COMPARISON_OPS if _orderable(field.type) else ("=", "!=")
    op = {"=": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal", ">": "greater",
          ">=": "greater_equal"}[draw(st.sampled_from(ops))]
    literal = pc.scalar(pa.scalar(draw(values), type=field.type))
    args = [literal, ref] if draw(st.booleans()) else [ref, literal]
    return pc.Expression._call(op, args)


@st.composite
def row_filters(draw: st.DrawFn, schema: pa.Schema, *, max_depth: int = 3,
                allow_nan: bool = False) -> pc.Expression:
    """Random boolean expressions over ``schema``: comparisons (either operand order), is_in,
    is_null/is_valid, combined with and/or/not."""
    if max_depth <= 0 or draw(st.integers(0, 2)) == 0:
        return draw(_leaf(schema, allow_nan))
    kind = draw(st.sampled_from(["and", "or", "not"]))
    left = draw(row_filters(schema, max_depth=max_depth - 1, allow_nan=allow_nan))
    if kind == "not":
        return ~left
    right = draw(row_filters(schema, max_depth=max_depth - 1, allow_nan=allow_nan))
    return left & right if kind == "and" else left | right


@st.composite
def predicates(draw: st.DrawFn, schema: pa.Schema) -> tuple[Any, ...]:
    """One DNF ``(column, op, value)`` tuple with a value of the column's type."""
    field = draw(st.sampled_from(list(schema)))
    values = values_for(field.type)
    kind = draw(st.sampled_from(["compare", "compare", "in", "null"]))
    if kind == "null":
        return (field.name, draw(st.sampled_from(["is null", "is not null"])), None)
    if kind == "in":
        return (field.name, draw(st.sampled_from(["in", "not in"])), draw(st.lists(values, max_size=3)))
    ops = COMPARISON_OPS if _orderable(field.type) else ("=", "!=")
    return (field.name, draw(st.sampled_from(ops)), draw(values))


def dnf_filters(schema: pa.Schema) -> st.SearchStrategy[list[Any]]:
    """DNF filters: a list of tuples (AND) or a list of lists of tuples (OR of ANDs)."""
    conjunction = st.lists(predicates(schema), min_size=1, max_size=3)
    return st.one_of(conjunction, st.lists(conjunction, min_size=1, max_size=3))

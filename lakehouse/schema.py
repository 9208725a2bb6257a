"""Schemas: accepting Arrow-shaped data, conforming it to a table schema, and the typed value codec.

The *typed value codec* turns Arrow values into msgpack-native values for the log and back,
losslessly: integers, floats, booleans, strings and bytes as themselves; dates, times, timestamps
and durations as their integer storage value; decimals as their string.

Example:
    >>> import pyarrow as pa
    >>> arr = pa.array([1, None], pa.timestamp("ns"))
    >>> encode_values(arr)
    [1, None]
    >>> decode_values([1, None], pa.timestamp("ns")).equals(arr)
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.types as pat

from .errors import InvalidDataError, InvalidTableError, SchemaMismatchError

__all__ = [
    "check_partition_columns",
    "conform_batch",
    "decode_values",
    "encode_values",
    "has_stats",
    "physical_schema",
    "to_reader",
]


# -- the typed value codec -----------------------------------------------------------------------
def _temporal_storage(t: pa.DataType) -> pa.DataType | None:
    if pat.is_date32(t) or pat.is_time32(t):
        return pa.int32()
    if pat.is_date64(t) or pat.is_timestamp(t) or pat.is_time64(t) or pat.is_duration(t):
        return pa.int64()
    return None


def encode_values(arr: pa.Array) -> list[Any]:
    """Arrow values -> msgpack-native values (see the module docstring)."""
    storage = _temporal_storage(arr.type)
    if storage is not None:
        return arr.view(storage).to_pylist()
    if pat.is_decimal(arr.type):
        return [None if v is None else str(v) for v in arr.to_pylist()]
    return arr.to_pylist()


def decode_values(values: Sequence[Any], t: pa.DataType) -> pa.Array:
    """msgpack-native values -> an Arrow array of type ``t``; ``TypeError``/``ArrowInvalid`` if they don't fit."""
    storage = _temporal_storage(t)
    if storage is not None:
        return pa.array(values, storage).view(t)
    if pat.is_decimal(t):
        return pa.array([None if v is None else Decimal(v) for v in values], t)
    return pa.array(values, t)


def has_stats(t: pa.DataType) -> bool:
    """True for types whose min/max the log records (primitive, ordered).

    Example:
        >>> has_stats(pa.int32()), has_stats(pa.list_(pa.int32()))
        (True, False)
    """
    return bool(
        pat.is_integer(t) or (pat.is_floating(t) and not pat.is_float16(t)) or pat.is_boolean(t)
        or pat.is_string(t) or pat.is_large_string(t) or pat.is_binary(t) or pat.is_large_binary(t)
        or (pat.is_temporal(t) and not pat.is_interval(t)) or pat.is_decimal(t)
    )


def check_partition_columns(schema: pa.Schema, partition_by: Sequence[str]) -> tuple[str, ...]:
    """Validate partition columns against ``schema``; ``InvalidTableError`` names the bad one.

    Example:
        >>> check_partition_columns(pa.schema([("a", pa.int32()), ("b", pa.string())]), ["a"])
        ('a',)
    """
    if isinstance(partition_by, str):
        partition_by = [partition_by]
    parts = tuple(partition_by)
    if len(set(parts)) != len(parts):
        raise InvalidTableError(f"partition columns repeat: {list(parts)}")
    for name in parts:
        if name not in schema.names:
            raise InvalidTableError(f"partition column {name!r} is not in the schema {schema.names}")
        t = schema.field(name).type
        if not has_stats(t) or pat.is_floating(t) or pat.is_duration(t) or pat.is_time(t):
            raise InvalidTableError(f"partition column {name!r} has type {t}, which cannot partition a table")
    if len(parts) >= len(schema):
        raise InvalidTableError("at least one column must not be a partition column")
    if len(set(schema.names)) != len(schema.names):
        raise InvalidTableError(f"the schema repeats column names: {schema.names}")
    return parts


def physical_schema(schema: pa.Schema, partition_by: Sequence[str]) -> pa.Schema:
    """The schema of the Parquet data files: the table schema without partition columns."""
    keep = [f for f in schema if f.name not in partition_by]
    return pa.schema(keep, metadata=schema.metadata)


# -- accepting data ------------------------------------------------------------------------------
def to_reader(data: Any) -> pa.RecordBatchReader:
    """Any Arrow-shaped data as a ``RecordBatchReader`` (streams stay streams).

    Example:
        >>> to_reader(pa.table({"a": [1]})).read_all().num_rows
        1
    """
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.Table):
        return data.to_reader()
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatchReader.from_batches(data.schema, [data])
    if hasattr(data, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(data)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        raise InvalidDataError(
            f"cannot write {type(data).__name__}: pass a pyarrow Table, RecordBatch or RecordBatchReader"
        )
    raise InvalidDataError(f"cannot write {type(data).__name__}: it is not Arrow-shaped data")


_SAME_REPRESENTATION = (
    (pat.is_string, pat.is_large_string), (pat.is_binary, pat.is_large_binary),
)


def _compatible(src: pa.DataType, dst: pa.DataType) -> bool:
    """True if values of ``src`` are exactly representable as ``dst`` with no change of meaning."""
    if src.equals(dst) or pat.is_null(src):
        return True
    if pat.is_dictionary(src):
        return _compatible(src.value_type, dst)
    for group in _SAME_REPRESENTATION:
        if any(p(src) for p in group) and any(p(dst) for p in group):
            return True
    if pat.is_string_view(src) and (pat.is_string(dst) or pat.is_large_string(dst)):
        return True
    if (pat.is_list(src) or pat.is_large_list(src)) and (pat.is_list(dst) or pat.is_large_list(dst)):
        return _compatible(src.value_type, dst.value_type)
    if pat.is_struct(src) and pat.is_struct(dst) and src.num_fields == dst.num_fields:
        return all(
            src.field(i).name == dst.field(i).name and _compatible(src.field(i).type, dst.field(i).type)
            for i in range(src.num_fields)
        )
    return False


def conform_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast ``batch`` to ``schema`` (column order and compatible representations).

    Raises ``SchemaMismatchError`` naming the column for a missing, extra, retyped or
    null-carrying non-nullable column.
    """
    if batch.schema.equals(schema, check_metadata=False):
        return batch
    names = batch.schema.names
    for name in names:
        if name not in schema.names:
            raise SchemaMismatchError(f"column {name!r} is not in the table schema {schema.names}", column=name)
    if len(set(names)) != len(names):
        raise SchemaMismatchError(f"the data repeats column names: {names}")
    columns = []
    for field in schema:
        if field.name not in names:
            raise SchemaMismatchError(f"column {field.name!r} ({field.type}) is missing from the data",
                                      column=field.name)
        col = batch.column(field.name)
        if not _compatible(col.type, field.type):
            raise SchemaMismatchError(
                f"column {field.name!r} has type {col.type} but the table has {field.type}", column=field.name
            )
        if not col.type.equals(field.type):
            col = col.cast(field.type)
        if not field.nullable and col.null_count:
            raise SchemaMismatchError(f"column {field.name!r} is not nullable but has {col.null_count} nulls",
                                      column=field.name)
        columns.append(col)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def conformed_batches(reader: pa.RecordBatchReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Yield the non-empty batches of ``reader`` conformed to ``schema`` (see :func:`conform_batch`)."""
    conform_batch(pa.RecordBatch.from_pylist([], schema=reader.schema), schema)  # fail before any write
    for batch in reader:
        if batch.num_rows:
            yield conform_batch(batch, schema)

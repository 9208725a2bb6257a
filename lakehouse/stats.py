"""Per-file column statistics, read from the Parquet footer pyarrow just wrote (never a data scan).

Example:
    >>> import io, pyarrow as pa, pyarrow.parquet as pq
    >>> buf = io.BytesIO()
    >>> w = pq.ParquetWriter(buf, pa.schema([("a", pa.int64())]))
    >>> w.write_table(pa.table({"a": [3, None, 1]})); w.close()
    >>> file_stats(w.writer.metadata, pa.schema([("a", pa.int64())]))
    ({'a': 1}, {'a': 3}, {'a': 1})
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.types as pat

from .schema import has_stats, physical_name

__all__ = ["file_stats", "partition_columns", "stats_columns"]

_UNIT_FACTOR = {"s": 1000}  # Parquet has no seconds: pyarrow stores them as milliseconds


def stats_columns(schema: pa.Schema, partition_by: Sequence[str]) -> list[str]:
    """Physical names of the data columns whose min/max the log records.

    Args:
        schema: the table schema.
        partition_by: the partition columns (they have no statistics).

    Returns:
        The keys of an add action's statistics, the ``<c>`` of the files table's ``min.<c>`` columns.

    Example:
        >>> stats_columns(pa.schema([("a", pa.int64()), ("p", pa.int32())]), ["p"])
        ['a']
    """
    return [physical_name(f) for f in schema if f.name not in partition_by and has_stats(f.type)]


def partition_columns(schema: pa.Schema, partition_by: Sequence[str]) -> list[str]:
    """Physical names of the partition columns, in partition order (the ``<p>`` of ``partition.<p>``).

    Args:
        schema: the table schema.
        partition_by: the partition columns (table names).

    Returns:
        Their physical names.

    Example:
        >>> s = pa.schema([("a", pa.int64()), pa.field("q", pa.int32(), metadata={"lakehouse:physical": "p"})])
        >>> partition_columns(s, ["q"])
        ['p']
    """
    return [physical_name(schema.field(c)) for c in partition_by]


def _raw_to_storage(raw: int, t: pa.DataType, *, upper: bool) -> int:
    """Parquet's physical temporal value -> the Arrow storage integer of ``t``."""
    if pat.is_date64(t):
        return raw * 86_400_000
    unit = getattr(t, "unit", None)
    factor = _UNIT_FACTOR.get(unit or "", 1)
    if factor == 1:
        return raw
    return -((-raw) // factor) if upper else raw // factor


def _typed(stat: Any, t: pa.DataType, *, upper: bool) -> Any:
    """One row group's min (``upper=False``) or max as a comparable value of the log encoding."""
    if pat.is_temporal(t):
        raw = stat.max_raw if upper else stat.min_raw
        return _raw_to_storage(int(raw), t, upper=upper)
    value = stat.max if upper else stat.min
    if isinstance(value, float) and math.isnan(value):
        return None
    if pat.is_decimal(t):
        return Decimal(value)
    return value


def _column_index(md: pq.FileMetaData, names: Sequence[str]) -> dict[str, int]:
    if md.num_row_groups == 0:
        return {}
    rg = md.row_group(0)
    wanted = set(names)
    return {rg.column(j).path_in_schema: j for j in range(rg.num_columns) if rg.column(j).path_in_schema in wanted}


def file_stats(
    md: pq.FileMetaData, schema: pa.Schema
) -> tuple[dict[str, Any], dict[str, Any], dict[str, int | None]]:
    """``(min, max, null_count)`` per stats column of one Parquet file, log-encoded.

    Args:
        md: the file's Parquet footer.
        schema: the file's schema (physical names).

    Returns:
        Three maps column -> value, None where unknown (a row group without statistics, a NaN).

    Example:
        >>> import io, pyarrow.parquet as pq
        >>> buf = io.BytesIO()
        >>> w = pq.ParquetWriter(buf, pa.schema([("a", pa.int64())]))
        >>> w.write_table(pa.table({"a": [3, None, 1]})); w.close()
        >>> file_stats(w.writer.metadata, pa.schema([("a", pa.int64())]))
        ({'a': 1}, {'a': 3}, {'a': 1})
    """
    names = [f.name for f in schema if has_stats(f.type)]
    index = _column_index(md, names)
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int | None] = {}
    for name in names:
        t = schema.field(name).type
        lo, hi, nc = _combine(md, index.get(name), t)
        mins[name] = str(lo) if isinstance(lo, Decimal) else lo
        maxs[name] = str(hi) if isinstance(hi, Decimal) else hi
        nulls[name] = nc
    return mins, maxs, nulls


def _combine(md: pq.FileMetaData, j: int | None, t: pa.DataType) -> tuple[Any, Any, int | None]:
    if j is None:
        return None, None, None
    lo = hi = None
    nulls: int | None = 0
    bounded = True
    for i in range(md.num_row_groups):
        col = md.row_group(i).column(j)
        st = col.statistics
        if st is None:
            return None, None, None
        nulls = nulls + st.null_count if nulls is not None and st.has_null_count else None
        if st.has_min_max:
            a, b = _typed(st, t, upper=False), _typed(st, t, upper=True)
            if a is None or b is None:
                bounded = False
                continue
            lo = a if lo is None or a < lo else lo
            hi = b if hi is None or b > hi else hi
        elif st.null_count != col.num_values:
            bounded = False  # values without bounds
    if not bounded:
        return None, None, nulls
    return lo, hi, nulls

"""Polars: a snapshot as a lazy ``polars.LazyFrame`` over its pyarrow dataset (the ``polars`` extra).

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> from lakehouse.integrations.polars import to_polars
    >>> s = lh.write_table("memory://doc-int-polars", pa.table({"a": [1, 2]})).snapshot()
    >>> to_polars(s).collect()["a"].to_list()  # doctest: +SKIP
    [1, 2]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from . import ArrowSource, require

__all__ = ["to_polars"]


def to_polars(snapshot: ArrowSource) -> Any:
    """A lazy ``polars.LazyFrame`` over :meth:`lakehouse.Snapshot.to_pyarrow_dataset`.

    Polars pushes its filters and column selection into the scan, which skips whole files, except
    on a table with a timestamp column in a time zone other than UTC: Polars turns a comparison with
    a zoned datetime into a pyarrow filter that is wrong there (rows lost around DST changes), so on
    such a table Polars filters the rows itself, after the scan.

    Args:
        snapshot: the pinned version to read.

    Returns:
        A ``polars.LazyFrame``; nothing is read until it is collected.

    Raises:
        ImportError: polars is not installed.
        SchemaMismatchError: a column was renamed (see :meth:`lakehouse.Snapshot.to_pyarrow_dataset`).

    Example:
        >>> import lakehouse as lh, pyarrow as pa, polars as pl  # doctest: +SKIP
        >>> s = lh.write_table("memory://doc-int-polars2", pa.table({"a": [1, 2]})).snapshot()  # doctest: +SKIP
        >>> to_polars(s).filter(pl.col("a") > 1).collect()["a"].to_list()  # doctest: +SKIP
        [2]
    """
    pl = require("polars")
    zoned = any(pa.types.is_timestamp(t) and t.tz not in (None, "UTC", "Etc/UTC", "+00:00")
                for t in _leaf_types(snapshot.schema))
    return pl.scan_pyarrow_dataset(snapshot.to_pyarrow_dataset(), allow_pyarrow_filter=not zoned)


def _leaf_types(schema: pa.Schema) -> Iterator[pa.DataType]:
    """Every type in ``schema``, nested ones included."""
    stack = [f.type for f in schema]
    while stack:
        t = stack.pop()
        yield t
        stack.extend(t.field(i).type for i in range(t.num_fields))

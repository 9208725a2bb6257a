"""DuckDB: a snapshot registered, lazily, as a view in a DuckDB connection (the ``duckdb`` extra).

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> from lakehouse.integrations.duckdb import to_duckdb
    >>> s = lh.write_table("memory://doc-int-duckdb", pa.table({"a": [1, 2]})).snapshot()
    >>> to_duckdb(s, "t").sql("select sum(a) from t").fetchall()  # doctest: +SKIP
    [(3,)]
"""

from __future__ import annotations

from typing import Any

from lakehouse.arguments import check_str
from lakehouse.errors import InvalidArgumentError

from . import ArrowSource, require

__all__ = ["to_duckdb"]


def to_duckdb(snapshot: ArrowSource, name: str, connection: Any = None) -> Any:
    """Register :meth:`lakehouse.Snapshot.to_pyarrow_dataset` (lazy: nothing is read now) as the
    view ``name`` in ``connection``; DuckDB pushes its filters and projections into the scan.

    Args:
        snapshot: the pinned version to register.
        name: the view's name.
        connection: a DuckDB connection (None: a new in-memory one).

    Returns:
        The connection.

    Raises:
        ImportError: duckdb is not installed.
        ArgumentTypeError: ``name`` is not a string.
        InvalidArgumentError: DuckDB refuses the view name.
        SchemaMismatchError: a column was renamed (see :meth:`lakehouse.Snapshot.to_pyarrow_dataset`).

    Example:
        >>> import lakehouse as lh, pyarrow as pa  # doctest: +SKIP
        >>> s = lh.write_table("memory://doc-int-duckdb2", pa.table({"a": [1, 2]})).snapshot()  # doctest: +SKIP
        >>> to_duckdb(s, "events").sql("select count(*) from events").fetchall()  # doctest: +SKIP
        [(2,)]
    """
    duckdb = require("duckdb")
    con = duckdb.connect() if connection is None else connection
    try:
        con.register(check_str(name, "name"), snapshot.to_pyarrow_dataset())
    except duckdb.Error as exc:
        raise InvalidArgumentError(f"DuckDB refuses the view name {name!r}: {exc}", argument="name") from exc
    return con

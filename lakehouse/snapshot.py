"""Snapshots: an immutable view of a table pinned to one version.

A ``Snapshot`` is a table state (loaded by :mod:`lakehouse.replay`) and its storage; its public
verbs check their arguments and delegate the read to :mod:`lakehouse.scan`, and the engine adapters
(pandas, Polars, DuckDB) to :mod:`lakehouse.integrations`.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-snapshot", pa.table({"a": [1, 2]}))
    >>> s = t.snapshot()
    >>> s.version, s.to_arrow().num_rows
    (0, 2)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .arguments import check_str
from .clock import from_ms
from .errors import InvalidTableError
from .expr.dnf import FilterLike
from .replay import load_state
from .scan import FileTask, Scan
from .schema import field_id, is_legacy, logical_schema
from .state import TableState
from .storage import Storage

__all__ = ["Snapshot", "check_table_id"]


class Snapshot:
    """An immutable view of a table at one version. Reading it never sees later commits.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-snap2", pa.table({"a": [1, 2, 3]}))
        >>> t.snapshot().to_arrow(filter=[("a", ">", 1)]).num_rows
        2
    """

    __slots__ = ("_scan", "_state", "_storage")

    def __init__(self, storage: Storage, state: TableState) -> None:
        self._storage = storage
        self._state = state
        self._scan = Scan(storage, state)

    # -- identity ------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The version this snapshot is pinned to."""
        return self._state.version

    @property
    def timestamp(self) -> dt.datetime:
        """When this version was committed (aware, UTC)."""
        return from_ms(self._state.timestamp)

    @property
    def schema(self) -> pa.Schema:
        """The table schema at this version (without the column-mapping metadata, see :attr:`field_ids`)."""
        return logical_schema(self._state.metadata.schema)

    @property
    def field_ids(self) -> dict[str, int]:
        """The stable id of every top-level column (empty for a table written before ids existed).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> lh.write_table("memory://doc-ids", pa.table({"a": [1], "b": ["x"]})).snapshot().field_ids
            {'a': 1, 'b': 2}
        """
        schema = self._state.metadata.schema
        if is_legacy(schema):  # ids such a schema carries are not lakehouse's (format.md §5.7)
            return {}
        return {f.name: i for f in schema if (i := field_id(f)) is not None}

    @property
    def partition_by(self) -> list[str]:
        """The partition columns."""
        return list(self._state.metadata.partition_by)

    @property
    def properties(self) -> dict[str, str]:
        """The table properties at this version."""
        return dict(self._state.metadata.properties)

    @property
    def uri(self) -> str:
        """Where the table lives."""
        return self._storage.uri

    @property
    def state(self) -> TableState:
        """The underlying immutable state (metadata, protocol, files table)."""
        return self._state

    def app_version(self, app_id: str) -> int | None:
        """The highest version recorded for the idempotent writer ``app_id`` at this snapshot.

        Args:
            app_id: the idempotent writer's id (the first item of ``app_transaction``).

        Returns:
            The highest version that writer recorded at this snapshot, or None if none.

        Raises:
            ArgumentTypeError: ``app_id`` is not a string.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-snap-app", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]}), app_transaction=("etl", 3))
            >>> t.snapshot().app_version("etl"), t.snapshot(version=0).app_version("etl")
            (3, None)
        """
        return self._state.app_version(check_str(app_id, "app_id", empty=True))

    def __repr__(self) -> str:
        return f"Snapshot(uri={self._storage.display_uri!r}, version={self.version})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self._storage.uri, self.version, dict(self._storage.storage_options),
                          self._state.metadata.table_id))

    # -- reading -------------------------------------------------------------------------------
    def files(self, *, filter: FilterLike | pc.Expression | None = None) -> pa.Table:
        """One row per live data file that may hold rows matching ``filter``.

        Columns: ``path`` (relative to the table root), ``size_bytes``, ``num_rows`` (physical),
        ``modification_time``, ``partition.<c>``, and ``min.<c>``/``max.<c>``/``null_count.<c>``
        (``<c>`` the column's current name), then ``num_deleted_rows`` (rows the file's deletion vector
        deletes, 0 without one) and ``deletion_vector_inline``/``_path``/``_offset``/``_size`` (where
        the vector is; format.md §8).

        Args:
            filter: keep only the files that may hold matching rows (by partition values and
                statistics); same forms as for :meth:`to_arrow`.

        Returns:
            One row per live data file (the columns above).

        Raises:
            ColumnNotFoundError: ``filter`` names a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-files", pa.table({"a": [1, 2], "p": [1, 2]}), partition_by=["p"])
            >>> t.snapshot().files(filter=[("p", "=", 1)]).num_rows
            1
        """
        scan = self._scan
        return scan.logical_files(scan.pruned(scan.expression(filter)))

    def to_pyarrow_dataset(self, *, filter: FilterLike | pc.Expression | None = None) -> ds.Dataset:
        """A lazy ``pyarrow.dataset.Dataset`` of this version's files (pruned by ``filter`` if given).

        A dataset reads the data files by column name, so after a column was renamed (or a dropped
        name re-added) it cannot show the table's columns: ``SchemaMismatchError`` naming the column
        (read with :meth:`to_batches` instead). Rows deleted by deletion vectors never come out of it,
        whoever scans it (its own methods, ``Scanner.from_dataset``, unions, Acero, its fragments):
        the files kept that carry a vector are read into memory now, live rows only
        (docs/ecosystem.md); ``optimize()`` folds vectors away.

        Args:
            filter: rows to keep: DNF tuples (``[("a", "<", 2)]``), SQL-like text (``"a < 2"``, the
                ``sql`` extra) or a ``pyarrow.compute.Expression``; files that cannot match are not read.

        Returns:
            A ``pyarrow.dataset.Dataset`` over the live files, with the partition columns.

        Raises:
            ColumnNotFoundError: ``filter`` names a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.
            SchemaMismatchError: a column was renamed, so the files cannot show the table's columns by name.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-ds", pa.table({"a": [1, 2]}))
            >>> t.snapshot().to_pyarrow_dataset().count_rows()
            2
        """
        return self._scan.pyarrow_dataset(self._scan.expression(filter))

    def plan_files(self, *, filter: FilterLike | pc.Expression | None = None,
                   columns: Sequence[str] | None = None) -> list[FileTask]:
        """Plan a read as one picklable :class:`~lakehouse.FileTask` per data file pruning keeps.

        Pruning is the same as :meth:`to_arrow`'s (partition values and statistics); concatenating
        :func:`lakehouse.read_task` over the tasks gives the rows of ``to_arrow(columns=, filter=)``.

        Args:
            filter: rows to keep: DNF tuples (``[("a", "<", 2)]``), SQL-like text (``"a < 2"``, the
                ``sql`` extra) or a ``pyarrow.compute.Expression``; files that cannot match are not read.
            columns: the columns to read (all if None), in this order.

        Returns:
            One :class:`~lakehouse.FileTask` per data file that may hold matching rows.

        Raises:
            ColumnNotFoundError: ``columns`` or ``filter`` name a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-plan", pa.table({"a": [1, 2], "p": [1, 2]}), partition_by=["p"])
            >>> [task.partition_values for task in t.snapshot().plan_files(filter=[("p", ">", 1)])]
            [{'p': 2}]
        """
        scan = self._scan
        cols = scan.check_columns(columns)
        return scan.tasks(cols, scan.expression(filter))

    def to_arrow(
        self, *, columns: Sequence[str] | None = None, filter: FilterLike | pc.Expression | None = None
    ) -> pa.Table:
        """Read this version into a ``pyarrow.Table``: rows where ``filter`` is true, ``columns`` only.

        Args:
            columns: the columns to read (all if None), in this order.
            filter: rows to keep: DNF tuples (``[("a", "<", 2)]``), SQL-like text (``"a < 2"``, the
                ``sql`` extra) or a ``pyarrow.compute.Expression``; files that cannot match are not read.

        Returns:
            The rows, with the partition columns, in the table schema.

        Raises:
            ColumnNotFoundError: ``columns`` or ``filter`` name a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-arrow", pa.table({"a": [1, 2], "b": ["x", "y"]}))
            >>> t.snapshot().to_arrow(columns=["b"], filter=[("a", "=", 2)]).to_pylist()
            [{'b': 'y'}]
        """
        scan = self._scan
        cols = scan.check_columns(columns)
        return scan.to_table(cols, scan.expression(filter))

    def to_batches(
        self, *, columns: Sequence[str] | None = None, filter: FilterLike | pc.Expression | None = None
    ) -> pa.RecordBatchReader:
        """Stream this version as a ``pyarrow.RecordBatchReader`` (nothing is read up front).

        Args:
            columns: the columns to read (all if None), in this order.
            filter: rows to keep: DNF tuples (``[("a", "<", 2)]``), SQL-like text (``"a < 2"``, the
                ``sql`` extra) or a ``pyarrow.compute.Expression``; files that cannot match are not read.

        Returns:
            A ``pyarrow.RecordBatchReader`` reading one file at a time.

        Raises:
            ColumnNotFoundError: ``columns`` or ``filter`` name a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-batches", pa.table({"a": [1, 2]}))
            >>> t.snapshot().to_batches().read_all().num_rows
            2
        """
        scan = self._scan
        cols = scan.check_columns(columns)
        return scan.to_batches(cols, scan.expression(filter))

    # -- ecosystem: the Arrow C stream interface, pandas, polars, duckdb --------------------------
    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """A fresh Arrow C stream of this version's rows on every call (the Arrow PyCapsule interface),
        so ``polars.DataFrame(snapshot)``, ``pa.table(snapshot)`` and DuckDB read it directly.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-snap-stream", pa.table({"a": [1, 2]})).snapshot()
            >>> pa.table(s).num_rows, pa.table(s).num_rows
            (2, 2)
        """
        return self.to_batches().__arrow_c_stream__(requested_schema)

    def to_pandas(self, *, columns: Sequence[str] | None = None,
                  filter: FilterLike | pc.Expression | None = None) -> Any:
        """Read into a pandas DataFrame (needs the ``pandas`` extra); ``columns`` and ``filter`` as :meth:`to_arrow`.

        Args:
            columns: the columns to read (all if None), in this order.
            filter: rows to keep: DNF tuples (``[("a", "<", 2)]``), SQL-like text (``"a < 2"``, the
                ``sql`` extra) or a ``pyarrow.compute.Expression``; files that cannot match are not read.

        Returns:
            A ``pandas.DataFrame``.

        Raises:
            ImportError: pandas is not installed.
            ColumnNotFoundError: ``columns`` or ``filter`` name a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-snap-pandas", pa.table({"a": [1, 2]}))
            >>> t.snapshot().to_pandas(filter=[("a", ">", 1)])["a"].tolist()  # doctest: +SKIP
            [2]
        """
        from .integrations.pandas import to_pandas

        return to_pandas(self, columns=columns, filter=filter)

    def to_polars(self) -> Any:
        """A lazy ``polars.LazyFrame`` over :meth:`to_pyarrow_dataset` (needs the ``polars`` extra):
        polars pushes its filters and column selection into the scan, which skips whole files
        (except on a table with a timestamp column in a time zone other than UTC, where Polars'
        pushed filter would be wrong: there Polars filters the rows after the scan).

        Returns:
            A ``polars.LazyFrame``; nothing is read until it is collected.

        Raises:
            ImportError: polars is not installed.

        Example:
            >>> import lakehouse as lh, pyarrow as pa, polars as pl  # doctest: +SKIP
            >>> t = lh.write_table("memory://doc-snap-polars", pa.table({"a": [1, 2]}))  # doctest: +SKIP
            >>> t.snapshot().to_polars().filter(pl.col("a") > 1).collect()["a"].to_list()  # doctest: +SKIP
            [2]
        """
        from .integrations.polars import to_polars

        return to_polars(self)

    def to_duckdb(self, name: str, connection: Any = None) -> Any:
        """Register :meth:`to_pyarrow_dataset` (lazy: nothing is read now) as the view ``name`` in
        ``connection`` (a new in-memory DuckDB connection if None) and return the connection
        (needs the ``duckdb`` extra). DuckDB pushes its filters and projections into the scan.

        Args:
            name: the view name in DuckDB.
            connection: a ``duckdb.DuckDBPyConnection`` (a new in-memory one if None).

        Returns:
            The connection, with ``name`` registered.

        Raises:
            ImportError: duckdb is not installed.

        Example:
            >>> import lakehouse as lh, pyarrow as pa  # doctest: +SKIP
            >>> t = lh.write_table("memory://doc-snap-duckdb", pa.table({"a": [1, 2]}))  # doctest: +SKIP
            >>> t.snapshot().to_duckdb("events").sql("select sum(a) from events").fetchall()  # doctest: +SKIP
            [(3,)]
        """
        from .integrations.duckdb import to_duckdb

        return to_duckdb(self, name, connection)


def _reopen(uri: str, version: int, storage_options: Mapping[str, Any], table_id: str | None = None) -> Snapshot:
    storage = Storage.from_uri(uri, storage_options)
    return Snapshot(storage, check_table_id(storage, load_state(storage, version), table_id))


def check_table_id(storage: Storage, state: TableState, table_id: str | None) -> TableState:
    """``state`` if its table is the one with id ``table_id`` (None: any), for a handle reopened
    from a pickle: the URI may now hold another table (deleted and created again, or another
    folder reached through a changed working directory).

    Args:
        storage: where ``state`` was read.
        state: the state read there.
        table_id: the table id the pickled handle had.

    Returns:
        ``state``.

    Raises:
        InvalidTableError: the table there has another id.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-check-id", pa.table({"a": [1]}))
        >>> state, storage = t.snapshot().state, Storage.from_uri("memory://doc-check-id")
        >>> check_table_id(storage, state, state.metadata.table_id) is state
        True
        >>> check_table_id(storage, state, "another-id")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        lakehouse.errors.InvalidTableError: the table at ... is not the table this handle was pickled from ...
    """
    found = state.metadata.table_id
    if table_id is not None and found != table_id:
        raise InvalidTableError(
            f"the table at {storage.display_uri!r} (id {found!r}) is not the table this handle was "
            f"pickled from (id {table_id!r}); open it again to use the table there")
    return state

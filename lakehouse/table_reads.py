"""The read verbs of :class:`~lakehouse.Table`, which it inherits from :class:`TableReads`.

Each reads a :class:`~lakehouse.Snapshot` of the table (the handle's version, or ``version`` /
``as_of``) and delegates to it. They build on one method of the table, its public
:meth:`~lakehouse.Table.snapshot`, so this module needs nothing of ``table`` (no cycle) and nothing
private of it.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-table-reads", pa.table({"a": [1, 2]}))
    >>> isinstance(t, TableReads), t.to_arrow(filter=[("a", ">", 1)]).num_rows
    (True, 1)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from .expr.dnf import FilterLike
from .scan import FileTask

if TYPE_CHECKING:
    from .snapshot import Snapshot

__all__ = ["TableReads"]


class TableReads:
    """The read verbs of :class:`~lakehouse.Table`, on top of its :meth:`~lakehouse.Table.snapshot`.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-table-reads-class", pa.table({"a": [1, 2]}))
        >>> t.files().num_rows, len(t.plan_files())
        (1, 1)
    """

    if TYPE_CHECKING:
        def snapshot(self, version: int | None = None, as_of: dt.datetime | None = None) -> Snapshot: ...

    # -- reading ---------------------------------------------------------------------------------
    def to_arrow(self, *, columns: Sequence[str] | None = None, filter: FilterLike | pc.Expression | None = None,
                 version: int | None = None, as_of: dt.datetime | None = None) -> pa.Table:
        """Read rows of this handle's version (or of ``version`` / ``as_of``) into a ``pyarrow.Table``.

        Args:
            columns: the columns to read (all if None), in this order.
            filter: rows to keep: DNF tuples (``[("a", "<", 2)]``), SQL-like text (``"a < 2"``, the
                ``sql`` extra) or a ``pyarrow.compute.Expression``; files that cannot match are not read.
            version: read this version instead of the handle's.
            as_of: an aware datetime: read the newest version committed at or before it (not with
                ``version``).

        Returns:
            The rows, with the partition columns, in the table schema.

        Raises:
            ColumnNotFoundError: ``columns`` or ``filter`` name a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.
            VersionNotFoundError: ``version`` does not exist (any more), or nothing was committed at or
                before ``as_of``.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-to-arrow", pa.table({"a": [1, 2]}))
            >>> t.to_arrow(filter=[("a", "<", 2)]).num_rows
            1
        """
        return self.snapshot(version, as_of).to_arrow(columns=columns, filter=filter)

    def to_batches(self, *, columns: Sequence[str] | None = None, filter: FilterLike | pc.Expression | None = None,
                   version: int | None = None, as_of: dt.datetime | None = None) -> pa.RecordBatchReader:
        """Stream this handle's version (or ``version`` / ``as_of``); see :meth:`Snapshot.to_batches`.

        Args:
            columns: the columns to read (all if None), in this order.
            filter: rows to keep: DNF tuples (``[("a", "<", 2)]``), SQL-like text (``"a < 2"``, the
                ``sql`` extra) or a ``pyarrow.compute.Expression``; files that cannot match are not read.
            version: read this version instead of the handle's.
            as_of: an aware datetime: read the newest version committed at or before it (not with
                ``version``).

        Returns:
            A ``pyarrow.RecordBatchReader`` reading one file at a time.

        Raises:
            ColumnNotFoundError: ``columns`` or ``filter`` name a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.
            VersionNotFoundError: ``version`` does not exist (any more), or nothing was committed at or
                before ``as_of``.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-batches", pa.table({"a": [1, 2]}))
            >>> _ = t.append(pa.table({"a": [3]}))
            >>> t.to_batches(version=0).read_all().num_rows, t.to_batches().read_all().num_rows
            (2, 3)
        """
        return self.snapshot(version, as_of).to_batches(columns=columns, filter=filter)

    def to_pyarrow_dataset(self, *, filter: FilterLike | pc.Expression | None = None, version: int | None = None,
                           as_of: dt.datetime | None = None) -> Any:
        """A lazy ``pyarrow.dataset.Dataset`` of this handle's version (or ``version`` / ``as_of``);
        see :meth:`Snapshot.to_pyarrow_dataset`.

        Args:
            filter: rows to keep: DNF tuples (``[("a", "<", 2)]``), SQL-like text (``"a < 2"``, the
                ``sql`` extra) or a ``pyarrow.compute.Expression``; files that cannot match are not read.
            version: read this version instead of the handle's.
            as_of: an aware datetime: read the newest version committed at or before it (not with
                ``version``).

        Returns:
            A ``pyarrow.dataset.Dataset`` over the live files, with the partition columns.

        Raises:
            ColumnNotFoundError: ``columns`` or ``filter`` name a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.
            VersionNotFoundError: ``version`` does not exist (any more), or nothing was committed at or
                before ``as_of``.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-ds", pa.table({"a": [1, 2]}))
            >>> _ = t.append(pa.table({"a": [3]}))
            >>> t.to_pyarrow_dataset(version=0).count_rows()
            2
        """
        return self.snapshot(version, as_of).to_pyarrow_dataset(filter=filter)

    def files(self, *, filter: FilterLike | pc.Expression | None = None, version: int | None = None,
              as_of: dt.datetime | None = None) -> pa.Table:
        """The live data files of this handle's version (or ``version`` / ``as_of``); see :meth:`Snapshot.files`.

        Args:
            filter: keep only the files that may hold matching rows (by partition values and
                statistics); same forms as for :meth:`to_arrow`.
            version: read this version instead of the handle's.
            as_of: an aware datetime: read the newest version committed at or before it (not with
                ``version``).

        Returns:
            One row per live data file: ``path`` (relative to the table root), size, row count,
            partition values and statistics.

        Raises:
            ColumnNotFoundError: ``columns`` or ``filter`` name a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.
            VersionNotFoundError: ``version`` does not exist (any more), or nothing was committed at or
                before ``as_of``.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-files", pa.table({"a": [1, 2]}))
            >>> _ = t.append(pa.table({"a": [3]}))
            >>> t.files(version=0).num_rows, t.files().num_rows
            (1, 2)
        """
        return self.snapshot(version, as_of).files(filter=filter)

    def plan_files(self, *, filter: FilterLike | pc.Expression | None = None, columns: Sequence[str] | None = None,
                   version: int | None = None, as_of: dt.datetime | None = None) -> list[FileTask]:
        """One picklable read task per data file of this handle's version (or ``version`` / ``as_of``)
        that may hold matching rows; see :meth:`Snapshot.plan_files` and :func:`lakehouse.read_task`.

        Args:
            filter: rows to keep: DNF tuples (``[("a", "<", 2)]``), SQL-like text (``"a < 2"``, the
                ``sql`` extra) or a ``pyarrow.compute.Expression``; files that cannot match are not read.
            columns: the columns to read (all if None), in this order.
            version: read this version instead of the handle's.
            as_of: an aware datetime: read the newest version committed at or before it (not with
                ``version``).

        Returns:
            One :class:`~lakehouse.FileTask` per data file that may hold matching rows.

        Raises:
            ColumnNotFoundError: ``columns`` or ``filter`` name a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.
            VersionNotFoundError: ``version`` does not exist (any more), or nothing was committed at or
                before ``as_of``.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-plan", pa.table({"a": [1, 2]}))
            >>> _ = t.append(pa.table({"a": [3]}))
            >>> len(t.plan_files(version=0)), len(t.plan_files())
            (1, 2)
        """
        return self.snapshot(version, as_of).plan_files(filter=filter, columns=columns)

    # -- ecosystem: the Arrow C stream interface, pandas, polars, duckdb --------------------------
    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """A fresh Arrow C stream of this handle's version on every call (the Arrow PyCapsule
        interface): ``polars.DataFrame(t)``, ``pa.table(t)`` and ``duckdb.sql("select ... from t")`` read it.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-stream", pa.table({"a": [1, 2]}))
            >>> pa.table(t).num_rows
            2
        """
        return self.snapshot().__arrow_c_stream__(requested_schema)

    def to_pandas(self, *, columns: Sequence[str] | None = None, filter: FilterLike | pc.Expression | None = None,
                  version: int | None = None, as_of: dt.datetime | None = None) -> Any:
        """This handle's version (or ``version`` / ``as_of``) as a pandas DataFrame (needs the ``pandas`` extra).

        Args:
            columns: the columns to read (all if None), in this order.
            filter: rows to keep: DNF tuples (``[("a", "<", 2)]``), SQL-like text (``"a < 2"``, the
                ``sql`` extra) or a ``pyarrow.compute.Expression``; files that cannot match are not read.
            version: read this version instead of the handle's.
            as_of: an aware datetime: read the newest version committed at or before it (not with
                ``version``).

        Returns:
            A ``pandas.DataFrame``.

        Raises:
            ColumnNotFoundError: ``columns`` or ``filter`` name a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.
            VersionNotFoundError: ``version`` does not exist (any more), or nothing was committed at or
                before ``as_of``.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-pandas", pa.table({"a": [1, 2]}))
            >>> t.to_pandas(filter=[("a", ">", 1)])["a"].tolist()  # doctest: +SKIP
            [2]
        """
        return self.snapshot(version, as_of).to_pandas(columns=columns, filter=filter)

    def to_polars(self, *, version: int | None = None, as_of: dt.datetime | None = None) -> Any:
        """A lazy ``polars.LazyFrame`` of this handle's version (or ``version`` / ``as_of``); see
        :meth:`Snapshot.to_polars`.

        Args:
            version: read this version instead of the handle's.
            as_of: an aware datetime: read the newest version committed at or before it (not with
                ``version``).

        Returns:
            A ``polars.LazyFrame`` (the ``polars`` extra); nothing is read until it is collected.

        Raises:
            VersionNotFoundError: ``version`` does not exist (any more), or nothing was committed at or
                before ``as_of``.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa  # doctest: +SKIP
            >>> t = lh.write_table("memory://doc-table-polars", pa.table({"a": [1, 2]}))  # doctest: +SKIP
            >>> t.to_polars().select("a").collect()["a"].to_list()  # doctest: +SKIP
            [1, 2]
        """
        return self.snapshot(version, as_of).to_polars()

    def to_duckdb(self, name: str, connection: Any = None, *, version: int | None = None,
                  as_of: dt.datetime | None = None) -> Any:
        """Register this handle's version (or ``version`` / ``as_of``), lazily, as ``name`` in a DuckDB
        connection and return it; see :meth:`Snapshot.to_duckdb`.

        Args:
            name: the view name in DuckDB.
            connection: a ``duckdb.DuckDBPyConnection`` (a new in-memory one if None).
            version: read this version instead of the handle's.
            as_of: an aware datetime: read the newest version committed at or before it (not with
                ``version``).

        Returns:
            The connection, with ``name`` registered (the ``duckdb`` extra).

        Raises:
            VersionNotFoundError: ``version`` does not exist (any more), or nothing was committed at or
                before ``as_of``.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa  # doctest: +SKIP
            >>> t = lh.write_table("memory://doc-table-duckdb", pa.table({"a": [1, 2]}))  # doctest: +SKIP
            >>> t.to_duckdb("t").sql("select count(*) from t").fetchall()  # doctest: +SKIP
            [(2,)]
        """
        return self.snapshot(version, as_of).to_duckdb(name, connection)

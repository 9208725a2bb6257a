"""Dask integration: read a table as a dask DataFrame, write one in a single atomic commit.

The public path is :mod:`lakehouse.dask`, which re-exports :func:`read_dask` and :func:`to_lakehouse`.

Needs the ``dask`` extra (``pip install 'lakehouse-format[dask]'``); dask is imported only when one
of these functions is called. Reading plans on the driver (pruning by partition values and
statistics happens before anything is scheduled) and reads one partition per data file on the
workers with :func:`lakehouse.read_task`. Writing runs :func:`lakehouse.write_files` on the workers,
one call per partition, and commits every file from the driver with
:meth:`lakehouse.Table.commit_files`: readers see all of the write or none of it. See docs/dask.md.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> from lakehouse.dask import read_dask, to_lakehouse
    >>> _ = lh.write_table("/tmp/doc-dask", pa.table({"a": [1, 2]}), mode="overwrite")  # doctest: +SKIP
    >>> ddf = read_dask("/tmp/doc-dask", filter=[("a", ">", 1)])  # doctest: +SKIP
    >>> to_lakehouse(ddf, "/tmp/doc-dask", mode="append")  # doctest: +SKIP
    2
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pyarrow as pa

from lakehouse import (
    CommitStateUnknownError,
    DataFile,
    FileTask,
    InvalidArgumentError,
    Table,
    TableExistsError,
    TableNotFoundError,
    read_task,
)
from lakehouse import write_files as _write_files
from lakehouse.storage import Storage
from lakehouse.write import delete_files

__all__ = ["read_dask", "to_lakehouse"]


def _dask_dataframe() -> Any:
    try:
        import dask
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("lakehouse.dask needs dask: pip install 'lakehouse-format[dask]' "
                          "(or 'dask[dataframe,distributed]>=2024.1')") from exc
    return dask, dd


def _to_pandas(table: pa.Table) -> Any:
    import pandas as pd

    # Arrow-backed columns: nulls in integer columns stay nulls and every type round-trips exactly
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _read_partition(task: FileTask, storage_options: Mapping[str, Any] | None = None) -> Any:
    return _to_pandas(read_task(task, storage_options=storage_options))


def read_dask(uri: str | os.PathLike[str], *, version: int | None = None, as_of: dt.datetime | None = None,
              filter: Any = None, columns: Sequence[str] | None = None,
              storage_options: Mapping[str, Any] | None = None) -> Any:
    """A dask DataFrame of the table at ``uri`` (``version`` / ``as_of`` for time travel), one
    partition per data file that may hold rows matching ``filter``. Columns are pandas
    ``ArrowDtype`` columns; rows and types equal ``Table.to_arrow(columns=, filter=)``.

    Args:
        uri: a path or any fsspec URL of the table.
        version: read this version instead of the latest.
        as_of: an aware datetime: read the newest version committed at or before it (not with
            ``version``).
        filter: rows to keep: DNF tuples, SQL-like text or a ``pyarrow.compute.Expression``; files
            that cannot match are not read.
        columns: the columns to read (all if None), in this order.
        storage_options: options for the filesystem, passed to the workers too.

    Returns:
        A ``dask.dataframe.DataFrame``; nothing is read until it is computed.

    Raises:
        ImportError: dask is not installed.
        TableNotFoundError: no table at ``uri``.
        VersionNotFoundError: ``version`` does not exist, or nothing was committed at or before ``as_of``.
        ColumnNotFoundError: ``columns`` or ``filter`` name a column the table does not have.
        InvalidFilterError: ``filter`` cannot be understood.

    Example:
        >>> import lakehouse as lh, pyarrow as pa  # doctest: +SKIP
        >>> from lakehouse.dask import read_dask  # doctest: +SKIP
        >>> _ = lh.write_table("memory://doc-dask-read", pa.table({"a": [1, 2]}))  # doctest: +SKIP
        >>> read_dask("memory://doc-dask-read", filter=[("a", ">", 1)])["a"].compute().tolist()  # doctest: +SKIP
        [2]
    """
    _, dd = _dask_dataframe()
    snapshot = Table.open(uri, version=version, as_of=as_of, storage_options=storage_options).snapshot()
    tasks = snapshot.plan_files(filter=filter, columns=columns)
    schema = snapshot.schema if columns is None else pa.schema([snapshot.schema.field(c) for c in columns])
    meta = _to_pandas(schema.empty_table())
    if not tasks:
        return dd.from_pandas(meta, npartitions=1)
    return dd.from_map(_read_partition, tasks, storage_options=storage_options, meta=meta, enforce_metadata=False,
                       label="read-lakehouse")


def _write_partition(frame: Any, uri: str, storage_options: Mapping[str, Any] | None) -> Any:
    """Write one partition; returns ("ok", files) or ("error", exception) so the driver sees every
    partition's outcome (and can delete what the successful ones wrote)."""
    try:
        data = pa.Table.from_pandas(frame, preserve_index=False)
        return ("ok", _write_files(uri, data, storage_options=storage_options))
    except Exception as exc:
        return ("error", exc)


def _schema_of(meta: Any) -> pa.Schema:
    return pa.Schema.from_pandas(meta, preserve_index=False).remove_metadata()


def _ensure_table(ddf: Any, uri: str | os.PathLike[str], partition_by: Sequence[str] | None,
                  storage_options: Mapping[str, Any] | None) -> Table:
    try:
        return Table.open(uri, storage_options=storage_options)
    except TableNotFoundError:
        pass
    try:
        return Table.create(uri, _schema_of(ddf._meta), partition_by=partition_by, storage_options=storage_options)
    except TableExistsError:  # another writer created it meanwhile
        return Table.open(uri, storage_options=storage_options)


def to_lakehouse(ddf: Any, uri: str | os.PathLike[str], *, mode: Literal["append", "overwrite"] = "append",
                 partition_by: Sequence[str] | None = None, filter: Any = None,
                 storage_options: Mapping[str, Any] | None = None) -> int:
    """Write the dask DataFrame ``ddf`` to the table at ``uri`` in ONE commit; returns its version.

    The table is created first if absent (with ``partition_by``). Each partition is written on a
    worker; the driver commits all files at once (``mode="append"`` never conflicts; ``"overwrite"``
    replaces the table, or with ``filter`` the rows matching it, as of the version read when the
    write started). If a partition fails, or the commit conflicts, nothing is committed and the
    written files are deleted; on ``CommitStateUnknownError`` they are kept (they may be committed).

    Args:
        ddf: the dask DataFrame to write.
        uri: a path or any fsspec URL of the table (created if absent).
        mode: ``"append"`` or ``"overwrite"``.
        partition_by: the partition columns, if the table is created.
        filter: with ``"overwrite"``: replace only the rows matching it.
        storage_options: options for the filesystem, passed to the workers too.

    Returns:
        The version committed.

    Raises:
        ImportError: dask is not installed.
        InvalidArgumentError: ``mode`` is neither ``"append"`` nor ``"overwrite"``.
        SchemaMismatchError: a partition does not fit the table schema (nothing was committed).
        CommitConflictError: a concurrent commit conflicts (nothing was committed, the files were deleted).
        CommitStateUnknownError: the commit's fate is unknown (the files are kept).

    Example:
        >>> import dask.dataframe as dd, pandas as pd  # doctest: +SKIP
        >>> from lakehouse.dask import to_lakehouse
        >>> ddf = dd.from_pandas(pd.DataFrame({"a": [1, 2]}), npartitions=2)  # doctest: +SKIP
        >>> to_lakehouse(ddf, "memory://doc-dask-write")  # doctest: +SKIP
        1
    """
    if mode not in ("append", "overwrite"):
        raise InvalidArgumentError(f"mode must be 'append' or 'overwrite', not {mode!r}")
    dask, _ = _dask_dataframe()
    table = _ensure_table(ddf, uri, partition_by, storage_options)
    read_version = table.version
    # the table's URI (absolute on local disk), not the one given: a relative path is another folder on a worker
    parts = [dask.delayed(_write_partition)(p, table.uri, storage_options) for p in ddf.to_delayed()]
    outcomes = dask.compute(*parts)
    files: list[DataFile] = [f for kind, value in outcomes if kind == "ok" for f in value]
    errors = [value for kind, value in outcomes if kind == "error"]
    if errors:
        _discard(table.uri, files, storage_options)
        raise errors[0]
    try:
        return table.commit_files(files, read_version=read_version, operation=mode, filter=filter)
    except CommitStateUnknownError:
        raise  # the commit may have landed: its files must stay
    except BaseException:
        _discard(table.uri, files, storage_options)  # commit_files already did; idempotent
        raise


def _discard(uri: str | os.PathLike[str], files: Sequence[DataFile], storage_options: Mapping[str, Any] | None) -> None:
    delete_files(Storage.from_uri(uri, storage_options), [f.path for f in files])




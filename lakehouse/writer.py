"""``write_table``: write data to a table at a URI, creating it (as version 0) if it is missing, with
the create-or-append races of format §11.1 resolved; ``write_files``: write data files for the latest
version of the table at a URI without committing them (for distributed engines).

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> write_table("memory://doc-writer", pa.table({"a": [1]})).version
    0
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from .arguments import check_choice
from .commit import CommitRequest, commit
from .constraints import constraint_checker
from .creation import check_empty, new_metadata
from .datafile import DataFile
from .errors import CommitStateUnknownError, InvalidArgumentError, TableExistsError, TableNotFoundError
from .log import AddFile, Metadata, Protocol
from .progress import ProgressLike
from .properties import target_file_size
from .replay import load_state
from .schema import data_schema, to_reader
from .snapshot import Snapshot
from .state import TableState, adds_to_table
from .storage import Storage
from .table import Table
from .transaction import SchemaMode, app_transactions
from .write import WriteOptions, delete_files, write_data_files

__all__ = ["WriteMode", "write_files", "write_table"]

WriteMode = Literal["error", "append", "overwrite", "ignore"]
"""What ``write_table`` does when a table exists: refuse, append, overwrite, or nothing."""


def write_table(uri: str | os.PathLike[str], data: Any, *, mode: WriteMode = "error",
                partition_by: Sequence[str] | None = None, properties: Mapping[str, Any] | None = None,
                storage_options: Mapping[str, Any] | None = None,
                app_transaction: tuple[str, int] | None = None, schema_mode: SchemaMode = "strict",
                progress: ProgressLike = None, allow_non_empty: bool = False) -> Table:
    """Write ``data`` to the table at ``uri``, creating it (with the data, as version 0) if missing.

    ``mode``: ``"error"`` (refuse if a table exists), ``"append"``, ``"overwrite"`` or ``"ignore"``
    (do nothing if a table exists). ``schema_mode`` and ``progress`` as for :meth:`Table.append`;
    ``allow_non_empty`` as for :meth:`Table.create`. With ``mode="overwrite"``,
    ``schema_mode="overwrite"`` also replaces the table's schema and partitioning (``partition_by``,
    None: the table's) by the data's in the same commit, as deltalake's ``write_deltalake`` does. On
    an existing table no argument is ignored: a ``partition_by`` other than the table's raises
    ``SchemaMismatchError`` unless the schema is replaced, and ``properties`` are set (validated) in
    the same commit as the data. Several writers may race to create the table: with ``"append"`` the
    losers append their rows to the winner's table, with ``"ignore"`` they do nothing
    (create-or-append).

    Args:
        uri: a path or any fsspec URL.
        data: Arrow-shaped data: a ``pyarrow.Table``, ``RecordBatch``, ``RecordBatchReader`` or any
            object with ``__arrow_c_stream__``.
        mode: ``"error"``, ``"append"``, ``"overwrite"`` or ``"ignore"`` (see above).
        partition_by: the partition columns of a new table (on an existing one: must be its own,
            unless ``schema_mode="overwrite"`` replaces them).
        properties: table properties (docs/format.md §16), set in the same commit as the data.
        storage_options: options for the filesystem (see ``docs/howto-storage.md``).
        app_transaction: ``(app_id, version)`` of an idempotent writer: the write is skipped if that
            application already recorded this version or a later one.
        schema_mode: ``"strict"``, ``"merge"`` or ``"overwrite"``.
        progress: None (silent), True (a progress bar) or a callable taking
            :class:`~lakehouse.progress.ProgressEvent` values.
        allow_non_empty: create the table in a folder that already holds other files.

    Returns:
        The table, at the version this write committed (or at the latest, with ``"ignore"`` on an
        existing table).

    Raises:
        TableExistsError: ``mode="error"`` and a table is at ``uri``.
        SchemaMismatchError: the data does not fit the table under ``schema_mode``, or
            ``partition_by`` differs from the table's.
        InvalidTableError: a bad partition column or property, or a non-empty folder without
            ``allow_non_empty``.
        InvalidArgumentError: an unknown ``mode`` or ``schema_mode``.
        ConstraintViolationError: a row breaks a CHECK or NOT NULL constraint.
        CommitConflictError: a concurrent commit conflicts with this one.
        CommitStateUnknownError: the commit's fate is unknown.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-write-table", pa.table({"a": [1]}))
        >>> lh.write_table("memory://doc-write-table", pa.table({"a": [2]}), mode="append").version
        1
        >>> t = lh.write_table("memory://doc-write-table", pa.table({"b": ["x"], "p": [1]}), mode="overwrite",
        ...                    schema_mode="overwrite", partition_by=["p"])
        >>> t.schema.names, t.partition_by, t.to_arrow(version=1).num_rows
        (['b', 'p'], ['p'], 2)
    """
    check_choice(mode, "mode", ("error", "append", "overwrite", "ignore"))
    check_choice(schema_mode, "schema_mode", ("strict", "merge", "overwrite"))  # even when the table is created
    if schema_mode == "overwrite" and mode == "append":
        raise InvalidArgumentError("schema_mode='overwrite' replaces the table's schema: use it with mode='overwrite'")
    storage = Storage.from_uri(uri, storage_options)
    try:
        table = Table(storage, load_state(storage))
    except TableNotFoundError:
        return _create_with_data(storage, data, partition_by, properties, app_transaction, progress,
                                 mode=mode, schema_mode=schema_mode, allow_non_empty=allow_non_empty)
    if mode == "error":
        raise TableExistsError(storage.uri)
    if mode == "ignore":
        return table
    with table.transaction(app_transaction=app_transaction) as tx:
        if properties is not None:
            tx.set_properties(properties)  # first: the write below checks the constraints they carry
        if mode == "append":
            tx.append(data, schema_mode=schema_mode, partition_by=partition_by, progress=progress)
        else:
            tx.overwrite(data, schema_mode=schema_mode, partition_by=partition_by, progress=progress)
    return table


def _create_with_data(storage: Storage, data: Any, partition_by: Sequence[str] | None,
                      properties: Mapping[str, Any] | None, app_transaction: tuple[str, int] | None,
                      progress: ProgressLike = None, *, mode: WriteMode = "error",
                      schema_mode: SchemaMode = "strict", allow_non_empty: bool = False) -> Table:
    """Create the table with ``data`` as version 0. If another writer created it first, ``"append"``
    commits the rows on top of it and ``"ignore"`` does nothing (create-or-append, §11.1)."""
    txn = app_transactions(app_transaction)  # checked before anything is written
    storage.check_atomic_create()
    reader = to_reader(data)
    # a categorical's dictionary encoding is a storage detail: the column takes its value type (format §6)
    meta = new_metadata(data_schema(reader.schema), partition_by, properties)
    check_empty(storage, allow_non_empty)
    options = WriteOptions(target_file_bytes=target_file_size(meta.properties))
    adds = write_data_files(storage, reader, schema=meta.schema, partition_by=meta.partition_by, options=options,
                            progress=progress)
    request = CommitRequest(operation="write", parameters={"mode": "create"}, add=tuple(adds), metadata=meta,
                            protocol=Protocol(), txn=txn)
    try:
        result = commit(storage, None, request)
    except TableExistsError:
        if mode not in ("append", "ignore", "overwrite"):
            delete_files(storage, [a.path for a in adds])
            raise
        return _lost_create(storage, meta, adds, mode=mode, app_transaction=app_transaction,
                            schema_mode=schema_mode)
    except CommitStateUnknownError:
        raise  # the entry may have landed: its data files must stay
    except BaseException:
        delete_files(storage, [a.path for a in adds])
        raise
    return Table(storage, result.state, outcome=result.outcome)


def _lost_create(storage: Storage, meta: Metadata, adds: list[AddFile], *, mode: WriteMode,
                 app_transaction: tuple[str, int] | None, schema_mode: SchemaMode) -> Table:
    """Another writer created the table while we wrote ``adds`` (typed by ``meta``): append them (or
    for ``"overwrite"`` replace the table's rows by them), or for ``"ignore"`` drop them."""
    state = load_state(storage)
    table = Table(storage, state)
    if mode == "ignore":
        delete_files(storage, [a.path for a in adds])
        return table
    current = state.metadata
    if current.schema.equals(meta.schema, check_metadata=True) and current.partition_by == meta.partition_by:
        # the same definition (column mapping included): the files fit as they are
        with table.transaction(app_transaction=app_transaction) as tx:
            tx.add_files(adds, overwrite=mode == "overwrite")
        return table
    # another definition: the rows are read back from our files and appended under the table's rules
    ours = TableState(version=0, timestamp=0, protocol=Protocol(), metadata=meta,
                      files_source=adds_to_table(adds, meta))
    write = table.overwrite if mode == "overwrite" else table.append
    try:
        write(Snapshot(storage, ours).to_batches(), app_transaction=app_transaction, schema_mode=schema_mode)
    finally:
        delete_files(storage, [a.path for a in adds])
    return table


def write_files(uri: str | os.PathLike[str], data: Any, *,
                storage_options: Mapping[str, Any] | None = None) -> list[DataFile]:
    """Write Arrow-shaped ``data`` as data files of the table at ``uri``; never commits.

    The data is conformed to the latest schema, split by the partition columns and checked against
    NOT NULL and CHECK constraints, as :meth:`lakehouse.Table.append` does. The files stay invisible
    until a driver passes the returned records to :meth:`lakehouse.Table.commit_files`; on an error
    the files already written are deleted. Runs anywhere (a worker, a subprocess).

    Args:
        uri: the table's path or fsspec URL.
        data: Arrow-shaped rows (a pyarrow Table, RecordBatch or reader, pandas, Polars, anything with
            ``__arrow_c_stream__``) in the table's latest schema.
        storage_options: options for the filesystem (see ``docs/howto-storage.md``).

    Returns:
        One picklable :class:`lakehouse.DataFile` per file written, stamped with the version whose
        schema they were written for.

    Raises:
        TableNotFoundError: there is no table at ``uri``.
        SchemaMismatchError: ``data`` does not fit the table's schema.
        ConstraintViolationError: a row breaks a NOT NULL or CHECK constraint.
        UnsafeStorageError: the store cannot publish a commit atomically.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-write-files", pa.table({"a": [1]}))
        >>> files = lh.write_files("memory://doc-write-files", pa.table({"a": [2, 3]}))
        >>> t.commit_files(files, read_version=t.version), t.to_arrow().num_rows
        (1, 3)
    """
    storage = Storage.from_uri(uri, storage_options)
    state = load_state(storage)
    meta = state.metadata
    storage.check_atomic_create()  # an unsafe store is refused before any data file is written
    options = WriteOptions(target_file_bytes=target_file_size(meta.properties))
    adds = write_data_files(storage, data, schema=meta.schema, partition_by=meta.partition_by, options=options,
                            check=constraint_checker(meta.properties))
    return [DataFile.from_add(a, meta, version=state.version) for a in adds]

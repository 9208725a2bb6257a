"""The table facade users touch: create, open, write, read, time travel, history.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.Table.create("memory://doc-table", pa.schema([("id", pa.int64()), ("day", pa.int32())]),
    ...                     partition_by=["day"])
    >>> t.append(pa.table({"id": [1, 2], "day": pa.array([1, 2], pa.int32())}))
    1
    >>> t.delete([("day", "=", 1)])
    2
    >>> t.to_arrow(version=1).num_rows, t.to_arrow().num_rows
    (2, 1)
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from .alter import Alter
from .arguments import check_choice, check_int, check_names, check_str
from .checkpoint import write_checkpoint
from .commit import CommitOutcome, CommitRequest, catch_up, commit
from .constraints import table_constraints
from .creation import check_empty, new_metadata
from .datafile import DataFile
from .errors import CommitConflictError, InvalidDataFileError, TableNotFoundError, redact_uri
from .expr.dnf import FilterLike
from .handle import TableHandle
from .inspect import Inspect
from .log import Protocol
from .progress import ProgressLike
from .properties import checkpoint_interval
from .properties import target_file_size as target_file_size_property
from .records import checked_adds, data_files, live_paths
from .replay import Commit, load_state, target_version
from .schema import logical_schema
from .snapshot import Snapshot, check_table_id
from .state import TableState
from .storage import Storage
from .table_maintenance import TableMaintenance
from .table_reads import TableReads
from .transaction import SchemaMode, Transaction
from .write import WriteOptions, delete_files

if TYPE_CHECKING:
    from .merge import MergeResult, TableMerger

__all__ = ["Table"]

_log = logging.getLogger("lakehouse")

WriteMode = Literal["error", "append", "overwrite", "ignore"]


class Table(TableReads, TableMaintenance):
    """A handle on a lakehouse table. Writes go to the latest version; reads pin a snapshot.

    Create one with :meth:`create`, :meth:`open` or :func:`write_table`.
    """

    # Defined here: opening, identity, the handle, ``snapshot``/``history``, and the writes. Inherited:
    # the read verbs built on ``snapshot`` (``to_arrow``, ``files``, ``to_pandas``, ...: table_reads.py)
    # and the maintenance verbs built on the handle (``vacuum``, ``optimize``, ...: table_maintenance.py).

    def __init__(self, storage: Storage, state: TableState, *, write_options: WriteOptions | None = None,
                 pinned: bool = False, outcome: CommitOutcome | None = None) -> None:
        self._storage = storage
        self._state = state
        self._explicit_write_options = write_options
        self._last_outcome: CommitOutcome | None = outcome
        self._pinned = pinned  # opened at a version: nothing moves it but refresh() and its own writes

    @property
    def _write_options(self) -> WriteOptions:
        if self._explicit_write_options is not None:
            return self._explicit_write_options
        # a bad value another writer set is replaced by the default, with a warning (format §16)
        return WriteOptions(target_file_bytes=target_file_size_property(self._state.metadata.properties))

    @property
    def last_outcome(self) -> CommitOutcome | None:
        """What the last write through this handle did, or None before any: committed as
        ``version``, or ``skipped`` because its ``app_transaction`` was already applied (then
        ``version`` is the version that already records it). Write methods return the version only.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-last-outcome", pa.table({"a": [1]}))
            >>> t.append(pa.table({"a": [2]}), app_transaction=("etl", 1)), t.last_outcome
            (1, CommitOutcome(version=1, skipped=False))
            >>> t.append(pa.table({"a": [2]}), app_transaction=("etl", 1)), t.last_outcome
            (1, CommitOutcome(version=1, skipped=True))
        """
        return self._last_outcome

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def create(cls, uri: str | os.PathLike[str], schema: pa.Schema, *, partition_by: Sequence[str] | None = None,
               properties: Mapping[str, Any] | None = None,
               storage_options: Mapping[str, Any] | None = None, allow_non_empty: bool = False) -> Table:
        """Create an empty table (version 0); ``TableExistsError`` if one is there.

        The folder must hold no other files (``InvalidTableError`` names one) unless
        ``allow_non_empty=True``: vacuum deletes only files named as data files (format §17.1).

        Args:
            uri: a path or any fsspec URL; the folder need not exist.
            schema: the table schema.
            partition_by: the partition columns (each a top-level column of ``schema``).
            properties: table properties (see docs/format.md §16), e.g. ``{"checkpoint_interval": "10"}``.
            storage_options: options for the filesystem (see ``docs/howto-storage.md``).
            allow_non_empty: create the table in a folder that already holds other files.

        Returns:
            The new table, at version 0.

        Raises:
            TableExistsError: a table is already at ``uri``.
            InvalidTableError: a bad schema, partition column or property, or a folder holding other
                files without ``allow_non_empty``.
            UnsafeStorageError: the filesystem cannot create a file only if it is absent, atomically.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> lh.Table.create("memory://doc-create", pa.schema([("a", pa.int64())])).version
            0
        """
        storage = Storage.from_uri(uri, storage_options)
        storage.check_atomic_create()
        meta = new_metadata(schema, partition_by, properties)
        check_empty(storage, allow_non_empty)
        result = commit(storage, None, CommitRequest(operation="create", metadata=meta,
                                                     protocol=Protocol()))
        table = cls(storage, result.state)
        table._last_outcome = result.outcome
        return table

    @classmethod
    def open(cls, uri: str | os.PathLike[str], *, version: int | None = None, as_of: dt.datetime | None = None,
             storage_options: Mapping[str, Any] | None = None) -> Table:
        """Open an existing table at its latest version, or pinned at ``version`` / ``as_of``.

        A pinned handle reads only what that version needs (the newest checkpoint at or before
        it and the log entries up to it), so a damaged or missing later entry does not stop it
        (format §10.2). Its :attr:`version` is that version and its reads read it until
        :meth:`refresh` moves it to the latest. Its writes use it as their read version under the
        usual conflict rules (an append is rebased onto what landed since; a delete or overwrite
        conflicts with files added since that its filter may match), and then read the version
        they committed. Operations that act on the latest version (checkpoint, vacuum,
        cleanup_log, optimize, restore, alter) refresh the handle first.

        Args:
            uri: a path or any fsspec URL.
            version: the version to pin the handle to.
            as_of: an aware datetime: pin the newest version committed at or before it.
            storage_options: options for the filesystem (see ``docs/howto-storage.md``).

        Returns:
            The table handle.

        Raises:
            TableNotFoundError: no table at ``uri``.
            VersionNotFoundError: ``version`` does not exist (yet, or any more), or nothing was
                committed at or before ``as_of``.
            CorruptLogError: a log entry (or checkpoint) that version needs is damaged.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> _ = lh.write_table("memory://doc-open", pa.table({"a": [1]}))
            >>> lh.write_table("memory://doc-open", pa.table({"a": [2]}), mode="append").version
            1
            >>> lh.Table.open("memory://doc-open").version, lh.Table.open("memory://doc-open", version=0).version
            (1, 0)
        """
        storage = Storage.from_uri(uri, storage_options)
        target = target_version(storage, version, as_of)
        if target is None:
            return cls(storage, load_state(storage))
        return cls(storage, load_state(storage, target), pinned=True)

    @staticmethod
    def exists(uri: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None) -> bool:
        """True if a table is at ``uri``.

        Args:
            uri: a path or any fsspec URL.
            storage_options: options for the filesystem (see ``docs/howto-storage.md``).

        Returns:
            Whether a table is at ``uri`` (False for a plain file or an empty folder).

        Raises:
            CorruptLogError: the table's log is damaged.

        Example:
            >>> Table.exists("memory://doc-nothing-here")
            False
        """
        try:
            Table.open(uri, storage_options=storage_options)
        except (TableNotFoundError, NotADirectoryError):  # a plain file is not a table
            return False
        return True

    # -- identity --------------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """Where the table lives, as given (a relative local path or ``~`` made absolute). It may hold
        credentials (``ftp://user:password@host/...``): ``repr`` and every message show it masked."""
        return self._storage.uri

    @property
    def version(self) -> int:
        """The version this handle reads: the latest it knows, or the one it was opened at (see
        :meth:`open` and :meth:`refresh`)."""
        return self._state.version

    @property
    def schema(self) -> pa.Schema:
        """The table schema."""
        return logical_schema(self._state.metadata.schema)

    @property
    def partition_by(self) -> list[str]:
        """The partition columns."""
        return list(self._state.metadata.partition_by)

    @property
    def properties(self) -> dict[str, str]:
        """The table properties."""
        return dict(self._state.metadata.properties)

    @property
    def constraints(self) -> dict[str, pc.Expression]:
        """The CHECK constraints, name -> expression (see :attr:`alter`); NOT NULL ones are in the schema.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> lh.write_table("memory://doc-constraints", pa.table({"a": [1]})).constraints
            {}
        """
        return {c.name: c.expression for c in table_constraints(self._state.metadata.properties)}

    @property
    def alter(self) -> Alter:
        """Change properties and CHECK constraints; each call is one commit (see :class:`~lakehouse.alter.Alter`).

        Example:
            >>> import lakehouse as lh, pyarrow as pa, pyarrow.compute as pc
            >>> t = lh.write_table("memory://doc-alter-prop", pa.table({"a": [1]}))
            >>> t.alter.add_constraint("a_positive", pc.field("a") > 0)
            1
            >>> t.alter.set_properties({"owner": "ops"}), t.history(1)[0].operation
            (2, 'set_properties')
        """
        return Alter(self._handle)

    @property
    def inspect(self) -> Inspect:
        """Read-only views as ``pyarrow.Table`` values: files, partitions, history (see :mod:`lakehouse.inspect`).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-inspect", pa.table({"a": [1, 2]}))
            >>> t.inspect.files().column("num_rows").to_pylist(), t.inspect.history().num_rows
            ([2], 1)
        """
        return Inspect(self._handle)

    def __repr__(self) -> str:
        return f"Table(uri={self._storage.display_uri!r}, version={self.version})"

    def __reduce__(self) -> tuple[Any, ...]:
        # (uri, version, storage options, table id): the copy knows the same version (refresh() moves
        # it on) and refuses another table found at the URI; a local URI is absolute (Storage.from_uri)
        return (_reopen, (self._storage.uri, self._state.version, dict(self._storage.storage_options),
                          self._pinned, self._state.metadata.table_id))

    def refresh(self) -> int:
        """Re-read the log and return the latest version; a pinned handle (see :meth:`open`) moves there.

        Returns:
            The latest version, now this handle's version.

        Raises:
            CorruptLogError: a new log entry is damaged.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> lh.write_table("memory://doc-refresh", pa.table({"a": [1]})).refresh()
            0
        """
        # incremental: only the entries after the version this handle knows; a stretch removed by
        # log clean-up meanwhile is noticed (format §10.1) and read from the checkpoint
        self._state = catch_up(self._storage, self._state)
        self._pinned = False
        return self._state.version

    @property
    def _handle(self) -> TableHandle:
        """What Alter, Inspect, Transaction and TableMaintenance see of this table (lakehouse.handle).
        Built for each use, not kept: a table holding its own bound methods would be a reference cycle,
        freed only by the garbage collector (with its files table)."""
        return TableHandle(storage=self._storage, state=self._current, refresh=self._latest, head=self._head,
                           on_commit=self._set_state, write_options=self._options, label=self.__repr__)

    def _current(self) -> TableState:
        return self._state

    def _latest(self) -> TableState:
        self.refresh()
        return self._state

    def _head(self) -> TableState:
        """The newest state history reads: a pinned handle's own version, else the latest."""
        return self._state if self._pinned else self._latest()

    def _options(self) -> WriteOptions:
        return self._write_options

    def _set_state(self, state: TableState, skipped: bool = False) -> None:
        """Called once a write landed (or was skipped): nothing here may raise (format §9, §11.1)."""
        if state.version >= self._state.version:
            self._state = state
        self._last_outcome = CommitOutcome(version=state.version, skipped=skipped)
        if not skipped:
            self._maybe_checkpoint(state)

    def _maybe_checkpoint(self, state: TableState) -> None:
        try:
            interval = checkpoint_interval(state.metadata.properties)
            if state.version > 0 and state.version % interval == 0:
                write_checkpoint(self._storage, state)
        except Exception as exc:  # the commit stands; the next checkpoint will catch up
            # never raise (not even a warning turned into an error) once the commit has landed
            _log.warning("automatic checkpoint at version %d failed: %s", state.version, redact_uri(str(exc)))

    # -- reading ---------------------------------------------------------------------------------
    def snapshot(self, version: int | None = None, as_of: dt.datetime | None = None) -> Snapshot:
        """An immutable view at ``version`` or at the time ``as_of`` (this handle's version if neither).

        ``as_of`` must be an aware datetime (a naive one raises ``ValueError``: it names no instant);
        the answer is the newest version whose commit timestamp is at or before it, whatever the time
        zone; before the first commit raises ``VersionNotFoundError``.

        Args:
            version: the version to view (this handle's if None).
            as_of: an aware datetime: view the newest version committed at or before it.

        Returns:
            A :class:`~lakehouse.Snapshot` pinned to that version.

        Raises:
            VersionNotFoundError: ``version`` does not exist (any more), or nothing was committed at or
                before ``as_of``.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-snapshot-m", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]}))
            >>> t.snapshot(version=0).to_arrow().num_rows
            1
        """
        return Snapshot(self._storage, self._handle.state_at(version, as_of))

    def app_version(self, app_id: str) -> int | None:
        """The highest version recorded for the idempotent writer ``app_id``, or None.

        Args:
            app_id: the idempotent writer's id (the first item of ``app_transaction``).

        Returns:
            The highest version that writer recorded at this handle's version, or None if none.

        Raises:
            ArgumentTypeError: ``app_id`` is not a string.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-app", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]}), app_transaction=("etl", 5))
            >>> t.app_version("etl")
            5
        """
        return self._state.app_version(check_str(app_id, "app_id", empty=True))

    def history(self, limit: int | None = None) -> list[Commit]:
        """Commits, newest first (at most ``limit``).

        Args:
            limit: the most commits to return (all if None).

        Returns:
            :class:`Commit` records, newest first; a pinned handle's start at its version. Entries
            removed by :meth:`cleanup_log` are not listed.

        Raises:
            InvalidArgumentError: ``limit`` is negative (``ArgumentTypeError`` if not an int).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-history", pa.table({"a": [1]}))
            >>> [c.operation for c in t.history()]
            ['write']
        """
        return self._handle.history(limit)

    # -- writing ---------------------------------------------------------------------------------
    def transaction(self, *, app_transaction: tuple[str, int] | None = None) -> Transaction:
        """Start a transaction on the latest version (a pinned handle's: on its version; see
        :meth:`open`): several writes, one atomic commit.

        Args:
            app_transaction: ``(app_id, version)`` of an idempotent writer: the write is skipped if that
                application already recorded this version or a later one (see :attr:`last_outcome`).

        Returns:
            A :class:`~lakehouse.Transaction`; use it as a context manager, which commits on a clean
            exit and aborts (deleting the files it wrote) on an exception.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-transaction", pa.table({"a": [1]}))
            >>> with t.transaction() as tx:
            ...     tx.append(pa.table({"a": [2]})); tx.append(pa.table({"a": [3]}))
            >>> t.version
            1
        """
        if not self._pinned:  # a pinned handle decides on its own version (see open)
            self.refresh()
        return self._begin(self._state, app_transaction)

    def _begin(self, base: TableState, app_transaction: tuple[str, int] | None = None) -> Transaction:
        """A transaction deciding on ``base``, reporting to this table: the one place one is built."""
        return Transaction(self._handle, base, app_transaction=app_transaction)

    def append(self, data: Any, *, schema_mode: SchemaMode = "strict",
               app_transaction: tuple[str, int] | None = None, progress: ProgressLike = None) -> int:
        """Add rows; returns the new version. Never conflicts with other appends or deletes.

        ``schema_mode="merge"``: new nullable columns of ``data`` (top level or inside structs) and
        types that widen the table's join the schema in the same commit (a schema change conflicts
        with concurrent commits); narrower data types are cast up; nullable columns the data lacks
        are written as nulls (a NOT NULL one raises ``SchemaMismatchError``). ``"strict"`` (the default)
        refuses any difference with ``SchemaMismatchError``. ``progress``: None (silent), True (a
        progress bar) or a callback taking :class:`~lakehouse.progress.ProgressEvent` values.

        Args:
            data: Arrow-shaped data: a ``pyarrow.Table``, ``RecordBatch``, ``RecordBatchReader`` or any
                object with ``__arrow_c_stream__`` (a polars or pandas frame through pyarrow).
            schema_mode: ``"strict"`` or ``"merge"`` (see above).
            app_transaction: ``(app_id, version)`` of an idempotent writer: the write is skipped if that
                application already recorded this version or a later one (see :attr:`last_outcome`).
            progress: None (silent), True (a progress bar) or a callable taking
                :class:`~lakehouse.progress.ProgressEvent` values.

        Returns:
            The new version (the recorded one if ``app_transaction`` was already applied).

        Raises:
            SchemaMismatchError: the data does not fit the table schema under ``schema_mode``.
            ConstraintViolationError: a row breaks a CHECK or NOT NULL constraint; nothing was committed.
            InvalidDataError: ``data`` is not Arrow-shaped.
            CommitConflictError: a concurrent commit conflicts with this one; nothing was committed.
            CommitStateUnknownError: the storage failed so that the commit may or may not have landed.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-append", pa.table({"a": [1]}))
            >>> t.append(pa.table({"a": [2]}))
            1
            >>> t.append(pa.table({"a": [3], "b": ["x"]}), schema_mode="merge"), t.schema.names
            (2, ['a', 'b'])
        """
        tx = self._begin(self._state, app_transaction)  # no refresh: an append rebases onto what landed
        with tx:
            tx.append(data, schema_mode=schema_mode, progress=progress)
        return tx.version  # type: ignore[return-value]

    def overwrite(self, data: Any, *, filter: FilterLike | pc.Expression | None = None,
                  schema_mode: SchemaMode = "strict", app_transaction: tuple[str, int] | None = None,
                  progress: ProgressLike = None) -> int:
        """Replace the whole table, or only the rows matching ``filter``, by ``data``.

        ``schema_mode`` and ``progress`` as for :meth:`append`; ``schema_mode="overwrite"`` (without
        a filter) also replaces the schema by the data's, keeping the partitioning (to change it too,
        see :func:`write_table`).

        Args:
            data: Arrow-shaped data, as for :meth:`append`.
            filter: replace only the rows matching it (DNF tuples, SQL-like text or an expression);
                every row of ``data`` must match it too.
            schema_mode: ``"strict"``, ``"merge"`` or ``"overwrite"`` (see above).
            app_transaction: ``(app_id, version)`` of an idempotent writer: the write is skipped if that
                application already recorded this version or a later one (see :attr:`last_outcome`).
            progress: None (silent), True (a progress bar) or a callable taking
                :class:`~lakehouse.progress.ProgressEvent` values.

        Returns:
            The new version.

        Raises:
            SchemaMismatchError: the data does not fit the table schema under ``schema_mode``.
            ConstraintViolationError: a row breaks a constraint, or does not match ``filter``.
            InvalidFilterError: ``filter`` cannot be understood.
            CommitConflictError: a concurrent commit conflicts with this one; nothing was committed.
            CommitStateUnknownError: the storage failed so that the commit may or may not have landed.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-overwrite", pa.table({"a": [1, 2]}))
            >>> t.overwrite(pa.table({"a": [5]}), filter=[("a", ">=", 2)])
            1
            >>> sorted(t.to_arrow().column("a").to_pylist())
            [1, 5]
        """
        with self.transaction(app_transaction=app_transaction) as tx:
            tx.overwrite(data, filter=filter, schema_mode=schema_mode, progress=progress)
        return tx.version  # type: ignore[return-value]

    def delete(self, filter: FilterLike | pc.Expression | None = None, *,
               app_transaction: tuple[str, int] | None = None) -> int:
        """Delete the rows matching ``filter``; whole files are dropped, partly matched ones get a
        deletion vector or are rewritten, as the table property ``delete_mode`` says (format §5.8, §16).

        Args:
            filter: the rows to delete (DNF tuples, SQL-like text or an expression); None deletes
                every row.
            app_transaction: ``(app_id, version)`` of an idempotent writer: the write is skipped if that
                application already recorded this version or a later one (see :attr:`last_outcome`).

        Returns:
            The new version.

        Raises:
            InvalidFilterError: ``filter`` cannot be understood.
            ColumnNotFoundError: ``filter`` names a column the table does not have.
            CommitConflictError: a concurrent commit conflicts with this one; nothing was committed.
            CommitStateUnknownError: the storage failed so that the commit may or may not have landed.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-delete", pa.table({"a": [1, 2]}))
            >>> t.delete([("a", "=", 1)])
            1
        """
        with self.transaction(app_transaction=app_transaction) as tx:
            tx.delete(filter)
        return tx.version  # type: ignore[return-value]

    def commit_files(self, files: Sequence[DataFile], *, read_version: int,
                     operation: Literal["append", "overwrite"] = "append",
                     filter: FilterLike | pc.Expression | None = None, removed: Sequence[str] = ()) -> int:
        """Commit data files written by :func:`lakehouse.write_files` (on any machine) as one new version.

        ``read_version`` is the version the write was decided on. ``operation="append"`` is a blind
        append: it is rebased onto whatever landed since and never conflicts with other writes (but
        ``removed`` makes it read those files). ``"overwrite"`` replaces the whole table as of
        ``read_version`` (or, with ``filter``, its rows matching the filter, whose files are dropped or
        rewritten), and conflicts like :meth:`overwrite`: with anything added since that may match.
        ``removed``: paths (relative, as in :meth:`files`) of files the caller read and replaces.
        On ``CommitConflictError`` (or any refusal) the files are deleted (never a file outside the
        table root, a live one or one the winning commit added); on ``CommitStateUnknownError`` they
        are kept. Returns the new version.

        Every record is checked before anything is written or deleted: ``InvalidDataFileError``
        (naming the record's ``path`` and the field at fault) for a path outside the table root or
        not named as format §7 says, partition values or statistics not of the column types, sizes
        or counts that are not integers in ``0..2**63-1``, or a path that is already live.

        Args:
            files: the :class:`~lakehouse.DataFile` records :func:`~lakehouse.write_files` returned.
            read_version: the version the write was decided on.
            operation: ``"append"`` or ``"overwrite"``.
            filter: with ``"overwrite"``: replace only the rows matching it.
            removed: paths of live files the caller read and replaces.

        Returns:
            The new version.

        Raises:
            InvalidDataFileError: a record the log cannot hold, or a path that is already live.
            CommitConflictError: a concurrent commit conflicts (the files were deleted), or the files
                were written under another schema than ``read_version``'s.
            CommitStateUnknownError: the commit's fate is unknown (the files are kept).
            VersionNotFoundError: ``read_version`` cannot be loaded.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-commit-files", pa.table({"a": [1, 2]}))
            >>> files = lh.write_files(t.uri, pa.table({"a": [7]}))
            >>> t.commit_files(files, read_version=0, operation="overwrite", filter=[("a", ">", 1)])
            1
            >>> sorted(t.to_arrow().column("a").to_pylist())
            [1, 7]
        """
        check_choice(operation, "operation", ("append", "overwrite"))
        check_int(read_version, "read_version", minimum=0)
        files = data_files(files)
        removed = check_names(removed, "removed") or ()
        paths = [f.path for f in files]
        # a version that cannot be loaded deletes nothing: the files may be live already (a retry of a
        # commit that landed); orphans are vacuum's
        base = self._state if read_version == self._state.version else load_state(self._storage, read_version)
        live = live_paths(files, base)
        if live:  # nothing is deleted: these files belong to the table
            raise InvalidDataFileError(f"data file {live[0]!r} is already live at version {base.version}",
                                       path=live[0])
        try:
            # every record is checked before anything is written or deleted (a path outside the root
            # is never deleted: delete_files takes only paths format §3 allows)
            bad = next((f for f in files if not isinstance(f, DataFile)), None)
            if bad is not None:
                raise InvalidDataFileError(f"commit_files takes DataFile records, got {type(bad).__name__}")
            bad = next((f for f in files if type(f.version) is not int or f.version < 0), None)
            if bad is not None:
                raise InvalidDataFileError(f"data file {bad.path!r}: version {bad.version!r} is not a table version",
                                           path=bad.path)
            self._check_written_schema(files, base)
            adds = checked_adds(files, base)
            tx = self._begin(base)
        except BaseException:
            delete_files(self._storage, paths)
            raise
        with tx:  # an error before the commit aborts the transaction, which deletes the files
            tx.add_files(adds, overwrite=operation == "overwrite", filter=filter, removed=removed)
        return tx.version  # type: ignore[return-value]

    def _check_written_schema(self, files: Sequence[DataFile], base: TableState) -> None:
        """Files written under another version's schema must match ``base``'s (statistics and file
        columns are keyed by physical name)."""
        for v in sorted({f.version for f in files} - {base.version}):
            meta = load_state(self._storage, v).metadata
            if not (meta.schema.equals(base.metadata.schema, check_metadata=True)
                    and meta.partition_by == base.metadata.partition_by):
                raise CommitConflictError(f"data files were written under the schema of version {v}, which differs "
                                          f"from that of read_version {base.version}", version=v)

    # -- row-level changes (update, merge, upsert) go here, at the end of the class: each method a
    # docstring and a call into its own module taking ``self._handle`` (see table_maintenance.py), or,
    # if they make this module long, a ``TableRowLevel`` base class in table_rowlevel.py like TableMaintenance.



    # -- row-level changes (lakehouse.rowlevel, lakehouse.merge) -------------------------------
    def update(self, set: Mapping[str, Any], filter: FilterLike | pc.Expression | None = None, *,
               schema_mode: SchemaMode = "strict", app_transaction: tuple[str, int] | None = None,
               progress: ProgressLike = None) -> int:
        """Set columns of the rows matching ``filter`` (all rows if None); returns the new version, or
        the current one if no row matches (nothing is committed).

        ``set`` maps column names to a non-string literal or ``pa.Scalar``, a ``pc.Expression`` or
        SQL-like text (``"value + 1"``, ``"'x'"``; see :mod:`lakehouse.setexpr`) over the row's columns.
        Updating a partition column moves the rows; constraints and NOT NULL are enforced on them.
        ``schema_mode="merge"`` lets ``set`` add a nullable column. A concurrent commit adding rows
        the filter may match, or removing a file the update rewrites, is ``CommitConflictError``.

        Args:
            set: column name -> new value (literal, ``pa.Scalar``, ``pc.Expression`` or SQL-like text).
            filter: the rows to update (DNF tuples, SQL-like text or a ``pc.Expression``; None: all).
            schema_mode: ``"strict"`` (default) or ``"merge"`` (``set`` may add a nullable column).
            app_transaction: ``(app_id, version)`` for an idempotent writer (format §5.5).
            progress: None, True (a progress bar) or a callable taking ``ProgressEvent``.

        Returns:
            The version committed, or the current version if no row matched.

        Raises:
            ColumnNotFoundError: ``set`` or ``filter`` names an unknown column.
            InvalidFilterError: the filter or a SQL value is malformed.
            ConstraintViolationError: an updated row breaks a NOT NULL or CHECK constraint.
            CommitConflictError: a concurrent commit touched the rows or files the update read.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-update", pa.table({"id": [1, 2], "v": [1, 2]}))
            >>> t.update({"v": "v * 10"}, filter="id = 2"), t.to_arrow().sort_by("id").column("v").to_pylist()
            (1, [1, 20])
        """
        from .rowlevel import update_table

        return update_table(self, set, filter, schema_mode=schema_mode, app_transaction=app_transaction,
                            progress=progress)


    def merge(self, source: Any, on: str | Sequence[str] | None = None, *, predicate: str | None = None,
              source_alias: str = "source", target_alias: str = "target", schema_mode: SchemaMode = "strict",
              app_transaction: tuple[str, int] | None = None, progress: ProgressLike = None) -> TableMerger:
        """Start a MERGE of ``source`` (any Arrow-shaped data) into this table on equal ``on`` columns
        (nulls never match) or a SQL ``predicate`` naming ``source_alias``/``target_alias`` columns; add
        clauses and call ``execute()`` (see :class:`~lakehouse.merge.TableMerger`). ``schema_mode="merge"``
        lets source columns the table lacks join it (taken by ``set=None`` / ``values=None`` clauses).

        Args:
            source: the source rows (pyarrow, pandas, Polars, a DuckDB relation, a RecordBatchReader).
            on: the join column(s), equal on both sides; or pass ``predicate`` instead.
            predicate: a SQL join condition over ``source_alias.x`` / ``target_alias.x`` columns.
            source_alias: the name of the source side in SQL text (default ``"source"``).
            target_alias: the name of the target side in SQL text (default ``"target"``).
            schema_mode: ``"strict"`` (default) or ``"merge"`` (source columns the table lacks join it).
            app_transaction: ``(app_id, version)`` for an idempotent writer (format §5.5).
            progress: None, True (a progress bar) or a callable taking ``ProgressEvent``.

        Returns:
            A :class:`~lakehouse.merge.TableMerger`: add ``when_*`` clauses, then call ``execute()``.

        Raises:
            ColumnNotFoundError: ``on`` names a column missing on either side.
            InvalidArgumentError: both or neither of ``on`` and ``predicate`` are given.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-merge", pa.table({"id": [1, 2], "v": [1, 2]}))
            >>> r = t.merge(pa.table({"id": [2], "op": ["del"]}), on="id").when_matched_delete(
            ...     filter="source.op = 'del'").execute()
            >>> r.num_deleted, t.to_arrow().column("id").to_pylist()
            (1, [1])
        """
        from .merge import TableMerger

        if not self._pinned:  # clauses are resolved against the latest schema (execute() checks it again)
            self.refresh()
        return TableMerger(self, source, on=on, predicate=predicate, source_alias=source_alias,
                           target_alias=target_alias, schema_mode=schema_mode, app_transaction=app_transaction,
                           progress=progress)

    def upsert(self, source: Any, on: str | Sequence[str], *, schema_mode: SchemaMode = "strict",
               app_transaction: tuple[str, int] | None = None, progress: ProgressLike = None) -> MergeResult:
        """Update the rows whose ``on`` keys the source has to its values (rows that would not change
        are skipped: neither rewritten nor counted) and insert the source rows that match none.

        Args:
            source: the source rows (any Arrow-shaped data).
            on: the key column(s); nulls never match.
            schema_mode: ``"strict"`` (default) or ``"merge"`` (source columns the table lacks join it).
            app_transaction: ``(app_id, version)`` for an idempotent writer (format §5.5).
            progress: None, True (a progress bar) or a callable taking ``ProgressEvent``.

        Returns:
            A :class:`~lakehouse.merge.MergeResult` (version and counts).

        Raises:
            DuplicateMatchError: a target row is matched by several source rows (nothing is written).
            CommitConflictError: a concurrent commit touched rows the upsert read.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-upsert", pa.table({"id": [1, 2], "v": [1, 2]}))
            >>> r = t.upsert(pa.table({"id": [1, 2, 3], "v": [1, 20, 30]}), on="id")
            >>> r.num_updated, r.num_inserted, r.version
            (1, 1, 1)
        """
        from .merge import upsert

        return upsert(self, source, on, schema_mode=schema_mode, app_transaction=app_transaction, progress=progress)


def _reopen(uri: str, version: int, storage_options: Mapping[str, Any], pinned: bool = False,
            table_id: str | None = None) -> Table:
    storage = Storage.from_uri(uri, storage_options)
    return Table(storage, check_table_id(storage, load_state(storage, version), table_id), pinned=pinned)

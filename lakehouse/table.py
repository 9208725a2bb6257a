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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from . import maintenance
from .alter import Alter
from .arguments import check_choice, check_int, check_names, check_optional_int, check_str
from .checkpoint import write_checkpoint
from .commit import CommitOutcome, CommitRequest, catch_up, commit
from .constraints import table_constraints
from .creation import check_empty, new_metadata
from .errors import (
    ArgumentTypeError,
    ColumnNotFoundError,
    CommitConflictError,
    InvalidArgumentError,
    InvalidDataFileError,
    InvalidTableError,
    TableNotFoundError,
    redact_uri,
)
from .expressions import FilterLike, to_expression
from .inspect import Inspect
from .log import LogEntry, Protocol
from .progress import ProgressEvent, ProgressLike, progress_callback
from .properties import int_property
from .records import checked_adds, data_files, live_paths
from .schema import logical_schema
from .snapshot import Snapshot, check_table_id, load_state, read_entry, version_as_of
from .state import TableState
from .storage import Storage
from .tasks import DataFile, FileTask
from .transaction import SchemaMode, Transaction
from .write import WriteOptions, delete_files

if TYPE_CHECKING:
    from .merge import MergeResult, TableMerger

__all__ = ["Commit", "Table"]

_log = logging.getLogger("lakehouse")

WriteMode = Literal["error", "append", "overwrite", "ignore"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """One entry of a table's history.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> lh.write_table("memory://doc-commit-h", pa.table({"a": [1]})).history()[0].operation
        'write'
    """

    version: int
    timestamp: dt.datetime
    operation: str
    info: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_entry(cls, e: LogEntry) -> Commit:
        """The history record of one log entry."""
        c = e.commit
        info = {
            "commit_id": c.id, "parameters": dict(c.parameters), "read_version": c.read_version,
            "blind_append": c.blind_append, "lakehouse_version": c.lakehouse_version,
            "files_added": len(e.add), "files_removed": len(e.remove),
            "rows_added": sum(a.num_rows for a in e.add), "rows_removed": sum(r.num_rows for r in e.remove),
        }
        return cls(version=e.version, timestamp=_ms_datetime(c.timestamp), operation=c.operation, info=info)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ONE_MS = dt.timedelta(milliseconds=1)


def _as_of_ms(as_of: dt.datetime) -> int:
    """Milliseconds since the epoch, rounded down. A naive datetime names no instant: refused, not guessed."""
    if not isinstance(as_of, dt.datetime):
        raise ArgumentTypeError(f"as_of must be a datetime, got {type(as_of).__name__}")
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise InvalidArgumentError("as_of must be an aware datetime (with a time zone), e.g. "
                                   "datetime.now(timezone.utc)", argument="as_of")
    # exact integer arithmetic: int(as_of.timestamp() * 1000) lands 1 ms early for some instants
    return (as_of - _EPOCH) // _ONE_MS


def _ms_datetime(ms: int) -> dt.datetime:
    """The UTC datetime of a commit timestamp, exactly."""
    return _EPOCH + ms * _ONE_MS


def _target_version(storage: Storage, version: int | None, as_of: dt.datetime | None) -> int | None:
    """The version ``version`` / ``as_of`` name (None if neither), found without replaying the log."""
    if version is not None and as_of is not None:
        raise InvalidArgumentError("pass version or as_of, not both", argument="as_of")
    if as_of is not None:
        return version_as_of(storage, _as_of_ms(as_of))
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ArgumentTypeError(f"version must be an int, got {type(version).__name__}", argument="version")
    return version


class Table:
    """A handle on a lakehouse table. Writes go to the latest version; reads pin a snapshot.

    Create one with :meth:`create`, :meth:`open` or :func:`write_table`.
    """

    def __init__(self, storage: Storage, state: TableState, *, write_options: WriteOptions | None = None,
                 pinned: bool = False) -> None:
        self._storage = storage
        self._state = state
        self._explicit_write_options = write_options
        self._last_outcome: CommitOutcome | None = None
        self._pinned = pinned  # opened at a version: nothing moves it but refresh() and its own writes

    @property
    def _write_options(self) -> WriteOptions:
        if self._explicit_write_options is not None:
            return self._explicit_write_options
        # a bad value another writer set is replaced by the default, with a warning (format §16)
        return WriteOptions(target_file_bytes=int_property(self._state.metadata.properties, "target_file_size"))

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
        target = _target_version(storage, version, as_of)
        if target is None:
            return cls(storage, load_state(storage))
        return cls(storage, load_state(storage, target), pinned=True)

    @staticmethod
    def exists(uri: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None) -> bool:
        """True if a table is at ``uri``.

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
        return Alter(self)

    @property
    def inspect(self) -> Inspect:
        """Read-only views as ``pyarrow.Table`` values: files, partitions, history (see :mod:`lakehouse.inspect`).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-inspect", pa.table({"a": [1, 2]}))
            >>> t.inspect.files().column("num_rows").to_pylist(), t.inspect.history().num_rows
            ([2], 1)
        """
        return Inspect(self)

    def __repr__(self) -> str:
        return f"Table(uri={self._storage.display_uri!r}, version={self.version})"

    def __reduce__(self) -> tuple[Any, ...]:
        # (uri, version, storage options, table id): the copy knows the same version (refresh() moves
        # it on) and refuses another table found at the URI; a local URI is absolute (Storage.from_uri)
        return (_reopen, (self._storage.uri, self._state.version, dict(self._storage.storage_options),
                          self._pinned, self._state.metadata.table_id))

    def refresh(self) -> int:
        """Re-read the log and return the latest version; a pinned handle (see :meth:`open`) moves there.

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

    def _set_state(self, state: TableState, skipped: bool = False) -> None:
        """Called once a write landed (or was skipped): nothing here may raise (format §9, §11.1)."""
        if state.version >= self._state.version:
            self._state = state
        self._last_outcome = CommitOutcome(version=state.version, skipped=skipped)
        if not skipped:
            self._maybe_checkpoint(state)

    def _maybe_checkpoint(self, state: TableState) -> None:
        try:
            interval = int_property(state.metadata.properties, "checkpoint_interval")
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

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-snapshot-m", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]}))
            >>> t.snapshot(version=0).to_arrow().num_rows
            1
        """
        target = _target_version(self._storage, version, as_of)
        if target is None or target == self._state.version:
            return Snapshot(self._storage, self._state)
        return Snapshot(self._storage, load_state(self._storage, target))

    def to_arrow(self, *, columns: Sequence[str] | None = None, filter: FilterLike | pc.Expression | None = None,
                 version: int | None = None, as_of: dt.datetime | None = None) -> pa.Table:
        """Read rows of this handle's version (or of ``version`` / ``as_of``) into a ``pyarrow.Table``.

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

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-plan", pa.table({"a": [1, 2]}))
            >>> _ = t.append(pa.table({"a": [3]}))
            >>> len(t.plan_files(version=0)), len(t.plan_files())
            (1, 2)
        """
        return self.snapshot(version, as_of).plan_files(filter=filter, columns=columns)

    def app_version(self, app_id: str) -> int | None:
        """The highest version recorded for the idempotent writer ``app_id``, or None.

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

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-history", pa.table({"a": [1]}))
            >>> [c.operation for c in t.history()]
            ['write']
        """
        limit = check_optional_int(limit, "limit", minimum=0)
        out: list[Commit] = []
        v = self._state.version if self._pinned else self.refresh()  # a pinned handle: its version and older
        while v >= 0 and (limit is None or len(out) < limit):
            e = read_entry(self._storage, v)
            if e is None:
                break  # older entries were cleaned up
            out.append(Commit.from_entry(e))
            v -= 1
        return out

    # -- writing ---------------------------------------------------------------------------------
    def transaction(self, *, app_transaction: tuple[str, int] | None = None) -> Transaction:
        """Start a transaction on the latest version (a pinned handle's: on its version; see
        :meth:`open`): several writes, one atomic commit.

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
        return Transaction(self._storage, self._state, on_commit=self._set_state,
                           app_transaction=app_transaction, options=self._write_options)

    def append(self, data: Any, *, schema_mode: SchemaMode = "strict",
               app_transaction: tuple[str, int] | None = None, progress: ProgressLike = None) -> int:
        """Add rows; returns the new version. Never conflicts with other appends or deletes.

        ``schema_mode="merge"``: new nullable columns of ``data`` (top level or inside structs) and
        types that widen the table's join the schema in the same commit (a schema change conflicts
        with concurrent commits); narrower data types are cast up; nullable columns the data lacks
        are written as nulls (a NOT NULL one raises ``SchemaMismatchError``). ``"strict"`` (the default)
        refuses any difference with ``SchemaMismatchError``. ``progress``: None (silent), True (a
        progress bar) or a callback taking :class:`~lakehouse.progress.ProgressEvent` values.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-append", pa.table({"a": [1]}))
            >>> t.append(pa.table({"a": [2]}))
            1
            >>> t.append(pa.table({"a": [3], "b": ["x"]}), schema_mode="merge"), t.schema.names
            (2, ['a', 'b'])
        """
        tx = Transaction(self._storage, self._state, on_commit=self._set_state,
                         app_transaction=app_transaction, options=self._write_options)
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
        """Delete the rows matching ``filter``; whole files are dropped, partly matched ones rewritten.

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
            tx = Transaction(self._storage, base, on_commit=self._set_state, options=self._write_options)
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

    def checkpoint(self, *, progress: ProgressLike = None) -> int:
        """Write a checkpoint at the latest version; returns that version. ``progress`` as for
        :meth:`append` (one ``("checkpoint", "write")`` step).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> lh.write_table("memory://doc-checkpoint", pa.table({"a": [1]})).checkpoint()
            0
        """
        self.refresh()
        report = progress_callback(progress)
        try:
            report(ProgressEvent("checkpoint", "write", 0, 1, "checkpoints"))
            version = write_checkpoint(self._storage, self._state)
            report(ProgressEvent("checkpoint", "write", 1, 1, "checkpoints"))
        finally:
            report.close()
        return version


    # -- maintenance ---------------------------------------------------------------------------
    def vacuum(self, *, retention: dt.timedelta = dt.timedelta(days=7), dry_run: bool = True,
               enforce_retention: bool = True, progress: ProgressLike = None) -> list[str]:
        """Delete files no version within ``retention`` can read (and orphans older than it).

        Returns the paths (relative to the table root) deleted, or that would be with ``dry_run``
        (the default). A retention below the table's minimum (property
        ``vacuum_min_retention_seconds``, default 7 days) raises ``RetentionError`` unless
        ``enforce_retention=False``. ``progress`` as for :meth:`append` (one event per file deleted).
        Only files named as the table's data files are deleted (format §17.1): other files in the
        folder stay, and so does a file a restore committed while the vacuum ran. Only regular files
        are deleted, and on local disk never through a symbolic link (format §3.1): a partition
        folder linked onto another disk stays, with everything under it.

        Example:
            >>> import lakehouse as lh, pyarrow as pa, datetime as dt
            >>> t = lh.write_table("memory://doc-vacuum-m", pa.table({"a": [1]}))
            >>> _ = t.overwrite(pa.table({"a": [2]}))
            >>> len(t.vacuum(retention=dt.timedelta(0), enforce_retention=False, dry_run=False))
            1
            >>> t.to_arrow().column("a").to_pylist()
            [2]
        """
        self.refresh()
        return maintenance.vacuum(self._storage, self._state, retention=retention, dry_run=dry_run,
                                  enforce_retention=enforce_retention, progress=progress)

    def cleanup_log(self, *, retention: dt.timedelta = dt.timedelta(days=30), enforce_retention: bool = True) -> int:
        """Remove log entries older than ``retention`` that a checkpoint covers; returns how many.

        Time travel to a removed version then raises ``VersionNotFoundError``. A retention below
        the property ``log_min_retention_seconds`` (default 7 days) needs ``enforce_retention=False``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa, datetime as dt
            >>> t = lh.write_table("memory://doc-cleanup-m", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]})); _ = t.checkpoint()
            >>> t.cleanup_log(retention=dt.timedelta(0), enforce_retention=False)
            1
        """
        self.refresh()
        return maintenance.cleanup_log(self._storage, self._state, retention=retention,
                                       enforce_retention=enforce_retention)

    def restore(self, version: int | None = None, *, as_of: dt.datetime | None = None) -> int:
        """Commit a new version whose files and schema equal ``version``'s (or ``as_of``'s): it reads
        exactly as that version did, whatever schema changes came since.

        Raises ``VersionNotFoundError`` if that version's files were vacuumed (before the restore,
        or by a vacuum running at the same time: the restore is then undone, format §17.1).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-restore-m", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]}))
            >>> t.restore(0), t.to_arrow().num_rows, t.history(1)[0].operation
            (2, 1, 'restore')
        """
        if (version is None) == (as_of is None):
            raise InvalidArgumentError("pass exactly one of version or as_of")
        target = self.snapshot(version=version, as_of=as_of)._state
        self.refresh()
        result = maintenance.restore(self._storage, self._state, target)
        self._set_state(result.state)
        return result.version

    def optimize(self, *, target_file_size: int | None = None, filter: FilterLike | pc.Expression | None = None,
                 sort_by: Sequence[str] | None = None, progress: ProgressLike = None) -> int | None:
        """Compact small files into files of about ``target_file_size`` bytes (property
        ``target_file_size``), optionally sorted by ``sort_by``; returns the new version, or None
        if there was nothing to do. Rows do not change: concurrent appends never conflict with it,
        and time travel to older versions still reads the old files until vacuum removes them.

        ``filter`` limits the work to the files it may match (e.g. some partitions). With
        ``sort_by`` every partition of more than one file is rewritten as a whole, sorted.
        ``progress`` as for :meth:`append` (one event per group of files rewritten).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-optimize-m", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]}))
            >>> t.optimize(), len(t.files()), t.optimize()
            (2, 1, None)
        """
        self.refresh()
        size = target_file_size if target_file_size is not None else \
            int_property(self._state.metadata.properties, "target_file_size")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size < 1 << 63:
            raise InvalidTableError(f"target_file_size must be a positive integer below 2**63, got {size!r}")
        columns = check_names(sort_by, "sort_by") or []
        for c in columns:
            if c not in self.schema.names:
                raise ColumnNotFoundError(c, available=self.schema.names)
        expr = to_expression(filter, self.schema)
        result = maintenance.optimize(self._storage, self._state, target_file_size=size, filter=expr,
                                      sort_by=columns, options=self._write_options, progress=progress)
        if result is None:
            return None
        self._set_state(result.state)
        return result.version

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

        Example:
            >>> import lakehouse as lh, pyarrow as pa  # doctest: +SKIP
            >>> t = lh.write_table("memory://doc-table-duckdb", pa.table({"a": [1, 2]}))  # doctest: +SKIP
            >>> t.to_duckdb("t").sql("select count(*) from t").fetchall()  # doctest: +SKIP
            [(2,)]
        """
        return self.snapshot(version, as_of).to_duckdb(name, connection)


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

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-merge", pa.table({"id": [1, 2], "v": [1, 2]}))
            >>> r = t.merge(pa.table({"id": [2], "op": ["del"]}), on="id").when_matched_delete(
            ...     filter="source.op = 'del'").execute()
            >>> r.num_deleted, t.to_arrow().column("id").to_pylist()
            (1, [1])
        """
        from .merge import TableMerger

        return TableMerger(self, source, on=on, predicate=predicate, source_alias=source_alias,
                           target_alias=target_alias, schema_mode=schema_mode, app_transaction=app_transaction,
                           progress=progress)

    def upsert(self, source: Any, on: str | Sequence[str], *, schema_mode: SchemaMode = "strict",
               app_transaction: tuple[str, int] | None = None, progress: ProgressLike = None) -> MergeResult:
        """Update the rows whose ``on`` keys the source has to its values (rows that would not change
        are skipped: neither rewritten nor counted) and insert the source rows that match none.

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

"""Transactions: several writes that land as one atomic commit.

Operations inside a transaction see each other in order (a delete after an append sees the
appended rows); nothing is visible to anyone else until :meth:`Transaction.commit`. If the
``with`` block raises, the data files the transaction wrote are deleted and no commit happens.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-tx", pa.table({"a": [1, 2, 3]}))
    >>> with t.transaction() as tx:
    ...     tx.delete([("a", "=", 1)])
    ...     tx.append(pa.table({"a": [4]}))
    >>> t.version, sorted(t.to_arrow().column("a").to_pylist())
    (1, [2, 3, 4])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .commit import CommitRequest, commit
from .deletion_vector import DeletionVector
from .errors import (
    CommitError,
    CommitStateUnknownError,
    ConstraintViolationError,
    InvalidArgumentError,
    LakehouseError,
)
from .evolution import merge_schema, raised_protocol, replace_schema
from .expr.bridge import referenced_columns
from .expr.dnf import FilterLike, to_expression
from .handle import TableHandle
from .log import AddFile, Metadata
from .progress import ProgressLike
from .properties import check_property
from .removal_plan import Removal, RowsRemoved, matching_positions, parts_in
from .scan import Scan
from .schema import logical_schema, to_reader
from .snapshot import Snapshot
from .state import TableState, adds_to_table
from .tx_checks import SchemaMode, app_transactions, check_partitioning, check_schema_mode, kept_by, within_check
from .tx_files import TransactionFiles

__all__ = ["RowsRemoved", "SchemaMode", "Transaction", "app_transactions"]

class Transaction:
    """A set of writes committed together. Get one from ``Table.transaction()``.

    Use it as a context manager: a clean exit commits (see :meth:`commit`), an exception aborts
    (see :meth:`abort`). Operations see the effects of the earlier ones in the same transaction.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-tx-class", pa.table({"a": [1, 2]}))
        >>> with t.transaction() as tx:
        ...     tx.delete([("a", "=", 1)]); tx.append(pa.table({"a": [3]}))
        >>> tx.version, sorted(t.to_arrow().column("a").to_pylist())
        (1, [2, 3])
    """

    def __init__(self, handle: TableHandle, base: TableState, *,
                 app_transaction: tuple[str, int] | None = None) -> None:
        self._storage = handle.storage
        self._changes = TransactionFiles(handle.storage, base, handle.write_options())
        self._on_commit = handle.on_commit
        self._predicates: list[pc.Expression | None] = []
        self._read_files: set[str] = set()
        self._read_rows: dict[str, DeletionVector] = {}  # rows of live files read and left alone (format §12)
        self._operations: list[tuple[str, dict[str, Any]]] = []
        self._txn = app_transactions(app_transaction)
        self._closed = False
        self._version: int | None = None
        self._new_metadata: Metadata | None = None  # set by a schema_mode="merge" write that changed the schema
        self._read_metadata = base.metadata
        # an idempotent writer's version already applied: every operation is a no-op
        self._skip = base.has_applied(self._txn)

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.commit()

    @property
    def schema(self) -> pa.Schema:
        """The table schema writes must match (including changes made by this transaction's merges)."""
        return logical_schema(self._base.metadata.schema)

    @property
    def version(self) -> int | None:
        """The committed version once :meth:`commit` has run, else None."""
        return self._version

    def _check_open(self) -> None:
        if self._closed:
            raise LakehouseError("this transaction is already committed or aborted")

    # -- bookkeeping -----------------------------------------------------------------------------
    @property
    def _base(self) -> TableState:
        """The state this transaction works on (its metadata includes the transaction's changes)."""
        return self._changes.state

    @property
    def _files(self) -> pa.Table:
        """The live files as this transaction sees them (``TransactionFiles.files``)."""
        return self._changes.files

    def _write(self, data: Any, check: Callable[[pa.RecordBatch], None] | None = None, *,
               merge: bool = False, progress: ProgressLike = None, operation: str = "write") -> list[AddFile]:
        if merge:
            data = to_reader(data)  # read the schema once: a stream can be consumed only once
            self._evolve(merge_schema(self._base.metadata, data.schema))
        return self._changes.write(data, check, widen=merge, progress=progress, operation=operation)

    def _evolve(self, meta: Metadata) -> None:
        """Continue under ``meta`` (a merged schema), which the commit will carry."""
        if meta is self._base.metadata:
            return
        self._changes.evolve(meta)
        self._new_metadata = meta

    def _scan(self, files: pa.Table) -> Scan:
        return Scan(self._storage, self._base.with_files(files))

    # -- operations ------------------------------------------------------------------------------
    def append(self, data: Any, *, schema_mode: SchemaMode = "strict", partition_by: Sequence[str] | None = None,
               progress: ProgressLike = None) -> None:
        """Add the rows of ``data`` (any Arrow-shaped data matching the table schema; with
        ``schema_mode="merge"`` its new nullable columns and widened types join the schema, and the
        nullable columns it lacks are null). ``partition_by``, if given, must be the table's
        (else ``SchemaMismatchError``). ``progress``: see :mod:`lakehouse.progress`.

        Args:
            data: Arrow-shaped data: a ``pyarrow.Table``, ``RecordBatch``, ``RecordBatchReader`` or any
                object with ``__arrow_c_stream__``.
            schema_mode: ``"strict"`` (the data must match the schema) or ``"merge"``.
            partition_by: the table's partition columns, or None.
            progress: None (silent), True (a progress bar) or a callable taking
                :class:`~lakehouse.progress.ProgressEvent` values.

        Raises:
            SchemaMismatchError: the data does not fit the schema under ``schema_mode``, or
                ``partition_by`` is not the table's.
            ConstraintViolationError: a row breaks a CHECK or NOT NULL constraint.
            InvalidDataError: ``data`` is not Arrow-shaped.
            LakehouseError: the transaction is already committed or aborted.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-tx-append", pa.table({"a": [1]}))
            >>> with t.transaction() as tx:
            ...     tx.append(pa.table({"a": [2]}))
            ...     tx.append(pa.table({"a": [3], "b": ["x"]}), schema_mode="merge")
            >>> t.version, t.schema.names, t.to_arrow().num_rows
            (1, ['a', 'b'], 3)
        """
        self._check_open()
        merge = check_schema_mode(schema_mode)
        if partition_by is not None:
            check_partitioning(partition_by, self._base.metadata.partition_by)
        if self._skip:
            return
        self._changes.include(self._write(data, merge=merge, progress=progress, operation="append"))
        self._operations.append(("append", {"schema_mode": "merge"} if merge else {}))

    def delete(self, filter: FilterLike | pc.Expression | None = None) -> None:
        """Delete the rows where ``filter`` is true (all rows if ``filter`` is None).

        A file the filter is proven true for from its partition values, or whose live rows all match,
        is removed. In a file where only some rows match, they go as the table property
        ``delete_mode`` says (:meth:`remove_rows`): into the file's deletion vector (merge-on-read, the
        default) or by rewriting the file (copy-on-write, and for small files or files of which most
        rows would be gone).

        Args:
            filter: DNF tuples, SQL-like text or a ``pyarrow.compute.Expression``; None deletes every
                row.

        Raises:
            InvalidFilterError: ``filter`` cannot be understood.
            ColumnNotFoundError: ``filter`` names a column the table does not have.
            LakehouseError: the transaction is already committed or aborted.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-tx-delete", pa.table({"a": [1, 2, 3]}))
            >>> with t.transaction() as tx:
            ...     tx.delete([("a", ">=", 2)])
            >>> t.to_arrow().column("a").to_pylist()
            [1]
        """
        self._check_open()
        if self._skip:
            return
        expr = to_expression(filter, self.schema)
        self._delete(expr)
        self._operations.append(("delete", {"filter": str(expr) if expr is not None else None}))

    def overwrite(self, data: Any, *, filter: FilterLike | pc.Expression | None = None,
                  schema_mode: SchemaMode = "strict", partition_by: Sequence[str] | None = None,
                  progress: ProgressLike = None) -> None:
        """Replace all rows, or only those matching ``filter``, by ``data``.

        With a filter every new row must match it, else ``ConstraintViolationError``. With
        ``schema_mode="merge"`` new nullable columns and widened types of ``data`` join the schema.
        With ``schema_mode="overwrite"`` (no filter) the data's schema and ``partition_by`` (None:
        the table's partition columns) replace the table's in the same commit. Without it, a
        ``partition_by`` other than the table's raises ``SchemaMismatchError``.

        Args:
            data: Arrow-shaped data, as for :meth:`append`.
            filter: replace only the rows matching it (DNF tuples, SQL-like text or an expression).
            schema_mode: ``"strict"``, ``"merge"`` or ``"overwrite"``.
            partition_by: the partition columns (with ``schema_mode="overwrite"``: the new ones).
            progress: None (silent), True (a progress bar) or a callable taking
                :class:`~lakehouse.progress.ProgressEvent` values.

        Raises:
            SchemaMismatchError: the data does not fit the schema under ``schema_mode``, or
                ``partition_by`` is not the table's.
            ConstraintViolationError: a row breaks a constraint, or does not match ``filter``.
            InvalidFilterError: ``filter`` cannot be understood.
            LakehouseError: the transaction is already committed or aborted.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-tx-overwrite", pa.table({"a": [1, 2]}))
            >>> with t.transaction() as tx:
            ...     tx.overwrite(pa.table({"a": [5]}), filter=[("a", ">=", 2)])
            >>> sorted(t.to_arrow().column("a").to_pylist())
            [1, 5]
        """
        self._check_open()
        merge = check_schema_mode(schema_mode, replace=filter is None)
        if schema_mode != "overwrite" and partition_by is not None:
            check_partitioning(partition_by, self._base.metadata.partition_by)
        if self._skip:
            return
        if schema_mode == "overwrite":
            self._replace(data, partition_by, progress)
            return
        expr = to_expression(filter, self.schema)
        check = None if expr is None else within_check(expr)
        adds = self._write(data, check, merge=merge, progress=progress, operation="overwrite")
        self._delete(expr)
        self._changes.include(adds)
        params: dict[str, Any] = {"filter": str(expr) if expr is not None else None}
        self._operations.append(("overwrite", {**params, "schema_mode": "merge"} if merge else params))

    def _replace(self, data: Any, partition_by: Sequence[str] | None, progress: ProgressLike) -> None:
        """Replace every row, the schema and the partitioning by ``data``'s (one commit)."""
        data = to_reader(data)  # read the schema once: a stream can be consumed only once
        meta = replace_schema(self._base.metadata, data.schema, partition_by)
        self._delete(None)  # every live file goes: none is read under the new schema
        self._evolve(meta)
        self._changes.include(self._write(data, progress=progress, operation="overwrite"))
        self._operations.append(("overwrite", {"filter": None, "schema_mode": "overwrite",
                                               "partition_by": list(meta.partition_by)}))

    def set_properties(self, properties: Mapping[str, Any]) -> None:
        """Set table properties in this transaction's commit (validated as ``Table.alter.set_properties``
        does: ``InvalidTableError`` naming the property at fault). Values equal to the table's change nothing.

        Args:
            properties: property name -> value (stored as text).

        Raises:
            InvalidTableError: a property with a bad value, or a ``constraint.*`` name.
            LakehouseError: the transaction is already committed or aborted.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-tx-props", pa.table({"a": [1]}))
            >>> with t.transaction() as tx:
            ...     tx.set_properties({"owner": "ops"}); tx.append(pa.table({"a": [2]}))
            >>> t.properties["owner"], t.version
            ('ops', 1)
        """
        self._check_open()
        if not isinstance(properties, Mapping):
            raise InvalidArgumentError(
                f"properties must be a mapping of names to values, got {type(properties).__name__}")
        values = {name: check_property(name, value) for name, value in properties.items()}
        if self._skip:
            return
        meta = self._base.metadata
        if all(meta.properties.get(k) == v for k, v in values.items()):
            return
        self._evolve(dataclasses.replace(meta, properties={**meta.properties, **values}))
        self._operations.append(("set_properties", {"properties": values}))

    def add_files(self, adds: list[AddFile], *, overwrite: bool = False,
                  filter: FilterLike | pc.Expression | None = None, removed: Sequence[str] = ()) -> None:
        """Commit data files written elsewhere (:func:`lakehouse.write_files`) as an append, or with
        ``overwrite=True`` as an overwrite of all rows or of those matching ``filter`` (same conflict
        rules as :meth:`append` / :meth:`overwrite`). ``removed``: paths of live files the caller read
        and replaces; a concurrent removal of one of them conflicts.

        The files belong to the transaction from here on: they are deleted if it aborts or conflicts.
        With a filter every row of the files must match it, else ``ConstraintViolationError``.

        Args:
            adds: the add actions of the files (``DataFile.to_add`` gives them).
            overwrite: replace rows instead of appending.
            filter: with ``overwrite``: replace only the rows matching it.
            removed: paths of live files the caller read and replaces.

        Raises:
            ConstraintViolationError: with a filter, a row of the files does not match it.
            InvalidFilterError: ``filter`` cannot be understood.
            LakehouseError: the transaction is already committed or aborted.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> from lakehouse.replay import load_state
            >>> from lakehouse.storage import Storage
            >>> t = lh.write_table("memory://doc-tx-add-files", pa.table({"a": [1]}))
            >>> files = lh.write_files(t.uri, pa.table({"a": [2]}))
            >>> meta = load_state(Storage.from_uri(t.uri)).metadata
            >>> with t.transaction() as tx:
            ...     tx.add_files([f.to_add(meta) for f in files])
            >>> t.to_arrow().num_rows
            2
        """
        self._check_open()
        self._changes.added.update((a.path, a) for a in adds)
        if self._skip:
            return
        expr = to_expression(filter, self.schema)
        if not overwrite and expr is not None:
            raise InvalidArgumentError("filter is only meaningful with an overwrite")
        if expr is not None:
            self._check_within(adds, expr)
        if removed:
            self._remove_paths(removed)
        if overwrite:
            self._delete(expr)
        self._changes.include(adds)
        params: dict[str, Any] = {"files": len(adds)}
        if overwrite:
            params["filter"] = str(expr) if expr is not None else None
        self._operations.append(("overwrite" if overwrite else "append", params))

    def _check_within(self, adds: list[AddFile], expr: pc.Expression) -> None:
        """ConstraintViolationError if some row of ``adds`` does not match ``expr`` (statistics first,
        then the columns the filter needs, of the files statistics cannot clear)."""
        outside = Snapshot(self._storage, self._base.with_files(adds_to_table(adds, self._base.metadata)))
        rows = outside.to_arrow(columns=sorted(referenced_columns(expr)), filter=kept_by(expr)).num_rows
        if rows:
            raise ConstraintViolationError(f"{rows} rows of the data files do not match the overwrite filter {expr}")

    def _remove_paths(self, paths: Sequence[str]) -> None:
        files = self._files
        rows = parts_in(files, list(paths))
        missing = sorted(set(paths) - set(rows.column("path").to_pylist()))
        if missing:
            raise InvalidArgumentError(f"files to remove are not live at version {self._base.version}: {missing[:5]}")
        self._read_files.update(paths)
        self._changes.drop(rows)

    def _delete(self, expr: pc.Expression | None) -> None:
        self._predicates.append(expr)
        changes = self._changes
        if expr is None:
            self._read_files.update(p for p in changes.files.column("path").to_pylist() if p not in changes.added)
            changes.drop(changes.files)
            return
        scan = self._scan(self._files)
        candidates = scan.pruned(expr)
        self._read_files.update(p for p in candidates.column("path").to_pylist() if p not in self._changes.added)
        if candidates.num_rows == 0:
            return
        # a file goes whole only where the filter is proven TRUE for all its rows (decided on its
        # partition values); pruning only keeps files that MAY match, so the rest is read
        whole = scan.whole_file_verdicts(expr, candidates)
        if whole is not None:
            self._changes.drop(candidates.filter(whole))
            return
        self._delete_rows(scan, candidates, expr)

    def _delete_rows(self, scan: Scan, candidates: pa.Table, expr: pc.Expression) -> None:
        removed = matching_positions(scan, candidates, expr)
        if removed:
            self._remove_live(parts_in(candidates, list(removed)), removed)

    def remove_rows(self, removed: Mapping[str, Any], data: Any = None, *,
                    reads: Sequence[pc.Expression | None] = (), schema_mode: SchemaMode = "strict",
                    operation: str = "delete", parameters: Mapping[str, Any] | None = None,
                    progress: ProgressLike = None) -> RowsRemoved:
        """Remove rows of live files and add ``data``, as one operation: the commit of row-level
        changes (``lakehouse.rowlevel.commit_row_changes``).

        ``removed`` numbers each file's rows among its *live* rows, in file order (as
        :func:`lakehouse.read_task` returns them). The table property ``delete_mode`` decides, per
        file (``lakehouse.rowremoval``): a file whose live rows all go is removed; in
        ``"merge-on-read"`` mode (the default) the rows are marked in the file's deletion vector,
        unless the file is small or most of its rows would be gone, when it is rewritten; in
        ``"copy-on-write"`` mode it is rewritten. A rewrite writes the file's kept rows, in order, into
        files of their own (their ``carried_rows``, format §5.4) and records the rows it dropped on the
        file's remove. ``data`` may read the touched files lazily: it is written before any is dropped.
        ``reads``: the filters (over the table's column names; None: the whole table) whose rows the
        change was decided on (conflict checks, as for :meth:`rewrite_files`).

        Args:
            removed: data-file path -> the positions (among its live rows; sorted, distinct) removed.
            data: the new rows (Arrow-shaped; may read the touched files lazily), or None.
            reads: the filters whose rows the change was decided on (None: the whole table).
            schema_mode: ``"strict"`` or ``"merge"`` (for ``data``).
            operation: the operation name recorded in the commit.
            parameters: the operation's parameters, recorded as given.
            progress: None, True (a progress bar) or a callable taking ``ProgressEvent``.

        Returns:
            What was done (:class:`RowsRemoved`).

        Raises:
            InvalidArgumentError: a path is not live in this transaction, or a position is beyond its
                live rows.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-tx-remove-rows", pa.table({"a": [1, 2, 3]}))
            >>> path = t.files().column("path")[0].as_py()
            >>> with t.transaction() as tx:
            ...     done = tx.remove_rows({path: [1]}, pa.table({"a": [20]}))
            >>> sorted(t.to_arrow().column("a").to_pylist()), done.files_removed
            ([1, 3, 20], 1)
        """
        self._check_open()
        merge = check_schema_mode(schema_mode)
        if self._skip:
            return RowsRemoved()
        rows = parts_in(self._files, list(removed))
        missing = sorted(set(removed) - set(rows.column("path").to_pylist()))
        if missing:
            raise InvalidArgumentError(f"files to remove rows of are not live at version {self._base.version}: "
                                       f"{missing[:5]}", argument="removed")
        # sorted and distinct whatever the caller passed: a repeated position must never count as another
        # removed row (the drop decision compares the count with the file's live rows)
        positions = {p: np.unique(np.asarray(v, dtype=np.int64)) for p, v in removed.items() if len(v)}
        self._predicates.extend(reads)  # removed and rewritten files conflict as removes; vectored ones by row
        removal = self._changes.plan_removal(parts_in(rows, list(positions)), positions)
        kept = self._changes.write_kept(removal)
        adds = [] if data is None else self._write(data, merge=merge, progress=progress, operation=operation)
        self._apply_removal(removal)
        self._changes.include(kept + adds)
        self._operations.append((operation, dict(parameters or {})))
        return RowsRemoved(files_added=tuple(a.path for a in kept + adds),
                           files_removed=len(removal.drop) + len(removal.rewrite),
                           deletion_vectors=len(removal.vectors))

    def _remove_live(self, rows: pa.Table, positions: Mapping[str, np.ndarray]) -> None:
        """Remove the rows at ``positions`` (among each file's live rows) of the live files ``rows``."""
        removal = self._changes.plan_removal(rows, positions)
        kept = self._changes.write_kept(removal)
        self._apply_removal(removal)
        self._changes.include(kept)

    def _apply_removal(self, removal: Removal) -> None:
        """Drop and revector the files of ``removal`` (after its rewrites and the new rows are written)."""
        self._changes.apply_removal(removal)
        # as for set_deletion_vectors: a re-added file conflicts through its remove, or row by row
        # where a rebase can merge vectors (format §12), not as a file read
        self._read_files.difference_update(removal.vectors)

    def set_deletion_vectors(self, vectors: Mapping[str, DeletionVector]) -> None:
        """Mark rows of live files deleted (merge-on-read, format.md §5.8): ``vectors`` maps the path
        of a file live in this transaction's view to the positions (0-based, in file order) of rows to
        delete, in addition to those its deletion vector already deletes. Each changed file is removed
        and re-added with its new vector in the commit; a file whose rows all go is just removed. The
        first commit that writes a vector raises the table's protocol to 4.

        The row-level writers (delete, update, merge) call this; the table's readers apply the
        vectors. Files this transaction wrote itself are refused (rewrite them instead).

        Args:
            vectors: data-file path (relative to the table root) -> the rows to delete.

        Raises:
            InvalidArgumentError: a path is not live, names a file this transaction wrote, or a
                position is not below the file's ``num_rows``.
            CorruptLogError: a file's current vector cannot be read.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-tx-dv", pa.table({"a": [1, 2, 3]}))
            >>> path = t.files().column("path")[0].as_py()
            >>> with t.transaction() as tx:
            ...     tx.set_deletion_vectors({path: DeletionVector.from_positions([1])})
            >>> t.files().column("num_deleted_rows").to_pylist()
            [1]
        """
        self._check_open()
        if not isinstance(vectors, Mapping) or not all(isinstance(v, DeletionVector) for v in vectors.values()):
            raise InvalidArgumentError("vectors must map data-file paths to DeletionVector values", argument="vectors")
        if self._skip or not vectors:
            return
        # no read_files entry: a re-added file's rows are checked one by one on rebase (format §12)
        changed = self._changes.add_vectors(vectors)
        if changed:
            self._operations.append(("delete_rows", {"files": changed}))

    def read_predicate(self, filter: FilterLike | pc.Expression | None) -> None:
        """Declare that this transaction's commit depends on the rows matching ``filter`` (format.md
        §12 rule 5): a concurrent commit that adds a file whose statistics cannot rule the filter out
        conflicts with it; appends of rows outside it never do. Row-level writers declare what they
        read: ``update``/``delete`` their filter, ``merge`` the join keys present in the source (e.g.
        ``pc.field("id").isin(keys)``), widened to None (the whole table) when it has a
        ``when_not_matched_by_source_*`` clause. ``delete`` and ``overwrite`` declare theirs already.

        Args:
            filter: DNF tuples, SQL-like text or a ``pyarrow.compute.Expression``; None is the whole table.

        Raises:
            InvalidFilterError: ``filter`` cannot be understood.
            ColumnNotFoundError: ``filter`` names a column the table does not have.
            LakehouseError: the transaction is already committed or aborted.

        Example:
            >>> import lakehouse as lh, pyarrow as pa, pyarrow.compute as pc
            >>> t = lh.write_table("memory://doc-tx-read-predicate", pa.table({"id": [1, 2]}))
            >>> with t.transaction() as tx:
            ...     tx.read_predicate(pc.field("id").isin([2, 3]))
            ...     tx.append(pa.table({"id": [3]}))
            >>> t.version
            1
        """
        self._check_open()
        expr = to_expression(filter, self.schema)
        if not self._skip:
            self._predicates.append(expr)

    def read_rows(self, rows: Mapping[str, DeletionVector]) -> None:
        """Declare rows of live files this transaction read and depends on without changing them (e.g.
        target rows a merge matched but left alone, format.md §12): a concurrent commit that deletes
        one of them conflicts; one that deletes only other rows of the file does not. (Files whose
        rows :meth:`set_deletion_vectors` deletes need no declaration for those rows.)

        Args:
            rows: data-file path (relative to the table root) -> positions (0-based, in file order).

        Raises:
            InvalidArgumentError: a path is not live or names a file this transaction wrote, or a
                position is not below the file's ``num_rows``.
            LakehouseError: the transaction is already committed or aborted.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-tx-read-rows", pa.table({"a": [1, 2, 3]}))
            >>> path = t.files().column("path")[0].as_py()
            >>> with t.transaction() as tx:
            ...     tx.read_rows({path: DeletionVector.from_positions([0])})
            ...     tx.set_deletion_vectors({path: DeletionVector.from_positions([2])})
            >>> t.files().column("num_deleted_rows").to_pylist()
            [1]
        """
        self._check_open()
        if not isinstance(rows, Mapping) or not all(isinstance(v, DeletionVector) for v in rows.values()):
            raise InvalidArgumentError("rows must map data-file paths to DeletionVector values", argument="rows")
        if self._skip or not rows:
            return
        files = parts_in(self._files, list(rows))
        found = dict(zip(files.column("path").to_pylist(), files.column("num_rows").to_pylist()))
        missing = sorted(p for p in rows if p not in found or p in self._changes.added)
        if missing:
            raise InvalidArgumentError(f"files to declare read rows of are not live at version "
                                       f"{self._base.version}: {missing[:5]}", argument="rows")
        for path, vector in rows.items():
            if vector.cardinality and int(vector.positions[-1]) >= found[path]:
                raise InvalidArgumentError(f"row position {int(vector.positions[-1])} is beyond the {found[path]} "
                                           f"rows of {path!r}", argument="rows")
            if vector.cardinality:
                self._read_rows[path] = self._read_rows[path].union(vector) if path in self._read_rows else vector

    def rewrite_files(self, removed: Sequence[str], data: Any, *, reads: Sequence[pc.Expression | None] = (),
                      schema_mode: SchemaMode = "strict", operation: str = "rewrite",
                      parameters: Mapping[str, Any] | None = None, progress: ProgressLike = None) -> list[str]:
        """Replace the live files ``removed`` by the rows of ``data``, as one operation: the commit of
        row-level changes written copy-on-write (``lakehouse.rowlevel.commit_row_changes``).

        ``data`` may read the files in ``removed`` lazily: they are dropped only after it is written.
        ``reads``: the filters (over the table's column names; None: the whole table) whose rows the
        change was decided on: a concurrent commit adding files that may match one conflicts, and so
        does a concurrent removal of a file in ``removed``.

        Args:
            removed: paths of live files to drop.
            data: the rows replacing them (Arrow-shaped; may read the removed files lazily).
            reads: the filters whose rows the change was decided on (None: the whole table).
            schema_mode: ``"strict"`` or ``"merge"``.
            operation: the operation name recorded in the commit.
            parameters: the operation's parameters, recorded as given.
            progress: None, True (a progress bar) or a callable taking ``ProgressEvent``.

        Returns:
            The paths of the files written.

        Raises:
            InvalidArgumentError: a path in ``removed`` is not live in this transaction.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-tx-rewrite", pa.table({"a": [1, 2, 3]}))
            >>> path = t.files().column("path")[0].as_py()
            >>> with t.transaction() as tx:
            ...     _ = tx.rewrite_files([path], pa.table({"a": [1, 3]}))
            >>> t.to_arrow().column("a").to_pylist()
            [1, 3]
        """
        self._check_open()
        merge = check_schema_mode(schema_mode)
        if self._skip:
            return []
        live = set(parts_in(self._files, list(removed)).column("path").to_pylist())
        missing = sorted(set(removed) - live)
        if missing:
            raise InvalidArgumentError(f"files to rewrite are not live at version {self._base.version}: {missing[:5]}")
        self._predicates.extend(reads)
        adds = self._write(data, merge=merge, progress=progress, operation=operation)
        if removed:
            self._remove_paths(removed)
        self._changes.include(adds)
        self._operations.append((operation, dict(parameters or {})))
        return [a.path for a in adds]

    # -- ending ----------------------------------------------------------------------------------
    def _request(self) -> CommitRequest:
        ops = self._operations
        name = ops[0][0] if len(ops) == 1 else "transaction"
        params: dict[str, Any] = dict(ops[0][1]) if len(ops) == 1 else {"operations": [o for o, _ in ops]}
        scan = Scan(self._storage, self._base)  # conflict checks prune by physical names
        meta = self._new_metadata
        added, removed = self._changes.lineage_actions()
        return CommitRequest(
            operation=name, parameters=params, add=(*added, *self._changes.revectored.values()),
            remove=removed, txn=self._txn, metadata=meta,
            protocol=None if meta is None else raised_protocol(meta, self._base.protocol, self._read_metadata),
            read_predicates=tuple(scan.physical(p) for p in self._predicates), read_files=frozenset(self._read_files),
            read_rows={p: v for p, v in self._read_rows.items()
                       if p not in self._changes.removed or p in self._changes.revectored},
        )

    def commit(self) -> int:
        """Commit all operations as one new version and return it.

        A clean exit from the ``with`` block calls it. If the transaction's ``app_transaction`` was
        already applied, nothing is committed and the version that records it is returned. On a
        conflict (or a commit that certainly did not land) the files it wrote are deleted; when the
        outcome is unknown they are kept.

        Returns:
            The new version.

        Raises:
            CommitConflictError: a concurrent commit conflicts with this one.
            CommitStateUnknownError: the storage failed so that the commit may or may not have landed.
            LakehouseError: the transaction is already committed or aborted.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-tx-commit", pa.table({"a": [1]}))
            >>> tx = t.transaction()
            >>> tx.append(pa.table({"a": [2]}))
            >>> tx.commit(), t.version
            (1, 1)
        """
        self._check_open()
        self._closed = True
        if self._skip:  # nothing was written but files given to add_files: they are not needed
            self._changes.discard()  # (and no deletion vector was written)
            self._version = self._base.version
            self._on_commit(self._base, True)
            return self._base.version
        try:
            result = commit(self._storage, self._base, self._request())
        except CommitStateUnknownError:
            raise  # the entry may have landed: its data files must stay
        except CommitError as exc:  # a conflict, or a write that certainly did not land
            self._changes.discard_lost(exc)
            raise
        if result.skipped:
            self._changes.discard()
        else:  # a rebase may have replaced our vectors by merged ones (format §12)
            self._changes.discard_unused_vectors(result.state.files)
        self._version = result.version
        self._on_commit(result.state, result.skipped)
        return result.version

    def abort(self) -> None:
        """Discard the transaction and delete the files it wrote.

        An exception in the ``with`` block calls it; after a commit it does nothing.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-tx-abort", pa.table({"a": [1]}))
            >>> tx = t.transaction()
            >>> tx.append(pa.table({"a": [2]}))
            >>> tx.abort()
            >>> tx.version, t.refresh(), len(t.files())
            (None, 0, 1)
        """
        if not self._closed:
            self._closed = True
            self._changes.discard()


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
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .arguments import check_app_transaction, check_choice
from .commit import CommitRequest, commit
from .constraints import combine_checks, constraint_checker
from .errors import (
    CommitConflictError,
    CommitError,
    CommitStateUnknownError,
    ConstraintViolationError,
    InvalidArgumentError,
    LakehouseError,
    SchemaMismatchError,
)
from .evolution import merge_schema, raised_protocol, replace_schema
from .expressions import FilterLike, referenced_columns, to_expression
from .log import AddFile, AppTransaction, Metadata, RemoveFile
from .progress import ProgressLike
from .properties import check_property
from .schema import logical_schema, to_reader
from .snapshot import Snapshot, read_ahead, read_entry
from .state import TableState, adds_to_table, retype_adds
from .write import WriteOptions, delete_files, write_data_files

if TYPE_CHECKING:
    from .storage import Storage

__all__ = ["SchemaMode", "Transaction"]

SchemaMode = Literal["strict", "merge", "overwrite"]
"""How a write treats data whose schema differs from the table's: ``"strict"`` refuses it
(``SchemaMismatchError``); ``"merge"`` lets new nullable columns and widened types join the table
schema in the same commit (see ``lakehouse.evolution``) and fills the nullable columns the data
lacks with nulls; ``"overwrite"`` (only for a whole-table overwrite) replaces the schema, and the
partitioning if asked, by the data's."""


def _check_mode(schema_mode: str, *, replace: bool = False) -> bool:
    """True for ``"merge"``; ``InvalidArgumentError`` for anything but the modes (``"overwrite"`` only
    where ``replace`` allows it)."""
    check_choice(schema_mode, "schema_mode", ("strict", "merge", "overwrite"))
    if schema_mode == "overwrite" and not replace:
        raise InvalidArgumentError("schema_mode='overwrite' replaces the whole table: use it with an overwrite "
                                   "without a filter", argument="schema_mode")
    return schema_mode == "merge"


def _keep(expr: pc.Expression) -> pc.Expression:
    """Rows a delete keeps: where ``expr`` is false or null (SQL semantics)."""
    return ~expr | expr.is_null()


def _parts_in(files: pa.Table, paths: list[str]) -> pa.Table:
    return files.filter(pc.is_in(files.column("path"), pa.array(paths, pa.string())))


class Transaction:
    """A set of writes committed together. Get one from ``Table.transaction()``."""

    def __init__(self, storage: Storage, base: TableState, *, on_commit: Callable[[TableState, bool], None],
                 app_transaction: tuple[str, int] | None = None, options: WriteOptions | None = None) -> None:
        self._storage = storage
        self._base = base
        self._on_commit = on_commit
        self._options = options
        self._working = base.files
        self._pending: list[AddFile] = []  # added files not yet joined into ``_working``
        self._added: dict[str, AddFile] = {}
        self._removed: dict[str, RemoveFile] = {}
        self._predicates: list[pc.Expression | None] = []
        self._read_files: set[str] = set()
        self._operations: list[tuple[str, dict[str, Any]]] = []
        app = check_app_transaction(app_transaction)
        self._txn: tuple[AppTransaction, ...] = () if app is None else (AppTransaction(app_id=app[0], version=app[1]),)
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
    def _write(self, data: Any, check: Callable[[pa.RecordBatch], None] | None = None, *,
               merge: bool = False, progress: ProgressLike = None, operation: str = "write") -> list[AddFile]:
        if merge:
            data = to_reader(data)  # read the schema once: a stream can be consumed only once
            self._evolve(merge_schema(self._base.metadata, data.schema))
        meta = self._base.metadata
        check = combine_checks(constraint_checker(meta.properties), check)  # CHECK constraints (format §16.1)
        self._storage.check_atomic_create()  # an unsafe store is refused before any data file is written
        adds = write_data_files(self._storage, data, schema=meta.schema, partition_by=meta.partition_by,
                                options=self._options, check=check, widen=merge, progress=progress,
                                operation=operation)
        self._added.update((a.path, a) for a in adds)
        return adds

    def _evolve(self, meta: Metadata) -> None:
        """Continue under ``meta`` (a merged schema), which the commit will carry."""
        old = self._base.metadata
        if meta is old:
            return
        files = self._files  # added files join under the schema they were written with
        self._base = self._base.with_metadata(meta)
        self._working = self._base.with_files(files).with_metadata(meta).files
        # values of add actions are typed by the commit's schema (format.md §5.3): re-encode ours
        self._added = {a.path: a for a in retype_adds(list(self._added.values()), old, meta)}
        self._new_metadata = meta

    @property
    def _files(self) -> pa.Table:
        """The live files as this transaction sees them. Added files join the table only when an
        operation reads it, so a plain append builds no files-table rows here (the commit does)."""
        if self._pending:
            added = adds_to_table(self._pending, self._base.metadata)
            self._working = pa.concat_tables([self._working, added])
            self._pending = []
        return self._working

    def _include(self, adds: list[AddFile]) -> None:
        self._pending.extend(adds)

    def _drop(self, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        now = int(time.time() * 1000)
        paths = rows.column("path").to_pylist()
        ours = {p for p in paths if p in self._added}
        for p in ours:
            del self._added[p]
        delete_files(self._storage, sorted(ours))  # never committed, so nobody can read them
        sizes, counts = rows.column("size_bytes").to_pylist(), rows.column("num_rows").to_pylist()
        for p, size, n in zip(paths, sizes, counts):
            if p not in ours:
                self._removed[p] = RemoveFile(path=p, deletion_time=now, size_bytes=size, num_rows=n)
        files = self._files
        self._working = files.filter(pc.invert(pc.is_in(files.column("path"), pa.array(paths, pa.string()))))

    def _snapshot(self, files: pa.Table) -> Snapshot:
        return Snapshot(self._storage, self._base.with_files(files))

    # -- operations ------------------------------------------------------------------------------
    def append(self, data: Any, *, schema_mode: SchemaMode = "strict", partition_by: Sequence[str] | None = None,
               progress: ProgressLike = None) -> None:
        """Add the rows of ``data`` (any Arrow-shaped data matching the table schema; with
        ``schema_mode="merge"`` its new nullable columns and widened types join the schema, and the
        nullable columns it lacks are null). ``partition_by``, if given, must be the table's
        (else ``SchemaMismatchError``). ``progress``: see :mod:`lakehouse.progress`."""
        self._check_open()
        merge = _check_mode(schema_mode)
        if partition_by is not None:
            self._check_partitioning(partition_by)
        if self._skip:
            return
        self._include(self._write(data, merge=merge, progress=progress, operation="append"))
        self._operations.append(("append", {"schema_mode": "merge"} if merge else {}))

    def delete(self, filter: FilterLike | pc.Expression | None = None) -> None:
        """Delete the rows where ``filter`` is true (all rows if ``filter`` is None)."""
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
        """
        self._check_open()
        merge = _check_mode(schema_mode, replace=filter is None)
        if schema_mode != "overwrite" and partition_by is not None:
            self._check_partitioning(partition_by)
        if self._skip:
            return
        if schema_mode == "overwrite":
            self._replace(data, partition_by, progress)
            return
        expr = to_expression(filter, self.schema)
        check = None
        if expr is not None:
            def check(batch: pa.RecordBatch) -> None:
                outside = pa.Table.from_batches([batch]).filter(_keep(expr)).num_rows
                if outside:
                    raise ConstraintViolationError(
                        f"{outside} rows of the data do not match the overwrite filter {expr}"
                    )
        adds = self._write(data, check, merge=merge, progress=progress, operation="overwrite")
        self._delete(expr)
        self._include(adds)
        params: dict[str, Any] = {"filter": str(expr) if expr is not None else None}
        self._operations.append(("overwrite", {**params, "schema_mode": "merge"} if merge else params))

    def _check_partitioning(self, partition_by: Sequence[str]) -> None:
        """``SchemaMismatchError`` naming the first partition column where ``partition_by`` and the table's differ."""
        parts = [partition_by] if isinstance(partition_by, str) else list(partition_by)
        table = list(self._base.metadata.partition_by)
        if parts == table:
            return
        i = next(i for i, (a, b) in enumerate(zip([*parts, None], [*table, None])) if a != b)
        column = parts[i] if i < len(parts) else table[i]
        raise SchemaMismatchError(f"partition_by={parts} differs from the table's partitioning {table} (at "
                                  f"{column!r}): pass schema_mode='overwrite' to an overwrite to replace it",
                                  column=str(column))

    def _replace(self, data: Any, partition_by: Sequence[str] | None, progress: ProgressLike) -> None:
        """Replace every row, the schema and the partitioning by ``data``'s (one commit)."""
        data = to_reader(data)  # read the schema once: a stream can be consumed only once
        meta = replace_schema(self._base.metadata, data.schema, partition_by)
        self._delete(None)  # every live file goes: none is read under the new schema
        self._evolve(meta)
        self._include(self._write(data, progress=progress, operation="overwrite"))
        self._operations.append(("overwrite", {"filter": None, "schema_mode": "overwrite",
                                               "partition_by": list(meta.partition_by)}))

    def set_properties(self, properties: Mapping[str, Any]) -> None:
        """Set table properties in this transaction's commit (validated as ``Table.alter.set_properties``
        does: ``InvalidTableError`` naming the property at fault). Values equal to the table's change nothing.

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
        """
        self._check_open()
        self._added.update((a.path, a) for a in adds)
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
        self._include(adds)
        params: dict[str, Any] = {"files": len(adds)}
        if overwrite:
            params["filter"] = str(expr) if expr is not None else None
        self._operations.append(("overwrite" if overwrite else "append", params))

    def _check_within(self, adds: list[AddFile], expr: pc.Expression) -> None:
        """ConstraintViolationError if some row of ``adds`` does not match ``expr`` (statistics first,
        then the columns the filter needs, of the files statistics cannot clear)."""
        outside = Snapshot(self._storage, self._base.with_files(adds_to_table(adds, self._base.metadata)))
        rows = outside.to_arrow(columns=sorted(referenced_columns(expr)), filter=_keep(expr)).num_rows
        if rows:
            raise ConstraintViolationError(f"{rows} rows of the data files do not match the overwrite filter {expr}")

    def _remove_paths(self, paths: Sequence[str]) -> None:
        files = self._files
        rows = _parts_in(files, list(paths))
        missing = sorted(set(paths) - set(rows.column("path").to_pylist()))
        if missing:
            raise InvalidArgumentError(f"files to remove are not live at version {self._base.version}: {missing[:5]}")
        self._read_files.update(paths)
        self._drop(rows)

    def _delete(self, expr: pc.Expression | None) -> None:
        self._predicates.append(expr)
        if expr is None:
            self._read_files.update(p for p in self._files.column("path").to_pylist() if p not in self._added)
            self._drop(self._files)
            return
        snap = self._snapshot(self._files)
        candidates = snap._pruned(expr)
        self._read_files.update(p for p in candidates.column("path").to_pylist() if p not in self._added)
        if candidates.num_rows == 0:
            return
        # a file goes whole only where the filter is proven TRUE for all its rows (decided on its
        # partition values); pruning only keeps files that MAY match, so the rest is read
        whole = snap._whole_file_verdicts(expr, candidates)
        if whole is not None:
            self._drop(candidates.filter(whole))
            return
        self._delete_rows(snap, candidates, expr)

    def _delete_rows(self, snap: Snapshot, candidates: pa.Table, expr: pc.Expression) -> None:
        dataset = snap._dataset(candidates)
        schema = self.schema
        fragments = list(dataset.get_fragments())

        plan = snap._scan_plan(None, expr)  # float terms are evaluated on rows, not on Parquet stats
        needed = sorted(referenced_columns(expr))

        def matched(fragment: ds.Fragment) -> int:
            if plan.residual is None:
                return snap._count_fragment(fragment, expr)
            return snap._scan_fragment(fragment, filter=plan.pushed, columns=needed).filter(plan.residual).num_rows

        def kept_rows(fragment: ds.Fragment) -> pa.Table:
            if plan.residual is None:
                return snap._scan_fragment(fragment, filter=_keep(expr))
            return snap._scan_fragment(fragment).filter(_keep(expr))

        with ThreadPoolExecutor(4) as pool:
            counts = list(pool.map(matched, fragments))
        totals = candidates.column("num_rows").to_pylist()
        paths = candidates.column("path").to_pylist()
        whole = [p for p, c, n in zip(paths, counts, totals) if c and c == n]
        partial = [(f, p) for f, p, c, n in zip(fragments, paths, counts, totals) if c and c != n]
        # the kept rows of all partly matched files stream through one write: files are read one
        # ahead on a thread, remnants of one partition share files, and files are written in parallel
        kept = read_ahead(kept_rows, [f for f, _ in partial])
        rewritten = self._write(pa.RecordBatchReader.from_batches(schema, kept)) if partial else []
        # one pass over the files table, after the reads: dropping a file this transaction added
        # deletes it from storage
        self._drop(_parts_in(candidates, whole + [p for _, p in partial]))
        self._include(rewritten)

    def rewrite_files(self, removed: Sequence[str], data: Any, *, reads: Sequence[pc.Expression | None] = (),
                      schema_mode: SchemaMode = "strict", operation: str = "rewrite",
                      parameters: Mapping[str, Any] | None = None, progress: ProgressLike = None) -> list[str]:
        """Replace the live files ``removed`` by the rows of ``data``, as one operation: the commit of
        row-level changes written copy-on-write (``lakehouse.rowlevel.commit_row_changes``).

        ``data`` may read the files in ``removed`` lazily: they are dropped only after it is written.
        ``reads``: the filters (over the table's column names; None: the whole table) whose rows the
        change was decided on: a concurrent commit adding files that may match one conflicts, and so
        does a concurrent removal of a file in ``removed``. Returns the paths of the files written.

        Raises:
            InvalidArgumentError: a path in ``removed`` is not live in this transaction.
        """
        self._check_open()
        merge = _check_mode(schema_mode)
        if self._skip:
            return []
        live = set(_parts_in(self._files, list(removed)).column("path").to_pylist())
        missing = sorted(set(removed) - live)
        if missing:
            raise InvalidArgumentError(f"files to rewrite are not live at version {self._base.version}: {missing[:5]}")
        self._predicates.extend(reads)
        adds = self._write(data, merge=merge, progress=progress, operation=operation)
        if removed:
            self._remove_paths(removed)
        self._include(adds)
        self._operations.append((operation, dict(parameters or {})))
        return [a.path for a in adds]

    # -- ending ----------------------------------------------------------------------------------
    def _request(self) -> CommitRequest:
        ops = self._operations
        name = ops[0][0] if len(ops) == 1 else "transaction"
        params: dict[str, Any] = dict(ops[0][1]) if len(ops) == 1 else {"operations": [o for o, _ in ops]}
        snap = Snapshot(self._storage, self._base)  # conflict checks prune by physical names
        meta = self._new_metadata
        return CommitRequest(
            operation=name, parameters=params, add=tuple(self._added.values()),
            remove=tuple(self._removed.values()), txn=self._txn, metadata=meta,
            protocol=None if meta is None else raised_protocol(meta, self._base.protocol, self._read_metadata),
            read_predicates=tuple(snap._physical(p) for p in self._predicates), read_files=frozenset(self._read_files),
        )

    def commit(self) -> int:
        """Commit all operations as one new version and return it."""
        self._check_open()
        self._closed = True
        if self._skip:  # nothing was written but files given to add_files: they are not needed
            delete_files(self._storage, list(self._added))
            self._version = self._base.version
            self._on_commit(self._base, True)
            return self._base.version
        try:
            result = commit(self._storage, self._base, self._request())
        except CommitStateUnknownError:
            raise  # the entry may have landed: its data files must stay
        except CommitError as exc:  # a conflict, or a write that certainly did not land
            delete_files(self._storage, [p for p in self._added if p not in self._committed_by(exc)])
            raise
        if result.skipped:
            delete_files(self._storage, list(self._added))
        self._version = result.version
        self._on_commit(result.state, result.skipped)
        return result.version

    def _committed_by(self, exc: CommitError) -> set[str]:
        """Paths the winning commit of a conflict added: never deleted, even if this one added them too."""
        version = getattr(exc, "version", None)
        if not isinstance(exc, CommitConflictError) or version is None:
            return set()
        if exc.live_paths:  # the conflict found them live (after a log clean-up)
            return set(exc.live_paths)
        try:
            entry = read_entry(self._storage, version)
        except Exception:  # cannot tell: keep every file (an orphan is vacuum's, a lost file is not)
            return set(self._added)
        # a winner the log no longer holds (cleaned up) cannot tell which files it added: keep them all
        return set(self._added) if entry is None else {a.path for a in entry.add}

    def abort(self) -> None:
        """Discard the transaction and delete the files it wrote."""
        if not self._closed:
            self._closed = True
            delete_files(self._storage, list(self._added))


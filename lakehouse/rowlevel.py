"""Row-level changes: the seam between deciding which rows change and recording it, and ``update``.

An operation that changes rows (``update``, ``merge``, ``upsert``) first decides, reading the table,
a :class:`RowChanges` value: for each data file it touches, the positions of the rows it removes
(rows are numbered in file order from 0, as :func:`lakehouse.read_task` returns them), and the new
rows to write (updated rows, inserted rows) in the table schema. :func:`commit_row_changes` then
records it inside a :class:`~lakehouse.transaction.Transaction`, in one commit: removed rows of a
touched file go into its deletion vector (merge-on-read) or the file is rewritten without them
(copy-on-write), as the table property ``delete_mode`` and ``lakehouse.rowremoval`` decide; the new
rows are added.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-rowlevel", pa.table({"id": [1, 2, 3], "v": [10, 20, 30]}))
    >>> t.update({"v": "v + 1"}, filter="id >= 2")
    1
    >>> t.to_arrow().sort_by("id").column("v").to_pylist()
    [10, 21, 31]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arguments import check_choice
from .errors import (
    ArgumentTypeError,
    ColumnNotFoundError,
    InvalidArgumentError,
    InvalidFilterError,
    SchemaMismatchError,
)
from .expr.bridge import referenced_columns
from .expr.dnf import FilterLike, to_expression
from .progress import ProgressEvent, ProgressLike, progress_callback
from .scan import FileGroups, FileTask, read_task, scan_plan, task_groups
from .setexpr import Sides, evaluate, evaluate_checked, set_value
from .transaction import RowsRemoved

if TYPE_CHECKING:
    from .commit import CommitOutcome
    from .transaction import SchemaMode, Transaction

__all__ = ["RemovedRows", "RowChanges", "RowTarget", "candidate_files", "commit_row_changes", "file_rows", "fit_rows",
           "update_table"]


class RowTarget(Protocol):
    """What a row-level change needs of a table (``lakehouse.Table`` is one): its latest version and
    schema, its planned files and a transaction. Naming this protocol instead of ``Table`` keeps
    ``rowlevel`` and ``merge`` free of an import cycle with ``table``, which delegates to them."""

    @property
    def version(self) -> int: ...

    @property
    def schema(self) -> pa.Schema: ...

    @property
    def last_outcome(self) -> CommitOutcome | None: ...

    def plan_files(self, *, filter: Any = None, columns: Any = None) -> list[FileTask]: ...

    def transaction(self, *, app_transaction: tuple[str, int] | None = None) -> Transaction: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RemovedRows:
    """The rows one operation removes from one live data file.

    Example:
        >>> import lakehouse as lh, numpy as np, pyarrow as pa
        >>> t = lh.write_table("memory://doc-removed-rows", pa.table({"a": [1, 2, 3]}))
        >>> RemovedRows(task=t.plan_files()[0], positions=np.array([0, 2], np.uint64)).count
        2
    """

    task: FileTask
    """The file (planned at the operation's read version); its ``path`` and ``num_rows`` (physical rows)."""
    positions: np.ndarray
    """Sorted, distinct row positions (``uint64``) removed from the file."""

    @property
    def path(self) -> str:
        """The file's path relative to the table root."""
        return self.task.path

    @property
    def count(self) -> int:
        """How many rows are removed."""
        return len(self.positions)


Added = Callable[[], Iterable[pa.Table]]
_SCAN_THREADS = 4  # files whose filter columns ``update`` reads at once
_EVALUATE_ROWS = 1 << 20  # rows read of several files that ``update`` evaluates its filter on at once


@dataclass(frozen=True, slots=True, kw_only=True)
class RowChanges:
    """What a row-level operation changes: rows removed per file, and new rows written.

    ``added`` yields the new rows (each table in ``schema``), possibly computed lazily, file by file,
    when the change is committed; ``num_added`` is how many it yields. ``reads`` are the filters (over
    the table's columns; None: the whole table) whose rows the decision depended on (conflict checks).

    Example:
        >>> import pyarrow as pa
        >>> RowChanges(schema=pa.schema([("a", pa.int64())])).is_empty
        True
    """

    schema: pa.Schema
    """The schema of the rows written: the table's (plus new nullable or widened columns with
    ``schema_mode="merge"``)."""
    removed: tuple[RemovedRows, ...] = ()
    added: Added = field(default=lambda: ())
    num_added: int = 0
    reads: tuple[pc.Expression | None, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True if nothing is removed or added (and nothing is committed)."""
        return not self.removed and self.num_added == 0

    @property
    def num_removed(self) -> int:
        """Rows removed, over all files."""
        return sum(r.count for r in self.removed)


def file_rows(task: FileTask, columns: Sequence[str] | None = None) -> pa.Table:
    """Every row of ``task``'s file in file order (position = index), its ``columns`` only (None: all).

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-file-rows", pa.table({"a": [3, 1, 2]}))
        >>> file_rows(t.plan_files(filter=[("a", ">", 2)])[0]).column("a").to_pylist()
        [3, 1, 2]
    """
    return read_task(dataclasses.replace(task, filter=None, columns=None if columns is None else tuple(columns)))


def candidate_files(table: RowTarget, filter: pc.Expression | None) -> list[FileTask]:
    """Tasks of the files of ``table`` that may hold rows where ``filter`` (checked already) is true;
    every file when the filter cannot be written into a task (nested too deeply to encode)."""
    try:
        return table.plan_files(filter=filter)
    except InvalidFilterError:
        return table.plan_files()


def fit_rows(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` with ``schema``'s columns in its order and types; a column ``rows`` lacks is null.

    Raises:
        SchemaMismatchError: a value does not fit its column's type (naming the column).
    """
    columns = []
    for f in schema:
        if f.name not in rows.column_names:
            columns.append(pa.nulls(rows.num_rows, f.type))
            continue
        col = rows.column(f.name)
        if col.type != f.type:
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaMismatchError(f"values for column {f.name!r} do not fit its type {f.type}: "
                                          f"{str(exc).splitlines()[0]}", column=f.name) from None
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def _added_batches(changes: RowChanges) -> Iterator[pa.RecordBatch]:
    """The added rows, fitted to ``changes.schema``."""
    for table in changes.added():
        if table.num_rows:
            yield from fit_rows(table, changes.schema).to_batches()


def commit_row_changes(tx: Transaction, changes: RowChanges, *, schema_mode: SchemaMode = "strict",
                       operation: str = "update", parameters: Mapping[str, Any] | None = None,
                       progress: ProgressLike = None) -> RowsRemoved:
    """Record ``changes`` in ``tx`` as one operation (``Transaction.remove_rows``).

    The table property ``delete_mode`` decides how removed rows go (format §16): in
    ``"merge-on-read"`` mode (the default) a touched file gets a deletion vector, unless it is small
    or most of its rows would be gone (then it is rewritten; ``lakehouse.rowremoval``); in
    ``"copy-on-write"`` mode each touched file is rewritten without its removed rows, its kept rows in
    order in files of their own. A file whose rows all go is removed. The added rows are written
    into new files. All in the transaction's one commit: a concurrent removal of a touched file, or a
    concurrent commit adding rows one of ``changes.reads`` may match, makes it ``CommitConflictError``.
    Constraints and NOT NULL are enforced on every row written.

    Args:
        tx: the transaction, opened at the version the changes were decided on.
        changes: what to change.
        schema_mode: ``"merge"`` lets new nullable columns and widened types of ``changes.schema``
            join the table schema in the same commit.
        operation: the operation name in the log.
        parameters: the operation's parameters in the log.
        progress: as for ``Table.append``.

    Returns:
        What was written and removed (``RowsRemoved``: files added, files removed, deletion vectors).
    """
    if changes.is_empty:
        return RowsRemoved()
    data = pa.RecordBatchReader.from_batches(changes.schema, _added_batches(changes)) if changes.num_added else None
    return tx.remove_rows({r.path: r.positions for r in changes.removed}, data, reads=changes.reads,
                          schema_mode=schema_mode, operation=operation, parameters=parameters, progress=progress)


def _mask(rows: pa.Table, expr: pc.Expression | None) -> np.ndarray:
    """Where ``expr`` is TRUE on ``rows`` (null counts as false)."""
    if expr is None:
        return np.ones(rows.num_rows, dtype=bool)
    values = evaluate_checked(rows, expr, "the filter")
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def updated_rows(rows: pa.Table, values: Mapping[str, pc.Expression], schema: pa.Schema, *,
                 on: pa.Table | None = None) -> pa.Table:
    """``rows`` with ``values`` (expressions over ``on``, default ``rows``; one row of ``on`` per row of
    ``rows``) replacing their columns, fitted to ``schema``.

    Raises:
        SchemaMismatchError: a value does not fit its column's type.
        InvalidArgumentError: a value cannot be computed (overflow, division by zero, ...).
    """
    if not values:
        return fit_rows(rows, schema)
    wanted = {name: expr.cast(schema.field(name).type) for name, expr in values.items()}
    on = rows if on is None else on
    try:
        new = evaluate(on, wanted)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError) as exc:
        name = next(iter(values))
        for n, e in wanted.items():  # name the column at fault
            try:
                evaluate(on, {n: e})
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
                name = n
                break
        raise SchemaMismatchError(f"cannot compute the new values of column {name!r} ({schema.field(name).type}): "
                                  f"{str(exc).splitlines()[0]}", column=name) from None
    out = rows
    for name in new.column_names:
        if name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, new.column(name))
        else:
            out = out.append_column(name, new.column(name))
    return fit_rows(out, schema)


def check_set(set: Any) -> Mapping[str, Any]:
    """``set`` as a mapping of column names to values; ``ArgumentTypeError`` otherwise."""
    if not isinstance(set, Mapping):
        raise ArgumentTypeError(f"set must be a mapping of column names to values, got {type(set).__name__}",
                                argument="set")
    for name in set:
        if not isinstance(name, str):
            raise ArgumentTypeError(f"set keys must be column names (str), got {name!r}", argument="set")
    return set


def set_values(set: Mapping[str, Any], sides: Sides, schema: pa.Schema, *, default: Any = "target",
               merge: bool = False) -> tuple[dict[str, pc.Expression], pa.Schema]:
    """The SET expressions over ``sides.joined`` and the schema of the rows written (``schema``, plus
    a new nullable column per unknown name with ``merge``; ``ColumnNotFoundError`` without)."""
    values: dict[str, pc.Expression] = {}
    for name, value in check_set(set).items():
        expr = set_value(value, sides, default=default, column=name)
        if name not in schema.names:
            if not merge:
                raise ColumnNotFoundError(name, available=list(schema.names))
            typ = evaluate(sides.joined.empty_table(), {"v": expr}).schema.field("v").type
            if pa.types.is_null(typ):
                raise InvalidArgumentError(f"the new column {name!r} needs a typed value, not NULL", argument="set")
            schema = schema.append(pa.field(name, typ, nullable=True))
        values[name] = expr
    return values, schema


def _plan_update(table: RowTarget, set: Any, filter: FilterLike | pc.Expression | None, *, merge: bool,
                 progress: ProgressLike) -> RowChanges:
    schema = table.schema
    expr = to_expression(filter, schema)
    values, out = set_values(set, Sides.of(target=schema), schema, merge=merge)
    if not values:
        raise InvalidArgumentError("set names no column to update", argument="set")
    tasks = candidate_files(table, expr)
    needed = sorted(referenced_columns(expr)) if expr is not None else []
    removed = []

    pushed = scan_plan(schema, None, expr).pushed  # float terms are never judged on statistics
    files: dict[str, FileGroups] = {}

    def scanned(task: FileTask) -> tuple[pa.Table | None, np.ndarray]:
        """The rows (``needed`` columns) of the file's row groups whose statistics may hold rows
        where ``expr`` is true, and their live positions (no rows: every live row matches)."""
        if expr is None:
            return None, np.arange(task.num_rows - task.num_deleted_rows, dtype=np.uint64)
        groups = files[task.path] = task_groups(task)
        return groups.read(needed, prune=pushed)

    pending: list[tuple[FileTask, pa.Table, np.ndarray]] = []

    def evaluate_pending() -> None:
        """``expr`` over the rows read of several files at once (one evaluation, not one per file)."""
        if not pending:
            return
        if len(pending) == 1 or not needed:
            masks = [_mask(rows, expr) for _, rows, _ in pending]
        else:
            first = pending[0][1]
            joined = pa.Table.from_arrays(
                [pa.chunked_array([c for _, rows, _ in pending for c in rows.column(i).chunks], type=f.type)
                 for i, f in enumerate(first.schema)], schema=first.schema)
            mask = _mask(joined, expr)
            ends = np.cumsum([rows.num_rows for _, rows, _ in pending])
            masks = np.split(mask, ends[:-1])
        for (task, _, live), hit in zip(pending, masks):
            if hit.any():
                removed.append(RemovedRows(task=task, positions=live[hit].astype(np.uint64)))
        pending.clear()

    report = progress_callback(progress)
    try:
        with ThreadPoolExecutor(_SCAN_THREADS) as pool:
            held = 0
            for i, (task, (rows, live)) in enumerate(zip(tasks, pool.map(scanned, tasks))):
                if rows is None:
                    if len(live):
                        removed.append(RemovedRows(task=task, positions=live))
                elif rows.num_rows:
                    if pending and not rows.schema.equals(pending[0][1].schema):
                        evaluate_pending()
                    pending.append((task, rows, live))
                    held += rows.num_rows
                    if held >= _EVALUATE_ROWS:
                        evaluate_pending()
                        held = 0
                report(ProgressEvent("update", "scan", i + 1, len(tasks), "files"))
            evaluate_pending()
    finally:
        report.close()

    def added() -> Iterator[pa.Table]:
        for item in removed:
            # the matching rows, in file order, read from the row groups that hold them only
            groups = files.get(item.task.path) or task_groups(item.task)
            yield updated_rows(groups.take(item.positions), values, out)

    return RowChanges(schema=out, removed=tuple(removed), added=added, num_added=sum(r.count for r in removed),
                      reads=(expr,))


def update_table(table: RowTarget, set: Any, filter: FilterLike | pc.Expression | None = None, *,
                 schema_mode: SchemaMode = "strict", app_transaction: tuple[str, int] | None = None,
                 progress: ProgressLike = None) -> int:
    """``Table.update``: set columns of the rows matching ``filter``; returns the version.

    Raises:
        ColumnNotFoundError: ``set`` or ``filter`` names a column the table lacks.
        SchemaMismatchError: a new value does not fit its column's type.
        ConstraintViolationError, SchemaMismatchError: a row written breaks a constraint or NOT NULL.
    """
    check_choice(schema_mode, "schema_mode", ("strict", "merge"))
    tx = table.transaction(app_transaction=app_transaction)
    try:
        changes = _plan_update(table, set, filter, merge=schema_mode == "merge", progress=progress)
    except BaseException:
        tx.abort()
        raise
    if changes.is_empty:
        tx.abort()
        return table.version
    with tx:
        params = {"filter": str(changes.reads[0]) if changes.reads[0] is not None else None,
                  "set": sorted(set), "rows": changes.num_added}
        commit_row_changes(tx, changes, schema_mode=schema_mode, operation="update", parameters=params,
                           progress=progress)
    return tx.version  # type: ignore[return-value]

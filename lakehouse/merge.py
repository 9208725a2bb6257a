"""``Table.merge`` and ``Table.upsert``: SQL MERGE over a table, modelled on deltalake's ``TableMerger``.

A merge joins a *source* (any Arrow-shaped data) to the table (the *target*) on equal keys
(``on=``) or a predicate, then applies clauses in order, the first matching clause of a kind
winning: matched rows may be updated or deleted, source rows that match nothing inserted, and
target rows that no source row matches (``not_matched_by_source``) updated or deleted. A null key
never matches. A target row matched by several source rows is :class:`~lakehouse.DuplicateMatchError`
(when a matched clause could act on it), raised before anything is written.

How it runs, reading as little as it can: the source is read once, streaming, into a
:class:`~lakehouse.merge_source.MergeSource` (held in memory when it fits a budget, else spilled to
local disk in key-range chunks) and merged one chunk at a time. Candidate target files are pruned
by the chunk's key range (and exact key set when small) against partition values and min/max
statistics; only the key columns of the row groups whose min/max may hold a source key are read to
find matched row positions (a single numeric key through a sorted-key probe,
:class:`~lakehouse.merge_match.KeyProbe`; other keys through ``pa.Table.join``); of the matched
rows only the row groups holding them are read. Target rows that no source row matched are read
only for ``not_matched_by_source`` clauses (of the files their filters may match). Updated rows
beyond a budget are computed again while they are written. The change is recorded by
:func:`lakehouse.rowlevel.commit_row_changes` in one commit.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-merge", pa.table({"id": [1, 2], "v": ["a", "b"]}))
    >>> r = t.upsert(pa.table({"id": [2, 3], "v": ["B", "c"]}), on="id")
    >>> r.num_updated, r.num_inserted, sorted(t.to_arrow().to_pylist(), key=lambda x: x["id"])[1]
    (1, 1, {'id': 2, 'v': 'B'})
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arguments import check_choice, check_names, check_str
from .errors import CommitConflictError, DuplicateMatchError, InvalidArgumentError
from .expr.bridge import referenced_columns
from .expr.dnf import FilterLike
from .merge_match import KeyProbe, SortedKeys, changed_rows, file_bounds, key_array, key_range, prunable
from .merge_source import MergeSource
from .progress import ProgressEvent, ProgressLike, progress_callback
from .rowlevel import (
    RemovedRows,
    RowChanges,
    RowTarget,
    candidate_files,
    commit_row_changes,
    fit_rows,
    set_values,
    updated_rows,
)
from .scan import FileGroups, FileTask, RowGroup, task_groups
from .schema import can_widen, to_reader
from .setexpr import SOURCE, TARGET, Side, Sides, condition, evaluate_checked, join_predicate

if TYPE_CHECKING:
    from .transaction import SchemaMode

__all__ = ["MergeResult", "TableMerger"]

_POS = "__pos__"
_ROW = "__row__"
_LOC = "__loc__"
_SCAN_THREADS = min(4, max(2, os.cpu_count() or 2))  # files read at once (each thread holds a few row groups)
_PROBE_GROUPS = 8  # row groups of a file whose keys are matched at once
_SMALL_KEY_SET = 1000  # prune by the exact key set (not only its range) up to this many distinct keys
_ROWS_BUDGET = 256 << 20  # bytes of updated rows held from deciding to writing; beyond, computed again
_SOURCE_BUDGET = 256 << 20  # bytes of source held in memory; a larger source is spilled in key-range chunks


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeResult:
    """What a merge or upsert did.

    Attributes:
        version: the version committed (the current one if nothing changed or the app transaction
            was already applied).
        num_inserted: source rows inserted.
        num_updated: target rows updated.
        num_deleted: target rows deleted.
        num_files_added: data files written.
        num_files_removed: data files removed.
        num_deletion_vectors: data files that got a new deletion vector.
        timings: milliseconds per phase (``prepare``, ``scan``, ``apply``, ``write``).

    Example:
        >>> MergeResult(version=3, num_inserted=1).num_deletion_vectors
        0
    """

    version: int
    """The version committed (the current one if nothing changed or the app transaction was applied)."""
    num_inserted: int = 0
    num_updated: int = 0
    num_deleted: int = 0
    num_files_added: int = 0
    """New data files written: the updated and inserted rows, and the kept rows of rewritten files."""
    num_files_removed: int = 0
    """Data files removed for good: those whose rows all went and those rewritten (copy-on-write);
    a file that only got a new deletion vector stays and is not counted here."""
    num_deletion_vectors: int = 0
    """Files that got a new deletion vector in the commit (merge-on-read, table property ``delete_mode``)."""
    timings: Mapping[str, float] = field(default_factory=dict)
    """Milliseconds per phase: ``prepare`` (source), ``scan`` (finding matches), ``apply`` (clauses), ``write``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Clause:
    action: Literal["update", "delete", "insert"]
    condition: pc.Expression | None
    values: dict[str, pc.Expression] | None = None
    skip_unchanged: bool = False


class TableMerger:
    """A merge being built: add clauses, then :meth:`execute`. Get one from ``Table.merge``.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-merger", pa.table({"id": [1, 2], "v": [1, 2]}))
        >>> src = pa.table({"id": [2, 3], "v": [20, 30]})
        >>> r = (t.merge(src, on="id").when_matched_update({"v": "source.v + target.v"})
        ...       .when_not_matched_insert().execute())
        >>> (r.num_updated, r.num_inserted), sorted(t.to_arrow().column("v").to_pylist())
        ((1, 1), [1, 22, 30])
    """

    def __init__(self, table: RowTarget, source: Any, *, on: str | Sequence[str] | None = None,
                 predicate: str | None = None, source_alias: str = "source", target_alias: str = "target",
                 schema_mode: SchemaMode = "strict", app_transaction: tuple[str, int] | None = None,
                 progress: ProgressLike = None, operation: str = "merge") -> None:
        started = time.perf_counter()
        check_choice(schema_mode, "schema_mode", ("strict", "merge"))
        source_alias, target_alias = check_str(source_alias, "source_alias"), check_str(target_alias, "target_alias")
        if source_alias == target_alias:
            raise InvalidArgumentError("source_alias and target_alias must differ", argument="source_alias")
        self._table = table
        self._schema = table.schema
        raw = source if isinstance(source, pa.Table) else to_reader(source)
        self._sides = Sides.of(target=self._schema, source=raw.schema, target_alias=target_alias,
                               source_alias=source_alias)
        keys, _ = self._join(on, predicate)  # names checked before the source is read
        # read once, streaming: held in memory when it fits the budget, else spilled in key-range chunks
        # of the first equality key (of on=, or of the predicate)
        key = keys[0][1] if keys else None
        self._source = MergeSource.of(raw, key, budget=_SOURCE_BUDGET, row_column=_ROW)
        self._source_schema = self._source.schema.remove(self._source.schema.get_field_index(_ROW))
        self._sides = Sides.of(target=self._schema, source=self._source_schema, target_alias=target_alias,
                               source_alias=source_alias)
        self._keys, self._residual = self._join(on, predicate)
        self._merge = schema_mode == "merge"
        self._schema_mode = schema_mode
        self._out = self._schema
        self._app = app_transaction
        self._progress = progress
        self._operation = operation
        self._budget = _ROWS_BUDGET
        self._matched: list[_Clause] = []
        self._by_source: list[_Clause] = []
        self._by_source_filters: list[pc.Expression | None] = []
        self._inserts: list[_Clause] = []
        self._params: dict[str, Any] = {"on": list(on) if isinstance(on, list | tuple) else on,
                                        "predicate": predicate, "clauses": []}
        self._timings = {"prepare": (time.perf_counter() - started) * 1000}

    def _join(self, on: str | Sequence[str] | None, predicate: str | None) -> tuple[list[tuple[str, str]],
                                                                                      pc.Expression | None]:
        if (on is None) == (predicate is None):
            raise InvalidArgumentError("pass exactly one of on= (key columns) or predicate= (SQL text)", argument="on")
        if predicate is not None:
            return join_predicate(check_str(predicate, "predicate"), self._sides)
        names = check_names([on] if isinstance(on, str) else on, "on") or []
        if not names:
            raise InvalidArgumentError("on= names no column", argument="on")
        for n in names:
            self._sides.column("target", n)
            self._sides.column("source", n)
        return [(n, n) for n in names], None

    # -- clauses ---------------------------------------------------------------------------------
    def _sides_for(self, visible: tuple[Side, ...]) -> Sides:
        s = self._sides
        return Sides(schemas={k: s.schemas[k] for k in visible}, prefixes={k: s.prefixes[k] for k in visible},
                     aliases=dict(s.aliases))

    def _same_names(self) -> dict[str, pc.Expression]:
        """``set=None``: every target column the source has (plus, with schema_mode="merge", the others)."""
        source = self._source_schema
        out = self._out
        values = {}
        for f in source:
            if f.name in out.names:
                old = out.field(f.name)
                if self._merge and old.type != f.type and can_widen(old.type, f.type):
                    out = out.set(out.get_field_index(f.name), old.with_type(f.type))
            elif self._merge:
                out = out.append(f.with_nullable(True))
            else:
                continue
            values[f.name] = pc.field(SOURCE + f.name)
        self._out = out
        return values

    def _values(self, set: Mapping[str, Any] | None, visible: tuple[Side, ...], default: Side) -> dict[str, Any]:
        if set is None:
            return self._same_names()
        values, self._out = set_values(set, self._sides_for(visible), self._out, default=default, merge=self._merge)
        return values

    def _record(self, kind: str, set: Any, filter: Any) -> None:
        self._params["clauses"].append({"clause": kind, "set": None if set is None else sorted(set),
                                        "filter": filter if isinstance(filter, str) or filter is None else str(filter)})

    def when_matched_update(self, set: Mapping[str, Any] | None = None,
                            filter: FilterLike | pc.Expression | None = None) -> TableMerger:
        """Update matched target rows where ``filter`` holds: ``set`` maps target columns to values
        (see :mod:`lakehouse.setexpr`; unqualified names are the target's); None takes every source
        column of the same name.

        Args:
            set: target column -> value (a literal, ``pa.Scalar``, ``pc.Expression`` or SQL-like text
                over ``source.``/``target.`` columns); None: every source column of the same name.
            filter: the condition a matched pair must meet (unqualified names: the target).

        Returns:
            This builder, to chain more clauses.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-merger-mu", pa.table({"id": [1, 2], "v": [1, 2]}))
            >>> m = t.merge(pa.table({"id": [2, 3], "v": [20, 30]}), on="id")
            >>> r = m.when_matched_update({"v": "source.v + 1"}).execute()
            >>> t.to_arrow().sort_by("id").column("v").to_pylist()
            [1, 21]
        """
        cond = condition(filter, self._sides, default="target")
        self._matched.append(_Clause(action="update", condition=cond,
                                     values=self._values(set, ("target", "source"), "target")))
        self._record("when_matched_update", set, filter)
        return self

    def when_matched_delete(self, filter: FilterLike | pc.Expression | None = None) -> TableMerger:
        """Delete matched target rows where ``filter`` holds.

        Args:
            filter: the condition a matched pair must meet (unqualified names: the target).

        Returns:
            This builder, to chain more clauses.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-merger-md", pa.table({"id": [1, 2], "v": [1, 2]}))
            >>> m = t.merge(pa.table({"id": [2, 3], "v": [20, 30]}), on="id")
            >>> r = m.when_matched_delete().execute()
            >>> r.num_deleted, t.to_arrow().column("id").to_pylist()
            (1, [1])
        """
        self._matched.append(_Clause(action="delete", condition=condition(filter, self._sides, default="target")))
        self._record("when_matched_delete", None, filter)
        return self

    def when_not_matched_insert(self, values: Mapping[str, Any] | None = None,
                                filter: FilterLike | pc.Expression | None = None) -> TableMerger:
        """Insert source rows that match no target row, where ``filter`` holds (unqualified names are
        the source's): ``values`` maps target columns to values (the others are null); None takes
        every source column of the same name.

        Args:
            values: target column -> value (over ``source.`` columns); None: every source column of
                the same name.
            filter: the condition a source row must meet (unqualified names: the source).

        Returns:
            This builder, to chain more clauses.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-merger-ni", pa.table({"id": [1, 2], "v": [1, 2]}))
            >>> m = t.merge(pa.table({"id": [2, 3], "v": [20, 30]}), on="id")
            >>> r = m.when_not_matched_insert().execute()
            >>> r.num_inserted, sorted(t.to_arrow().column("id").to_pylist())
            (1, [1, 2, 3])
        """
        sides = self._sides_for(("source",))
        cond = condition(filter, sides, default="source")
        self._inserts.append(_Clause(action="insert", condition=cond, values=self._values(values, ("source",),
                                                                                           "source")))
        self._record("when_not_matched_insert", values, filter)
        return self

    def _by_source_clause(self, clause: _Clause, filter: Any) -> None:
        self._by_source.append(clause)
        # the same filter over the target's own names, to prune its files
        alias = next(a for a, side in self._sides.aliases.items() if side == "target")
        self._by_source_filters.append(condition(filter, Sides.of(target=self._schema, target_alias=alias),
                                                 default="target"))

    def when_not_matched_by_source_update(self, set: Mapping[str, Any],
                                          filter: FilterLike | pc.Expression | None = None) -> TableMerger:
        """Update target rows that no source row matches, where ``filter`` (over the target) holds.

        Args:
            set: target column -> value (over the target's columns); required.
            filter: the condition a target row must meet.

        Returns:
            This builder, to chain more clauses.

        Raises:
            InvalidArgumentError: ``set`` is None.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-merger-bu", pa.table({"id": [1, 2], "v": [1, 2]}))
            >>> m = t.merge(pa.table({"id": [2, 3], "v": [20, 30]}), on="id")
            >>> r = m.when_not_matched_by_source_update({"v": "0"}).execute()
            >>> t.to_arrow().sort_by("id").column("v").to_pylist()
            [0, 2]
        """
        if set is None:
            raise InvalidArgumentError("when_not_matched_by_source_update needs set=", argument="set")
        sides = self._sides_for(("target",))
        clause = _Clause(action="update", condition=condition(filter, sides, default="target"),
                         values=self._values(set, ("target",), "target"))
        self._by_source_clause(clause, filter)
        self._record("when_not_matched_by_source_update", set, filter)
        return self

    def when_not_matched_by_source_delete(self, filter: FilterLike | pc.Expression | None = None) -> TableMerger:
        """Delete target rows that no source row matches, where ``filter`` (over the target) holds.

        Args:
            filter: the condition a target row must meet.

        Returns:
            This builder, to chain more clauses.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-merger-bd", pa.table({"id": [1, 2], "v": [1, 2]}))
            >>> m = t.merge(pa.table({"id": [2, 3], "v": [20, 30]}), on="id")
            >>> r = m.when_not_matched_by_source_delete().execute()
            >>> t.to_arrow().column("id").to_pylist()
            [2]
        """
        sides = self._sides_for(("target",))
        self._by_source_clause(_Clause(action="delete", condition=condition(filter, sides, default="target")), filter)
        self._record("when_not_matched_by_source_delete", None, filter)
        return self

    # -- execution -------------------------------------------------------------------------------
    def execute(self) -> MergeResult:
        """Run the merge: one commit (none if nothing changes).

        Returns:
            A :class:`MergeResult`: the version and what changed.

        Raises:
            DuplicateMatchError: a target row is matched by several source rows (nothing written).
            ConstraintViolationError, SchemaMismatchError: a row written breaks a constraint, NOT NULL
                or its column's type.
            CommitConflictError: a concurrent commit removed a file this merge rewrites, or added
                rows it could have matched (or a ``not_matched_by_source`` clause could act on).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-merger-ex", pa.table({"id": [1], "v": [1]}))
            >>> t.merge(pa.table({"id": [1, 2], "v": [10, 20]}), on="id").when_matched_update(
            ...     ).when_not_matched_insert().execute().num_updated
            1
        """
        if not (self._matched or self._inserts or self._by_source):
            raise InvalidArgumentError("the merge has no clause: add when_matched_update(), "
                                       "when_not_matched_insert(), ...")
        table = self._table
        tx = table.transaction(app_transaction=self._app)
        if not table.schema.equals(self._schema):
            tx.abort()
            raise CommitConflictError(f"the table schema changed (version {table.version}) after the merge was "
                                      f"built; build it again", version=table.version)
        try:
            run = _Run(self, table)
            changes = run.changes()
        except BaseException:
            tx.abort()
            raise
        timings = dict(self._timings) | run.timings
        if changes.is_empty:
            tx.abort()
            return MergeResult(version=table.version, timings=timings)
        started = time.perf_counter()
        with tx:
            params = {**self._params, "inserted": run.inserted, "updated": run.updated, "deleted": run.deleted}
            written = commit_row_changes(tx, changes, schema_mode=self._schema_mode, operation=self._operation,
                                         parameters=params, progress=self._progress)
        timings["write"] = (time.perf_counter() - started) * 1000
        outcome = table.last_outcome
        if outcome is not None and outcome.skipped:
            return MergeResult(version=outcome.version, timings=timings)
        return MergeResult(version=tx.version, num_inserted=run.inserted,  # type: ignore[arg-type]
                           num_updated=run.updated, num_deleted=run.deleted,
                           num_files_added=len(written.files_added), num_files_removed=written.files_removed,
                           num_deletion_vectors=written.deletion_vectors, timings=timings)


class _Run:
    """One execution of a merge against the table at the transaction's version, source chunk by chunk."""

    def __init__(self, merger: TableMerger, table: RowTarget) -> None:
        self.m = merger
        self.table = table
        self.timings: dict[str, float] = {"scan": 0.0, "apply": 0.0}
        self.inserted = self.updated = self.deleted = 0
        self.src = merger._source
        self.report = progress_callback(merger._progress)
        self.files: dict[str, FileGroups] = {}  # footers read once per file
        self.chunk = pa.table({_ROW: pa.array([], pa.int64())})
        self.chunk_index = -1

    # -- the source, a chunk at a time -------------------------------------------------------------
    def load(self, i: int) -> pa.Table:
        """Make chunk ``i`` of the source the current one."""
        if i != self.chunk_index:
            self.chunk = self.src.chunk(i)
            self.chunk_index = i
        return self.chunk

    def source_keys(self) -> pa.Table:
        """The current chunk's join keys (target types, prefixed) and row indexes in the chunk; rows with
        a null key dropped."""
        cols, names = [], []
        for t, s in self.m._keys:
            cols.append(key_array(self.chunk.column(s), self.m._schema.field(t).type, s))
            names.append(SOURCE + s)
        keys = pa.Table.from_arrays([*cols, pa.array(np.arange(self.chunk.num_rows, dtype=np.int64))],
                                    names=[*names, _LOC])
        for name in names:
            keys = keys.filter(pc.is_valid(keys.column(name)))
        return keys

    def probe(self, skeys: pa.Table) -> KeyProbe | SortedKeys | None:
        """The sorted-key probe of a single-column key: a :class:`KeyProbe` (matches and ranges) when
        numpy orders it, else :class:`SortedKeys` (ranges only: matches by join) or None."""
        if len(self.m._keys) != 1:
            return None
        _, s = self.m._keys[0]
        keys = skeys.column(SOURCE + s)
        return KeyProbe.of(keys, skeys.column(_LOC).to_numpy()) or SortedKeys.of(keys)

    # -- finding matches ---------------------------------------------------------------------------
    def key_prune(self, keys: pa.Table) -> pc.Expression | None:
        """A filter over the target that every row a source key can match satisfies (None: no bound)."""
        expr: pc.Expression | None = None
        for t, s in self.m._keys:
            if not prunable(self.m._schema.field(t).type):
                continue
            col = keys.column(SOURCE + s)
            if col.num_chunks == 0 or len(col) == 0:
                return pc.scalar(False)
            low, high = key_range(col)
            term = (pc.field(t) >= low) & (pc.field(t) <= high)
            if len(self.m._keys) == 1 and len(col) <= _SMALL_KEY_SET * 64:
                distinct = pc.unique(col)
                if len(distinct) <= _SMALL_KEY_SET:
                    term = term & pc.field(t).isin(distinct)
            expr = term if expr is None else expr & term
        return expr

    def file(self, task: FileTask) -> FileGroups:
        """The task's file, read by row group (its footer read once per merge)."""
        out = self.files.get(task.path)
        if out is None:
            out = self.files[task.path] = task_groups(task)
        return out

    def pairs(self, task: FileTask, skeys: pa.Table, probe: KeyProbe | SortedKeys | None) -> pa.Table:
        """The (target live position, chunk row index) pairs of one file that match, reading the key
        columns of only the row groups whose min/max may hold a source key."""
        residual = self.m._residual
        needed = sorted(referenced_columns(residual)) if residual is not None else []
        t_extra = [c[len(TARGET):] for c in needed if c.startswith(TARGET)]
        names = [t for t, _ in self.m._keys]
        files = self.file(task)
        groups = files.select(keep=probe.covers(files.bounds(names[0])) if probe is not None else None)
        columns = list(dict.fromkeys(names + t_extra)) or None
        # probed a few row groups at a time, so that what is held does not grow with the file (a join
        # builds its hash table of the source's keys once per file)
        step = _PROBE_GROUPS if isinstance(probe, KeyProbe) else max(1, len(groups))
        parts = [self.group_pairs(files, columns, groups[i:i + step], skeys, probe)
                 for i in range(0, len(groups), step)]
        if not parts:
            return pa.table({_POS: pa.array([], pa.int64()), _LOC: pa.array([], pa.int64())})
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def group_pairs(self, files: FileGroups, columns: list[str] | None, groups: list[RowGroup], skeys: pa.Table,
                    probe: KeyProbe | SortedKeys | None) -> pa.Table:
        """The matching pairs of some row groups of one file."""
        residual = self.m._residual
        needed = sorted(referenced_columns(residual)) if residual is not None else []
        t_extra = [c[len(TARGET):] for c in needed if c.startswith(TARGET)]
        s_extra = [c for c in needed if c.startswith(SOURCE)]
        names = [t for t, _ in self.m._keys]
        rows, live = files.read(columns, groups)
        cols = [key_array(rows.column(t), self.m._schema.field(t).type, t) for t in names]
        cols += [rows.column(c) for c in t_extra if c not in names]
        out_names = [TARGET + t for t in names] + [TARGET + c for c in t_extra if c not in names]
        tkeys = pa.Table.from_arrays([*cols, pa.array(live)], names=[*out_names, _POS])
        if isinstance(probe, KeyProbe):
            which, local = probe.match(tkeys.column(0))
            joined = tkeys.take(pa.array(which)).append_column(_LOC, pa.array(local))
        else:
            for t in names:
                tkeys = tkeys.filter(pc.is_valid(tkeys.column(TARGET + t)))
            if self.m._keys:
                joined = tkeys.join(skeys, keys=[TARGET + t for t, _ in self.m._keys],
                                    right_keys=[SOURCE + s for _, s in self.m._keys], join_type="inner",
                                    use_threads=False)
            else:  # no equality: every pair (a cross join of this file with the source)
                joined = tkeys.append_column("__one__", pa.array(np.zeros(tkeys.num_rows, np.int8))).join(
                    skeys.append_column("__one__", pa.array(np.zeros(skeys.num_rows, np.int8))), keys="__one__",
                    join_type="inner", use_threads=False)
        if residual is not None and joined.num_rows:
            local_rows = joined.column(_LOC)
            for c in s_extra:
                if c not in joined.column_names:
                    joined = joined.append_column(c, self.chunk.column(c[len(SOURCE):]).take(local_rows))
            keep_rows = pc.fill_null(evaluate_checked(joined, residual, "the merge predicate"), False)
            joined = joined.filter(keep_rows)
        return joined.select([_POS, _LOC])

    def duplicate(self, task: FileTask, position: int, matches: int) -> DuplicateMatchError:
        row = self.file(task).take(np.array([position])).to_pylist()[0]
        key = {t: row[t] for t, _ in self.m._keys}
        return DuplicateMatchError(f"target row {position} of {task.path!r} (key {key}) is matched by {matches} "
                                   f"source rows; a merge must match each target row at most once (deduplicate "
                                   f"the source)", path=task.path, position=position, key=key, matches=matches)

    def check_duplicates(self, task: FileTask, pairs: pa.Table) -> None:
        if not self.m._matched or pairs.num_rows < 2:
            return
        counts = pc.value_counts(pairs.column(_POS))
        many = counts.filter(pc.greater(counts.field("counts"), 1))
        if len(many):
            raise self.duplicate(task, many[0]["values"].as_py(), many[0]["counts"].as_py())

    def candidates(self, skeys: pa.Table) -> tuple[list[FileTask], pc.Expression | None]:
        """Files a row of the current chunk may match, and the filter they were pruned by."""
        prune = self.key_prune(skeys) if self.m._keys else None
        return ([] if skeys.num_rows == 0 else candidate_files(self.table, prune)), prune

    def by_source_files(self) -> tuple[dict[str, FileTask], pc.Expression | None]:
        """Files a by-source clause may act on (by path), and the filter they were pruned by."""
        prune_by: pc.Expression | None = None
        filters = self.m._by_source_filters
        if all(f is not None for f in filters):
            for f in filters:
                prune_by = f if prune_by is None else prune_by | f
        return {t.path: t for t in candidate_files(self.table, prune_by)}, prune_by

    # -- applying clauses ----------------------------------------------------------------------------
    def apply(self, clauses: list[_Clause], target: pa.Table, joined: pa.Table, positions: np.ndarray,
              removed: list[np.ndarray], added: list[pa.Table]) -> None:
        """Apply ``clauses`` (first match wins) to rows ``positions`` of a file: ``target`` their rows,
        ``joined`` the same rows prefixed by side (with their source rows for matched clauses)."""
        left = np.ones(len(positions), dtype=bool)
        for clause in clauses:
            if not left.any():
                break
            mask = left.copy()
            if clause.condition is not None:
                hit = pc.fill_null(evaluate_checked(joined, clause.condition, "the clause filter"), False)
                mask &= np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
            left &= ~mask
            if not mask.any():
                continue
            idx = pa.array(np.flatnonzero(mask))
            if clause.action == "delete":
                removed.append(positions[mask])
                self.deleted += int(mask.sum())
                continue
            rows = updated_rows(target.take(idx), clause.values or {}, self.m._out, on=joined.take(idx))
            if clause.skip_unchanged:
                changed = changed_rows(fit_rows(target.take(idx), self.m._out), rows)
                rows = rows.filter(pa.array(changed))
                mask[mask] = changed
            removed.append(positions[mask])
            added.append(rows)
            self.updated += rows.num_rows

    def matched_rows(self, task: FileTask, pairs: pa.Table) -> pa.Table | None:
        """The target rows of one file's pairs, one per pair (None: no matched clause needs them); only
        the row groups holding them are read."""
        if not self.m._matched or not pairs.num_rows:
            return None
        return self.file(task).take(pairs.column(_POS).to_numpy())

    def matched_changes(self, task: FileTask, pairs: pa.Table, target: pa.Table | None = None
                        ) -> tuple[list[np.ndarray], list[pa.Table]]:
        """Matched clauses on one file's pairs with the current chunk (``target``: their
        :meth:`matched_rows`, read now when not given)."""
        removed: list[np.ndarray] = []
        added: list[pa.Table] = []
        if not self.m._matched or not pairs.num_rows:
            return removed, added
        positions = pairs.column(_POS).to_numpy()
        if target is None:
            target = self.file(task).take(positions)
        src = self.chunk.drop_columns([_ROW]).take(pairs.column(_LOC))
        joined = _hstack(target.rename_columns([TARGET + c for c in target.column_names]),
                         src.rename_columns([SOURCE + c for c in src.column_names]))
        self.apply(self.m._matched, target, joined, positions, removed, added)
        return removed, added

    def by_source_changes(self, task: FileTask, matched: np.ndarray) -> tuple[list[np.ndarray], list[pa.Table]]:
        """By-source clauses on the rows of one file no source row matched (``matched``: live positions)."""
        removed: list[np.ndarray] = []
        added: list[pa.Table] = []
        rows, live = self.file(task).read(None)
        unmatched = ~np.isin(live, matched) if len(matched) else np.ones(len(live), dtype=bool)
        if unmatched.any():
            idx = pa.array(np.flatnonzero(unmatched))
            target = rows.take(idx)
            prefixed = target.rename_columns([TARGET + c for c in target.column_names])
            self.apply(self.m._by_source, target, prefixed, live[unmatched], removed, added)
        return removed, added

    def inserts(self, matched_local: np.ndarray) -> list[pa.Table]:
        """Insert clauses on the current chunk's rows that matched nothing."""
        if not self.m._inserts:
            return []
        rest = self.chunk.filter(pa.array(~matched_local)).drop_columns([_ROW])
        if rest.num_rows == 0:
            return []
        joined = rest.rename_columns([SOURCE + c for c in rest.column_names])
        empty = pa.Table.from_arrays([pa.nulls(rest.num_rows, f.type) for f in self.m._out], schema=self.m._out)
        added: list[pa.Table] = []
        removed: list[np.ndarray] = []
        before = self.updated
        self.apply(self.m._inserts, empty, joined, np.arange(rest.num_rows), removed, added)
        self.inserted += self.updated - before
        self.updated = before
        return added

    def changes(self) -> RowChanges:
        """The merge's row changes (counts in ``inserted``/``updated``/``deleted``, phases in ``timings``)."""
        try:
            return self._changes()
        finally:
            self.report.close()

    def _scan(self, match: list[FileTask], skeys: pa.Table, probe: KeyProbe | SortedKeys | None,
              seen: dict[str, np.ndarray]) -> dict[str, pa.Table]:
        """The matching pairs of the current chunk, per file path (duplicates refused)."""
        pairs: dict[str, pa.Table] = {}
        # what each file had matched is needed by by-source clauses, and to refuse a target row matched
        # by rows of two chunks
        track = bool(self.m._by_source) or self.src.num_chunks > 1
        with ThreadPoolExecutor(_SCAN_THREADS) as pool:  # key columns of the candidates, read in parallel
            found = pool.map(lambda task: self.pairs(task, skeys, probe), match)
            for i, (task, p) in enumerate(zip(match, found)):
                if p.num_rows:
                    self.check_duplicates(task, p)
                    if track:
                        positions = np.unique(p.column(_POS).to_numpy())
                        before = seen.get(task.path)
                        if before is None:
                            seen[task.path] = positions
                        else:  # sorted, so that a chunk costs its own positions, not all before it
                            at = np.minimum(np.searchsorted(before, positions), len(before) - 1)
                            again = positions[before[at] == positions]
                            if self.m._matched and len(again):  # matched again by another chunk's rows
                                raise self.duplicate(task, int(again[0]), 2)
                            seen[task.path] = np.sort(np.concatenate([before, positions]), kind="stable")
                    pairs[task.path] = p
                self.report(ProgressEvent(self.m._operation, "scan", i + 1, len(match), "files"))
        return pairs

    def _changes(self) -> RowChanges:
        m = self.m
        removed: dict[str, list[np.ndarray]] = {}
        tasks: dict[str, FileTask] = {}
        seen: dict[str, np.ndarray] = {}  # per file: live positions matched over all chunks, sorted
        self.reads: list[pc.Expression | None] = []
        held: list[pa.Table] = []
        later: list[tuple[str, int, Any, Any]] = []
        held_bytes = num_added = 0

        def hold(rows: list[pa.Table], redo: tuple[str, int, Any, Any]) -> None:
            nonlocal held_bytes, num_added
            size = sum(r.nbytes for r in rows)
            num_added += sum(r.num_rows for r in rows)
            if held_bytes + size <= m._budget:
                held.extend(rows)
                held_bytes += size
            elif rows:  # over the budget: computed again, chunk by chunk, while they are written
                later.append(redo)

        for c in range(self.src.num_chunks):
            started = time.perf_counter()
            self.load(c)
            skeys = self.source_keys()
            match, prune = self.candidates(skeys)
            if m._matched or m._inserts:
                # a concurrent append the source could match changes what matched and insert clauses do
                self.reads.append(prune)
            probe = self.probe(skeys)
            if probe is not None:  # files whose key range holds no source key (a sorted-key probe)
                key = self.m._keys[0][0]
                match = [task for task, ok in zip(match, probe.covers([file_bounds(task.stats, key) for task in match]))
                         if ok]
            pairs = self._scan(match, skeys, probe, seen)
            self.timings["scan"] += (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            by_path = {t.path: t for t in match}
            matched_local = np.zeros(self.chunk.num_rows, dtype=bool)
            ordered = sorted(pairs.items())
            with ThreadPoolExecutor(_SCAN_THREADS) as pool:  # the matched rows of the files, read in parallel
                targets = pool.map(self.matched_rows, [by_path[path] for path, _ in ordered], [p for _, p in ordered])
                for i, ((path, p), target) in enumerate(zip(ordered, targets)):
                    matched_local[p.column(_LOC).to_numpy()] = True
                    tasks[path] = by_path[path]
                    gone, rows = self.matched_changes(by_path[path], p, target)
                    removed.setdefault(path, []).extend(gone)
                    hold(rows, ("matched", c, by_path[path], p))
                    self.report(ProgressEvent(m._operation, "apply", i + 1, len(pairs), "files"))
            hold(self.inserts(matched_local), ("insert", c, matched_local, None))
            self.timings["apply"] += (time.perf_counter() - started) * 1000
        if m._by_source:
            started = time.perf_counter()
            by_source, prune_by = self.by_source_files()
            self.reads.append(prune_by)  # by-source clauses read through their own filters
            for path, task in sorted(by_source.items()):
                matched = seen.get(path, np.empty(0, np.int64))
                tasks[path] = task
                gone, rows = self.by_source_changes(task, matched)
                removed.setdefault(path, []).extend(gone)
                hold(rows, ("by_source", -1, task, matched))
            self.timings["apply"] += (time.perf_counter() - started) * 1000
        out = [RemovedRows(task=tasks[p], positions=np.unique(np.concatenate(v)).astype(np.uint64))
               for p, v in sorted(removed.items()) if v and sum(len(x) for x in v)]
        eager = tuple(a for a in held if a.num_rows)

        def added() -> Iterator[pa.Table]:
            yield from eager
            counts = (self.inserted, self.updated, self.deleted)
            try:
                for kind, chunk, a, b in later:
                    if chunk >= 0:
                        self.load(chunk)
                    if kind == "matched":
                        yield from self.matched_changes(a, b)[1]
                    elif kind == "insert":
                        yield from self.inserts(a)
                    else:
                        yield from self.by_source_changes(a, b)[1]
            finally:
                self.inserted, self.updated, self.deleted = counts

        return RowChanges(schema=m._out, removed=tuple(out), added=added, num_added=num_added,
                          reads=tuple(self.reads))


def _hstack(left: pa.Table, right: pa.Table) -> pa.Table:
    return pa.Table.from_arrays([*left.columns, *right.columns], names=[*left.column_names, *right.column_names])


def upsert(table: RowTarget, source: Any, on: str | Sequence[str], *, schema_mode: SchemaMode = "strict",
           app_transaction: tuple[str, int] | None = None, progress: ProgressLike = None) -> MergeResult:
    """``Table.upsert``: update matched rows to the source's values (skipping rows that would not
    change) and insert the rest. See :class:`TableMerger`.

    Raises:
        DuplicateMatchError: a target row is matched by several source rows.
    """
    merger = TableMerger(table, source, on=on, schema_mode=schema_mode, app_transaction=app_transaction,
                         progress=progress, operation="upsert")
    merger.when_matched_update()
    merger._matched[-1] = _Clause(action="update", condition=None, values=merger._matched[-1].values,
                                  skip_unchanged=True)
    merger.when_not_matched_insert()
    return merger.execute()

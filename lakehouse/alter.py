"""Changing a table's definition: properties, CHECK constraints and columns. Each call is one commit.

Get an :class:`Alter` from ``Table.alter``. Every method builds a new
:class:`~lakehouse.log.Metadata` from the latest version and commits it; the commit's operation
(``"set_properties"``, ``"unset_properties"``, ``"add_constraint"``, ``"drop_constraint"``,
``"add_column"``, ``"rename_column"``, ``"drop_column"``, ``"widen_column"``) shows in
``Table.history()``. Column changes follow ``lakehouse.evolution`` (format §5.7). A metadata
commit conflicts with every concurrent commit (``docs/format.md`` §12), so a change is always
decided on the version it lands on: when another writer wins the race, the change is rebuilt
(and a new constraint re-checked) on the newer version, a few times at most.

Example:
    >>> import lakehouse as lh, pyarrow as pa, pyarrow.compute as pc
    >>> t = lh.write_table("memory://doc-alter", pa.table({"amount": [5, 7]}))
    >>> t.alter.add_constraint("amount_positive", pc.field("amount") > 0)
    1
    >>> try:
    ...     t.append(pa.table({"amount": [-1]}))
    ... except lh.ConstraintViolationError as e:
    ...     print(e.constraint, e.rows)
    amount_positive [{'amount': -1}]
    >>> t.version, [c.operation for c in t.history()]
    (1, ['add_constraint', 'write'])
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .arguments import check_names
from .commit import CommitRequest, commit
from .constraints import (
    SAMPLE_ROWS,
    Constraint,
    check_constraint_name,
    check_expression,
    violation_error,
)
from .errors import ArgumentTypeError, CommitConflictError, InvalidTableError
from .evolution import ColumnPath, add_column, drop_column, raised_protocol, rename_column, widen_column
from .expr.bridge import referenced_columns
from .expr.codec import encode_expression
from .expr.dnf import FilterLike
from .handle import TableHandle
from .log import Metadata
from .properties import CONSTRAINT_PREFIX, check_property
from .schema import logical_schema
from .snapshot import Snapshot
from .state import TableState
from .storage import Storage

__all__ = ["Alter"]

_ATTEMPTS = 10
"""How often a change is rebuilt on a newer version after losing a race, before CommitConflictError."""

Change = Callable[[TableState], dict[str, str]]
"""Given the latest state, the complete new properties (or an error: the change does not apply)."""


class Alter:
    """Table definition changes, bound to one table. Get one from ``Table.alter``.

    Each method is one metadata commit on the latest version (the handle is refreshed first) and
    returns the new version. Properties and CHECK constraints, and the schema changes that need no
    data rewritten: adding a nullable column, renaming, dropping, widening.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-alter-class", pa.table({"a": [1]}))
        >>> t.alter.set_properties({"owner": "ops"}), t.alter.rename_column("a", "id")
        (1, 2)
        >>> t.schema.names, t.properties["owner"]
        (['id'], 'ops')
    """

    def __init__(self, handle: TableHandle) -> None:
        self._handle = handle

    def __repr__(self) -> str:
        return f"Alter({self._handle!r})"

    # -- properties --------------------------------------------------------------------------------
    def set_properties(self, properties: Mapping[str, Any]) -> int:
        """Set table properties (values are stored as strings); returns the new version.

        Known properties (``docs/format.md`` §16) are validated; ``constraint.*`` names are refused
        (use :meth:`add_constraint`).

        Args:
            properties: property name -> value; values are stored as text (``10`` -> ``"10"``).

        Returns:
            The new version.

        Raises:
            InvalidTableError: a known property with a bad value, or a ``constraint.*`` name (the
                message names the property).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-set-props", pa.table({"a": [1]}))
            >>> t.alter.set_properties({"checkpoint_interval": 10, "owner": "ops"})
            1
            >>> t.properties["checkpoint_interval"], t.properties["owner"]
            ('10', 'ops')
        """
        if not isinstance(properties, Mapping) or not properties:
            raise InvalidTableError(f"set_properties needs a non-empty mapping of names to values, got {properties!r}")
        values = {name: check_property(name, value) for name, value in properties.items()}
        return self._commit("set_properties", {"properties": values},
                            lambda state: {**state.metadata.properties, **values})

    def unset_properties(self, names: Iterable[str]) -> int:
        """Remove table properties; returns the new version. A known property falls back to its default.

        A ``constraint.*`` name is refused: use :meth:`drop_constraint`.

        Args:
            names: the properties to remove.

        Returns:
            The new version.

        Raises:
            InvalidTableError: the table has no such property, or a ``constraint.*`` name.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-unset-props", pa.table({"a": [1]}), properties={"owner": "ops"})
            >>> t.alter.unset_properties(["owner"])
            1
            >>> "owner" in t.properties
            False
        """
        keys = [names] if isinstance(names, str) else list(dict.fromkeys(check_names(names, "names") or ()))
        if not keys:
            raise InvalidTableError("unset_properties needs at least one property name")
        for key in keys:
            if not isinstance(key, str) or not key:
                raise InvalidTableError(f"property names must be non-empty strings, got {key!r}")
            if key.startswith(CONSTRAINT_PREFIX):
                raise InvalidTableError(f"property {key!r} holds a CHECK constraint: use Table.alter.drop_constraint")

        def change(state: TableState) -> dict[str, str]:
            props = state.metadata.properties
            for key in keys:
                if key not in props:
                    raise InvalidTableError(f"cannot unset property {key!r}: the table (version {state.version}) "
                                            f"has no such property")
            return {k: v for k, v in props.items() if k not in keys}

        return self._commit("unset_properties", {"names": keys}, change)

    # -- constraints -------------------------------------------------------------------------------
    def add_constraint(self, name: str, expression: FilterLike | pc.Expression) -> int:
        """Add the CHECK constraint ``name``; returns the new version.

        ``expression`` (a ``pyarrow.compute`` expression, or DNF filter tuples) must give a boolean;
        from now on every write (append, overwrite, and the rewrites of delete and optimize) refuses
        rows where it is FALSE (NULL passes, as in SQL) with ``ConstraintViolationError``.

        Args:
            name: the constraint's name (stored as the property ``constraint.<name>``).
            expression: a boolean ``pyarrow.compute`` expression, or DNF filter tuples.

        Returns:
            The new version.

        Raises:
            ConstraintViolationError: rows already in the table violate it (a sample is in ``.rows``).
            InvalidTableError: a bad name, or a constraint of that name exists.
            ColumnNotFoundError: the expression names an unknown column.
            InvalidFilterError: the expression is not boolean, does not fit the schema or cannot be stored.

        Example:
            >>> import lakehouse as lh, pyarrow as pa, pyarrow.compute as pc
            >>> t = lh.write_table("memory://doc-add-constraint", pa.table({"a": [1, None]}))
            >>> t.alter.add_constraint("a_positive", pc.field("a") > 0)  # the null row passes
            1
            >>> t.constraints
            {'a_positive': <pyarrow.compute.Expression (a > 0)>}
        """
        check_constraint_name(name)
        latest = self._handle.refresh()  # the columns it may name are those of the latest version
        expr = check_expression(expression, logical_schema(latest.metadata.schema))
        key = CONSTRAINT_PREFIX + name
        storage = self._handle.storage
        checked: set[str] = set()  # data files already verified (files never change)

        def change(state: TableState) -> dict[str, str]:
            props = state.metadata.properties
            if key in props:
                raise InvalidTableError(f"the table already has a constraint named {name!r}; drop it first")
            constraint = Constraint(name, check_expression(expr, state.metadata.schema))
            _verify_existing(storage, state, constraint, checked)
            return {**props, key: encode_expression(constraint.expression)}

        return self._commit("add_constraint", {"name": name, "expression": str(expr)}, change)

    def drop_constraint(self, name: str) -> int:
        """Remove the CHECK constraint ``name``; returns the new version.

        Args:
            name: the constraint's name.

        Returns:
            The new version.

        Raises:
            InvalidTableError: the table has no constraint of that name.

        Example:
            >>> import lakehouse as lh, pyarrow as pa, pyarrow.compute as pc
            >>> t = lh.write_table("memory://doc-drop-constraint", pa.table({"a": [1]}))
            >>> _ = t.alter.add_constraint("a_positive", pc.field("a") > 0)
            >>> t.alter.drop_constraint("a_positive"), t.constraints
            (2, {})
        """
        if not isinstance(name, str):
            raise InvalidTableError(f"a constraint name must be a string, got {name!r}")
        key = CONSTRAINT_PREFIX + name

        def change(state: TableState) -> dict[str, str]:
            props = state.metadata.properties
            if key not in props:
                names = sorted(k[len(CONSTRAINT_PREFIX):] for k in props if k.startswith(CONSTRAINT_PREFIX))
                raise InvalidTableError(f"the table has no constraint named {name!r} (it has {names})")
            return {k: v for k, v in props.items() if k != key}

        return self._commit("drop_constraint", {"name": name}, change)

    # -- columns (schema evolution, docs/format.md §5.7) -------------------------------------------
    def add_column(self, field: pa.Field, *, parent: ColumnPath | None = None) -> int:
        """Add the nullable column ``field`` at the end of the table (or of the struct column ``parent``,
        a name or a path of names); returns the new version. Rows already in the table read it as null.

        Args:
            field: the new column: a nullable ``pyarrow.Field``.
            parent: the struct column to add it to: a name or a path of names (top level if None).

        Returns:
            The new version.

        Raises:
            SchemaMismatchError: the field is not nullable, has type null, or its name is taken.
            ColumnNotFoundError: ``parent`` is not a column.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-add-column", pa.table({"a": [1]}))
            >>> t.alter.add_column(pa.field("b", pa.string()))
            1
            >>> t.to_arrow().to_pylist()
            [{'a': 1, 'b': None}]
        """
        try:
            name = field.name if isinstance(field, pa.Field) else None
        except UnicodeDecodeError:  # pa.field() takes a bytes name without checking it
            raise InvalidTableError(f"the name of the new column is not valid UTF-8: {field!r}") from None
        params = {"column": name, "type": str(getattr(field, "type", None)),
                  "parent": _render(parent, argument="parent")}
        return self._commit_schema("add_column", params, lambda meta: add_column(meta, field, parent=parent))

    def rename_column(self, column: ColumnPath, new_name: str) -> int:
        """Rename a column (or a struct child: pass the path of names); returns the new version.

        No data file is rewritten: files keep the column under its physical name. Older versions keep
        reading the old name. A CHECK constraint that uses the column must be dropped first.

        Args:
            column: the column's name, or the path of names of a struct child (``["s", "x"]``).
            new_name: its new name.

        Returns:
            The new version.

        Raises:
            ColumnNotFoundError: no such column.
            SchemaMismatchError: ``new_name`` is taken, or a constraint uses the column.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-rename-column", pa.table({"a": [1]}))
            >>> t.alter.rename_column("a", "b"), t.to_arrow().to_pylist(), t.to_arrow(version=0).to_pylist()
            (1, [{'b': 1}], [{'a': 1}])
        """
        return self._commit_schema("rename_column", {"column": _render(column), "new_name": new_name},
                                   lambda meta: rename_column(meta, column, new_name))

    def drop_column(self, column: ColumnPath) -> int:
        """Remove a column (or a struct child); returns the new version. No data file is rewritten,
        older versions still read the column, and a column added later under the same name starts empty.

        Args:
            column: the column's name, or the path of names of a struct child (``["s", "x"]``).

        Returns:
            The new version.

        Raises:
            ColumnNotFoundError: no such column.
            SchemaMismatchError: it is a partition column, the last data column (or struct child),
                or a CHECK constraint uses it.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-drop-column", pa.table({"a": [1], "b": [2]}))
            >>> t.alter.drop_column("a"), t.to_arrow().to_pylist()
            (1, [{'b': 2}])
        """
        return self._commit_schema("drop_column", {"column": _render(column)}, lambda meta: drop_column(meta, column))

    def widen_column(self, column: ColumnPath, type: pa.DataType) -> int:
        """Widen a column's type (int8 -> int16 -> int32 -> int64, float32 -> float64, date ->
        timestamp without time zone, a decimal with more digits); returns the new version, or the
        current one if the column already has ``type``. Old files are cast when read.

        Args:
            column: the column's name, or the path of names of a struct child (``["s", "x"]``).
            type: the wider ``pyarrow.DataType``.

        Returns:
            The new version, or the current one if the column already has ``type``.

        Raises:
            ColumnNotFoundError: no such column.
            SchemaMismatchError: ``type`` is not a widening of the column's type (naming the column).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-widen-column", pa.table({"a": pa.array([1], pa.int32())}))
            >>> t.alter.widen_column("a", pa.int64()), t.schema.field("a").type
            (1, DataType(int64))
        """
        return self._commit_schema("widen_column", {"column": _render(column), "type": str(type)},
                                   lambda meta: widen_column(meta, column, type))

    def _commit_schema(self, operation: str, parameters: dict[str, Any],
                       change: Callable[[Metadata], Metadata]) -> int:
        """Commit the metadata ``change`` makes of the latest metadata (and the protocol it needs);
        no commit when nothing changes."""
        return self._commit_metadata(operation, parameters, lambda state: change(state.metadata),
                                     skip_unchanged=True)

    # -- committing --------------------------------------------------------------------------------
    def _commit(self, operation: str, parameters: dict[str, Any], change: Change) -> int:
        """Commit the properties ``change`` builds on the latest version."""
        return self._commit_metadata(
            operation, parameters, lambda state: dataclasses.replace(state.metadata, properties=change(state)),
            skip_unchanged=False)

    def _commit_metadata(self, operation: str, parameters: dict[str, Any],
                         build: Callable[[TableState], Metadata], *, skip_unchanged: bool) -> int:
        """One metadata commit on the latest version, rebuilt from the newer version after a lost race."""
        handle = self._handle
        for attempt in range(_ATTEMPTS):
            state = handle.refresh()
            metadata = build(state)
            if skip_unchanged and metadata == state.metadata:
                return state.version
            request = CommitRequest(operation=operation, parameters=parameters, metadata=metadata,
                                    protocol=raised_protocol(metadata, state.protocol, state.metadata))
            try:
                result = commit(handle.storage, state, request)
            except CommitConflictError:
                if attempt == _ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0, min(0.1, 0.002 * 2 ** attempt)))
                continue
            handle.on_commit(result.state, False)
            return result.version
        raise AssertionError("unreachable")  # pragma: no cover


def _render(column: ColumnPath | None, *, argument: str = "column") -> str | None:
    """A column path for the commit's parameters: ``"s.x"`` for ``["s", "x"]``; ``ArgumentTypeError``
    for anything but a name or a sequence of names (None only for ``parent``)."""
    if isinstance(column, str) or (column is None and argument == "parent"):
        return column
    if isinstance(column, Sequence) and not isinstance(column, bytes) and all(isinstance(p, str) for p in column):
        return ".".join(column)
    raise ArgumentTypeError(f"{argument} must be a column name or a list of names (a path into structs), got "
                            f"{column!r}", argument=argument)


def _verify_existing(storage: Storage, state: TableState, constraint: Constraint, checked: set[str]) -> None:
    """Raise ``ConstraintViolationError`` if a row of ``state`` (in a file not in ``checked``) violates
    ``constraint``; then add the files to ``checked``. Reads only the columns the constraint needs,
    and skips files whose statistics prove that every row satisfies it."""
    files = state.files
    if checked:
        files = files.filter(pc.invert(pc.is_in(files.column("path"), pa.array(sorted(checked), pa.string()))))
    snap = Snapshot(storage, state.with_files(files))
    violating = ~constraint.expression  # FALSE violates, NULL passes
    needed = sorted(referenced_columns(constraint.expression))
    count = sum(b.num_rows for b in snap.to_batches(columns=needed, filter=violating))
    if count:
        sample: list[dict[str, Any]] = []
        for batch in snap.to_batches(filter=violating):
            sample += batch.slice(0, SAMPLE_ROWS - len(sample)).to_pylist()
            if len(sample) >= SAMPLE_ROWS:
                break
        raise violation_error(constraint, sample, f"{count} row(s) of the table at version {state.version}; "
                                                  f"the constraint was not added")
    checked.update(files.column("path").to_pylist())

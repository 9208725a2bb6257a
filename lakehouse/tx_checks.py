"""Checking the arguments of a transaction's writes: the schema mode, the partitioning, an idempotent
writer's ``app_transaction``, and rows against an overwrite's filter.

Pure functions, no I/O; ``lakehouse.transaction`` re-exports :data:`SchemaMode` and
:func:`app_transactions`, its public names.

Example:
    >>> check_schema_mode("merge")
    True
    >>> check_partitioning(["day"], ("day",))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from .arguments import check_app_transaction, check_choice
from .errors import ConstraintViolationError, InvalidArgumentError, SchemaMismatchError
from .log import AppTransaction

__all__ = ["SchemaMode", "app_transactions", "check_partitioning", "check_schema_mode", "kept_by", "within_check"]

SchemaMode = Literal["strict", "merge", "overwrite"]
"""How a write treats data whose schema differs from the table's: ``"strict"`` refuses it
(``SchemaMismatchError``); ``"merge"`` lets new nullable columns and widened types join the table
schema in the same commit (see ``lakehouse.evolution``) and fills the nullable columns the data
lacks with nulls; ``"overwrite"`` (only for a whole-table overwrite) replaces the schema, and the
partitioning if asked, by the data's."""


def app_transactions(app_transaction: Any) -> tuple[AppTransaction, ...]:
    """The ``txn`` actions of a write given an idempotent writer's ``app_transaction`` (or none).

    Args:
        app_transaction: None, or ``(app_id, version)``: a non-empty string and an int >= 0.

    Returns:
        No action, or the one that records ``(app_id, version)`` (format §12: a state that already
        records it, or a later version, skips the write).

    Raises:
        ArgumentTypeError: ``app_transaction`` is not such a pair.
        InvalidArgumentError: the app id is empty or the version negative.

    Example:
        >>> app_transactions(("etl", 5))
        (AppTransaction(app_id='etl', version=5),)
    """
    app = check_app_transaction(app_transaction)
    return () if app is None else (AppTransaction(app_id=app[0], version=app[1]),)


def check_schema_mode(schema_mode: str, *, replace: bool = False) -> bool:
    """Whether ``schema_mode`` is ``"merge"``, after checking it is a :data:`SchemaMode`.

    Args:
        schema_mode: the argument.
        replace: the write replaces the whole table (only then is ``"overwrite"`` allowed).

    Returns:
        True for ``"merge"``.

    Raises:
        InvalidArgumentError: anything but the modes, or ``"overwrite"`` where ``replace`` is False.

    Example:
        >>> check_schema_mode("strict"), check_schema_mode("overwrite", replace=True)
        (False, False)
    """
    check_choice(schema_mode, "schema_mode", ("strict", "merge", "overwrite"))
    if schema_mode == "overwrite" and not replace:
        raise InvalidArgumentError("schema_mode='overwrite' replaces the whole table: use it with an overwrite "
                                   "without a filter", argument="schema_mode")
    return schema_mode == "merge"


def check_partitioning(partition_by: Sequence[str], table: Sequence[str]) -> None:
    """Check that a write's ``partition_by`` is the table's partitioning ``table``.

    Args:
        partition_by: the write's partition columns (a single name allowed).
        table: the table's partition columns.

    Raises:
        SchemaMismatchError: naming the first partition column where they differ.

    Example:
        >>> check_partitioning("day", ["day"])
    """
    parts = [partition_by] if isinstance(partition_by, str) else list(partition_by)
    table = list(table)
    if parts == table:
        return
    i = next(i for i, (a, b) in enumerate(zip([*parts, None], [*table, None])) if a != b)
    column = parts[i] if i < len(parts) else table[i]
    raise SchemaMismatchError(f"partition_by={parts} differs from the table's partitioning {table} (at "
                              f"{column!r}): pass schema_mode='overwrite' to an overwrite to replace it",
                              column=str(column))


def kept_by(expr: pc.Expression) -> pc.Expression:
    """Rows a delete keeps: where ``expr`` is false or null (SQL semantics).

    Args:
        expr: the delete's filter.

    Returns:
        The filter of the rows kept.

    Example:
        >>> pa.table({"a": [1, 2, None]}).filter(kept_by(pc.field("a") == 1)).num_rows
        2
    """
    return ~expr | expr.is_null()


def within_check(expr: pc.Expression) -> Callable[[pa.RecordBatch], None]:
    """A per-batch check (as writers run them) that every row matches an overwrite's filter ``expr``.

    Args:
        expr: the overwrite's filter.

    Returns:
        A callable raising ``ConstraintViolationError`` for a batch with rows outside ``expr``.

    Example:
        >>> check = within_check(pc.field("a") > 0)
        >>> check(pa.record_batch({"a": [1, 2]}))
    """
    def check(batch: pa.RecordBatch) -> None:
        outside = pa.Table.from_batches([batch]).filter(kept_by(expr)).num_rows
        if outside:
            raise ConstraintViolationError(f"{outside} rows of the data do not match the overwrite filter {expr}")
    return check

"""Filters to bound expressions: DNF tuples, SQL-like text or a pyarrow expression, checked against a schema.

A filter is a :class:`pyarrow.compute.Expression`, DNF tuples (a list of ``(column, op, value)``
tuples is an AND, a list of such lists is an OR of ANDs), or SQL-like text such as
``"day = 7 and id < 100"`` (translated by :mod:`lakehouse.expr.sql`; needs the ``sql`` extra).
:func:`to_expression` turns any of them into one expression over a schema: values typed by their
column (:mod:`lakehouse.expr.literals`), integer comparisons made exact, unknown columns and
conditions Arrow cannot evaluate refused before anything is read or written.

Example:
    >>> import pyarrow as pa
    >>> schema = pa.schema([("day", pa.int32()), ("id", pa.int64())])
    >>> to_expression([[("day", "=", 7)], [("id", "<", 100)]], schema)
    <pyarrow.compute.Expression ((day == 7) or (id < 100))>
"""

from __future__ import annotations

import operator
import re
import reprlib
from collections.abc import Iterable, Sequence
from functools import reduce
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import ColumnNotFoundError, InvalidFilterError

from .bridge import evaluate, exact_integer_literals, fields, parse_expression
from .literals import literal_for, set_lookup

__all__ = ["FilterLike", "to_expression"]

FilterLike: TypeAlias = pc.Expression | str | Sequence[tuple] | Sequence[Sequence[tuple]]
"""What a ``filter`` argument takes: an expression, SQL-like text, or DNF tuples."""

_COMPARISONS = {"=": "equal", "==": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal",
                ">": "greater", ">=": "greater_equal"}


def _is_in(column: str, typ: pa.DataType, values: Any, negate: bool) -> pc.Expression:
    """``column in values`` (None in ``values`` matches nulls); ``not in`` is null for null rows."""
    if isinstance(values, str | bytes | dict) or not isinstance(values, Iterable):
        raise InvalidFilterError(f"'in' needs a list of values for column {column!r}, got {values!r}")
    items = [v.as_py() if isinstance(v, pa.Scalar) else v for v in values]
    value_type = typ.value_type if pa.types.is_dictionary(typ) else typ
    scalars = [literal_for(column, typ, v) for v in items if v is not None]
    # A value that only fits a wider type (7.5 for an int column) can never match: drop it.
    value_set = pa.array([s for s in scalars if s.type == value_type], type=value_type)
    field = pc.field(column)
    found = set_lookup(column, value_set)
    has_null = len(scalars) != len(items)
    if not negate:
        return found | field.is_null() if has_null else found
    valid = field.is_valid() if has_null else pc.Expression._call("true_unless_null", [field])
    return valid & ~found


def _predicate(pred: Sequence[Any], schema: pa.Schema) -> pc.Expression:
    """Convert one ``(column, op, value)`` tuple."""
    column, op = pred[0], " ".join(pred[1].lower().split())
    if column not in schema.names:
        raise ColumnNotFoundError(column, available=list(schema.names))
    typ = schema.field(column).type
    if op in ("is null", "is not null"):
        return pc.field(column).is_null() if op == "is null" else pc.field(column).is_valid()
    if pa.types.is_nested(typ):
        raise InvalidFilterError(f"column {column!r} is {typ}: a DNF filter compares only columns of single "
                                 f"values ('is null' / 'is not null' work on any column)")
    if len(pred) != 3:
        raise InvalidFilterError(f"filter {tuple(pred)!r} needs (column, op, value)")
    if op in ("in", "not in"):
        return _is_in(column, typ, pred[2], negate=op == "not in")
    if op not in _COMPARISONS:
        raise InvalidFilterError(f"unknown operator {pred[1]!r} in filter {tuple(pred)!r}")
    if pred[2] is None:
        raise InvalidFilterError(f"compare column {column!r} with None using 'is null' / 'is not null'")
    literal = pc.scalar(literal_for(column, typ, pred[2]))
    return pc.Expression._call(_COMPARISONS[op], [pc.field(column), literal])


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxstring, _REPR.maxother = 4, 6, 6, 60, 60


def _shown(value: Any) -> str:
    """``value`` for an error message, cut short (a filter nested thousands deep has no full repr)."""
    return _REPR.repr(value)


def _is_predicate(item: Any) -> bool:
    return (isinstance(item, tuple | list) and len(item) in (2, 3)
            and isinstance(item[0], str) and isinstance(item[1], str))


def _conjunction(preds: Any, schema: pa.Schema) -> pc.Expression:
    if isinstance(preds, str | bytes) or not isinstance(preds, Sequence) or not preds:
        raise InvalidFilterError(f"expected a non-empty list of filter tuples, got {_shown(preds)}")
    if not all(_is_predicate(p) for p in preds):
        raise InvalidFilterError(f"expected (column, op, value) tuples, got {_shown(preds)}")
    return reduce(operator.and_, (_predicate(p, schema) for p in preds))


def _check_columns_by_binding(expr: pc.Expression, schema: pa.Schema) -> None:
    """Find unknown columns by evaluating on an empty table; other errors are left to the caller."""
    try:
        evaluate(expr, schema.empty_table())
    except pa.ArrowInvalid as exc:
        found = re.search(r"No match for (FieldRef\..*?) in ", str(exc))
        if found:
            names = re.findall(r"FieldRef\.Name\((.*?)\)", found.group(1))
            name = ".".join(names) if names else found.group(1)
            raise ColumnNotFoundError(name, available=list(schema.names)) from None
    except pa.ArrowException:
        pass


def _validate_expression(expr: pc.Expression, schema: pa.Schema) -> None:
    try:
        refs = fields(parse_expression(expr))
    except InvalidFilterError:
        _check_columns_by_binding(expr, schema)
        return
    for field in refs:
        if field.name not in schema.names:
            raise ColumnNotFoundError(field.name, available=list(schema.names))
    if any(len(f.path) > 1 for f in refs):
        _check_columns_by_binding(expr, schema)


def _null_row(schema: pa.Schema) -> pa.Table:
    """One row of nulls under ``schema`` (nullability dropped), or the empty table if a type has no nulls."""
    try:
        return pa.table([pa.nulls(1, f.type) for f in schema], schema=pa.schema(
            [f.with_nullable(True) for f in schema], metadata=schema.metadata))
    except (pa.ArrowException, TypeError, ValueError):
        return schema.empty_table()


def _check_condition(expr: pc.Expression, schema: pa.Schema) -> None:
    """InvalidFilterError unless ``expr`` evaluates to a boolean on rows of ``schema``.

    It is evaluated on one row of nulls, so a comparison Arrow has no kernel for (a date with a
    string, a list with a list), a naive timestamp against a time-zone-aware column, a non-scalar
    function or a result that is not boolean is refused before anything is read or written.
    """
    try:
        result = evaluate(expr, _null_row(schema))
    except (pa.ArrowException, TypeError, ValueError, RecursionError) as exc:
        raise InvalidFilterError(f"the filter {_short(expr)} cannot be evaluated on the table's columns: "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not pa.types.is_boolean(result.type):
        raise InvalidFilterError(f"the filter {_short(expr)} is not a condition: it gives {result.type}, not a boolean")


def _short(expr: Any) -> str:
    text = str(expr)
    return text if len(text) <= 200 else text[:200] + "..."


def to_expression(filter: FilterLike | None, schema: pa.Schema) -> pc.Expression | None:
    """Turn a filter into an expression over ``schema``, checking its columns and values.

    DNF values are converted to the column's type; ``"in"``/``"not in"`` take a list (None in
    it matches nulls; otherwise ``not in`` is null, not true, for null rows, as in SQL; -0.0 and
    0.0 are one value, as with ``=``, and NaN matches NaN). A string
    is a SQL-like filter (:func:`lakehouse.expr.sql.parse_sql_filter`), typed the same way.

    Args:
        filter: an expression, DNF tuples, SQL-like text, or None.
        schema: the columns the filter may name (as the caller sees them).

    Returns:
        The bound, checked expression (integer comparisons made exact); None for None.

    Raises:
        ColumnNotFoundError: the filter names a column ``schema`` does not have.
        InvalidFilterError: bad shape, operator, or a value that does not fit its column; or the
            filter is not a boolean condition Arrow can evaluate on ``schema``'s columns.

    Example:
        >>> schema = pa.schema([("a", pa.int32()), ("b", pa.string())])
        >>> to_expression([("a", ">", 1), ("b", "is null", None)], schema)
        <pyarrow.compute.Expression ((a > 1) and is_null(b, {nan_is_null=false}))>
        >>> to_expression("a > 1 and b is null", schema)
        <pyarrow.compute.Expression ((a > 1) and is_null(b, {nan_is_null=false}))>
    """
    if filter is None:
        return None
    if isinstance(filter, pc.Expression):
        _validate_expression(filter, schema)
        expr = filter
    elif isinstance(filter, str):
        from .sql import parse_sql_filter  # lazily: sqlglot is an extra

        expr = parse_sql_filter(filter, schema)
    elif isinstance(filter, bytes) or not isinstance(filter, Sequence) or not filter:
        raise InvalidFilterError(
            f"a filter must be an Expression, a SQL string or a list of tuples, got {_shown(filter)}")
    elif all(_is_predicate(p) for p in filter):
        expr = _conjunction(filter, schema)
    else:
        expr = reduce(operator.or_, (_conjunction(c, schema) for c in filter))
    expr = exact_integer_literals(expr, schema)
    _check_condition(expr, schema)
    return expr


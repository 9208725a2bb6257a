"""CHECK constraints: the constraints a table stores, and checking rows against them.

A CHECK constraint is a named boolean expression over a row. It is stored in the table properties
as ``constraint.<name>`` = the expression's *canonical encoding* (``docs/format.md`` §16.2,
:mod:`lakehouse.expr.codec`): JSON of the expression tree, with sorted keys and no white space, so
equal expressions give equal text.

SQL semantics (§16.1): a row violates a constraint where the expression is FALSE; a NULL result
passes. NOT NULL comes from the schema (fields with ``nullable=False``) and is checked when data
is conformed to it (``lakehouse.schema``).

Example:
    >>> import pyarrow as pa, pyarrow.compute as pc
    >>> text = encode_expression(pc.field("a") > 0)
    >>> check = constraint_checker({"constraint.positive": text})
    >>> try:
    ...     check(pa.record_batch({"a": [1, None, -2]}))  # the null row passes
    ... except ConstraintViolationError as e:
    ...     print(e.constraint, e.rows)
    positive [{'a': -2}]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from .errors import ConstraintViolationError, InvalidFilterError, InvalidTableError
from .expr.bridge import evaluate
from .expr.codec import decode_expression, encode_expression
from .expr.dnf import FilterLike, to_expression
from .properties import CONSTRAINT_PREFIX

__all__ = [
    "CONSTRAINT_PREFIX",
    "SAMPLE_ROWS",
    "Check",
    "Constraint",
    "check_constraint_name",
    "check_expression",
    "combine_checks",
    "constraint_checker",
    "table_constraints",
    "violation_error",
]

SAMPLE_ROWS = 5
"""How many offending rows a ``ConstraintViolationError`` shows."""

Check = Callable[[pa.RecordBatch], None]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\Z")


# -- constraints of a table ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class Constraint:
    """A named CHECK constraint of a table.

    Attributes:
        name: the constraint's name (see :func:`check_constraint_name`).
        expression: the boolean expression a row must not make FALSE.

    Example:
        >>> import pyarrow.compute as pc
        >>> Constraint("positive", pc.field("a") > 0).name
        'positive'
    """

    name: str
    expression: pc.Expression

    @property
    def property_name(self) -> str:
        """The table property that stores it.

        Example:
            >>> import pyarrow.compute as pc
            >>> Constraint("positive", pc.field("a") > 0).property_name
            'constraint.positive'
        """
        return CONSTRAINT_PREFIX + self.name


def check_constraint_name(name: Any) -> str:
    """Validate a constraint name: a letter or ``_``, then letters, digits or ``_`` (at most 128).

    Args:
        name: the name.

    Returns:
        ``name``.

    Raises:
        InvalidTableError: the name is not a str of that shape.

    Example:
        >>> check_constraint_name("amount_positive")
        'amount_positive'
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidTableError(f"invalid constraint name {name!r}: use a letter or '_' followed by letters, "
                                f"digits or '_' (at most 128 characters)")
    return name


def table_constraints(properties: Mapping[str, str]) -> list[Constraint]:
    """The CHECK constraints stored in ``properties``, sorted by name.

    Args:
        properties: the table properties.

    Returns:
        One :class:`Constraint` per ``constraint.*`` property.

    Raises:
        InvalidTableError: a ``constraint.*`` property cannot be decoded (writers refuse to write
            rather than skip a constraint; ``Table.alter.drop_constraint`` removes it).

    Example:
        >>> import pyarrow.compute as pc
        >>> props = {"owner": "me", "constraint.pos": encode_expression(pc.field("a") > 0)}
        >>> [(c.name, str(c.expression)) for c in table_constraints(props)]
        [('pos', '(a > 0)')]
    """
    out = []
    for key in sorted(properties):
        if key.startswith(CONSTRAINT_PREFIX):
            try:
                out.append(Constraint(key[len(CONSTRAINT_PREFIX):], decode_expression(properties[key])))
            except InvalidFilterError as exc:
                raise InvalidTableError(f"table property {key!r} holds no constraint this lakehouse can "
                                        f"enforce, so it refuses to write ({exc})") from exc
    return out


def check_expression(expression: FilterLike | pc.Expression, schema: pa.Schema) -> pc.Expression:
    """Validate a CHECK expression against ``schema``: known columns, storable, boolean result.

    Args:
        expression: a pyarrow expression, DNF filter or SQL text.
        schema: the table schema.

    Returns:
        The expression, bound as a pyarrow expression.

    Raises:
        ColumnNotFoundError: the expression names a column the schema does not have.
        InvalidFilterError: the expression cannot be stored, evaluated on the schema, or is not boolean.

    Example:
        >>> import pyarrow as pa, pyarrow.compute as pc
        >>> check_expression(pc.field("a") + 1, pa.schema([("a", pa.int64())]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lakehouse.errors.InvalidFilterError: the filter add_checked(a, 1) is not a condition: it gives int64, ...
    """
    expr = to_expression(expression, schema)
    if expr is None:
        raise InvalidFilterError("a constraint needs an expression, got None")
    encode_expression(expr)
    probe = pa.Table.from_arrays([pa.nulls(1, f.type) for f in schema], schema=schema)  # one all-null row
    try:
        result_type = evaluate(expr, probe).type
    except pa.ArrowException as exc:
        raise InvalidFilterError(f"constraint expression {expr} cannot be evaluated on the table schema: "
                                 f"{exc}") from exc
    if not pat.is_boolean(result_type):
        raise InvalidFilterError(f"constraint expression {expr} gives {result_type}, not a boolean")
    return expr


# -- checking rows -------------------------------------------------------------------------------
def violation_error(constraint: Constraint, rows: list[dict[str, Any]], detail: str) -> ConstraintViolationError:
    """The error for rows violating ``constraint``.

    Args:
        constraint: the violated constraint.
        rows: a sample of the offending rows.
        detail: how many rows, and of what (``"2 rows of the table"``).

    Returns:
        The error (not raised).

    Example:
        >>> import pyarrow.compute as pc
        >>> str(violation_error(Constraint("pos", pc.field("a") > 0), [{"a": -1}], "2 rows of the table"))
        "CHECK constraint 'pos' ((a > 0)) is violated by 2 rows of the table; offending rows (up to 5): [{'a': -1}]"
    """
    return ConstraintViolationError(
        f"CHECK constraint {constraint.name!r} ({constraint.expression}) is violated by {detail}",
        constraint=constraint.name, expression=str(constraint.expression), rows=rows,
    )


def _checker(constraints: Sequence[Constraint]) -> Check:
    def check(batch: pa.RecordBatch) -> None:
        table = pa.Table.from_batches([batch])
        for c in constraints:
            try:
                bad = table.filter(~c.expression)  # FALSE violates; NULL passes (SQL)
            except pa.ArrowException as exc:
                raise ConstraintViolationError(
                    f"CHECK constraint {c.name!r} ({c.expression}) could not be evaluated on the data: {exc}",
                    constraint=c.name, expression=str(c.expression),
                ) from exc
            if bad.num_rows:
                raise violation_error(c, bad.slice(0, SAMPLE_ROWS).to_pylist(),
                                      f"at least {bad.num_rows} row(s) of the data")
    return check


def constraint_checker(properties: Mapping[str, str]) -> Check | None:
    """A ``check`` for ``write_data_files`` that enforces the CHECK constraints in ``properties``.

    Args:
        properties: the table properties.

    Returns:
        A function raising ``ConstraintViolationError`` for a batch with a violating row, or None if
        there are no constraints.

    Raises:
        InvalidTableError: a constraint cannot be decoded.

    Example:
        >>> constraint_checker({"owner": "me"}) is None
        True
    """
    constraints = table_constraints(properties)
    return _checker(constraints) if constraints else None


def combine_checks(*checks: Check | None) -> Check | None:
    """One check running each given one in order.

    Args:
        *checks: checks, or None for none.

    Returns:
        The combined check (the only one if one is given), or None if none is given.

    Example:
        >>> combine_checks(None, None) is None
        True
    """
    present = [c for c in checks if c is not None]
    if len(present) <= 1:
        return present[0] if present else None

    def check(batch: pa.RecordBatch) -> None:
        for c in present:
            c(batch)
    return check

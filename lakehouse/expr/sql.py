"""Filters as SQL-like text: ``"day = 7 and id < 100"`` to a :class:`pyarrow.compute.Expression`.

The text is parsed by `sqlglot <https://sqlglot.com>`_ (the ``sql`` extra, imported on first use)
and translated into the same expressions DNF tuples give, with literals converted to the type of
the column they are compared with. Supported: column references (``"quoted names"`` too; case
matters), literals (integers, decimals, ``'strings'``, ``TRUE``/``FALSE``, ``NULL``, and
``DATE '...'`` / ``TIMESTAMP '...'``, to the nanosecond; a string compared with a date, time,
timestamp or decimal column is read as one; a timestamp without an offset is refused on a column
with a time zone), ``= != <> < <= > >=`` between a column and a literal or two columns, ``AND OR NOT``,
``IN (...)`` / ``NOT IN``, ``IS [NOT] NULL``, ``[NOT] BETWEEN a AND b``, ``[NOT] LIKE`` /
``ILIKE`` on string columns, parentheses, and a boolean column on its own. Anything else
(functions, arithmetic, subqueries, ``CAST`` of a column, ...) raises ``InvalidFilterError`` naming
the part; an unknown column raises ``ColumnNotFoundError``.

SQL's three-valued logic is kept exactly: a comparison with a null is NULL, ``x IN (1, NULL)`` is
NULL (not FALSE) where ``x`` is not 1, and ``NOT`` of NULL is NULL. A read keeps the rows where the
filter is TRUE; a CHECK constraint refuses the rows where it is FALSE.

Example:
    >>> import pyarrow as pa
    >>> schema = pa.schema([("day", pa.int32()), ("id", pa.int64())])
    >>> parse_sql_filter("day = 7 and id < 100", schema)
    <pyarrow.compute.Expression ((day == 7) and (id < 100))>
"""

from __future__ import annotations

import datetime as dt
import decimal
import operator
import re
from functools import reduce
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import ColumnNotFoundError, InvalidFilterError

from .bridge import SWAP
from .literals import literal_for, set_lookup, timestamp_scalar

__all__ = ["parse_sql_filter"]

_COMPARE = {"EQ": "equal", "NEQ": "not_equal", "LT": "less", "LTE": "less_equal", "GT": "greater",
            "GTE": "greater_equal"}
_ARITHMETIC = {"Add", "Sub", "Mul", "Div", "IntDiv", "Mod", "Neg", "DPipe", "BitwiseAnd", "BitwiseOr",
               "BitwiseXor", "BitwiseNot", "BitwiseLeftShift", "BitwiseRightShift"}
_TYPED_LITERALS = {"DATE", "TIME", "TIMESTAMP", "TIMESTAMPTZ", "DATETIME"}
_INT = re.compile(r"[0-9]+\Z")
_SUPPORTED = ("columns, literals, = != <> < <= > >=, AND, OR, NOT, IN, IS [NOT] NULL, BETWEEN, LIKE, "
              "DATE '...' and TIMESTAMP '...'")
_NULL_BOOL = pc.scalar(pa.scalar(None, pa.bool_()))


def _sqlglot() -> Any:
    try:
        import sqlglot
    except ImportError as exc:
        raise ImportError("SQL filter strings need sqlglot: pip install 'lakehouse-format[sql]'") from exc
    return sqlglot


class _Translator:
    """Translate one parsed filter; ``text`` is the whole filter, for error messages."""

    def __init__(self, exp: Any, schema: pa.Schema, text: str) -> None:
        self.exp = exp
        self.schema = schema
        self.text = text

    # -- errors --------------------------------------------------------------------------------
    def unsupported(self, node: Any, what: str | None = None) -> InvalidFilterError:
        exp = self.exp
        name = type(node).__name__
        if what is None:
            if isinstance(node, exp.Subquery | exp.Select | exp.Query):
                what = "a subquery"
            elif name in _ARITHMETIC:
                what = "arithmetic"
            elif isinstance(node, exp.Func):
                what = f"the function {name.upper() if name != 'Anonymous' else node.name}"
            else:
                what = f"{name}"
        return InvalidFilterError(f"{what} ({node.sql()}) is not supported in the SQL filter {self.text!r}; "
                                  f"supported: {_SUPPORTED}")

    # -- leaves --------------------------------------------------------------------------------
    def column(self, node: Any) -> str | None:
        """The column name of a column reference (checked against the schema), None if not one."""
        if not isinstance(node, self.exp.Column):
            return None
        if node.table or not isinstance(node.this, self.exp.Identifier):
            raise self.unsupported(node, "a qualified column name")
        name = node.name
        if name not in self.schema.names:
            raise ColumnNotFoundError(name, available=list(self.schema.names))
        return str(name)

    def value(self, node: Any, column: str) -> Any:
        """The Python value of a literal node, read for ``column``'s type (None for NULL)."""
        exp = self.exp
        typ = self.schema.field(column).type
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        if isinstance(node, exp.Paren):
            return self.value(node.this, column)
        if isinstance(node, exp.Null):
            return None
        if isinstance(node, exp.Boolean):
            return bool(node.this)
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
            return -self.value(node.this, column)
        if isinstance(node, exp.Literal):
            text = str(node.this)
            if node.is_string:
                return self.text_value(text, typ, column)
            if pa.types.is_decimal(typ):
                return decimal.Decimal(text)
            return int(text) if _INT.match(text) else float(text)
        if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string:
            kind = node.to.sql().upper()
            if kind in _TYPED_LITERALS:
                return self.typed_literal(str(node.this.this), kind, node)
        raise self.unsupported(node)

    def text_value(self, text: str, typ: pa.DataType, column: str) -> Any:
        """A string literal; for a date, time or decimal column, the value it spells."""
        if not pa.types.is_decimal(typ):
            return text  # dates, times and timestamps read ISO text themselves (literal_for), to the nanosecond
        try:
            return pa.array([text], pa.string()).cast(typ)[0].as_py()
        except (pa.ArrowException, ValueError) as exc:
            raise InvalidFilterError(f"cannot read {text!r} as a value of column {column!r} ({typ}) in the SQL "
                                     f"filter {self.text!r}") from exc

    def typed_literal(self, text: str, kind: str, node: Any) -> Any:
        raw = text.strip()
        try:
            if kind == "DATE":
                return dt.date.fromisoformat(raw)
            if kind == "TIME":
                return dt.time.fromisoformat(raw)
            return timestamp_scalar(raw)  # every digit, to the nanosecond
        except (ValueError, InvalidFilterError) as exc:
            raise InvalidFilterError(f"{node.sql()} is not a valid {kind} literal in the SQL filter "
                                     f"{self.text!r}") from exc

    def is_literal(self, node: Any) -> bool:
        exp = self.exp
        if isinstance(node, exp.Paren | exp.Neg):
            return self.is_literal(node.this)
        typed = isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal)
        return isinstance(node, exp.Literal | exp.Null | exp.Boolean) or (
            typed and node.to.sql().upper() in _TYPED_LITERALS)

    def scalar(self, node: Any, column: str) -> pc.Expression:
        value = self.value(node, column)
        if value is None:
            raise InvalidFilterError(f"{node.parent.sql() if node.parent else 'NULL'} is never true: compare "
                                     f"column {column!r} with NULL using IS NULL / IS NOT NULL")
        return pc.scalar(literal_for(column, self.schema.field(column).type, value))

    # -- predicates ----------------------------------------------------------------------------
    def compare(self, op: str, left: Any, right: Any) -> pc.Expression:
        lcol, rcol = self.column(left), self.column(right)
        if lcol is not None and rcol is not None:
            return pc.Expression._call(op, [pc.field(lcol), pc.field(rcol)])
        if lcol is None and rcol is not None:
            left, right, lcol, op = right, left, rcol, SWAP[op]
        if lcol is None:  # no column on either side
            for side in (left, right):
                if not self.is_literal(side):
                    raise self.unsupported(side)
            raise InvalidFilterError(f"the comparison {left.parent.sql()} names no column (SQL filter {self.text!r})")
        return pc.Expression._call(op, [pc.field(lcol), self.scalar(right, lcol)])

    def is_in(self, node: Any) -> pc.Expression:
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            raise self.unsupported(node.args.get("query") or node.args["unnest"], "a subquery")
        column = self.column(node.this)
        if column is None:
            raise self.unsupported(node.this)
        typ = self.schema.field(column).type
        value_type = typ.value_type if pa.types.is_dictionary(typ) else typ
        items = [self.value(v, column) for v in node.expressions]
        scalars = [literal_for(column, typ, v) for v in items if v is not None]
        # a value that only fits a wider type (7.5 for an int column) can never match: drop it
        values = pa.array([s for s in scalars if s.type == value_type], type=value_type)
        field = pc.field(column)
        out = set_lookup(column, values)
        if self.schema.field(column).nullable:  # is_in is FALSE for a null row; SQL says NULL
            out = out | ~pc.Expression._call("true_unless_null", [field])
        if len(scalars) != len(items):  # NULL in the list: no match is NULL, not FALSE
            out = out | _NULL_BOOL
        return out

    def like(self, node: Any, ignore_case: bool) -> pc.Expression:
        column = self.column(node.this)
        if column is None:
            raise self.unsupported(node.this)
        typ = self.schema.field(column).type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            raise InvalidFilterError(f"LIKE needs a string column; {column!r} is {typ} (SQL filter {self.text!r})")
        pattern = node.expression
        if not (isinstance(pattern, self.exp.Literal) and pattern.is_string):
            raise self.unsupported(pattern, "a LIKE pattern that is not a string literal")
        options = pc.MatchSubstringOptions(str(pattern.this), ignore_case=ignore_case)
        out = pc.Expression._call("match_like", [pc.field(column)], options)
        return ~out if node.args.get("negate") else out

    def translate(self, node: Any) -> pc.Expression:
        exp = self.exp
        name = type(node).__name__
        if isinstance(node, exp.Paren):
            return self.translate(node.this)
        if isinstance(node, exp.And | exp.Or):
            combine = operator.and_ if isinstance(node, exp.And) else operator.or_
            return reduce(combine, (self.translate(n) for n in node.flatten()))
        if isinstance(node, exp.Not):
            return ~self.translate(node.this)
        if name in _COMPARE:
            return self.compare(_COMPARE[name], node.this, node.expression)
        if isinstance(node, exp.In):
            return self.is_in(node)
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            column = self.column(node.this)
            if column is None:
                raise self.unsupported(node.this)
            return pc.field(column).is_null()
        if isinstance(node, exp.Between):
            low = self.compare("greater_equal", node.this, node.args["low"])
            high = self.compare("less_equal", node.this, node.args["high"])
            return low & high
        if isinstance(node, exp.Like | exp.ILike):
            return self.like(node, ignore_case=isinstance(node, exp.ILike))
        if isinstance(node, exp.Boolean):
            return pc.scalar(bool(node.this))
        if isinstance(node, exp.Null):
            return _NULL_BOOL
        column = self.column(node)
        if column is not None:
            if not pa.types.is_boolean(self.schema.field(column).type):
                raise InvalidFilterError(f"column {column!r} ({self.schema.field(column).type}) is not a condition; "
                                         f"compare it with something (SQL filter {self.text!r})")
            return pc.field(column)
        raise self.unsupported(node)


def parse_sql_filter(text: str, schema: pa.Schema) -> pc.Expression:
    """Turn a SQL-like filter (the part after ``WHERE``) into an expression over ``schema``.

    Needs sqlglot (``pip install 'lakehouse-format[sql]'``).

    Args:
        text: the condition, e.g. ``"day = 7 and id < 100"``.
        schema: the columns it may name; literals are converted to their column's type.

    Returns:
        The expression (SQL's three-valued logic kept: a read keeps the rows where it is TRUE).

    Raises:
        InvalidFilterError: the text does not parse, or uses something unsupported (named in the message).
        ColumnNotFoundError: it names a column ``schema`` does not have.
        ImportError: sqlglot is not installed.

    Example:
        >>> import pyarrow as pa
        >>> schema = pa.schema([("d", pa.date32()), ("s", pa.string())])
        >>> parse_sql_filter("d >= DATE '2024-05-01' AND s IS NOT NULL", schema)
        <pyarrow.compute.Expression ((d >= 2024-05-01) and invert(is_null(s, {nan_is_null=false})))>
        >>> parse_sql_filter("upper(s) = 'A'", schema)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lakehouse.errors.InvalidFilterError: the function UPPER (UPPER(s)) is not supported in the SQL filter ...
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidFilterError(f"a SQL filter must be a non-empty string, got {text!r}")
    sqlglot = _sqlglot()
    try:
        tree = sqlglot.parse_one(text)
        return _Translator(sqlglot.exp, schema, text).translate(tree)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidFilterError(f"cannot parse the SQL filter {_shorten(text)!r}: {first}") from None
    except RecursionError:  # sqlglot parses recursively: ~50 nested parentheses or ~300 NOTs
        raise InvalidFilterError(f"the SQL filter {_shorten(text)!r} is nested too deeply to parse; "
                                 f"write it with fewer parentheses or NOTs") from None


def _shorten(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + "..."

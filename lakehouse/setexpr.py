"""Values and conditions of row-level changes (``update``, ``merge``) over one or two sides.

A merge evaluates its clauses on a *joined* table whose columns are prefixed by side
(:class:`Sides`): ``target.x`` / ``source.x`` in SQL text (or the aliases given to ``merge``) name
a side; an unqualified name, and every name in a DNF filter or a ``pc.field``, means the clause's
default side (the target in matched and by-source clauses, the source in not-matched ones).

A SET value is a non-string literal or ``pa.Scalar`` (a constant), a ``pc.Expression`` (over the
default side), or SQL-like text parsed by sqlglot (the ``sql`` extra, imported on first use):
columns, literals (``'text'``, numbers, ``TRUE``/``FALSE``, ``NULL``, ``DATE '...'``), ``+ - * /``,
``||``, ``CASE WHEN ... THEN ... ELSE ... END``, ``coalesce(...)``, ``CAST(x AS type)``,
comparisons, ``AND``/``OR``/``NOT`` and ``IS [NOT] NULL``. The value is cast (safely) to the
column's type when written. Conditions in SQL text go through the SQL filter translator
(:func:`lakehouse.sqlfilter.parse_sql_filter`) first, and through the value translator when they
use arithmetic or functions.

Example:
    >>> import pyarrow as pa
    >>> sides = Sides.of(target=pa.schema([("v", pa.int64())]), source=pa.schema([("v", pa.int64())]))
    >>> value_expression("target.v + source.v * 2", sides, default="target")
    <pyarrow.compute.Expression add_checked(__t__v, multiply_checked(__s__v, 2))>
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .errors import ColumnNotFoundError, InvalidArgumentError, InvalidFilterError, LakehouseError
from .expressions import FilterLike, referenced_columns, rename_fields, to_expression

__all__ = ["SOURCE", "TARGET", "Side", "Sides", "condition", "evaluate", "join_predicate", "set_value",
           "value_expression"]

Side = Literal["target", "source"]
TARGET = "__t__"
"""Prefix of the target's columns in a joined table."""
SOURCE = "__s__"
"""Prefix of the source's columns in a joined table."""

_ARITH = {"Add": "add_checked", "Sub": "subtract_checked", "Mul": "multiply_checked", "Div": "divide_checked"}
_COMPARE = {"EQ": "equal", "NEQ": "not_equal", "LT": "less", "LTE": "less_equal", "GT": "greater",
            "GTE": "greater_equal"}
_TYPES: dict[str, pa.DataType] = {
    "TINYINT": pa.int8(), "SMALLINT": pa.int16(), "INT": pa.int32(), "BIGINT": pa.int64(),
    "UTINYINT": pa.uint8(), "USMALLINT": pa.uint16(), "UINT": pa.uint32(), "UBIGINT": pa.uint64(),
    "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "VARCHAR": pa.string(),
    "TEXT": pa.string(), "CHAR": pa.string(), "NVARCHAR": pa.string(), "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"), "DATETIME": pa.timestamp("us"), "TIMESTAMPTZ": pa.timestamp("us", "UTC"),
    "BINARY": pa.binary(), "VARBINARY": pa.binary(), "TIME": pa.time64("us"),
}
_INT = re.compile(r"[0-9]+\Z")
_SUPPORTED = ("columns, literals, + - * /, ||, CASE, coalesce, CAST, comparisons, AND, OR, NOT, IS [NOT] NULL")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sides:
    """The sides a clause may name: alias -> (prefix, schema), and the joined schema they make.

    Example:
        >>> s = Sides.of(target=pa.schema([("a", pa.int32())]))
        >>> s.joined.names
        ['a']
    """

    schemas: Mapping[Side, pa.Schema]
    prefixes: Mapping[Side, str]
    aliases: Mapping[str, Side] = field(default_factory=dict)

    @classmethod
    def of(cls, *, target: pa.Schema, source: pa.Schema | None = None, target_alias: str = "target",
           source_alias: str = "source") -> Sides:
        """Sides for an update (``target`` only, unprefixed) or a merge (both, prefixed)."""
        if source is None:
            return cls(schemas={"target": target}, prefixes={"target": ""}, aliases={target_alias: "target"})
        return cls(schemas={"target": target, "source": source}, prefixes={"target": TARGET, "source": SOURCE},
                   aliases={target_alias: "target", source_alias: "source"})

    @property
    def joined(self) -> pa.Schema:
        """The schema of the joined table: every side's columns under its prefix."""
        out = []
        for side, schema in self.schemas.items():
            prefix = self.prefixes[side]
            out += [f.with_name(prefix + f.name) for f in schema]
        return pa.schema(out)

    def column(self, side: Side, name: str) -> str:
        """The joined name of ``side``'s column ``name``; ``ColumnNotFoundError`` if that side lacks it."""
        schema = self.schemas[side]
        if name not in schema.names:
            raise ColumnNotFoundError(name, available=list(schema.names))
        return self.prefixes[side] + name

    def qualify(self, expr: pc.Expression, side: Side) -> pc.Expression:
        """``expr`` over ``side``'s columns as an expression over the joined table."""
        prefix = self.prefixes[side]
        return expr if not prefix else rename_fields(expr, lambda path: (prefix + path[0], *path[1:]))


def _sqlglot() -> Any:
    try:
        import sqlglot
    except ImportError as exc:
        raise ImportError("SQL-like values and filters need sqlglot: pip install 'lakehouse-format[sql]'") from exc
    return sqlglot


def _parse(text: str, what: str) -> Any:
    sqlglot = _sqlglot()
    if not text.strip():
        raise InvalidArgumentError(f"the {what} is an empty string")
    try:
        return sqlglot.parse_one(text)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidFilterError(f"cannot parse the {what} {text!r}: {first}") from None
    except RecursionError:
        raise InvalidFilterError(f"the {what} {text[:200]!r} is nested too deeply to parse") from None


def _resolve(tree: Any, sides: Sides, default: Side) -> Any:
    """``tree`` with every column reference replaced by its joined (prefixed, quoted) name."""
    exp = _sqlglot().exp

    def rewrite(node: Any) -> Any:
        if not isinstance(node, exp.Column):
            return node
        side = default
        if node.table:
            if node.table not in sides.aliases:
                raise ColumnNotFoundError(f"{node.table}.{node.name}", available=sorted(sides.aliases))
            side = sides.aliases[node.table]
        if side not in sides.schemas:
            raise InvalidArgumentError(f"{node.sql()} names the {side}, which this clause cannot see")
        return exp.column(sides.column(side, node.name), quoted=True)

    return tree.transform(rewrite)


class _Values:
    """Translate a parsed SQL value expression (columns already resolved) into a pc.Expression."""

    def __init__(self, joined: pa.Schema, text: str) -> None:
        self.exp = _sqlglot().exp
        self.joined = joined
        self.text = text

    def unsupported(self, node: Any) -> InvalidFilterError:
        return InvalidFilterError(f"{type(node).__name__} ({node.sql()}) is not supported in {self.text!r}; "
                                  f"supported: {_SUPPORTED}")

    def type_of(self, expr: pc.Expression) -> pa.DataType:
        try:
            return evaluate(self.joined.empty_table(), {"v": expr}).schema.field("v").type
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise InvalidFilterError(f"cannot evaluate {self.text!r}: {str(exc).splitlines()[0]}") from None

    def unify(self, exprs: list[pc.Expression]) -> list[pc.Expression]:
        """Branches cast to one type: the first branch's that is not null."""
        types = [self.type_of(e) for e in exprs]
        target = next((t for t in types if not pa.types.is_null(t)), None)
        if target is None:
            return exprs
        return [e if t == target else e.cast(target) for e, t in zip(exprs, types)]

    def cast_type(self, node: Any) -> pa.DataType:
        exp = self.exp
        kind = node.this.name if hasattr(node.this, "name") else str(node.this)
        if kind == "DECIMAL":
            params = [int(p.name) for p in node.expressions] or [38, 9]
            return pa.decimal128(params[0], params[1] if len(params) > 1 else 0)
        typ = _TYPES.get(kind.upper())
        if typ is None or not isinstance(node, exp.DataType):
            raise InvalidFilterError(f"CAST to {node.sql()} is not supported in {self.text!r}")
        return typ

    def literal(self, node: Any) -> pc.Expression:
        text = str(node.this)
        if node.is_string:
            return pc.scalar(pa.scalar(text, pa.string()))
        if _INT.match(text):
            return pc.scalar(int(text))
        try:
            return pc.scalar(float(text))
        except ValueError:
            return pc.scalar(pa.scalar(decimal.Decimal(text)))

    def call(self, name: str, args: list[pc.Expression], options: Any = None) -> pc.Expression:
        return pc.Expression._call(name, args, options)

    def translate(self, node: Any) -> pc.Expression:
        exp = self.exp
        kind = type(node).__name__
        if isinstance(node, exp.Paren):
            return self.translate(node.this)
        if isinstance(node, exp.Column):
            return pc.field(node.name)
        if isinstance(node, exp.Literal):
            return self.literal(node)
        if isinstance(node, exp.Null):
            return pc.scalar(pa.scalar(None))
        if isinstance(node, exp.Boolean):
            return pc.scalar(bool(node.this))
        if isinstance(node, exp.Neg):
            return self.call("negate_checked", [self.translate(node.this)])
        if kind in _ARITH:
            return self.call(_ARITH[kind], [self.translate(node.this), self.translate(node.expression)])
        if kind in _COMPARE:
            return self.call(_COMPARE[kind], [self.translate(node.this), self.translate(node.expression)])
        if isinstance(node, exp.DPipe):
            parts = [self.translate(node.this), self.translate(node.expression)]
            parts = [p if pa.types.is_string(self.type_of(p)) else p.cast(pa.string()) for p in parts]
            return self.call("binary_join_element_wise", [*parts, pc.scalar("")])
        if isinstance(node, exp.And | exp.Or):
            name = "and_kleene" if isinstance(node, exp.And) else "or_kleene"
            return self.call(name, [self.translate(node.this), self.translate(node.expression)])
        if isinstance(node, exp.Not):
            return self.call("invert", [self.translate(node.this)])
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            return self.call("is_null", [self.translate(node.this)])
        if isinstance(node, exp.Cast | exp.TryCast):
            return self.translate(node.this).cast(self.cast_type(node.to))
        if isinstance(node, exp.Coalesce):
            return self.call("coalesce", self.unify([self.translate(n) for n in [node.this, *node.expressions]]))
        if isinstance(node, exp.Case | exp.If):
            return self.case(node)
        raise self.unsupported(node)

    def case(self, node: Any) -> pc.Expression:
        exp = self.exp
        if isinstance(node, exp.If):  # IF(cond, a, b)
            ifs, default = [(node.this, node.args.get("true"))], node.args.get("false")
        else:
            ifs, default = [(i.this, i.args.get("true")) for i in node.args["ifs"]], node.args.get("default")
            if node.this is not None:  # CASE x WHEN v THEN ...
                ifs = [(exp.EQ(this=node.this.copy(), expression=c), v) for c, v in ifs]
        conditions = [self.translate(c) for c, _ in ifs]
        values = [self.translate(v) for _, v in ifs] + [self.translate(default) if default is not None
                                                         else pc.scalar(pa.scalar(None))]
        values = self.unify(values)
        names = [f"c{i}" for i in range(len(conditions))]
        struct = self.call("make_struct", conditions, pc.MakeStructOptions(names))
        return self.call("case_when", [struct, *values])


def evaluate(table: pa.Table, columns: Mapping[str, pc.Expression]) -> pa.Table:
    """The columns ``name -> expression`` evaluated on ``table``, row for row (order kept).

    Example:
        >>> evaluate(pa.table({"a": [1, 2]}), {"b": pc.field("a") * 2}).column("b").to_pylist()
        [2, 4]
    """
    return ds.dataset(table).to_table(columns=dict(columns), use_threads=False)


def value_expression(text: str, sides: Sides, *, default: Side) -> pc.Expression:
    """SQL-like value text as an expression over ``sides.joined`` (see the module docstring).

    Raises:
        InvalidFilterError: the text does not parse or uses something unsupported.
        ColumnNotFoundError: it names a column (or a side) that does not exist.
    """
    tree = _resolve(_parse(text, "value"), sides, default)
    try:
        expr = _Values(sides.joined, text).translate(tree)
    except RecursionError:
        raise InvalidFilterError(f"the value {text[:200]!r} is nested too deeply") from None
    _Values(sides.joined, text).type_of(expr)
    return expr


def set_value(value: Any, sides: Sides, *, default: Side, column: str) -> pc.Expression:
    """A SET value as an expression over ``sides.joined``: a literal, ``pa.Scalar``, expression or SQL text.

    Raises:
        InvalidArgumentError: ``value`` is none of those (a ``bytes`` value is a literal).
        InvalidFilterError, ColumnNotFoundError: as :func:`value_expression`.
    """
    if isinstance(value, str):
        return value_expression(value, sides, default=default)
    if isinstance(value, pc.Expression):
        expr = sides.qualify(value, default)
        missing = sorted(referenced_columns(expr) - set(sides.joined.names))
        if missing:
            schema = sides.schemas[default]
            raise ColumnNotFoundError(missing[0][len(sides.prefixes[default]):], available=list(schema.names))
        try:
            evaluate(sides.joined.empty_table(), {"v": expr})
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise InvalidArgumentError(f"the value for column {column!r} cannot be evaluated: "
                                       f"{str(exc).splitlines()[0]}", argument="set") from None
        return expr
    if isinstance(value, pa.Scalar):
        return pc.scalar(value)
    try:
        return pc.scalar(pa.scalar(value))
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise InvalidArgumentError(f"the value for column {column!r} must be a literal, a pyarrow scalar, an "
                                   f"expression or SQL text, got {type(value).__name__} ({exc})",
                                   argument="set") from None


def condition(filter: FilterLike | pc.Expression | None, sides: Sides, *, default: Side) -> pc.Expression | None:
    """A clause filter as a boolean expression over ``sides.joined`` (None: no condition).

    SQL text may name both sides; a DNF filter or ``pc.Expression`` names the ``default`` side.

    Raises:
        InvalidFilterError, ColumnNotFoundError: as :func:`lakehouse.expressions.to_expression`.
    """
    if filter is None:
        return None
    if not isinstance(filter, str):
        expr = to_expression(filter, sides.schemas[default])
        return None if expr is None else sides.qualify(expr, default)
    from .sqlfilter import parse_sql_filter  # lazily: sqlglot is an extra

    tree = _resolve(_parse(filter, "filter"), sides, default)
    try:
        return parse_sql_filter(tree.sql(), sides.joined)
    except InvalidFilterError as first:  # arithmetic or functions: the value translator
        try:
            expr = value_expression(tree.sql(), Sides(schemas={"target": sides.joined}, prefixes={"target": ""}),
                                    default="target")
        except LakehouseError:
            raise first from None
        if not pa.types.is_boolean(_Values(sides.joined, filter).type_of(expr)):
            raise InvalidFilterError(f"the filter {filter!r} is not a condition") from None
        return expr


def join_predicate(text: str, sides: Sides) -> tuple[list[tuple[str, str]], pc.Expression | None]:
    """A merge predicate split into equality keys and the rest.

    Returns the ``(target column, source column)`` pairs of its top-level ``AND`` terms of the form
    ``target.a = source.b`` (either order), and the other terms as one condition over
    ``sides.joined`` (None if there are none). An unqualified name means the target.

    Example:
        >>> s = Sides.of(target=pa.schema([("id", pa.int64())]), source=pa.schema([("k", pa.int64())]),
        ...              target_alias="t", source_alias="s")
        >>> join_predicate("t.id = s.k AND s.k > 2", s)
        ([('id', 'k')], <pyarrow.compute.Expression (__s__k > 2)>)
    """
    exp = _sqlglot().exp
    tree = _parse(text, "merge predicate")
    terms = list(tree.flatten()) if isinstance(tree, exp.And) else [tree]
    while len(terms) == 1 and isinstance(terms[0], exp.Paren):
        inner = terms[0].this
        terms = list(inner.flatten()) if isinstance(inner, exp.And) else [inner]
    pairs: list[tuple[str, str]] = []
    rest = []
    for term in terms:
        resolved = _resolve(term.copy(), sides, "target")
        if isinstance(term, exp.EQ) and isinstance(resolved.this, exp.Column) \
                and isinstance(resolved.expression, exp.Column):
            left, right = resolved.this.name, resolved.expression.name
            if left.startswith(SOURCE) and right.startswith(TARGET):
                left, right = right, left
            if left.startswith(TARGET) and right.startswith(SOURCE):
                pairs.append((left[len(TARGET):], right[len(SOURCE):]))
                continue
        rest.append(term)
    if not rest:
        return pairs, None
    residual = rest[0] if len(rest) == 1 else exp.and_(*rest)
    return pairs, condition(residual.sql(), sides, default="target")

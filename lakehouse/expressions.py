"""Filters: DNF tuples to Arrow expressions, expression analysis, and file pruning.

A filter is a :class:`pyarrow.compute.Expression`, DNF tuples (a list of ``(column, op, value)``
tuples is an AND, a list of such lists is an OR of ANDs), or SQL-like text such as
``"day = 7 and id < 100"`` (translated by :mod:`lakehouse.sqlfilter`; needs the ``sql`` extra).

Pruning turns a row filter into a filter over the *files table* (one row per data file with
``partition.<c>``, ``min.<c>``, ``max.<c>``, ``null_count.<c>`` and ``num_rows`` columns) that is
true for every file that may hold a row where the row filter is TRUE. pyarrow has no public API
to walk an expression, so it is read from its pickle form (an Arrow IPC file whose schema
metadata lists the tree in prefix order) into a small AST (:class:`Field`, :class:`Literal`,
:class:`Call`). Whatever cannot be understood is kept, never dropped.
"""

from __future__ import annotations

import ctypes
import operator
import re
import reprlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.acero as acero
import pyarrow.compute as pc

from lakehouse.errors import ColumnNotFoundError, InvalidFilterError
from lakehouse.literals import integer_comparison, literal_for, set_lookup

__all__ = [
    "Call", "Field", "FilterLike", "Literal", "Node", "build_expression", "conjuncts", "exact_integer_literals",
    "files_mask",
    "parse_expression", "partition_verdicts", "set_lookup",
    "prune_expression", "referenced_columns", "rename_fields", "to_expression",
]

FilterLike: TypeAlias = pc.Expression | str | Sequence[tuple] | Sequence[Sequence[tuple]]

_COMPARISONS = {"=": "equal", "==": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal",
                ">": "greater", ">=": "greater_equal"}
_SWAP = {"equal": "equal", "not_equal": "not_equal", "less": "greater", "less_equal": "greater_equal",
         "greater": "less", "greater_equal": "less_equal"}
_NEGATE = {"equal": "not_equal", "not_equal": "equal", "less": "greater_equal", "less_equal": "greater",
           "greater": "less_equal", "greater_equal": "less"}
_ORDERING = frozenset({"less", "less_equal", "greater", "greater_equal"})
_MAX_SET_TERMS = 32  # is_in value sets up to this size are pruned value by value, larger ones by range
_TRUE = pc.scalar(True)


# ----------------------------------------------------------------------------------- AST
@dataclass(frozen=True)
class Field:
    """A reference to a column; ``path`` has more than one name for nested struct fields."""

    path: tuple[str, ...]

    @property
    def name(self) -> str:
        """The top-level column name."""
        return self.path[0]


@dataclass(frozen=True, eq=False)
class Literal:
    """A literal value."""

    value: pa.Scalar


@dataclass(frozen=True, eq=False)
class Call:
    """A call of the compute function ``name``; ``options`` is the options as a struct scalar."""

    name: str
    args: tuple[Node, ...]
    options: pa.StructScalar | None = None


Node = Field | Literal | Call


class _Unsupported(Exception):
    """The expression (or its serialized form) has a shape this module does not handle."""


class _ArrowSchemaC(ctypes.Structure):
    """The Arrow C data interface ``struct ArrowSchema``."""


_ArrowSchemaC._fields_ = [
    ("format", ctypes.c_char_p), ("name", ctypes.c_char_p), ("metadata", ctypes.c_void_p),
    ("flags", ctypes.c_int64), ("n_children", ctypes.c_int64), ("children", ctypes.c_void_p),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.CFUNCTYPE(None, ctypes.POINTER(_ArrowSchemaC))), ("private_data", ctypes.c_void_p),
]


def _metadata_items(schema: pa.Schema) -> list[tuple[str, str]]:
    """Return the schema's key/value metadata in order, duplicates included.

    ``schema.metadata`` is a dict and drops duplicate keys, so the metadata is read from the
    schema exported through the C data interface (int32 count, then length-prefixed pairs).
    """
    c_schema = _ArrowSchemaC()
    schema._export_to_c(ctypes.addressof(c_schema))
    try:
        if not c_schema.metadata:
            return []
        pos = c_schema.metadata + 4
        strings = []  # key, value, key, value, ...
        for _ in range(2 * ctypes.c_int32.from_address(c_schema.metadata).value):
            size = ctypes.c_int32.from_address(pos).value
            strings.append(ctypes.string_at(pos + 4, size).decode("utf-8"))
            pos += 4 + size
        return list(zip(strings[::2], strings[1::2]))
    finally:
        c_schema.release(ctypes.byref(c_schema))


def _build_tree(items: list[tuple[str, str]], columns: pa.Table) -> Node:
    """Build the AST from the prefix-order metadata items (iteratively: no recursion limit)."""
    stack: list[tuple[str, list[Node], list[Any]]] = []  # calls being parsed: (name, args, [options])
    root: Node | None = None
    i = 0
    while i < len(items):
        key, value = items[i]
        i += 1
        node: Node
        if key == "call":
            stack.append((value, [], [None]))
            continue
        if key == "options" and stack:
            stack[-1][2][0] = columns.column(int(value))[0]
            continue
        if key == "end" and stack and stack[-1][0] == value:
            name, args, options = stack.pop()
            node = Call(name, tuple(args), options[0])
        elif key == "literal":
            node = Literal(columns.column(int(value))[0])
        elif key == "field_ref":
            node = Field((value,))
        elif key == "nested_field_ref":
            refs = items[i:i + int(value)]
            if len(refs) != int(value) or any(k != "field_ref" for k, _ in refs):
                raise _Unsupported("bad nested field reference")
            node, i = Field(tuple(v for _, v in refs)), i + len(refs)
        else:
            raise _Unsupported(f"unexpected {key!r} in serialized expression")
        if stack:
            stack[-1][1].append(node)
        elif root is None:
            root = node
        else:
            raise _Unsupported("more than one root")
    if stack or root is None:
        raise _Unsupported("truncated serialized expression")
    return root


def parse_expression(expr: pc.Expression) -> Node:
    """Parse an expression into the AST.

    Raises:
        InvalidFilterError: the expression cannot be parsed (e.g. it refers to a column by index).

    Example:
        >>> parse_expression(pc.field("a") < 3)
        Call(name='less', args=(Field(path=('a',)), Literal(value=<pyarrow.Int64Scalar: 3>)), options=None)
    """
    try:
        _, args = expr.__reduce__()
        reader = pa.ipc.open_file(args[0])
        return _build_tree(_metadata_items(reader.schema), reader.read_all())
    except Exception as exc:
        raise InvalidFilterError(f"cannot analyse expression {expr}: {exc}") from exc


def _rebuild_options(options: pa.StructScalar | None) -> pc.FunctionOptions | None:
    """Rebuild function options from their struct form; only the kinds this module knows."""
    if options is None:
        return None
    kind = options["_type_name"].as_py()
    if kind == b"SetLookupOptions":
        behaviour = options["null_matching_behavior"].as_py()
        if behaviour not in (0, 1):  # MATCH, SKIP: the only ones Python can build
            raise _Unsupported(f"null_matching_behavior {behaviour}")
        return pc.SetLookupOptions(options["value_set"].values, skip_nulls=behaviour == 1)
    if kind == b"NullOptions":
        return pc.NullOptions(nan_is_null=options["nan_is_null"].as_py())
    if kind == b"CastOptions":
        flags = {f.name: options[f.name].as_py() for f in options.type if f.name.startswith("allow_")}
        return pc.CastOptions(options.type.field("to_type").type, **flags)
    try:  # any other kind, through Arrow's own serialized form of function options (an IPC file)
        table = pa.Table.from_arrays([pa.array([options], options.type)], names=[""])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        return pc.FunctionOptions.deserialize(sink.getvalue())
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise _Unsupported(f"options {kind!r}") from exc


def build_expression(node: Node, *, prefix: str = "",
                     rename: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None) -> pc.Expression:
    """Turn an AST back into an expression, prefixing every top-level column name with ``prefix``
    (after mapping each field path through ``rename``, if given).

    Example:
        >>> build_expression(parse_expression(pc.field("a") < 3), prefix="partition.")
        <pyarrow.compute.Expression (partition.a < 3)>
    """
    if isinstance(node, Field):
        path = node.path if rename is None else rename(node.path)
        return pc.field(prefix + path[0], *path[1:])
    if isinstance(node, Literal):
        return pc.scalar(node.value)
    args = [build_expression(a, prefix=prefix, rename=rename) for a in node.args]
    return pc.Expression._call(node.name, args, _rebuild_options(node.options))


def rename_fields(expr: pc.Expression, rename: Callable[[tuple[str, ...]], tuple[str, ...]]) -> pc.Expression:
    """``expr`` with every field path mapped through ``rename`` (``expr`` itself if no path changes).

    Raises:
        InvalidFilterError: a field must be renamed but the expression cannot be rebuilt.

    Example:
        >>> rename_fields(pc.field("b") > 1, lambda path: ("a",) if path == ("b",) else path)
        <pyarrow.compute.Expression (a > 1)>
    """
    root = parse_expression(expr)
    if all(rename(f.path) == f.path for f in _fields(root)):
        return expr
    try:
        return build_expression(root, rename=rename)
    except (_Unsupported, pa.ArrowException, KeyError, TypeError, ValueError) as exc:
        raise InvalidFilterError(f"cannot map the columns of expression {expr} to the data files: {exc}") from exc


def _nodes(node: Node) -> Iterator[Node]:
    """Every node of the tree (iteratively: no recursion limit)."""
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, Call):
            stack.extend(reversed(item.args))


def _fields(node: Node) -> list[Field]:
    return [item for item in _nodes(node) if isinstance(item, Field)]


def referenced_columns(expr: pc.Expression) -> frozenset[str]:
    """Return the top-level column names an expression refers to.

    Raises:
        InvalidFilterError: the expression cannot be analysed (e.g. a by-index field reference).

    Example:
        >>> sorted(referenced_columns((pc.field("a") < 3) | pc.field("b").is_null()))
        ['a', 'b']
    """
    return frozenset(f.name for f in _fields(parse_expression(expr)))


# ----------------------------------------------------------------------------------- integer literals
def _integer_type(node: Node, schema: pa.Schema) -> pa.DataType | None:
    """The type of the column ``node`` names when it is a plain integer column of ``schema``."""
    if not isinstance(node, Field) or node.name not in schema.names:
        return None
    typ = schema.field(node.name).type
    for name in node.path[1:]:
        if not pa.types.is_struct(typ) or typ.get_field_index(name) < 0:
            return None
        typ = typ.field(name).type
    return typ if pa.types.is_integer(typ) else None


def _integral(value: pa.Scalar) -> bool:
    """``value`` is a non-null integer, or a decimal with no fraction digits (SQL's huge integers)."""
    return value.is_valid and (pa.types.is_integer(value.type) or (
        pa.types.is_decimal(value.type) and value.type.scale == 0))


def _exact_call(node: Call, schema: pa.Schema) -> pc.Expression | None:
    """``node`` made exact if it compares an integer column with an integer literal of another type."""
    if node.name in _SWAP and len(node.args) == 2 and node.options is None:
        column, literal, op = node.args[0], node.args[1], node.name
        if isinstance(column, Literal):
            column, literal, op = literal, column, _SWAP[op]
        typ = _integer_type(column, schema)
        if typ is None or not isinstance(literal, Literal) or not _integral(literal.value) \
                or literal.value.type == typ:
            return None
        field = build_expression(column)
        verdict = integer_comparison(op, typ, int(literal.value.as_py()))
        if isinstance(verdict, pa.Scalar):
            return pc.Expression._call(op, [field, pc.scalar(verdict)])
        valid = pc.Expression._call("true_unless_null", [field])  # true, or null on a null row
        return valid if verdict else ~valid
    if node.name == "is_in" and len(node.args) == 1 and node.options is not None \
            and node.options["_type_name"].as_py() == b"SetLookupOptions":
        typ = _integer_type(node.args[0], schema)
        value_set = node.options["value_set"].values
        behaviour = node.options["null_matching_behavior"].as_py()
        if typ is None or not pa.types.is_integer(value_set.type) or value_set.type == typ or behaviour not in (0, 1):
            return None
        kept = [v for v in value_set.to_pylist()  # a value the column cannot hold matches no row
                if v is None or isinstance(integer_comparison("equal", typ, v), pa.Scalar)]
        return pc.Expression._call("is_in", [build_expression(node.args[0])],
                                   pc.SetLookupOptions(pa.array(kept, typ), skip_nulls=behaviour == 1))
    return None


def _exact_node(node: Node, schema: pa.Schema) -> pc.Expression:
    if not isinstance(node, Call):
        return build_expression(node)
    exact = _exact_call(node, schema)
    if exact is not None:
        return exact
    args = [_exact_node(a, schema) for a in node.args]
    return pc.Expression._call(node.name, args, _rebuild_options(node.options))


def exact_integer_literals(expr: pc.Expression, schema: pa.Schema) -> pc.Expression:
    """``expr`` with every comparison (and ``is_in``) of an integer column with an integer literal
    of another type made exact (Arrow compares in a common type: ``uint64`` against a signed literal
    fails on the rows). A literal the column's type holds is cast to it; one it cannot hold decides
    the comparison for every non-null row (``u != -1`` is true, ``u < -1`` false; a null row stays
    null), and an ``is_in`` value the column cannot hold is dropped (it matches nothing).

    Args:
        expr: the filter.
        schema: the columns' types (names as ``expr`` uses them).

    Returns:
        The rewritten filter; ``expr`` itself when nothing needs rewriting or it cannot be analysed.

    Example:
        >>> exact_integer_literals(pc.field("u") < -1, pa.schema([("u", pa.uint8())]))
        <pyarrow.compute.Expression invert(true_unless_null(u))>
        >>> exact_integer_literals(pc.field("u") < 5, pa.schema([("u", pa.uint8())]))
        <pyarrow.compute.Expression (u < 5)>
    """
    try:
        root = parse_expression(expr)
        if not any(isinstance(n, Call) and _exact_call(n, schema) is not None for n in _nodes(root)):
            return expr
        return _exact_node(root, schema)
    except (InvalidFilterError, _Unsupported, pa.ArrowException, KeyError, TypeError, ValueError, RecursionError):
        return expr


# ----------------------------------------------------------------------------------- DNF
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
        _evaluate(expr, schema.empty_table())
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
        fields = _fields(parse_expression(expr))
    except InvalidFilterError:
        _check_columns_by_binding(expr, schema)
        return
    for field in fields:
        if field.name not in schema.names:
            raise ColumnNotFoundError(field.name, available=list(schema.names))
    if any(len(f.path) > 1 for f in fields):
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
        result = _evaluate(expr, _null_row(schema))
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
    is a SQL-like filter (:func:`lakehouse.sqlfilter.parse_sql_filter`), typed the same way.

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
        from .sqlfilter import parse_sql_filter  # lazily: sqlglot is an extra

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


# ----------------------------------------------------------------------------------- pruning
@dataclass(frozen=True)
class _Ctx:
    partition: frozenset[str]
    stats: frozenset[str]
    types: dict[str, pa.DataType] | None

    def maybe_float(self, column: str) -> bool:
        typ = None if self.types is None else self.types.get(column)
        return typ is None or pa.types.is_floating(typ)


def _coalesce(expr: pc.Expression, default: bool) -> pc.Expression:
    return pc.Expression._call("coalesce", [expr, pc.scalar(default)])


def _stat(kind: str, column: str) -> pc.Expression:
    return pc.field(f"{kind}.{column}")


def _has_values(column: str) -> pc.Expression:
    """False only for files known to hold nulls alone in ``column``."""
    return _coalesce(_stat("null_count", column) < pc.field("num_rows"), True)


def _bounds_keep(cond: pc.Expression, column: str, ctx: _Ctx) -> pc.Expression:
    """Keep where ``cond`` (over min/max) holds or is unknown; drop files of nulls only."""
    keep = _coalesce(cond, True)
    if ctx.maybe_float(column):  # a NaN bound (all-NaN file, or NaN-propagating stats) is unknown
        low, high = _stat("min", column), _stat("max", column)
        keep = keep | _coalesce((low != low) | (high != high), False)
    return keep & _has_values(column)


def _stats_field(node: Node, ctx: _Ctx) -> str | None:
    if isinstance(node, Field) and len(node.path) == 1 and node.name in ctx.stats:
        return node.name
    return None


def _prune_compare(node: Call, neg: bool, ctx: _Ctx) -> pc.Expression:
    if len(node.args) != 2 or node.options is not None:
        return _TRUE
    left, right, op = node.args[0], node.args[1], node.name
    if isinstance(left, Literal):
        left, right, op = right, left, _SWAP[op]
    column = _stats_field(left, ctx)
    if column is None or not isinstance(right, Literal):
        return _TRUE
    if neg:
        op = _NEGATE[op]
    if ctx.maybe_float(column) and (op == "not_equal" or (neg and op in _ORDERING)):
        return _TRUE  # NaN rows make these true and min/max know nothing of NaN
    value, low, high = pc.scalar(right.value), _stat("min", column), _stat("max", column)
    conds = {"less": lambda: low < value, "less_equal": lambda: low <= value,
             "greater": lambda: high > value, "greater_equal": lambda: high >= value,
             "equal": lambda: (low <= value) & (high >= value),
             "not_equal": lambda: ~((low == value) & (high == value))}
    return _bounds_keep(conds[op](), column, ctx)


def _prune_null_check(node: Call, neg: bool, ctx: _Ctx) -> pc.Expression:
    column = _stats_field(node.args[0], ctx) if len(node.args) == 1 else None
    if column is None:
        return _TRUE
    nulls, rows = _stat("null_count", column), pc.field("num_rows")
    if node.name == "true_unless_null":
        return pc.scalar(False) if neg else _coalesce(nulls < rows, True)
    nan_is_null = node.options is not None and bool(node.options["nan_is_null"].as_py())
    wants_nulls = (node.name == "is_null") != neg
    if wants_nulls and nan_is_null and ctx.maybe_float(column):
        return _TRUE
    return _coalesce(nulls > 0 if wants_nulls else nulls < rows, True)


def _prune_is_in(node: Call, neg: bool, ctx: _Ctx) -> pc.Expression:
    column = _stats_field(node.args[0], ctx) if len(node.args) == 1 else None
    if column is None or node.options is None or node.options["_type_name"].as_py() != b"SetLookupOptions":
        return _TRUE
    value_set = node.options["value_set"].values
    values = value_set.drop_null()
    if pa.types.is_floating(values.type) and pc.any(pc.is_nan(values)).as_py():
        return _TRUE
    low, high, nulls = _stat("min", column), _stat("max", column), _stat("null_count", column)
    if neg:
        if ctx.maybe_float(column) or len(values) > _MAX_SET_TERMS:
            return _TRUE
        hit = reduce(operator.or_, (low == pc.scalar(v) for v in values), pc.scalar(False))
        return _coalesce(~((low == high) & hit), True) | _coalesce(nulls > 0, True)
    if len(values) == 0:
        keep = pc.scalar(False)
    elif len(values) <= _MAX_SET_TERMS:
        keep = reduce(operator.or_, ((low <= pc.scalar(v)) & (high >= pc.scalar(v)) for v in values))
        keep = _bounds_keep(keep, column, ctx)
    else:
        bounds = pc.min_max(values)
        overlap = (low <= pc.scalar(bounds["max"])) & (high >= pc.scalar(bounds["min"]))
        keep = _bounds_keep(overlap, column, ctx)
    if value_set.null_count and node.options["null_matching_behavior"].as_py() == 0:
        keep = keep | _coalesce(nulls > 0, True)
    return keep


_LEAVES = {name: _prune_compare for name in _SWAP} | {
    "is_null": _prune_null_check, "is_valid": _prune_null_check, "true_unless_null": _prune_null_check,
    "is_in": _prune_is_in,
}


def _prune_exact(node: Node, neg: bool, ctx: _Ctx) -> pc.Expression | None:
    """Evaluate a sub-tree over partition columns only on the files' partition values."""
    if any(len(f.path) != 1 or f.name not in ctx.partition for f in _fields(node)):
        return None
    if any(isinstance(item, Call) and item.name == "random" for item in _nodes(node)):
        return None  # per-file evaluation is exact only for deterministic row-wise functions
    try:
        expr = build_expression(node, prefix="partition.")
    except (_Unsupported, pa.ArrowException, KeyError, TypeError, ValueError):
        return None
    return _coalesce(~expr if neg else expr, False)


def _prune(node: Node, neg: bool, ctx: _Ctx) -> pc.Expression:
    """An expression over the files table: may a file hold a row where ``node`` (or NOT node) is TRUE?"""
    exact = _prune_exact(node, neg, ctx)
    if exact is not None:
        return exact
    if not isinstance(node, Call):
        return _TRUE
    name, args = node.name, node.args
    if name in ("and", "and_kleene", "or", "or_kleene") and args:
        combine = operator.and_ if name.startswith("and") != neg else operator.or_
        return reduce(combine, (_prune(a, neg, ctx) for a in args))
    if name == "invert" and len(args) == 1:
        return _prune(args[0], not neg, ctx)
    if name in ("and_not", "and_not_kleene") and len(args) == 2:
        combine = operator.or_ if neg else operator.and_
        return combine(_prune(args[0], neg, ctx), _prune(args[1], not neg, ctx))
    handler = _LEAVES.get(name)
    return handler(node, neg, ctx) if handler else _TRUE


def prune_expression(expr: pc.Expression, *, partition_columns: Sequence[str], stats_columns: Sequence[str],
                     schema: pa.Schema | None = None) -> pc.Expression:
    """Turn a row filter into a files-table filter that keeps every file that may match.

    Args:
        expr: filter over the table's rows.
        partition_columns: columns with a ``partition.<c>`` column (compared exactly).
        stats_columns: columns with ``min.<c>``, ``max.<c>`` and ``null_count.<c>`` columns.
        schema: the columns' types, if known; without it every stats column may be floating
            point, so ``!=`` and negated comparisons on it (true for NaN) are not pruned.

    Example:
        >>> prune_expression(pc.field("p") == 1, partition_columns=["p"], stats_columns=[])
        <pyarrow.compute.Expression coalesce((partition.p == 1), false)>
    """
    types = None if schema is None else {f.name: f.type for f in schema}
    ctx = _Ctx(frozenset(partition_columns), frozenset(stats_columns) - set(partition_columns), types)
    try:
        return _prune(parse_expression(expr), False, ctx)
    except Exception:  # anything unexpected: keep every file
        return _TRUE


def _evaluate(expr: pc.Expression, table: pa.Table) -> pa.ChunkedArray:
    """Evaluate ``expr`` against ``table`` in order, vectorised."""
    plan = acero.Declaration.from_sequence([
        acero.Declaration("table_source", acero.TableSourceNodeOptions(table)),
        acero.Declaration("project", acero.ProjectNodeOptions([expr], ["mask"])),
    ])
    return plan.to_table(use_threads=False).column(0)


def files_mask(expr: pc.Expression | None, files: pa.Table, *, partition_columns: Sequence[str],
               stats_columns: Sequence[str]) -> pa.ChunkedArray | pa.Array:
    """Return a boolean mask over ``files`` (no nulls): True where the file may hold matching rows.

    Columns missing from ``files`` are treated as unknown; if anything fails, every file is kept.

    Example:
        >>> files = pa.table({"num_rows": [2, 2], "partition.p": [1, 2]})
        >>> files_mask(pc.field("p") == 2, files, partition_columns=["p"], stats_columns=[]).to_pylist()
        [False, True]
    """
    keep_all = pa.array(np.ones(files.num_rows, dtype=bool))
    if expr is None or files.num_rows == 0:
        return keep_all
    names = set(files.column_names)
    partitions = [c for c in partition_columns if f"partition.{c}" in names]
    stats = [c for c in stats_columns if "num_rows" in names
             and {f"min.{c}", f"max.{c}", f"null_count.{c}"} <= names]
    schema = pa.schema([(c, files.schema.field(f"min.{c}").type) for c in stats])
    exact = partition_verdicts(expr, files, partition_columns=partitions)
    if exact is not None:  # a filter on partition columns alone: decided exactly per file
        return exact
    pruned = prune_expression(expr, partition_columns=partitions, stats_columns=stats, schema=schema)
    try:
        mask = _evaluate(pruned, files)
        if not pa.types.is_boolean(mask.type) or len(mask) != files.num_rows:
            return keep_all
        return pc.fill_null(mask, True)
    except Exception:
        return keep_all


def partition_verdicts(expr: pc.Expression, files: pa.Table, *,
                       partition_columns: Sequence[str]) -> pa.Array | None:
    """Decide ``expr`` per file from the files' partition values alone, if that is exact.

    Every row of a file holds the file's partition values, so a filter that names only partition
    columns and calls only deterministic row-wise functions has, on every row of the file, the
    value it has on the file's partition values. It is evaluated once per file.

    Args:
        expr: the filter, over the names the files table uses (physical names).
        files: the files table, with a ``partition.<c>`` column per name in ``partition_columns``.
        partition_columns: the partition columns.

    Returns:
        A boolean array over ``files`` without nulls: True where ``expr`` is TRUE for every row of
        the file, False where it is TRUE for none (false or null). None when that cannot be decided
        this way (another column, a random function, a function Arrow cannot run on the values):
        the rows must then be read.

    Example:
        >>> files = pa.table({"partition.p": ["ab", "b"]})
        >>> partition_verdicts(pc.starts_with(pc.field("p"), "a"), files, partition_columns=["p"]).to_pylist()
        [True, False]
        >>> partition_verdicts(pc.field("x") > 1, files, partition_columns=["p"]) is None
        True
    """
    try:
        nodes = list(_nodes(parse_expression(expr)))
    except InvalidFilterError:
        return None
    parts = set(partition_columns)
    if any(isinstance(n, Field) and (len(n.path) != 1 or n.name not in parts) for n in nodes):
        return None
    if any(isinstance(n, Call) and n.name == "random" for n in nodes):
        return None  # one draw per file is not one draw per row
    names = [c for c in partition_columns if f"partition.{c}" in files.column_names]
    values = pa.table([files.column(f"partition.{c}") for c in names], names=names) if names else \
        pa.table({"_": pa.nulls(files.num_rows, pa.bool_())})
    try:
        result = _evaluate(expr, values)
    except Exception:  # anything Arrow cannot decide here is decided on the rows
        return None
    if not pa.types.is_boolean(result.type) or len(result) != files.num_rows:
        return None
    return pc.fill_null(result, False).combine_chunks() if isinstance(result, pa.ChunkedArray) \
        else pc.fill_null(result, False)


def conjuncts(expr: pc.Expression) -> list[pc.Expression]:
    """Split a conjunction into its terms (``[expr]`` when it is not one or cannot be read).

    Example:
        >>> [str(e) for e in conjuncts((pc.field("a") < 3) & (pc.field("b") == 1))]
        ['(a < 3)', '(b == 1)']
    """
    try:
        root = parse_expression(expr)
    except Exception:
        return [expr]
    terms: list[Node] = []
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, Call) and node.name in ("and_kleene", "and") and len(node.args) == 2:
            stack.extend(reversed(node.args))
        else:
            terms.append(node)
    try:
        return [build_expression(t) for t in terms]
    except Exception:
        return [expr]

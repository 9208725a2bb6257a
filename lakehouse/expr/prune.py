"""File pruning: which data files may hold a row where a filter is TRUE.

Pruning turns a row filter into a filter over the *files table* (one row per data file with
``partition.<c>``, ``min.<c>``, ``max.<c>``, ``null_count.<c>`` and ``num_rows`` columns) that is
true for every file that may hold a row where the row filter is TRUE (:func:`prune_expression`,
:func:`files_mask`). A filter over partition columns alone is decided exactly, once per file
(:func:`partition_verdicts`). Whatever cannot be understood keeps the file: pruning never drops
a file that may match.

Example:
    >>> import pyarrow as pa, pyarrow.compute as pc
    >>> files = pa.table({"num_rows": [2, 2], "min.x": [0, 10], "max.x": [5, 20], "null_count.x": [0, 0]})
    >>> files_mask(pc.field("x") > 7, files, partition_columns=[], stats_columns=["x"]).to_pylist()
    [False, True]
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidFilterError

from .bridge import (
    SWAP,
    Call,
    Field,
    Literal,
    Node,
    UnsupportedExpression,
    build_expression,
    evaluate,
    fields,
    nodes,
    parse_expression,
)

__all__ = ["conjuncts", "files_mask", "partition_verdicts", "prune_expression"]

_NEGATE = {"equal": "not_equal", "not_equal": "equal", "less": "greater_equal", "less_equal": "greater",
           "greater": "less_equal", "greater_equal": "less"}
_ORDERING = frozenset({"less", "less_equal", "greater", "greater_equal"})
_MAX_SET_TERMS = 32  # is_in value sets up to this size are pruned value by value, larger ones by range
_TRUE = pc.scalar(True)


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
        left, right, op = right, left, SWAP[op]
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


_LEAVES = {name: _prune_compare for name in SWAP} | {
    "is_null": _prune_null_check, "is_valid": _prune_null_check, "true_unless_null": _prune_null_check,
    "is_in": _prune_is_in,
}


def _prune_exact(node: Node, neg: bool, ctx: _Ctx) -> pc.Expression | None:
    """Evaluate a sub-tree over partition columns only on the files' partition values."""
    if any(len(f.path) != 1 or f.name not in ctx.partition for f in fields(node)):
        return None
    if any(isinstance(item, Call) and item.name == "random" for item in nodes(node)):
        return None  # per-file evaluation is exact only for deterministic row-wise functions
    try:
        expr = build_expression(node, prefix="partition.")
    except (UnsupportedExpression, pa.ArrowException, KeyError, TypeError, ValueError):
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

    Returns:
        An expression over the files table, true (or null) for every file that may hold a row
        where ``expr`` is TRUE; ``true`` itself when nothing can be pruned. It never raises: a
        filter it cannot read keeps every file.

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


def files_mask(expr: pc.Expression | None, files: pa.Table, *, partition_columns: Sequence[str],
               stats_columns: Sequence[str]) -> pa.ChunkedArray | pa.Array:
    """Return a boolean mask over ``files`` (no nulls): True where the file may hold matching rows.

    Columns missing from ``files`` are treated as unknown; if anything fails, every file is kept.
    A filter over partition columns alone is decided exactly (:func:`partition_verdicts`).

    Args:
        expr: the row filter, over the names the files table uses (physical names); None keeps all.
        files: the files table (``num_rows``, ``partition.<c>``, ``min.<c>``, ``max.<c>``,
            ``null_count.<c>`` columns).
        partition_columns: the partition columns.
        stats_columns: the columns with statistics.

    Returns:
        One boolean per file, no nulls. It never raises.

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
        mask = evaluate(pruned, files)
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
        tree = list(nodes(parse_expression(expr)))
    except InvalidFilterError:
        return None
    parts = set(partition_columns)
    if any(isinstance(n, Field) and (len(n.path) != 1 or n.name not in parts) for n in tree):
        return None
    if any(isinstance(n, Call) and n.name == "random" for n in tree):
        return None  # one draw per file is not one draw per row
    names = [c for c in partition_columns if f"partition.{c}" in files.column_names]
    values = pa.table([files.column(f"partition.{c}") for c in names], names=names) if names else \
        pa.table({"_": pa.nulls(files.num_rows, pa.bool_())})
    try:
        result = evaluate(expr, values)
    except Exception:  # anything Arrow cannot decide here is decided on the rows
        return None
    if not pa.types.is_boolean(result.type) or len(result) != files.num_rows:
        return None
    return pc.fill_null(result, False).combine_chunks() if isinstance(result, pa.ChunkedArray) \
        else pc.fill_null(result, False)


def conjuncts(expr: pc.Expression) -> list[pc.Expression]:
    """Split a conjunction into its terms (``[expr]`` when it is not one or cannot be read).

    Args:
        expr: the expression.

    Returns:
        The terms, left to right; their AND is ``expr``. It never raises.

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

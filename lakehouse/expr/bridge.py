"""The bridge to pyarrow's expression internals: reading an expression as a tree and building one back.

pyarrow has no public API to walk a :class:`pyarrow.compute.Expression`, so it is read from its
pickle form (an Arrow IPC file whose schema metadata lists the tree in prefix order) into a small
AST (:class:`Field`, :class:`Literal`, :class:`Call`) that the rest of :mod:`lakehouse.expr` works
on: :mod:`~lakehouse.expr.dnf` (filters to bound expressions), :mod:`~lakehouse.expr.prune` (file
pruning), :mod:`~lakehouse.expr.codec` (the canonical text of an expression). Whatever cannot be
understood is kept, never dropped.

Also here: :func:`evaluate` (an expression over a table, in row order), :data:`SWAP` (the
comparison seen from the other side) and :func:`exact_integer_literals` (integer comparisons made
exact across integer types).

Example:
    >>> import pyarrow.compute as pc
    >>> tree = parse_expression((pc.field("a") < 3) & pc.field("b").is_valid())
    >>> sorted(f.name for f in fields(tree))
    ['a', 'b']
    >>> build_expression(tree, prefix="partition.")
    <pyarrow.compute.Expression ((partition.a < 3) and is_valid(partition.b))>
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.acero as acero
import pyarrow.compute as pc

from lakehouse.errors import InvalidFilterError

from .literals import integer_comparison

__all__ = [
    "SWAP", "Call", "Field", "Literal", "Node", "UnsupportedExpression", "build_expression", "evaluate",
    "exact_integer_literals", "fields", "nodes", "parse_expression", "referenced_columns", "rename_fields",
]

SWAP: dict[str, str] = {"equal": "equal", "not_equal": "not_equal", "less": "greater",
                        "less_equal": "greater_equal", "greater": "less", "greater_equal": "less_equal"}
"""The comparison functions, each mapped to the one that holds with its operands swapped
(``a < b`` is ``b > a``); its keys are the comparisons the package understands."""


def evaluate(expr: pc.Expression, table: pa.Table) -> pa.ChunkedArray:
    """Evaluate ``expr`` on every row of ``table``, in row order, vectorised (one thread).

    Args:
        expr: the expression, over ``table``'s column names.
        table: the rows.

    Returns:
        One value per row of ``table``, of the type the expression gives.

    Raises:
        pyarrow.ArrowException: the expression cannot be bound to or evaluated on ``table``
            (callers turn this into the error that fits their context).

    Example:
        >>> import pyarrow as pa, pyarrow.compute as pc
        >>> evaluate(pc.field("a") > 1, pa.table({"a": [1, 2, None]})).to_pylist()
        [False, True, None]
    """
    plan = acero.Declaration.from_sequence([
        acero.Declaration("table_source", acero.TableSourceNodeOptions(table)),
        acero.Declaration("project", acero.ProjectNodeOptions([expr], ["result"])),
    ])
    return plan.to_table(use_threads=False).column(0)


# ----------------------------------------------------------------------------------- AST
@dataclass(frozen=True)
class Field:
    """A reference to a column.

    Attributes:
        path: the column's name, then the names of nested struct fields down to the referenced one.

    Example:
        >>> Field(("s", "x")).name
        's'
    """

    path: tuple[str, ...]

    @property
    def name(self) -> str:
        """The top-level column name."""
        return self.path[0]


@dataclass(frozen=True, eq=False)
class Literal:
    """A literal value.

    Attributes:
        value: the value, as a pyarrow scalar.

    Example:
        >>> Literal(pa.scalar(3)).value.as_py()
        3
    """

    value: pa.Scalar


@dataclass(frozen=True, eq=False)
class Call:
    """A call of a compute function.

    Attributes:
        name: the compute function's name (``"less"``, ``"and_kleene"``, ...).
        args: its arguments.
        options: the function's options as a struct scalar, or None.

    Example:
        >>> build_expression(Call("less", (Field(("a",)), Literal(pa.scalar(3)))))
        <pyarrow.compute.Expression (a < 3)>
    """

    name: str
    args: tuple[Node, ...]
    options: pa.StructScalar | None = None


Node = Field | Literal | Call


class UnsupportedExpression(InvalidFilterError):
    """The expression (or its serialized form) has a shape this bridge does not handle.

    Raised by :func:`build_expression` for function options it cannot rebuild; the callers in
    :mod:`lakehouse.expr` catch it and keep the expression as it is (or every file).
    """


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
                raise UnsupportedExpression("bad nested field reference")
            node, i = Field(tuple(v for _, v in refs)), i + len(refs)
        else:
            raise UnsupportedExpression(f"unexpected {key!r} in serialized expression")
        if stack:
            stack[-1][1].append(node)
        elif root is None:
            root = node
        else:
            raise UnsupportedExpression("more than one root")
    if stack or root is None:
        raise UnsupportedExpression("truncated serialized expression")
    return root


def parse_expression(expr: pc.Expression) -> Node:
    """Parse an expression into the AST (iteratively: any depth).

    Args:
        expr: the expression.

    Returns:
        The root node: a :class:`Field`, :class:`Literal` or :class:`Call`.

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
            raise UnsupportedExpression(f"null_matching_behavior {behaviour}")
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
        raise UnsupportedExpression(f"options {kind!r}") from exc


def build_expression(node: Node, *, prefix: str = "",
                     rename: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None) -> pc.Expression:
    """Turn an AST back into an expression.

    Args:
        node: the root of the tree (from :func:`parse_expression`).
        prefix: put before every top-level column name (``"partition."`` for the files table).
        rename: maps each field path before the prefix is added; None keeps the paths.

    Returns:
        The expression.

    Raises:
        UnsupportedExpression: a call has function options this bridge cannot rebuild.
        pyarrow.ArrowException: pyarrow refuses the rebuilt call.

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
    """``expr`` with every field path mapped through ``rename``.

    Args:
        expr: the expression.
        rename: maps a field path (top-level name first) to its new path.

    Returns:
        The renamed expression; ``expr`` itself when no path changes.

    Raises:
        InvalidFilterError: a field must be renamed but the expression cannot be rebuilt.

    Example:
        >>> rename_fields(pc.field("b") > 1, lambda path: ("a",) if path == ("b",) else path)
        <pyarrow.compute.Expression (a > 1)>
    """
    root = parse_expression(expr)
    if all(rename(f.path) == f.path for f in fields(root)):
        return expr
    try:
        return build_expression(root, rename=rename)
    except (UnsupportedExpression, pa.ArrowException, KeyError, TypeError, ValueError) as exc:
        raise InvalidFilterError(f"cannot map the columns of expression {expr} to the data files: {exc}") from exc


def nodes(node: Node) -> Iterator[Node]:
    """Every node of the tree, parents before children, left to right (iteratively: any depth).

    Args:
        node: the root.

    Returns:
        An iterator over the nodes, ``node`` first.

    Example:
        >>> [type(n).__name__ for n in nodes(parse_expression(pc.field("a") < 3))]
        ['Call', 'Field', 'Literal']
    """
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, Call):
            stack.extend(reversed(item.args))


def fields(node: Node) -> list[Field]:
    """The column references of the tree, left to right (one per reference, repeats kept).

    Args:
        node: the root.

    Returns:
        The :class:`Field` nodes.

    Example:
        >>> [f.path for f in fields(parse_expression(pc.field("a") < pc.field("s", "x")))]
        [('a',), ('s', 'x')]
    """
    return [item for item in nodes(node) if isinstance(item, Field)]


def referenced_columns(expr: pc.Expression) -> frozenset[str]:
    """Return the top-level column names an expression refers to.

    Args:
        expr: the expression.

    Returns:
        The names (the first name of a nested field's path).

    Raises:
        InvalidFilterError: the expression cannot be analysed (e.g. a by-index field reference).

    Example:
        >>> sorted(referenced_columns((pc.field("a") < 3) | pc.field("b").is_null()))
        ['a', 'b']
    """
    return frozenset(f.name for f in fields(parse_expression(expr)))



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
    if node.name in SWAP and len(node.args) == 2 and node.options is None:
        column, literal, op = node.args[0], node.args[1], node.name
        if isinstance(column, Literal):
            column, literal, op = literal, column, SWAP[op]
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
        if not any(isinstance(n, Call) and _exact_call(n, schema) is not None for n in nodes(root)):
            return expr
        return _exact_node(root, schema)
    except (InvalidFilterError, pa.ArrowException, KeyError, TypeError, ValueError, RecursionError):
        return expr

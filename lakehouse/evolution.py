"""Schema evolution: the rules for changing a table's columns, each producing new table metadata.

Every field of a table schema carries a stable *field id* and a *physical name* (the column's name
inside the data files) in its Arrow field metadata (``lakehouse.schema``, ``docs/format.md`` §5.7).
A rename changes only the name, so data files are never rewritten; a drop removes the field and
retires its physical name; an added field gets a new id and a physical name no data file has used.

Allowed changes: add a nullable column (top level or inside a struct); widen a type (a wider
integer of the same signedness, float32 -> float64, date -> timestamp without time zone, decimal
with at least as many integer and fraction digits); rename or drop a column. Everything else
raises :class:`~lakehouse.errors.SchemaMismatchError` naming the column.

Example:
    >>> import pyarrow as pa
    >>> from lakehouse.log import Metadata
    >>> meta = new_metadata_schema(Metadata(table_id="t", schema=pa.schema([("a", pa.int32())])))
    >>> meta = rename_column(widen_column(meta, "a", pa.int64()), "a", "b")
    >>> meta.schema.field("b").type, meta.schema.field("b").metadata[b"lakehouse:physical"]
    (DataType(int64), b'a')
"""

from __future__ import annotations

import dataclasses
import json
import reprlib
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.types as pat

from .constraints import table_constraints
from .errors import ArgumentTypeError, ColumnNotFoundError, InvalidTableError, SchemaMismatchError
from .expr.bridge import fields, parse_expression
from .log import Metadata, Protocol
from .schema import (
    FIELD_ID_KEY,
    PHYSICAL_KEY,
    assign_field_ids,
    can_widen,
    check_mapping,
    check_partition_columns,
    compatible,
    data_schema,
    is_identity,
    is_legacy,
    logical_schema,
    physical_name,
    struct_fields,
)

__all__ = [
    "ColumnPath",
    "add_column",
    "check_partition_name",
    "drop_column",
    "merge_schema",
    "narrowing_protocol",
    "new_metadata_schema",
    "raised_protocol",
    "rename_column",
    "replace_schema",
    "widen_column",
]

ColumnPath = str | Sequence[str]
"""A top-level column name, or the names along the path to a field nested in structs."""

MAPPING_VERSION = 2
"""The reader and writer protocol version that column mapping with renames or drops needs (§5.7)."""
NARROWING_VERSION = 3
"""The reader and writer protocol version that a metadata action narrowing a column needs (a
restore undoing a widening: the files table is cast back exactly, §5.2, §8)."""


def _path(column: ColumnPath) -> tuple[str, ...]:
    if isinstance(column, str):
        path: tuple[Any, ...] = (column,)
    elif isinstance(column, (list, tuple)):
        path = tuple(column)
    else:  # not a name nor a path of names
        raise ColumnNotFoundError(repr(column))
    if not path or not all(isinstance(p, str) and p for p in path):
        raise ColumnNotFoundError(repr(column))
    return path


def _dotted(path: Sequence[str]) -> str:
    return ".".join(path)


def _ids_everywhere(meta: Metadata) -> Metadata:
    """``meta`` with an id and a physical name on every field. A table from before column mapping (no
    physical name anywhere) gets them now, deterministically: ids in pre-order from 1 (any ids its
    schema carried, e.g. from a Parquet file's schema, are replaced), physical name = current name,
    which is what its files use."""
    schema, last = meta.schema, meta.last_field_id
    if is_legacy(schema):
        schema, last = logical_schema(schema), 0
    schema, last = assign_field_ids(schema, last)
    if last == meta.last_field_id and schema.equals(meta.schema, check_metadata=True):
        return meta
    try:
        check_mapping(schema, strict=True)
    except ValueError as exc:
        raise InvalidTableError(f"invalid schema: {exc} (names must be unique within a struct)") from None
    return dataclasses.replace(meta, schema=schema, last_field_id=last)


def new_metadata_schema(meta: Metadata) -> Metadata:
    """Metadata for a new table, with fresh column mapping.

    Args:
        meta: the new table's metadata; any column-mapping metadata in its schema is replaced.

    Returns:
        ``meta`` with fresh field ids (from 1) and physical names equal to the names.

    Example:
        >>> new_metadata_schema(Metadata(table_id="t", schema=pa.schema([("a", pa.int8())]))).last_field_id
        1
    """
    return _ids_everywhere(dataclasses.replace(meta, schema=logical_schema(meta.schema), last_field_id=0))


MAX_PARTITION_NAME = 126
"""The longest escaped partition column name: with ``=`` and a value escaped to at most 128
characters (format §7), every partition folder name fits the 255 bytes most filesystems allow."""


def check_partition_name(name: str) -> None:
    """Refuse a partition column name too long to name partition folders (format §5.1).

    Args:
        name: the partition column's name.

    Raises:
        InvalidTableError: its escaped form (format §7) is longer than 126 characters.

    Example:
        >>> check_partition_name("day")
        >>> check_partition_name("x" * 127)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lakehouse.errors.InvalidTableError: partition column 'xxx...xxx' is too long to name partition folders: ...
    """
    escaped = "".join(chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_.-") else f"%{b:02X}"
                      for b in name.encode("utf-8", "surrogatepass"))
    if len(escaped) > MAX_PARTITION_NAME:
        raise InvalidTableError(
            f"partition column {reprlib.repr(name)} is too long to name partition folders: {len(escaped)} "
            f"characters once escaped (format §7), at most {MAX_PARTITION_NAME}; a folder name "
            f"'<column>=<value>' must fit the 255 bytes filesystems allow")


# -- navigating --------------------------------------------------------------------------------
Edit = Callable[[pa.Field], list[pa.Field]]
"""Given the field at a path, the fields that replace it (none: it is dropped)."""


def _edit(fields: list[pa.Field], path: tuple[str, ...], edit: Edit) -> list[pa.Field]:
    """``fields`` with the field at ``path`` (names, struct by struct; it must exist) replaced by ``edit``'s result."""
    i = [f.name for f in fields].index(path[0])
    f = fields[i]
    if len(path) == 1:
        return [*fields[:i], *edit(f), *fields[i + 1:]]
    return [*fields[:i], f.with_type(pa.struct(_edit(struct_fields(f.type), path[1:], edit))), *fields[i + 1:]]


def _find(schema: pa.Schema, path: tuple[str, ...]) -> tuple[pa.Field, tuple[str, ...], list[pa.Field]]:
    """The field at ``path``, its physical path, and its siblings (itself included)."""
    fields: list[pa.Field] = list(schema)
    phys: tuple[str, ...] = ()
    for i, name in enumerate(path):
        names = [f.name for f in fields]
        if name not in names:
            raise ColumnNotFoundError(_dotted(path), available=[_dotted((*path[:i], n)) for n in names])
        f = fields[names.index(name)]
        phys = (*phys, physical_name(f))
        if i == len(path) - 1:
            return f, phys, fields
        if not pat.is_struct(f.type):
            raise ColumnNotFoundError(_dotted(path), available=[_dotted(path[:i + 1])])
        fields = struct_fields(f.type)
    raise AssertionError("unreachable")  # pragma: no cover


def _with_schema(meta: Metadata, fields: list[pa.Field], **changes: Any) -> Metadata:
    schema = pa.schema(fields, metadata=_pandas_kept(meta.schema, fields))
    return dataclasses.replace(meta, schema=schema, **changes)


_PANDAS_KEY = b"pandas"


def _pandas_kept(old: pa.Schema, fields: list[pa.Field]) -> dict[bytes, bytes] | None:
    """The schema metadata for the changed ``fields``. pyarrow stores a ``pandas`` entry describing the
    DataFrame of the first write (``numpy_type`` ``int8``, ``Int8``...) and ``to_pandas`` trusts it:
    the description of a column that is renamed, dropped or retyped is stale and goes (pandas then
    converts that column by its Arrow type); the rest of the entry stays."""
    metadata = dict(old.metadata or {})
    raw = metadata.get(_PANDAS_KEY)
    if raw is None:
        return metadata or None
    try:
        doc = json.loads(raw)
        same = {f.name for f in fields if f.name in old.names and old.field(f.name).type.equals(f.type)}
        doc["columns"] = [c for c in doc["columns"] if not isinstance(c, dict) or c.get("field_name") in same
                          or c.get("field_name") not in old.names]
        metadata[_PANDAS_KEY] = json.dumps(doc).encode()
    except (ValueError, TypeError, KeyError, AttributeError):  # not what pyarrow writes: drop it
        del metadata[_PANDAS_KEY]
    return metadata or None


# -- adding ------------------------------------------------------------------------------------
def _check_new(field: pa.Field, path: str) -> None:
    if not field.nullable:
        raise SchemaMismatchError(f"cannot add column {path!r}: a new column must be nullable (the rows "
                                  f"already in the table have no value for it)", column=path)
    if pat.is_null(field.type):
        raise SchemaMismatchError(f"cannot add column {path!r} of type null: give it the type it will hold",
                                  column=path)


def _new_field(meta: Metadata, field: pa.Field, siblings: list[pa.Field], parent: tuple[str, ...],
               last_id: int) -> tuple[pa.Field, int]:
    """``field`` (and its struct children) with fresh ids above ``last_id`` and a physical name no
    data file under ``parent`` (a physical path) has used: its name, else ``<name>__<id>``."""
    bare = logical_schema(pa.schema([field])).field(0)
    used = {physical_name(f) for f in siblings} | {p[-1] for p in meta.dropped_physical if p[:-1] == parent}
    new_id = last_id + 1
    name = bare.name
    if name in used:
        name, k = f"{bare.name}__{new_id}", 1
        while name in used:
            name, k = f"{bare.name}__{new_id}_{k}", k + 1
    top = bare.with_metadata({**(bare.metadata or {}), FIELD_ID_KEY: str(new_id).encode(),
                              PHYSICAL_KEY: name.encode("utf-8")})
    schema, last = assign_field_ids(pa.schema([top]), new_id)
    return schema.field(0), last


def add_column(meta: Metadata, field: pa.Field, *, parent: ColumnPath | None = None) -> Metadata:
    """Add the nullable ``field`` at the end of the table (or of the struct column at ``parent``).

    Args:
        meta: the table metadata.
        field: the new column (nullable, not of type null); it gets the next field id.
        parent: the struct column to add it to (None: the table).

    Returns:
        The new metadata.

    Raises:
        SchemaMismatchError: the field is not nullable, has type null, or its name is taken.
        ColumnNotFoundError: ``parent`` is not a struct column of the table.

    Example:
        >>> meta = new_metadata_schema(Metadata(table_id="t", schema=pa.schema([("a", pa.int8())])))
        >>> add_column(meta, pa.field("b", pa.string())).schema.names
        ['a', 'b']
    """
    if not isinstance(field, pa.Field):
        raise ArgumentTypeError(f"add_column needs a pyarrow.Field, got {type(field).__name__}")
    meta = _ids_everywhere(meta)
    parent_path: tuple[str, ...] = () if parent is None else _path(parent)
    path = _dotted((*parent_path, field.name))
    _check_new(field, path)
    phys: tuple[str, ...] = ()
    if not parent_path:
        siblings = list(meta.schema)
    else:
        parent_field, phys, _ = _find(meta.schema, parent_path)
        if not pat.is_struct(parent_field.type):
            raise SchemaMismatchError(f"cannot add {path!r}: {_dotted(parent_path)!r} is not a struct column",
                                      column=_dotted(parent_path))
        siblings = struct_fields(parent_field.type)
    if field.name in [f.name for f in siblings]:
        raise SchemaMismatchError(f"cannot add column {path!r}: a column of that name exists", column=path)
    new, last = _new_field(meta, field, siblings, phys, meta.last_field_id)
    if not parent_path:
        return _with_schema(meta, [*meta.schema, new], last_field_id=last)
    fields = _edit(list(meta.schema), parent_path,
                   lambda f: [f.with_type(pa.struct([*struct_fields(f.type), new]))])
    return _with_schema(meta, fields, last_field_id=last)


# -- renaming and dropping ---------------------------------------------------------------------
def _check_constraints(meta: Metadata, path: tuple[str, ...], action: str) -> None:
    """Refuse to rename or drop a column a CHECK constraint reads (its text names the column)."""
    for constraint in table_constraints(meta.properties):
        for ref in fields(parse_expression(constraint.expression)):
            n = min(len(ref.path), len(path))
            if ref.path[:n] == path[:n]:
                raise SchemaMismatchError(f"cannot {action} column {_dotted(path)!r}: CHECK constraint "
                                          f"{constraint.name!r} uses it; drop the constraint first",
                                          column=_dotted(path))


def rename_column(meta: Metadata, column: ColumnPath, new_name: str) -> Metadata:
    """Rename a column (or a struct child); the data files keep it under its physical name.

    Args:
        meta: the table metadata.
        column: the column's name, or the path of a struct child.
        new_name: its new name.

    Returns:
        The new metadata.

    Raises:
        ColumnNotFoundError: no such column.
        SchemaMismatchError: ``new_name`` is taken or empty, or a CHECK constraint uses the column.

    Example:
        >>> meta = new_metadata_schema(Metadata(table_id="t", schema=pa.schema([("a", pa.int8())])))
        >>> rename_column(meta, "a", "b").schema.names
        ['b']
    """
    path = _path(column)
    _, _, siblings = _find(meta.schema, path)
    dotted = _dotted(path)
    if not isinstance(new_name, str) or not new_name:
        raise SchemaMismatchError(f"cannot rename {dotted!r} to {new_name!r}: a name is a non-empty string",
                                  column=dotted)
    if new_name == path[-1]:
        return meta
    meta = _ids_everywhere(meta)
    if new_name in [f.name for f in siblings]:
        raise SchemaMismatchError(f"cannot rename {dotted!r} to {new_name!r}: a column of that name exists",
                                  column=dotted)
    _check_constraints(meta, path, "rename")
    if len(path) == 1 and path[0] in meta.partition_by:
        check_partition_name(new_name)
    fields = _edit(list(meta.schema), path, lambda f: [f.with_name(new_name)])
    parts = tuple(new_name if len(path) == 1 and p == path[0] else p for p in meta.partition_by)
    return _with_schema(meta, fields, partition_by=parts)


def drop_column(meta: Metadata, column: ColumnPath) -> Metadata:
    """Remove a column (or a struct child); its physical name is retired, its data stays in old files.

    Args:
        meta: the table metadata.
        column: the column's name, or the path of a struct child.

    Returns:
        The new metadata.

    Raises:
        ColumnNotFoundError: no such column.
        SchemaMismatchError: it is a partition column, the last data column, the last child of its
            struct, or a CHECK constraint uses it.

    Example:
        >>> meta = new_metadata_schema(Metadata(table_id="t", schema=pa.schema([("a", pa.int8()), ("b", pa.int8())])))
        >>> drop_column(meta, "a").schema.names
        ['b']
    """
    path = _path(column)
    meta = _ids_everywhere(meta)
    _, phys, siblings = _find(meta.schema, path)
    dotted = _dotted(path)
    if len(path) == 1 and path[0] in meta.partition_by:
        raise SchemaMismatchError(f"cannot drop partition column {dotted!r}", column=dotted)
    data = [f for f in siblings if len(path) > 1 or f.name not in meta.partition_by]
    if len(data) <= 1:
        where = "the table" if len(path) == 1 else f"struct {_dotted(path[:-1])!r}"
        raise SchemaMismatchError(f"cannot drop {dotted!r}: it is the last data column of {where}", column=dotted)
    _check_constraints(meta, path, "drop")
    fields = _edit(list(meta.schema), path, lambda f: [])
    return _with_schema(meta, fields, dropped_physical=(*meta.dropped_physical, phys))


# -- widening ----------------------------------------------------------------------------------
def _widening_error(path: str, old: pa.DataType, new: pa.DataType) -> SchemaMismatchError:
    return SchemaMismatchError(
        f"cannot change column {path!r} from {old} to {new}: only widening is allowed (a wider integer of the "
        f"same signedness, float32 to float64, date to timestamp without time zone, a decimal with at least as "
        f"many integer and fraction digits)", column=path)


def widen_column(meta: Metadata, column: ColumnPath, type: pa.DataType) -> Metadata:
    """Widen the type of a column (or a struct child) to ``type``; old files are cast when read.

    Args:
        meta: the table metadata.
        column: the column's name, or the path of a struct child.
        type: the wider type (see :func:`lakehouse.schema.can_widen`).

    Returns:
        The new metadata (``meta`` unchanged if the column already has ``type``).

    Raises:
        ColumnNotFoundError: no such column.
        SchemaMismatchError: ``type`` is not a widening of the column's type.

    Example:
        >>> meta = new_metadata_schema(Metadata(table_id="t", schema=pa.schema([("a", pa.int8())])))
        >>> widen_column(meta, "a", pa.int64()).schema.field("a").type
        DataType(int64)
    """
    path = _path(column)
    if not isinstance(type, pa.DataType):
        raise ArgumentTypeError(f"widen_column needs a pyarrow.DataType, got {type!r}")
    field, _, _ = _find(meta.schema, path)
    if field.type.equals(type):
        return meta
    if not can_widen(field.type, type):
        raise _widening_error(_dotted(path), field.type, type)
    meta = _ids_everywhere(meta)
    return _with_schema(meta, _edit(list(meta.schema), path, lambda f: [f.with_type(type)]))


# -- merging a write's schema ------------------------------------------------------------------
def _merge_fields(meta: Metadata, table: list[pa.Field], data: Sequence[pa.Field], parent: tuple[str, ...],
                  phys: tuple[str, ...], last: int) -> tuple[list[pa.Field], int]:
    out = list(table)
    names = [f.name for f in table]
    for d in data:
        path = (*parent, d.name)
        if d.name not in names:
            _check_new(d, _dotted(path))
            new, last = _new_field(meta, d, out, phys, last)
            out.append(new)
            continue
        i = names.index(d.name)
        merged, last = _merge_field(meta, out[i], d, path, (*phys, physical_name(out[i])), last)
        out[i] = merged
    return out, last


def _merge_field(meta: Metadata, t: pa.Field, d: pa.Field, path: tuple[str, ...], phys: tuple[str, ...],
                 last: int) -> tuple[pa.Field, int]:
    if compatible(d.type, t.type) or can_widen(d.type, t.type):
        return t, last  # the data is cast to the table's type when written
    if can_widen(t.type, d.type):
        return t.with_type(d.type), last
    if pat.is_struct(t.type) and pat.is_struct(d.type):
        children, last = _merge_fields(meta, struct_fields(t.type), struct_fields(d.type), path, phys, last)
        return t.with_type(pa.struct(children)), last
    raise _widening_error(_dotted(path), t.type, d.type)


def merge_schema(meta: Metadata, data: pa.Schema) -> Metadata:
    """The metadata after a ``schema_mode="merge"`` write of data with schema ``data``.

    Args:
        meta: the table metadata.
        data: the data's schema.

    Returns:
        ``meta`` with the data's new nullable columns (top level or in structs) at the end and every table
        type the data widens widened; ``meta`` itself when nothing changes.

    Raises:
        SchemaMismatchError: a new column is not nullable (or has type null), or a type is neither the
            table's, nor narrower (cast up when written), nor a widening of it.

    Example:
        >>> meta = new_metadata_schema(Metadata(table_id="t", schema=pa.schema([("a", pa.int32())])))
        >>> merged = merge_schema(meta, pa.schema([("a", pa.int64()), ("b", pa.string())]))
        >>> [(f.name, str(f.type)) for f in merged.schema]
        [('a', 'int64'), ('b', 'string')]
    """
    full = _ids_everywhere(meta)
    data = data_schema(data)  # a new column from a categorical takes its value type (format.md §6)
    fields, last = _merge_fields(full, list(full.schema), list(data), (), (), full.last_field_id)
    if last == full.last_field_id and pa.schema(fields).equals(full.schema):
        return meta
    return _with_schema(full, fields, last_field_id=last)


def _same_columns(data: pa.Schema, table: pa.Schema) -> bool:
    """True if ``data`` has the table's columns, in order, with the same nullability and types that are
    representations of the table's (large_string for string, ...): replacing the schema would change nothing."""
    return data.names == table.names and all(
        d.nullable == t.nullable and compatible(d.type, t.type) and compatible(t.type, d.type)
        for d, t in zip(data, table))


def _has_path(schema: pa.Schema, path: Sequence[str]) -> bool:
    fields: list[pa.Field] = list(schema)
    for name in path:
        match = [f for f in fields if f.name == name]
        if not match:
            return False
        fields = struct_fields(match[0].type)
    return True


def replace_schema(meta: Metadata, data: pa.Schema, partition_by: Sequence[str] | None = None) -> Metadata:
    """The metadata after a ``schema_mode="overwrite"`` write, which replaces every row.

    The data's schema (each type as a new column takes it, see ``lakehouse.schema.data_type``) and
    ``partition_by`` replace the table's; table id, creation time and properties stay. When anything
    changes the fields get fresh ids above ``last_field_id`` and physical names equal to their names,
    and ``dropped_physical`` is emptied: the same commit removes every live file, so no file a later
    version reads holds an earlier column (format.md §5.7).

    Args:
        meta: the table metadata.
        data: the data's schema.
        partition_by: the new partition columns (None: the table's).

    Returns:
        The new metadata; ``meta`` itself when the partitioning and the columns (names, nullability,
        types up to their representation) do not change.

    Raises:
        InvalidTableError: the partition columns are not columns of the data (or cannot partition),
            or the data has no column.
        SchemaMismatchError: a CHECK constraint uses a column the data lacks.

    Example:
        >>> meta = new_metadata_schema(Metadata(table_id="t", schema=pa.schema([("a", pa.int32())])))
        >>> new = replace_schema(meta, pa.schema([("b", pa.string()), ("p", pa.int8())]), ["p"])
        >>> new.schema.names, new.partition_by, new.last_field_id
        (['b', 'p'], ('p',), 3)
    """
    schema = data_schema(logical_schema(data))
    if len(schema) == 0:
        raise InvalidTableError("a table needs at least one column")
    parts = check_partition_columns(schema, meta.partition_by if partition_by is None else partition_by)
    if parts == meta.partition_by and _same_columns(schema, logical_schema(meta.schema)):
        return meta
    for constraint in table_constraints(meta.properties):
        for ref in fields(parse_expression(constraint.expression)):
            if not _has_path(schema, ref.path):
                raise SchemaMismatchError(f"cannot replace the schema: CHECK constraint {constraint.name!r} uses "
                                          f"column {_dotted(ref.path)!r}, which the data lacks; drop the constraint "
                                          f"first", column=_dotted(ref.path))
    schema, last = assign_field_ids(schema, meta.last_field_id)
    return dataclasses.replace(meta, schema=schema, partition_by=parts, last_field_id=last, dropped_physical=())


# -- protocol ----------------------------------------------------------------------------------
def _physical_types(schema: pa.Schema) -> dict[tuple[str, ...], pa.DataType]:
    out: dict[tuple[str, ...], pa.DataType] = {}

    def walk(fields: list[pa.Field], prefix: tuple[str, ...]) -> None:
        for f in fields:
            path = (*prefix, physical_name(f))
            out[path] = f.type
            walk(struct_fields(f.type), path)

    walk(list(schema), ())
    return out


def _dates_became_timestamps(old: pa.Schema, new: pa.Schema) -> bool:
    before = _physical_types(old)
    return any(pat.is_timestamp(t) and p in before and pat.is_date(before[p]) for p, t in _physical_types(new).items())


def narrowing_protocol(meta: Metadata, current: Protocol, previous: Metadata) -> Protocol | None:
    """The protocol a commit of ``meta`` replacing ``previous`` needs when it narrows a column.

    A restore to a version before a widening narrows: readers of version 2 would read the partition
    values and statistics of the files it keeps as unknown (null) and so misplace rows; version 3
    readers cast them back exactly (format §5.2, §8).

    Args:
        meta: the metadata being committed.
        current: the protocol in force.
        previous: the metadata it replaces.

    Returns:
        The protocol to set, or None if ``current`` suffices or nothing narrows.

    Example:
        >>> meta = new_metadata_schema(Metadata(table_id="t", schema=pa.schema([("a", pa.int8())])))
        >>> narrowing_protocol(meta, Protocol(), widen_column(meta, "a", pa.int64()))
        Protocol(min_reader_version=3, min_writer_version=3)
        >>> narrowing_protocol(widen_column(meta, "a", pa.int64()), Protocol(), meta) is None
        True
    """
    before = _physical_types(previous.schema)
    narrows = any(p in before and not t.equals(before[p]) and can_widen(t, before[p])
                  for p, t in _physical_types(meta.schema).items())
    if not narrows or (current.min_reader_version >= NARROWING_VERSION
                       and current.min_writer_version >= NARROWING_VERSION):
        return None
    return Protocol(min_reader_version=max(NARROWING_VERSION, current.min_reader_version),
                    min_writer_version=max(NARROWING_VERSION, current.min_writer_version))


def raised_protocol(meta: Metadata, current: Protocol, previous: Metadata | None = None) -> Protocol | None:
    """The protocol a commit of ``meta`` (replacing ``previous``) must set.

    Both versions become at least 2 (format.md §5.7) once a physical name differs from its column's
    name or a name is retired (readers and writers that do not map columns would misread the table),
    and when a date column becomes a timestamp (a version 1 reader would decode the statistics of
    older files, stored as days, as timestamps).

    Args:
        meta: the metadata being committed.
        current: the protocol in force.
        previous: the metadata it replaces (None: a new table).

    Returns:
        The protocol to set, or None if ``current`` suffices.

    Example:
        >>> meta = new_metadata_schema(Metadata(table_id="t", schema=pa.schema([("a", pa.int8())])))
        >>> raised_protocol(rename_column(meta, "a", "b"), Protocol())
        Protocol(min_reader_version=2, min_writer_version=2)
        >>> raised_protocol(widen_column(meta, "a", pa.int64()), Protocol(), meta) is None
        True
    """
    needed = (not is_identity(meta.schema) or bool(meta.dropped_physical)
              or (previous is not None and _dates_became_timestamps(previous.schema, meta.schema)))
    if not needed:
        return None
    if current.min_reader_version >= MAPPING_VERSION and current.min_writer_version >= MAPPING_VERSION:
        return None
    return Protocol(min_reader_version=max(MAPPING_VERSION, current.min_reader_version),
                    min_writer_version=max(MAPPING_VERSION, current.min_writer_version))

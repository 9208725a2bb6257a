"""Schemas: accepting Arrow-shaped data, conforming it to a table schema, and the typed value codec.

The *typed value codec* turns Arrow values into msgpack-native values for the log and back,
losslessly: integers, floats, booleans, strings and bytes as themselves; dates, times, timestamps
and durations as their integer storage value; decimals as their string.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from .errors import ConstraintViolationError, InvalidDataError, InvalidTableError, SchemaMismatchError

__all__ = [
    "FIELD_ID_KEY",
    "PHYSICAL_KEY",
    "assign_field_ids",
    "can_widen",
    "check_mapping",
    "check_partition_columns",
    "compatible",
    "conform_batch",
    "data_schema",
    "data_type",
    "decode_values",
    "encode_values",
    "field_id",
    "file_schema",
    "has_stats",
    "is_identity",
    "is_legacy",
    "logical_schema",
    "max_field_id",
    "physical_name",
    "physical_path",
    "read_schema",
    "relabel",
    "renamed_paths",
    "struct_fields",
    "table_schema",
    "table_type",
    "to_reader",
]


# -- the typed value codec -----------------------------------------------------------------------
def _temporal_storage(t: pa.DataType) -> pa.DataType | None:
    if pat.is_date32(t) or pat.is_time32(t):
        return pa.int32()
    if pat.is_date64(t) or pat.is_timestamp(t) or pat.is_time64(t) or pat.is_duration(t):
        return pa.int64()
    return None


def encode_values(arr: pa.Array) -> list[Any]:
    """Arrow values -> msgpack-native values (see the module docstring).

    Args:
        arr: the values.

    Returns:
        Python values: temporal ones as their integer storage, decimals as strings.

    Example:
        >>> encode_values(pa.array([1, None], pa.timestamp("ns"))), encode_values(pa.array([1], pa.decimal128(3, 1)))
        ([1, None], ['1.0'])
    """
    storage = _temporal_storage(arr.type)
    if storage is not None:
        return arr.view(storage).to_pylist()
    if pat.is_decimal(arr.type):
        return [None if v is None else str(v) for v in arr.to_pylist()]
    return arr.to_pylist()


def decode_values(values: Sequence[Any], t: pa.DataType) -> pa.Array:
    """msgpack-native values -> an Arrow array of type ``t`` (inverse of :func:`encode_values`).

    Args:
        values: the values.
        t: their Arrow type.

    Returns:
        The array; ``TypeError``/``ArrowInvalid`` if the values do not fit ``t``.

    Example:
        >>> decode_values([1, None], pa.timestamp("ns")).equals(pa.array([1, None], pa.timestamp("ns")))
        True
    """
    storage = _temporal_storage(t)
    if storage is not None:
        return pa.array(values, storage).view(t)
    if pat.is_decimal(t):
        return pa.array([None if v is None else Decimal(v) for v in values], t)
    return pa.array(values, t)


def has_stats(t: pa.DataType) -> bool:
    """True for types whose min/max the log records (primitive, ordered).

    Example:
        >>> has_stats(pa.int32()), has_stats(pa.list_(pa.int32()))
        (True, False)
    """
    return bool(
        pat.is_integer(t) or (pat.is_floating(t) and not pat.is_float16(t)) or pat.is_boolean(t)
        or pat.is_string(t) or pat.is_large_string(t) or pat.is_binary(t) or pat.is_large_binary(t)
        or (pat.is_temporal(t) and not pat.is_interval(t)) or pat.is_decimal(t)
    )


def check_partition_columns(schema: pa.Schema, partition_by: Sequence[str]) -> tuple[str, ...]:
    """Validate partition columns against ``schema``.

    Args:
        schema: the table schema.
        partition_by: the partition column names (or one name).

    Returns:
        The names, as a tuple.

    Raises:
        InvalidTableError: a name repeats, is not in ``schema``, has a type that cannot partition, or
            no column is left out of the partition; it names the column.

    Example:
        >>> check_partition_columns(pa.schema([("a", pa.int32()), ("b", pa.string())]), ["a"])
        ('a',)
    """
    if isinstance(partition_by, str):
        partition_by = [partition_by]
    parts = tuple(partition_by)
    if len(set(parts)) != len(parts):
        raise InvalidTableError(f"partition columns repeat: {list(parts)}")
    for name in parts:
        if name not in schema.names:
            raise InvalidTableError(f"partition column {name!r} is not in the schema {schema.names}")
        t = schema.field(name).type
        if not has_stats(t) or pat.is_floating(t) or pat.is_duration(t) or pat.is_time(t):
            raise InvalidTableError(f"partition column {name!r} has type {t}, which cannot partition a table")
    if len(parts) >= len(schema):
        raise InvalidTableError("at least one column must not be a partition column")
    if len(set(schema.names)) != len(schema.names):
        raise InvalidTableError(f"the schema repeats column names: {schema.names}")
    return parts


# -- representations: dictionary encoding and view layouts are storage details -----------------
_VIEWS = ((pat.is_string_view, pa.large_string), (pat.is_binary_view, pa.large_binary))


def _map_type(t: pa.DataType, leaf: Any) -> pa.DataType:
    """``t`` with ``leaf`` applied to it and, first, to the types inside its structs and lists."""
    if pat.is_struct(t):
        children = struct_fields(t)
        mapped = [f.with_type(_map_type(f.type, leaf)) for f in children]
        if any(not m.type.equals(f.type) for m, f in zip(mapped, children)):
            t = pa.struct(mapped)
    elif pat.is_list(t) or pat.is_large_list(t):
        inner = _map_type(t.value_type, leaf)
        if not inner.equals(t.value_type):
            value = t.value_field.with_type(inner)
            t = pa.list_(value) if pat.is_list(t) else pa.large_list(value)
    return leaf(t)


def _table_leaf(t: pa.DataType) -> pa.DataType:
    for is_view, plain in _VIEWS:
        if is_view(t):
            return plain()
    if pat.is_dictionary(t) and not (pat.is_int32(t.index_type) and t.value_type.equals(table_type(t.value_type))):
        return pa.dictionary(pa.int32(), table_type(t.value_type), t.ordered)
    return t


def table_type(t: pa.DataType) -> pa.DataType:
    """The type a table column declared as ``t`` is written and read as (format.md §6).

    Args:
        t: the declared type.

    Returns:
        A dictionary type with int32 indices for any index width, large_string / large_binary for the
        view layouts, structs and lists through their children; anything else unchanged.

    Example:
        >>> table_type(pa.dictionary(pa.int8(), pa.large_string()))
        DictionaryType(dictionary<values=large_string, indices=int32, ordered=0>)
        >>> table_type(pa.string_view()), table_type(pa.int8())
        (DataType(large_string), DataType(int8))
    """
    return _map_type(t, _table_leaf)


def _data_leaf(t: pa.DataType) -> pa.DataType:
    if pat.is_dictionary(t):
        return data_type(t.value_type)
    return _table_leaf(t)


def data_type(t: pa.DataType) -> pa.DataType:
    """The type a new table column takes from data of type ``t``.

    Args:
        t: the data's type.

    Returns:
        ``t`` without dictionary encoding (a pandas or Polars categorical: a storage detail) and with
        view layouts (Polars, DuckDB) as large_string / large_binary.

    Example:
        >>> data_type(pa.dictionary(pa.uint32(), pa.string_view())), data_type(pa.string())
        (DataType(large_string), DataType(string))
    """
    return _map_type(t, _data_leaf)


def _map_schema_types(schema: pa.Schema, fn: Any) -> pa.Schema:
    fields = [f.with_type(fn(f.type)) for f in schema]
    if all(m.type.equals(f.type) for m, f in zip(fields, schema)):
        return schema
    return pa.schema(fields, metadata=schema.metadata)


def data_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every type as a new table column takes it (:func:`data_type`); field and
    schema metadata are kept.

    Example:
        >>> data_schema(pa.schema([("c", pa.dictionary(pa.int8(), pa.large_string()))])).field("c").type
        DataType(large_string)
    """
    mapped = _map_schema_types(schema, data_type)
    if mapped is schema:
        return schema
    return _map_fields(mapped, _strip_dictionary_marks)


_DICTIONARY_MARKS = (b"_PL_CATEGORICAL", b"_PL_ENUM")  # Polars' field metadata for its dictionary types


def _strip_dictionary_marks(field: pa.Field) -> pa.Field:
    """``field`` without the metadata that says its values were dictionary-encoded (it no longer is)."""
    meta = field.metadata or {}
    if not any(k.startswith(_DICTIONARY_MARKS) for k in meta):
        return field
    keep = {k: v for k, v in meta.items() if not k.startswith(_DICTIONARY_MARKS)}
    return field.with_metadata(keep) if keep else field.remove_metadata()


def table_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every type as the table writes and reads it (:func:`table_type`)."""
    return _map_schema_types(schema, table_type)


# -- column mapping: field ids and physical names -----------------------------------------------
FIELD_ID_KEY = b"PARQUET:field_id"
"""Field metadata key of a field's stable id (pyarrow writes it into Parquet as the field id)."""
PHYSICAL_KEY = b"lakehouse:physical"
"""Field metadata key of a field's physical name: its column name inside the data files."""
_MAPPING_KEYS = (FIELD_ID_KEY, PHYSICAL_KEY)


def field_id(field: pa.Field) -> int | None:
    """The stable id of a table field, or None (a table written before ids existed).

    Example:
        >>> field_id(pa.field("a", pa.int64(), metadata={"PARQUET:field_id": "7"})), field_id(pa.field("b", pa.int8()))
        (7, None)
    """
    raw = (field.metadata or {}).get(FIELD_ID_KEY)
    return int(raw) if raw is not None and raw.isdigit() else None


def physical_name(field: pa.Field) -> str:
    """The name of a table field inside the data files: its ``lakehouse:physical`` metadata, else its name.

    Example:
        >>> physical_name(pa.field("b", pa.int64(), metadata={"lakehouse:physical": "a"}))
        'a'
    """
    raw = (field.metadata or {}).get(PHYSICAL_KEY)
    return field.name if raw is None else raw.decode("utf-8")


def struct_fields(t: pa.DataType) -> list[pa.Field]:
    """The children of a struct type (``[]`` for any other type)."""
    return [t.field(i) for i in range(t.num_fields)] if pat.is_struct(t) else []


def _strip(field: pa.Field, keys: Sequence[bytes] = _MAPPING_KEYS) -> pa.Field:
    meta = {k: v for k, v in (field.metadata or {}).items() if k not in keys}
    return field.with_metadata(meta) if meta else field.remove_metadata()


def _map_fields(schema: pa.Schema, fn: Any) -> pa.Schema:
    """``schema`` with ``fn(field)`` applied to every field, struct children first (``fn`` sees them done)."""
    def visit(f: pa.Field) -> pa.Field:
        if pat.is_struct(f.type):
            f = f.with_type(pa.struct([visit(c) for c in struct_fields(f.type)]))
        return fn(f)
    return pa.schema([visit(f) for f in schema], metadata=schema.metadata)


def _walk(fields: Iterable[pa.Field]) -> Iterator[pa.Field]:
    for f in fields:
        yield f
        yield from _walk(struct_fields(f.type))


def max_field_id(schema: pa.Schema) -> int:
    """The highest field id in ``schema`` (top-level and struct children), 0 if none."""
    return max((i for f in _walk(schema) if (i := field_id(f)) is not None), default=0)


def assign_field_ids(schema: pa.Schema, last_id: int = 0) -> tuple[pa.Schema, int]:
    """Give every field without one an id and a physical name (its name), pre-order: a field, then its children.

    Args:
        schema: the schema.
        last_id: the highest id ever given; new ids are above it and above every id present.

    Returns:
        The schema and the highest id.

    Example:
        >>> s, last = assign_field_ids(pa.schema([("a", pa.int64()), ("s", pa.struct([("x", pa.int8())]))]))
        >>> [field_id(f) for f in s], field_id(s.field("s").type.field(0)), last
        ([1, 2], 3, 3)
    """
    counter = max(last_id, max_field_id(schema))

    def visit(f: pa.Field) -> pa.Field:
        nonlocal counter
        meta = dict(f.metadata or {})
        if FIELD_ID_KEY not in meta:
            counter += 1
            meta[FIELD_ID_KEY] = str(counter).encode()
        meta.setdefault(PHYSICAL_KEY, f.name.encode("utf-8"))
        f = f.with_metadata(meta)
        if pat.is_struct(f.type):
            f = f.with_type(pa.struct([visit(c) for c in struct_fields(f.type)]))
        return f

    out = pa.schema([visit(f) for f in schema], metadata=schema.metadata)
    return out, counter


def logical_schema(schema: pa.Schema) -> pa.Schema:
    """The schema users see.

    Args:
        schema: the table schema.

    Returns:
        ``schema`` without column-mapping metadata, each type as the table reads it (:func:`table_type`).

    Example:
        >>> logical_schema(assign_field_ids(pa.schema([("a", pa.int64())]))[0]).field("a").metadata is None
        True
    """
    schema = table_schema(schema)
    if not any(f.metadata and any(k in f.metadata for k in _MAPPING_KEYS) for f in _walk(schema)):
        return schema
    return _map_fields(schema, _strip)


def read_schema(schema: pa.Schema) -> pa.Schema:
    """The table schema under physical names (partition columns included), without mapping metadata:
    the schema a scan of the data files uses."""
    return _map_fields(table_schema(schema), lambda f: _strip(f).with_name(physical_name(f)))


def file_schema(schema: pa.Schema, partition_by: Sequence[str]) -> pa.Schema:
    """The schema of the Parquet data files.

    Args:
        schema: the table schema.
        partition_by: the partition columns (not in the files).

    Returns:
        The other columns under their physical names, with their ids (``PARQUET:field_id``).

    Example:
        >>> s = pa.schema([pa.field("b", pa.int64(), metadata={"lakehouse:physical": "a"}), ("p", pa.int8())])
        >>> file_schema(s, ["p"]).names
        ['a']
    """
    keep = pa.schema([f for f in table_schema(schema) if f.name not in partition_by], metadata=schema.metadata)
    return _map_fields(keep, lambda f: _strip(f, (PHYSICAL_KEY,)).with_name(physical_name(f)))


def renamed_paths(schema: pa.Schema) -> list[str]:
    """Dotted paths of the fields whose physical name differs from their name (renamed or re-added).

    Example:
        >>> child = pa.field("y", pa.int8(), metadata={"lakehouse:physical": "x"})
        >>> renamed_paths(pa.schema([("s", pa.struct([child]))]))
        ['s.y']
    """
    out: list[str] = []

    def walk(fields: list[pa.Field], prefix: str) -> None:
        for f in fields:
            path = f"{prefix}{f.name}"
            if physical_name(f) != f.name:
                out.append(path)
            walk(struct_fields(f.type), path + ".")

    walk(list(schema), "")
    return out


def is_legacy(schema: pa.Schema) -> bool:
    """True if no field has a physical name: a table written before column mapping (format.md §5.7).

    Example:
        >>> is_legacy(pa.schema([("a", pa.int8())])), is_legacy(assign_field_ids(pa.schema([("a", pa.int8())]))[0])
        (True, False)
    """
    return not any(PHYSICAL_KEY in (f.metadata or {}) for f in _walk(schema))


def is_identity(schema: pa.Schema) -> bool:
    """True if every field's physical name is its name (the data files use the table's names).

    Example:
        >>> is_identity(pa.schema([pa.field("b", pa.int64(), metadata={"lakehouse:physical": "a"})]))
        False
    """
    return all(physical_name(f) == f.name for f in _walk(schema))


def physical_path(schema: pa.Schema, path: Sequence[str]) -> tuple[str, ...]:
    """The physical names along a path of field names (the rest of the path is kept where it leaves the schema).

    Example:
        >>> s = pa.schema([pa.field("s", pa.struct([pa.field("y", pa.int8(), metadata={"lakehouse:physical": "x"})]))])
        >>> physical_path(s, ["s", "y"])
        ('s', 'x')
    """
    out: list[str] = []
    fields: list[pa.Field] = list(schema)
    for i, name in enumerate(path):
        match = [f for f in fields if f.name == name]
        if len(match) != 1:
            return (*out, *path[i:])
        out.append(physical_name(match[0]))
        fields = struct_fields(match[0].type)
    return tuple(out)


def check_mapping(schema: pa.Schema, *, strict: bool = False) -> None:
    """Check physical names are decodable, non-empty and unique among siblings (readers map files by them).

    Args:
        schema: the table schema.
        strict: a writer's check: every sibling group is checked (else only those where one field has a
            physical name: not a table from before column mapping), and field ids must be unique positive integers.

    Raises:
        InvalidTableError: (a ``ValueError``) naming the field at fault.

    Example:
        >>> check_mapping(pa.schema([pa.field("a", pa.int8(), metadata={"lakehouse:physical": ""})]))
        Traceback (most recent call last):
        ...
        lakehouse.errors.InvalidTableError: field 'a' has an empty or repeated physical name ''
    """
    ids: set[int] = set()

    def check(fields: list[pa.Field]) -> None:
        physical: set[str] = set()
        mapped = strict or any(PHYSICAL_KEY in (f.metadata or {}) for f in fields)
        for f in fields:
            raw = (f.metadata or {}).get(FIELD_ID_KEY)
            if strict:
                if raw is None or not raw.isdigit() or int(raw) <= 0 or int(raw) in ids:
                    raise InvalidTableError(f"field {f.name!r} has a missing, invalid or repeated field id {raw!r}")
                ids.add(int(raw))
            try:
                name = physical_name(f)
            except UnicodeDecodeError:
                raise InvalidTableError(f"field {f.name!r} has an undecodable physical name") from None
            if mapped and (not name or name in physical):
                raise InvalidTableError(f"field {f.name!r} has an empty or repeated physical name {name!r}")
            physical.add(name)
            check(struct_fields(f.type))

    check(list(schema))


def _relabel_array(arr: Any, t: pa.DataType) -> Any:
    if arr.type.equals(t):
        return arr
    if isinstance(arr, pa.ChunkedArray):
        return pa.chunked_array([c.view(t) for c in arr.chunks], type=t)
    return arr.view(t)


def relabel(data: pa.Table | pa.RecordBatch, schema: pa.Schema) -> Any:
    """``data`` under the names of ``schema``, column by column and struct child by child (no copy):
    the columns must be in ``schema``'s order with the same layout.

    Example:
        >>> relabel(pa.table({"a": [1]}), pa.schema([("b", pa.int64())])).column_names
        ['b']
    """
    if data.schema.equals(schema, check_metadata=True):
        return data
    columns = [_relabel_array(col, f.type) for col, f in zip(data.columns, schema)]
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(columns, schema=schema)
    return pa.Table.from_arrays(columns, schema=schema)


# -- type widening -------------------------------------------------------------------------------
def can_widen(src: pa.DataType, dst: pa.DataType) -> bool:
    """True if a column of type ``src`` may become ``dst`` (every value converts exactly, order kept).

    Args:
        src: the current type.
        dst: the wider type: a wider integer of the same signedness, float64 for float32, a timestamp
            without time zone (s, ms or us) for a date, a decimal with as many integer and fraction digits.

    Returns:
        Whether the widening is allowed (False for equal types).

    Example:
        >>> can_widen(pa.int8(), pa.int32()), can_widen(pa.int64(), pa.int32())
        (True, False)
        >>> can_widen(pa.date32(), pa.timestamp("us")), can_widen(pa.date32(), pa.timestamp("us", tz="UTC"))
        (True, False)
    """
    if src.equals(dst):
        return False
    if pat.is_integer(src) and pat.is_integer(dst):
        return pat.is_signed_integer(src) == pat.is_signed_integer(dst) and dst.bit_width > src.bit_width
    if pat.is_float32(src):
        return pat.is_float64(dst)
    if pat.is_date(src) and pat.is_timestamp(dst):
        return dst.tz is None and dst.unit in ("s", "ms", "us")
    if pat.is_decimal(src) and pat.is_decimal(dst):
        return dst.scale >= src.scale and dst.precision - dst.scale >= src.precision - src.scale
    return False


# -- accepting data ------------------------------------------------------------------------------
def to_reader(data: Any) -> pa.RecordBatchReader:
    """Any Arrow-shaped data as a ``RecordBatchReader`` (streams stay streams).

    Args:
        data: a pyarrow Table, RecordBatch, RecordBatchReader or Arrow C stream.

    Returns:
        A reader over it.

    Raises:
        InvalidDataError: ``data`` is not Arrow-shaped.

    Example:
        >>> to_reader(pa.table({"a": [1]})).read_all().num_rows
        1
    """
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.Table):
        return data.to_reader()
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatchReader.from_batches(data.schema, [data])
    if hasattr(data, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(data)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        raise InvalidDataError(
            f"cannot write {type(data).__name__}: pass a pyarrow Table, RecordBatch or RecordBatchReader"
        )
    raise InvalidDataError(f"cannot write {type(data).__name__}: it is not Arrow-shaped data")


_SAME_REPRESENTATION = (
    (pat.is_string, pat.is_large_string, pat.is_string_view),
    (pat.is_binary, pat.is_large_binary, pat.is_binary_view),
)


def _compatible(src: pa.DataType, dst: pa.DataType) -> bool:
    """True if values of ``src`` are exactly representable as ``dst`` with no change of meaning."""
    if src.equals(dst) or pat.is_null(src):
        return True
    if pat.is_dictionary(src):
        return _compatible(src.value_type, dst)
    if pat.is_dictionary(dst):  # dictionary encoding is a storage detail (format.md §6)
        return _compatible(src, dst.value_type)
    for group in _SAME_REPRESENTATION:
        if any(p(src) for p in group) and any(p(dst) for p in group):
            return True
    if (pat.is_list(src) or pat.is_large_list(src)) and (pat.is_list(dst) or pat.is_large_list(dst)):
        return _compatible(src.value_type, dst.value_type)
    if pat.is_struct(src) and pat.is_struct(dst) and src.num_fields == dst.num_fields:
        return all(
            src.field(i).name == dst.field(i).name and _compatible(src.field(i).type, dst.field(i).type)
            for i in range(src.num_fields)
        )
    return False


def _recast(col: pa.Array, t: pa.DataType) -> pa.Array:
    """``col`` (of a type :func:`_compatible` with ``t``) as ``t``, dictionaries through their values."""
    if pat.is_dictionary(col.type) and col.dictionary.null_count:
        col = col.dictionary_decode()  # a null among the values: Parquet writers refuse it, indices may not
    if col.type.equals(t):
        return col
    if pat.is_dictionary(col.type):
        values = _recast(col.dictionary, t.value_type if pat.is_dictionary(t) else t)
        col = pa.DictionaryArray.from_arrays(col.indices, values)
        return col.cast(t) if pat.is_dictionary(t) else col.dictionary_decode()
    if pat.is_dictionary(t):
        return _recast(col, t.value_type).dictionary_encode().cast(t)
    if pat.is_struct(col.type) and pat.is_struct(t):  # child by child: a cast cannot decode every dictionary
        children = [_recast(c, f.type) for c, f in zip(col.flatten(), struct_fields(t))]
        return pa.StructArray.from_arrays(children, fields=struct_fields(t), mask=col.is_null())
    if (pat.is_list(col.type) or pat.is_large_list(col.type)) and (pat.is_list(t) or pat.is_large_list(t)) \
            and not col.type.value_type.equals(t.value_type):
        values = _recast(col.flatten(), t.value_type)  # the values the list slots use, in order
        offsets = pc.subtract(col.offsets, col.offsets[0]).cast(pa.int64() if pat.is_large_list(t) else pa.int32())
        array = pa.LargeListArray if pat.is_large_list(t) else pa.ListArray
        return array.from_arrays(offsets, values, type=t, mask=col.is_null() if col.null_count else None)
    return col.cast(t)


def _fit_struct(col: pa.Array, t: pa.DataType, path: str, *, fill: bool) -> pa.Array:
    """A struct column with its children matched to ``t``'s by name (each fitted, widening allowed;
    with ``fill`` a nullable child the data lacks is null)."""
    have = {f.name: i for i, f in enumerate(struct_fields(col.type))}
    for f in struct_fields(col.type):
        if t.get_field_index(f.name) < 0:
            raise SchemaMismatchError(f"column {path + '.' + f.name!r} is not in the table schema",
                                      column=f"{path}.{f.name}")
    children = col.flatten()
    out = []
    for f in struct_fields(t):
        if f.name not in have:
            out.append(_missing(f, f"{path}.{f.name}", len(col), fill=fill))
            continue
        out.append(_fit(children[have[f.name]], f.type, f"{path}.{f.name}", widen=True, fill=fill))
    return pa.StructArray.from_arrays(out, fields=struct_fields(t), mask=col.is_null())


def _missing(field: pa.Field, path: str, rows: int, *, fill: bool) -> pa.Array:
    """Nulls for a column the data lacks, where ``fill`` allows it (a merge write) and the column is
    nullable; else ``SchemaMismatchError`` naming ``path``."""
    if fill and field.nullable:
        return pa.nulls(rows, field.type)
    why = " (it is NOT NULL, so the data must carry it)" if fill else ""
    raise SchemaMismatchError(f"column {path!r} ({field.type}) is missing from the data{why}", column=path)


def _fit(col: pa.Array, t: pa.DataType, path: str, *, widen: bool, fill: bool = False) -> pa.Array:
    """``col`` as type ``t``: a compatible representation, or with ``widen`` also a widening cast
    (:func:`can_widen`) and structs matched child by child; else ``SchemaMismatchError`` naming ``path``."""
    try:
        if _compatible(col.type, t):
            return _recast(col, t)
        if widen and can_widen(col.type, t):
            return col.cast(t)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaMismatchError(f"column {path!r} of type {col.type} cannot be stored as the table's {t}: {exc}",
                                  column=path) from None
    if widen and pat.is_struct(col.type) and pat.is_struct(t):
        return _fit_struct(col, t, path, fill=fill)
    raise SchemaMismatchError(f"column {path!r} has type {col.type} but the table has {t}", column=path)


def compatible(src: pa.DataType, dst: pa.DataType) -> bool:
    """True if values of ``src`` are exactly representable as ``dst`` with no change of meaning.

    Args:
        src: the data's type.
        dst: the table's type.

    Returns:
        Whether ``src`` is another representation of ``dst`` (large_string or string_view for string,
        a dictionary of any index width for its values); a widening is not.

    Example:
        >>> compatible(pa.large_string(), pa.string()), compatible(pa.int32(), pa.int64())
        (True, False)
        >>> compatible(pa.dictionary(pa.uint32(), pa.string_view()), pa.dictionary(pa.int8(), pa.large_string()))
        True
    """
    return _compatible(src, dst)


def conform_batch(batch: pa.RecordBatch, schema: pa.Schema, *, widen: bool = False,
                  fill_missing: bool = False) -> pa.RecordBatch:
    """Cast ``batch`` to ``schema``, each type as the table stores it (:func:`table_type`).

    Args:
        batch: the data.
        schema: the table schema; column order and compatible representations (any string flavour or
            dictionary of strings for a string or dictionary column) are fitted to it.
        widen: also accept narrower types that widen to the table's, and struct children in any order.
        fill_missing: a ``schema_mode="merge"`` write: nulls for nullable columns and children the data lacks.

    Returns:
        The conformed batch.

    Raises:
        SchemaMismatchError: a column is missing (or NOT NULL and missing), extra or retyped; it names it.
        ConstraintViolationError: a non-nullable column holds nulls (NOT NULL); it names it.

    Example:
        >>> cat = pa.array(["x", None, "x"]).dictionary_encode()
        >>> out = conform_batch(pa.record_batch({"c": cat}), pa.schema([("c", pa.large_string()), ("n", pa.int8())]),
        ...                     fill_missing=True)
        >>> out.column("c").to_pylist(), out.column("n").null_count
        (['x', None, 'x'], 3)
    """
    schema = table_schema(schema)
    if batch.schema.equals(schema, check_metadata=False) and not any(pat.is_dictionary(f.type) for f in schema):
        return _check_not_null(batch, schema)  # a batch may claim non-nullable fields and hold nulls
    names = batch.schema.names
    for name in names:
        if name not in schema.names:
            raise SchemaMismatchError(f"column {name!r} is not in the table schema {schema.names}", column=name)
    if len(set(names)) != len(names):
        raise SchemaMismatchError(f"the data repeats column names: {names}")
    columns = []
    for field in schema:
        if field.name not in names:
            columns.append(_missing(field, field.name, batch.num_rows, fill=fill_missing))
            continue
        if _has_required(field.type):  # before the cast, which refuses nulls in required children untyped
            _check_field(batch, batch.column(field.name), field)
        columns.append(_fit(batch.column(field.name), field.type, field.name, widen=widen, fill=fill_missing))
    return _check_not_null(pa.RecordBatch.from_arrays(columns, schema=schema), schema)


def _check_not_null(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """NOT NULL: ``batch`` back, or ``ConstraintViolationError`` naming the (possibly dotted) column."""
    for i, field in enumerate(schema):
        _check_field(batch, batch.column(i), field)
    return batch


def _check_field(batch: pa.RecordBatch, arr: pa.Array, field: pa.Field) -> None:
    found = _null_violation(arr, field, field.name, None)
    if found is not None:
        path, mask = found
        count = pc.sum(mask.cast(pa.int64())).as_py()
        rows = batch.filter(mask).slice(0, 5).to_pylist()
        raise ConstraintViolationError(
            f"NOT NULL constraint on column {path!r} is violated by {count} row(s) of the data",
            constraint="NOT NULL", column=path, rows=rows)


def _has_required(t: pa.DataType) -> bool:
    return pat.is_struct(t) and any(not f.nullable or _has_required(f.type) for f in t)


def _null_violation(arr: pa.Array, field: pa.Field, path: str,
                    present: pa.Array | None) -> tuple[str, pa.Array] | None:
    """(path, rows mask) of the first non-nullable field that is null where its parents are present."""
    if not field.nullable and arr.null_count:
        mask = arr.is_null() if present is None else pc.and_(arr.is_null(), present)
        if pc.any(mask).as_py():
            return path, mask
    if _has_required(field.type) and pat.is_struct(arr.type):
        here = arr.is_valid() if present is None else pc.and_(arr.is_valid(), present)
        for child in field.type:
            j = arr.type.get_field_index(child.name)  # by name: the data's children may be in any order
            if j < 0:
                continue  # a missing child is a schema mismatch, reported by the caller
            found = _null_violation(pc.struct_field(arr, [j]), child, f"{path}.{child.name}", here)
            if found is not None:
                return found
    return None


def conformed_batches(reader: pa.RecordBatchReader, schema: pa.Schema, *, widen: bool = False,
                      fill_missing: bool = False) -> Iterator[pa.RecordBatch]:
    """Yield the non-empty batches of ``reader`` conformed to ``schema`` (see :func:`conform_batch`)."""
    # (pa.array and from_pylist cannot build every type, e.g. Polars categoricals; pa.nulls can)
    empty_batch = pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in reader.schema], schema=reader.schema)
    conform_batch(empty_batch, schema, widen=widen, fill_missing=fill_missing)  # fail before writing
    for batch in reader:
        if batch.num_rows:
            yield conform_batch(batch, schema, widen=widen, fill_missing=fill_missing)

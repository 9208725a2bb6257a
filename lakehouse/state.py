"""The state of a table at one version, and replaying log entries onto it (vectorised).

The live data files are one Arrow table, the *files table* (see ``docs/format.md``): ``path``,
``size_bytes``, ``num_rows``, ``modification_time``, ``partition.<c>`` per partition column and
``min.<c>``/``max.<c>``/``null_count.<c>`` per stats column.

Example:
    >>> import pyarrow as pa
    >>> from lakehouse.log import CommitInfo, LogEntry, Metadata, Protocol
    >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
    >>> v0 = LogEntry(version=0, commit=CommitInfo(id="c", timestamp=1, operation="create"),
    ...               protocol=Protocol(), metadata=meta)
    >>> TableState.initial([v0]).version
    0
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import CorruptLogError, InvalidArgumentError
from .log import (
    DELETION_VECTORS_VERSION,
    INT64_MAX,
    LOG_DIR,
    MAX_INLINE_VECTOR_BYTES,
    MAX_VECTOR_BYTES,
    AddFile,
    AppTransaction,
    DeletionVectorDescriptor,
    LogEntry,
    Metadata,
    Protocol,
    validate_data_path,
)
from .schema import can_widen, decode_values, encode_values, has_stats, physical_name
from .stats import partition_columns, stats_columns

__all__ = [
    "VECTOR_FIELDS", "DeferredFiles", "TableState", "adds_to_table", "check_adds", "check_vectors", "files_schema",
    "files_to_adds", "retype_adds", "vector_descriptors", "with_vector_columns", "without_vector_columns",
]

_BASE_FIELDS = [
    pa.field("path", pa.string(), nullable=False),
    pa.field("size_bytes", pa.int64(), nullable=False),
    pa.field("num_rows", pa.int64(), nullable=False),
    pa.field("modification_time", pa.timestamp("ms", tz="UTC"), nullable=False),
]
VECTOR_FIELDS = (
    pa.field("num_deleted_rows", pa.int64(), nullable=False),
    pa.field("deletion_vector_inline", pa.binary()),
    pa.field("deletion_vector_path", pa.string()),
    pa.field("deletion_vector_offset", pa.int64()),
    pa.field("deletion_vector_size", pa.int64()),
)
"""The last columns of the files table (format §8): the rows each file's deletion vector deletes (0
without one) and where its bytes are (format §5.8; all null without a vector)."""
_VECTOR_NAMES = tuple(f.name for f in VECTOR_FIELDS)


def files_schema(metadata: Metadata) -> pa.Schema:
    """Schema of the files table for a table with ``metadata``.

    Args:
        metadata: the table metadata.

    Returns:
        ``path``, ``size_bytes``, ``num_rows``, ``modification_time``, ``partition.<c>`` per partition
        column, ``min.<c>``/``max.<c>``/``null_count.<c>`` per stats column (physical names), then
        :data:`VECTOR_FIELDS`.

    Example:
        >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64()), ("p", pa.int32())]),
        ...                 partition_by=("p",))
        >>> files_schema(meta).names[4:9]
        ['partition.p', 'min.a', 'max.a', 'null_count.a', 'num_deleted_rows']
    """
    schema, parts = metadata.schema, metadata.partition_by
    fields = list(_BASE_FIELDS)
    fields += [pa.field(f"partition.{physical_name(schema.field(c))}", schema.field(c).type) for c in parts]
    for f in schema:
        if f.name not in parts and has_stats(f.type):
            c, t = physical_name(f), f.type
            fields += [pa.field(f"min.{c}", t), pa.field(f"max.{c}", t), pa.field(f"null_count.{c}", pa.int64())]
    return pa.schema(fields + list(VECTOR_FIELDS))


def adds_to_table(adds: Sequence[AddFile], metadata: Metadata) -> pa.Table:
    """Add actions -> rows of the files table (one Arrow array per column, no per-row objects).

    Args:
        adds: the add actions, their values typed by ``metadata``'s schema.
        metadata: the table metadata.

    Returns:
        The files table rows, in the order of ``adds``.

    Raises:
        InvalidArgumentError: an add has the wrong number of partition values, a negative size or row
            count, a null count outside ``0..num_rows`` or an invalid deletion vector (:func:`check_vectors`).

    Example:
        >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
        >>> a = AddFile(path="x.parquet", size_bytes=1, num_rows=2, modification_time=5, min={"a": 1})
        >>> adds_to_table([a], meta).column("min.a").to_pylist()
        [1]
    """
    schema = files_schema(metadata)
    n_parts = len(metadata.partition_by)
    if any(len(a.partition) != n_parts for a in adds):
        raise InvalidArgumentError(f"an add action has the wrong number of partition values (expected {n_parts})")
    cols: dict[str, Any] = {
        "path": [a.path for a in adds],
        "size_bytes": [a.size_bytes for a in adds],
        "num_rows": [a.num_rows for a in adds],
        "modification_time": [a.modification_time for a in adds],
    }
    for i, c in enumerate(partition_columns(metadata.schema, metadata.partition_by)):
        cols[f"partition.{c}"] = [a.partition[i] for a in adds]
    for c in stats_columns(metadata.schema, metadata.partition_by):
        cols[f"min.{c}"] = [a.min.get(c) for a in adds]
        cols[f"max.{c}"] = [a.max.get(c) for a in adds]
        cols[f"null_count.{c}"] = [a.null_count.get(c) for a in adds]
    vectors = [a.deletion_vector for a in adds]
    has_vectors = any(v is not None for v in vectors)
    if has_vectors:
        cols["num_deleted_rows"] = [0 if v is None else v.cardinality for v in vectors]
        for kind in ("inline", "path", "offset", "size"):
            cols[f"deletion_vector_{kind}"] = [None if v is None or (kind != "inline" and v.inline is not None)
                                               else getattr(v, kind) for v in vectors]
    n = len(adds)
    arrays = [decode_values(cols[f.name], f.type) if f.name in cols  # OverflowError beyond int64
              else pa.array(np.zeros(n, np.int64)) if f.name == "num_deleted_rows" else pa.nulls(n, f.type)
              for f in schema]
    table = pa.Table.from_arrays(arrays, schema=schema)
    _check_counts(table)
    if has_vectors:
        check_vectors(table)
    return table


def with_vector_columns(files: pa.Table) -> pa.Table:
    """``files`` with the deletion-vector columns (format §8) added if it lacks them.

    A checkpoint of a table below protocol 4 has none (no file can have a vector there).

    Args:
        files: a files table.

    Returns:
        ``files``, with :data:`VECTOR_FIELDS` (no file with a vector) if they were missing.

    Example:
        >>> with_vector_columns(pa.table({"path": ["a"]})).column("num_deleted_rows").to_pylist()
        [0]
    """
    if "num_deleted_rows" in files.column_names:
        return files
    n = files.num_rows
    arrays = [pa.array([0] * n, pa.int64())] + [pa.nulls(n, f.type) for f in VECTOR_FIELDS[1:]]
    for f, a in zip(VECTOR_FIELDS, arrays):
        files = files.append_column(f, a)
    return files


def without_vector_columns(files: pa.Table) -> pa.Table:
    """``files`` without the deletion-vector columns (what a checkpoint below protocol 4 holds, §9).

    Args:
        files: a files table.

    Returns:
        ``files`` without the :data:`VECTOR_FIELDS` columns.

    Example:
        >>> without_vector_columns(with_vector_columns(pa.table({"path": ["a"]}))).column_names
        ['path']
    """
    return files.drop_columns([c for c in _VECTOR_NAMES if c in files.column_names])


def check_vectors(files: pa.Table) -> None:
    """Check the deletion-vector columns of a files table against format §8.

    Args:
        files: a files table with the :data:`VECTOR_FIELDS` columns.

    Raises:
        InvalidArgumentError: (a ``ValueError``) naming the first file with ``num_deleted_rows`` outside
            ``0..num_rows``, a vector with no deleted row or none with some, both or neither of inline bytes
            and a path, an inline vector over ``MAX_INLINE_VECTOR_BYTES``, an offset or size out of range,
            or a path not named as §5.8 requires.

    Example:
        >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
        >>> check_vectors(files_schema(meta).empty_table())
    """
    if not files.num_rows:
        return
    deleted, rows = files.column("num_deleted_rows"), files.column("num_rows")
    inline, path = files.column("deletion_vector_inline"), files.column("deletion_vector_path")
    bounds = pc.min_max(deleted).as_py()
    if bounds == {"min": 0, "max": 0} and inline.null_count == path.null_count == files.num_rows and all(
            files.column(c).null_count == files.num_rows for c in _VECTOR_NAMES[3:]):
        return  # the common case: no file has a vector
    offset, size = files.column("deletion_vector_offset"), files.column("deletion_vector_size")
    has_inline, has_path = pc.is_valid(inline), pc.is_valid(path)
    has_vector = pc.or_(has_inline, has_path)
    bad = pc.or_kleene(pc.less(deleted, 0), pc.greater(deleted, rows))
    bad = pc.or_kleene(bad, pc.not_equal(has_vector, pc.greater(deleted, 0)))
    bad = pc.or_kleene(bad, pc.and_(has_inline, has_path))
    bad = pc.or_kleene(bad, pc.and_(has_inline, pc.or_(pc.is_valid(offset), pc.is_valid(size))))
    bad = pc.or_kleene(bad, pc.and_(has_inline, pc.greater(pc.binary_length(inline), MAX_INLINE_VECTOR_BYTES)))
    bad = pc.or_kleene(bad, pc.and_(has_path, pc.or_kleene(pc.is_null(offset), pc.is_null(size))))
    bad = pc.or_kleene(bad, pc.and_(has_path, pc.or_kleene(pc.less(offset, 1), pc.less(size, 1))))
    bad = pc.or_kleene(bad, pc.and_(has_path, pc.greater(size, MAX_VECTOR_BYTES)))
    bad = pc.or_kleene(bad, pc.and_(has_path, pc.invert(pc.match_substring_regex(
        path, r"^_deletion_vectors/dv-[0-9a-f]{32}\.bin$"))))
    bad = pc.fill_null(bad, False)
    if pc.any(bad).as_py():
        i = pc.index(bad, True).as_py()
        row = {c: files.column(c)[i].as_py() for c in ("path", "num_rows", *_VECTOR_NAMES)}
        if row["deletion_vector_inline"] is not None:
            row["deletion_vector_inline"] = f"<{len(row['deletion_vector_inline'])} bytes>"
        raise InvalidArgumentError(f"the deletion vector of {row['path']!r} is invalid (format §8): {row}")


def vector_descriptors(files: pa.Table) -> list[DeletionVectorDescriptor | None]:
    """Per row of the files table, its deletion-vector descriptor (format §5.8), None without one.

    Args:
        files: a files table with the :data:`VECTOR_FIELDS` columns.

    Returns:
        One descriptor or None per row.

    Example:
        >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
        >>> d = DeletionVectorDescriptor(cardinality=1, inline=b"x")
        >>> a = AddFile(path="p.parquet", size_bytes=1, num_rows=2, modification_time=5, deletion_vector=d)
        >>> vector_descriptors(adds_to_table([a], meta)) == [d]
        True
    """
    cols = [files.column(c).to_pylist() for c in _VECTOR_NAMES]
    return [None if n == 0 else
            DeletionVectorDescriptor(cardinality=n, inline=b) if b is not None else
            DeletionVectorDescriptor(cardinality=n, path=p, offset=o, size=z)
            for n, b, p, o, z in zip(*cols)]


def _check_counts(files: pa.Table) -> None:
    """``InvalidArgumentError`` (a ``ValueError``) unless sizes and row counts are non-negative and
    null counts within ``0..num_rows``
    (format §4.2), checked column by column."""
    if not files.num_rows:
        return
    rows = files.column("num_rows")
    for name in files.schema.names:
        if name in ("size_bytes", "num_rows") or name.startswith("null_count."):
            column = files.column(name)
            bad = pc.less(column, 0) if not name.startswith("null_count.") else pc.or_(
                pc.less(column, 0), pc.greater(column, rows))
            if pc.any(bad).as_py():
                raise InvalidArgumentError(
                    f"{name} {column.filter(bad)[0].as_py()} is negative or larger than num_rows")


_DATA_FILE_NAME = re.compile(r"part-[0-9a-f]{32}\.parquet\Z")


def _same_value(given: Any, stored: Any) -> bool:
    """True if the log value ``given`` survives decoding unchanged (same Python type, same value)."""
    if given is None or stored is None:
        return given is None and stored is None
    if isinstance(given, str) and isinstance(stored, str) and given != stored:  # decimals: "1.5" is "1.50"
        try:
            return Decimal(given) == Decimal(stored)
        except (InvalidOperation, ValueError):
            return False
    return type(given) is type(stored) and given == stored


def check_adds(adds: Sequence[AddFile], metadata: Metadata) -> tuple[str, str] | None:
    """Validate add actions given by a caller (``Table.commit_files``) before anything is written.

    Every path must be a data-file path format §3 and §7 allow (relative, inside the table root, named
    ``part-<32 hex digits>.parquet``), unique; sizes, row counts and times integers in ``0..2**63-1``;
    partition values and statistics values of the column types (the log value must survive decoding
    unchanged), min/max not NaN and null counts within ``0..num_rows``.

    Args:
        adds: the add actions.
        metadata: the table metadata their values are typed by.

    Returns:
        None if all are valid, else ``(path, message)`` of the first fault, the message naming the field.

    Example:
        >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
        >>> ok = AddFile(path="part-" + "0" * 32 + ".parquet", size_bytes=1, num_rows=1, modification_time=5)
        >>> check_adds([ok], meta) is None
        True
        >>> import dataclasses
        >>> check_adds([dataclasses.replace(ok, num_rows=-1)], meta)[1]
        'num_rows -1 is not an integer in 0..9223372036854775807'
    """
    seen: set[str] = set()
    for a in adds:
        fault = _check_add_fields(a, seen)
        if fault is not None:
            return a.path, fault
    schema = files_schema(metadata)
    parts = partition_columns(metadata.schema, metadata.partition_by)
    stats = stats_columns(metadata.schema, metadata.partition_by)
    columns: dict[str, list[Any]] = {f.name: [] for f in schema if f.name.split(".", 1)[0] in (
        "partition", "min", "max", "null_count")}
    for a in adds:
        if len(a.partition) != len(parts):
            return a.path, f"{len(a.partition)} partition values for {len(parts)} partition columns"
        for c, v in zip(parts, a.partition):
            columns[f"partition.{c}"].append(v)
        for kind in ("min", "max", "null_count"):
            values = getattr(a, kind)
            if not isinstance(values, Mapping) or not set(values) <= set(stats):
                extra = sorted(map(str, set(values) - set(stats))) if isinstance(values, Mapping) else values
                return a.path, f"{kind} statistics name columns that have none: {extra!r}"
            for c in stats:
                v = values.get(c)
                if kind == "null_count" and v is not None and (type(v) is not int or not 0 <= v <= a.num_rows):
                    return a.path, f"null_count of {c!r} is {v!r}, not an integer in 0..num_rows"
                if kind != "null_count" and isinstance(v, float) and math.isnan(v):
                    return a.path, f"{kind} of {c!r} is NaN (format §5.3)"
                columns[f"{kind}.{c}"].append(v)
    for name, values in columns.items():  # one Arrow conversion per column; per value only to name a fault
        t = schema.field(name).type
        try:
            stored = encode_values(decode_values(values, t))
        except (ValueError, TypeError, OverflowError, pa.ArrowException):
            stored = None
        if stored is None or not all(map(_same_value, values, stored)):
            for a, v in zip(adds, values):
                if not _survives(v, t):
                    return a.path, f"{name} holds {v!r}, not a value of type {t}"
    return None


def _check_add_fields(a: AddFile, seen: set[str]) -> str | None:
    try:
        validate_data_path(a.path)
    except ValueError as exc:
        return str(exc)
    if not _DATA_FILE_NAME.match(a.path.rsplit("/", 1)[-1]):
        return f"data file path {a.path!r} is not named part-<32 hex digits>.parquet (format §7)"
    if a.path in seen:
        return f"data file {a.path!r} is given twice"
    seen.add(a.path)
    for name in ("size_bytes", "num_rows", "modification_time"):
        v = getattr(a, name)
        if type(v) is not int or not 0 <= v <= INT64_MAX:
            return f"{name} {v!r} is not an integer in 0..{INT64_MAX}"
    return None


def _survives(value: Any, t: pa.DataType) -> bool:
    try:
        return _same_value(value, encode_values(decode_values([value], t))[0])
    except (ValueError, TypeError, OverflowError, pa.ArrowException):
        return False




def files_to_adds(files: pa.Table, metadata: Metadata) -> list[AddFile]:
    """Rows of the files table -> add actions (the inverse of :func:`adds_to_table`).

    Args:
        files: a files table.
        metadata: the table metadata it was built for.

    Returns:
        One add action per row, values log-encoded.

    Example:
        >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
        >>> a = AddFile(path="x.parquet", size_bytes=1, num_rows=1, modification_time=5, min={"a": 1},
        ...             max={"a": 2}, null_count={"a": 0})
        >>> files_to_adds(adds_to_table([a], meta), meta) == [a]
        True
    """
    n = files.num_rows
    col = {name: encode_values(files.column(name).combine_chunks()) for name in files.schema.names}
    parts = [col[f"partition.{c}"] for c in partition_columns(metadata.schema, metadata.partition_by)]
    stats = stats_columns(metadata.schema, metadata.partition_by)

    def present(kind: str, i: int) -> dict[str, Any]:
        return {c: v for c in stats if (v := col[f"{kind}.{c}"][i]) is not None}

    vectors = vector_descriptors(files) if "num_deleted_rows" in col else [None] * n
    return [AddFile(path=col["path"][i], size_bytes=col["size_bytes"][i], num_rows=col["num_rows"][i],
                    modification_time=col["modification_time"][i], partition=tuple(p[i] for p in parts),
                    min=present("min", i), max=present("max", i), null_count=present("null_count", i),
                    deletion_vector=vectors[i])
            for i in range(n)]


def retype_adds(adds: Sequence[AddFile], old: Metadata, new: Metadata) -> list[AddFile]:
    """Add actions typed by ``old``'s schema, re-encoded for ``new``'s.

    Used after a schema change in the same commit: a widened column's values are converted (e.g. date
    days to timestamp units).

    Args:
        adds: the add actions, typed by ``old``.
        old: the metadata they were written under.
        new: the metadata to type them by.

    Returns:
        The add actions, typed by ``new`` (``adds`` itself if the files schemas agree).

    Example:
        >>> old = Metadata(table_id="t", schema=pa.schema([("d", pa.date32())]))
        >>> new = Metadata(table_id="t", schema=pa.schema([("d", pa.timestamp("s"))]))
        >>> a = AddFile(path="x.parquet", size_bytes=1, num_rows=1, modification_time=5, min={"d": 1}, max={"d": 2})
        >>> retype_adds([a], old, new)[0].max
        {'d': 172800}
    """
    if not adds or files_schema(old).equals(files_schema(new)):
        return list(adds)
    return files_to_adds(_conform_files(adds_to_table(adds, old), files_schema(new)), new)


def _conform_files(files: pa.Table, schema: pa.Schema) -> pa.Table:
    """Re-shape a files table to ``schema`` after a metadata change. Columns are matched by name (the
    physical names, which renames keep); a widened column's values are cast (widening is exact and keeps
    order); new columns, and any other change of type, are unknown (null)."""
    if files.schema.equals(schema):
        return files
    arrays = []
    names = set(files.schema.names)
    for f in schema:
        old = files.schema.field(f.name).type if f.name in names else None
        if old is not None and old.equals(f.type):
            arrays.append(files.column(f.name))
        elif old is not None and can_widen(old, f.type):
            arrays.append(files.column(f.name).cast(f.type))
        elif old is not None and can_widen(f.type, old):  # a restore undoing a widening (format §8)
            arrays.append(_narrowed(files.column(f.name), f.type))
        else:
            arrays.append(pa.nulls(files.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _narrowed(column: pa.ChunkedArray, type: pa.DataType) -> pa.ChunkedArray:
    """``column`` cast to the narrower ``type`` where a value converts exactly (casting back gives it
    again), else null (unknown). A restore brings back only files live at the restored version, whose
    values were typed by its narrower schema, so their partition values always convert."""
    array = column.combine_chunks()
    try:
        cast = pc.cast(array, type, safe=False)
        exact = pc.fill_null(pc.equal(pc.cast(cast, array.type, safe=False), array), False)
    except pa.ArrowException:
        return pa.chunked_array([pa.nulls(len(array), type)], type)
    return pa.chunked_array([pc.if_else(exact, cast, pa.scalar(None, type))], type)


class DeferredFiles:
    """A files table built on first use, once (thread-safe).

    A checkpoint's table is decoded only when a reader asks for the files, so opening a table, its
    version, schema and history stay cheap.

    Example:
        >>> d = DeferredFiles(lambda: pa.table({"path": ["a"]}))
        >>> d.get().num_rows
        1
    """

    __slots__ = ("_load", "_lock", "_table")

    def __init__(self, load: Callable[[], pa.Table]) -> None:
        self._load: Callable[[], pa.Table] | None = load
        self._table: pa.Table | None = None
        self._lock = threading.Lock()

    def get(self) -> pa.Table:
        """The table (built now if this is the first call; a failed build is retried next time).

        Returns:
            The files table.

        Example:
            >>> d = DeferredFiles(lambda: pa.table({"path": ["a", "b"]}))
            >>> d.get() is d.get()
            True
        """
        table = self._table
        if table is None:
            with self._lock:
                if self._table is None:
                    assert self._load is not None
                    self._table = self._load()
                    self._load = None
                table = self._table
        return table


@dataclass(frozen=True, slots=True, kw_only=True)
class TableState:
    """Everything a snapshot needs: metadata, protocol, idempotent-writer versions and live files.

    Attributes:
        version: the table version.
        timestamp: its commit time, in milliseconds since the epoch.
        protocol: the protocol in force.
        metadata: the metadata in force.
        files_source: the files table, or a :class:`DeferredFiles` that builds it on first use; read
            it through :attr:`files`.
        app_versions: idempotent writer id -> the highest version it has applied.

    Example:
        >>> import lakehouse as lh
        >>> state = lh.write_table("memory://doc-state", pa.table({"a": [1, 2]})).snapshot().state
        >>> state.version, state.files.num_rows
        (0, 1)
    """

    version: int
    timestamp: int
    protocol: Protocol
    metadata: Metadata
    files_source: pa.Table | DeferredFiles
    app_versions: Mapping[str, int] = field(default_factory=dict)

    @property
    def files(self) -> pa.Table:
        """The files table: one row per live data file."""
        source = self.files_source
        return source if isinstance(source, pa.Table) else source.get()

    def with_files(self, files: pa.Table) -> TableState:
        """This state with another files table (e.g. a transaction's working set).

        Args:
            files: the files table.

        Returns:
            A new state.

        Example:
            >>> import lakehouse as lh
            >>> state = lh.write_table("memory://doc-state-files", pa.table({"a": [1]})).snapshot().state
            >>> state.with_files(state.files.slice(0, 0)).files.num_rows
            0
        """
        return replace(self, files_source=files)

    @classmethod
    def initial(cls, entries: Sequence[LogEntry]) -> TableState:
        """The state after replaying ``entries`` from version 0 (which must define the table).

        Args:
            entries: the log entries from version 0 on, consecutive.

        Returns:
            The state at the last entry's version.

        Raises:
            CorruptLogError: version 0 lacks metadata or protocol, or the entries are not consecutive or
                invalid (see :meth:`apply`).

        Example:
            >>> from lakehouse.log import CommitInfo
            >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
            >>> v0 = LogEntry(version=0, commit=CommitInfo(id="c", timestamp=1, operation="create"),
            ...               protocol=Protocol(), metadata=meta)
            >>> TableState.initial([v0]).version
            0
        """
        first = entries[0]
        if first.metadata is None or first.protocol is None:
            raise CorruptLogError("version 0 lacks the table metadata or protocol", path=f"{LOG_DIR}/")
        empty = files_schema(first.metadata).empty_table()
        base = cls(version=-1, timestamp=0, protocol=first.protocol, metadata=first.metadata,
                   files_source=empty)
        return base.apply(entries)

    def apply(self, entries: Sequence[LogEntry], *, trusted: bool = False) -> TableState:
        """The state after the consecutive ``entries`` that follow this one.

        The values of an add action are typed by the schema in force at its version (its entry's
        metadata, else the one before), so adds are decoded per run of entries between metadata
        changes and the files table is conformed to each new schema in turn (format.md §10.2).

        Args:
            entries: the log entries from this state's version + 1 on, consecutive.
            trusted: skip the check that an added path is not already live (a scan of the files table), for
                an entry this process just committed, whose paths are new data files or were checked against
                the live files before committing. Without it such an entry is corrupt (format §10.2).

        Returns:
            The state at the last entry's version (this state if ``entries`` is empty).

        Raises:
            CorruptLogError: a version is missing or repeated, an add action is invalid or adds a live path,
                or a deletion vector appears below protocol 4.

        Example:
            >>> from lakehouse.log import CommitInfo
            >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
            >>> c0, c1 = (CommitInfo(id=f"c{v}", timestamp=v, operation="x") for v in (0, 1))
            >>> s0 = TableState.initial([LogEntry(version=0, commit=c0, protocol=Protocol(), metadata=meta)])
            >>> add = AddFile(path="x.parquet", size_bytes=1, num_rows=3, modification_time=2)
            >>> s1 = s0.apply([LogEntry(version=1, commit=c1, add=(add,))])
            >>> s1.version, s1.files.column("path").to_pylist()
            (1, ['x.parquet'])
        """
        if not entries:
            return self
        proto = self.protocol
        txns = dict(self.app_versions)
        removed: set[str] = set()
        segments: list[tuple[Metadata, dict[str, AddFile]]] = [(self.metadata, {})]
        expected = self.version + 1
        for e in entries:
            if e.version != expected:
                raise CorruptLogError(f"expected version {expected}, found {e.version}", path=f"{LOG_DIR}/")
            expected += 1
            if e.metadata is not None:
                segments.append((e.metadata, {}))
            proto = e.protocol or proto
            if proto.min_reader_version < DELETION_VECTORS_VERSION and any(
                    a.deletion_vector is not None for a in e.add):
                raise CorruptLogError(f"version {e.version} adds a deletion vector to a table at reader version "
                                      f"{proto.min_reader_version} (format §5.2)", path=f"{LOG_DIR}/")
            for r in e.remove:
                if not any(seg.pop(r.path, None) is not None for _, seg in segments):
                    removed.add(r.path)
            for a in e.add:
                if any(a.path in seg for _, seg in segments):
                    raise CorruptLogError(f"version {e.version} adds {a.path!r}, which is already live",
                                          path=f"{LOG_DIR}/")
                segments[-1][1][a.path] = a
            for t in e.txn:
                txns[t.app_id] = max(t.version, txns.get(t.app_id, t.version))
        try:
            runs = [(files_schema(m), adds_to_table(list(seg.values()), m) if seg else None) for m, seg in segments]
        except (ValueError, TypeError, OverflowError, pa.ArrowException) as exc:
            raise CorruptLogError(
                f"versions {entries[0].version}..{entries[-1].version} hold an invalid add action ({exc})",
                path=f"{LOG_DIR}/",
            ) from None

        added = [p for _, seg in segments for p in seg]
        first, last_version = entries[0].version, entries[-1].version

        def combine(files: pa.Table) -> pa.Table:
            if removed:
                keep = pc.invert(pc.is_in(files.column("path"), pa.array(list(removed), pa.string())))
                files = files.filter(keep)
            if added and not trusted and files.num_rows and pc.any(pc.is_in(files.column("path"),
                                                           pa.array(added, pa.string()))).as_py():
                # a writer never adds a live path again (format §10.2): the entry is not ours to trust
                raise CorruptLogError(f"versions {first}..{last_version} add a path that is already live",
                                      path=f"{LOG_DIR}/")
            for schema, new in runs:
                files = _conform_files(files, schema)
                if new is not None:
                    files = pa.concat_tables([files, new]) if files.num_rows else new
            if files.column(0).num_chunks > 32:  # many small commits: keep the table contiguous
                files = files.combine_chunks()
            return files

        source = self.files_source
        files: pa.Table | DeferredFiles
        # a checkpoint nobody has read yet stays deferred
        files = combine(source) if isinstance(source, pa.Table) else DeferredFiles(lambda: combine(source.get()))
        last = entries[-1]
        return replace(self, version=last.version, timestamp=last.commit.timestamp, protocol=proto,
                       metadata=segments[-1][0], files_source=files, app_versions=txns)

    def with_metadata(self, metadata: Metadata) -> TableState:
        """This state under other metadata (a schema change not yet committed).

        Args:
            metadata: the new metadata.

        Returns:
            A new state whose files table is conformed to it: renamed columns keep their statistics,
            widened ones are cast, new ones are unknown.

        Example:
            >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int32())]))
            >>> s = TableState(version=0, timestamp=1, protocol=Protocol(), metadata=meta,
            ...                files_source=files_schema(meta).empty_table())
            >>> wider = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
            >>> s.with_metadata(wider).files.schema.field("min.a").type
            DataType(int64)
        """
        schema = files_schema(metadata)
        source = self.files_source
        files: pa.Table | DeferredFiles
        if isinstance(source, pa.Table):
            files = _conform_files(source, schema)
        else:
            files = DeferredFiles(lambda: _conform_files(source.get(), schema))
        return replace(self, metadata=metadata, files_source=files)

    def app_version(self, app_id: str) -> int | None:
        """The highest version recorded for ``app_id``, or None.

        Args:
            app_id: an idempotent writer's id.

        Returns:
            Its highest applied version, or None if it never committed.

        Example:
            >>> import lakehouse as lh
            >>> t = lh.write_table("memory://doc-state-app", pa.table({"a": [1]}), app_transaction=("etl", 3))
            >>> t.snapshot().state.app_version("etl"), t.snapshot().state.app_version("other")
            (3, None)
        """
        return self.app_versions.get(app_id)

    def has_applied(self, txn: Sequence[AppTransaction]) -> bool:
        """True if this state already records one of ``txn`` at its version or later.

        An idempotent write carrying it is skipped (format §5.5). The one place that rule is decided.

        Args:
            txn: the writer progress markers a write carries.

        Returns:
            Whether the write was already applied.

        Example:
            >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
            >>> s = TableState(version=3, timestamp=1, protocol=Protocol(), metadata=meta,
            ...                files_source=files_schema(meta).empty_table(), app_versions={"etl": 5})
            >>> [s.has_applied([AppTransaction(app_id="etl", version=v)]) for v in (5, 6)]
            [True, False]
        """
        return any((seen := self.app_versions.get(t.app_id)) is not None and seen >= t.version for t in txn)

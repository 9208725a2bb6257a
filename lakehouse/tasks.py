"""Picklable read and write primitives for distributed engines (Dask, Ray, a process pool).

A read is planned on one machine into :class:`FileTask` values (one per data file that pruning
keeps) and each task is read anywhere with :func:`read_task`. A distributed write is the reverse:
workers write Parquet files with :func:`lakehouse.write_files`, which returns :class:`DataFile`
values, and the driver commits them all at once with :meth:`lakehouse.Table.commit_files`.

Both records hold primitives only (str, int, float, bool, None, bytes for binary values, and
tuples/dicts of those), so they pickle, JSON-encode (but for bytes) and cross process boundaries
cheaply. Values (partition values, statistics) are in the log encoding of ``docs/format.md`` §6:
dates and timestamps as integers in their unit, decimals as strings. Columns are named by their
current (logical) names; the column mapping of §5.7 is applied inside :func:`read_task`.

Example:
    >>> import lakehouse as lh, pyarrow as pa, pickle
    >>> t = lh.write_table("memory://doc-tasks", pa.table({"a": [1, 2, 3], "p": [1, 1, 2]}), partition_by=["p"])
    >>> tasks = t.snapshot().plan_files(filter=[("p", "=", 1)])
    >>> [task.partition_values for task in tasks]
    [{'p': 1}]
    >>> lh.read_task(pickle.loads(pickle.dumps(tasks[0]))).column("a").to_pylist()
    [1, 2]
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .arguments import check_names, check_str
from .errors import ArgumentTypeError, ColumnNotFoundError, InvalidArgumentError, VersionNotFoundError
from .expr.bridge import referenced_columns, rename_fields
from .expr.codec import decode_expression, encode_expression
from .expr.prune import conjuncts
from .log import AddFile, Metadata
from .schema import decode_values, is_identity, logical_schema, physical_name, physical_path, read_schema, relabel
from .state import files_to_adds
from .stats import partition_columns
from .storage import Storage

__all__ = ["ColumnMapping", "DataFile", "FileTask", "ScanPlan", "build_tasks", "read_task", "scan_plan"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileTask:
    """One data file to read, with everything needed to read it anywhere (see :func:`read_task`).

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-filetask", pa.table({"a": [1, None]}))
        >>> task = t.snapshot().plan_files(columns=["a"])[0]
        >>> task.num_rows, task.columns, task.stats["null_count"]
        (2, ('a',), {'a': 1})
    """

    uri: str = field(repr=False)  # may hold a URL's user info (ftp://user:password@host/...): never shown
    """The data file's full URI (a plain path on local disk; absolute, format §3)."""
    size_bytes: int
    num_rows: int
    partition_values: dict[str, Any] = field(default_factory=dict)
    """Partition column name -> value (log-encoded), in the table's partition order."""
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``{"min": {column: value}, "max": {...}, "null_count": {...}}``; a column absent is unknown."""
    filter: str | None = None
    """The read's filter as canonical expression JSON (``docs/format.md`` §16.2), or None."""
    columns: tuple[str, ...] | None = None
    """The columns to return (None: all), in order."""
    schema: str = ""
    """The table schema with its column mapping: base64 of the Arrow IPC schema."""
    path: str = ""
    """The data file's path relative to the table root."""
    version: int = 0
    """The table version the task was planned at."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DataFile:
    """A data file written by :func:`lakehouse.write_files` and not yet committed (a picklable add action).

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-datafile", pa.table({"a": [1, 2]}))
        >>> files = lh.write_files("memory://doc-datafile", pa.table({"a": [3]}))
        >>> files[0].num_rows, files[0].stats["max"]
        (1, {'a': 3})
    """

    path: str
    """Relative to the table root."""
    size_bytes: int
    num_rows: int
    modification_time: int
    """Milliseconds since the epoch when the file was finished."""
    partition_values: dict[str, Any] = field(default_factory=dict)
    """Partition column name -> value (log-encoded), in the table's partition order."""
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``{"min": {column: value}, "max": {...}, "null_count": {...}}`` by column name."""
    version: int = 0
    """The table version whose schema the file was written with."""

    @classmethod
    def from_add(cls, add: AddFile, metadata: Metadata, *, version: int) -> DataFile:
        """The record of an add action written under ``metadata``."""
        names = _logical_names(metadata.schema)
        return cls(path=add.path, size_bytes=add.size_bytes, num_rows=add.num_rows,
                   modification_time=add.modification_time,
                   partition_values=dict(zip(metadata.partition_by, add.partition)),
                   stats=_named_stats(add, names), version=version)

    def to_add(self, metadata: Metadata) -> AddFile:
        """The add action of this file for a table with ``metadata``; ``InvalidArgumentError`` if it does not fit."""
        if list(self.partition_values) != list(metadata.partition_by):
            raise InvalidArgumentError(f"data file {self.path!r} has partition columns "
                                       f"{list(self.partition_values)}, the table {list(metadata.partition_by)}")
        schema = metadata.schema
        known = set(schema.names)

        def physical(kind: str) -> dict[str, Any]:
            values = self.stats.get(kind, {})
            unknown = set(values) - known
            if unknown:
                raise InvalidArgumentError(f"data file {self.path!r} has statistics for unknown columns "
                                           f"{sorted(unknown)}")
            return {physical_name(schema.field(c)): v for c, v in values.items()}

        return AddFile(path=self.path, size_bytes=self.size_bytes, num_rows=self.num_rows,
                       modification_time=self.modification_time, partition=tuple(self.partition_values.values()),
                       min=physical("min"), max=physical("max"), null_count=physical("null_count"))


def _logical_names(schema: pa.Schema) -> dict[str, str]:
    return {physical_name(f): f.name for f in schema}


def _named_stats(add: AddFile, names: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    return {kind: {names.get(c, c): v for c, v in getattr(add, kind).items()} for kind in ("min", "max", "null_count")}


def _encode_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _decode_schema(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """What reading needs to know about a schema's column mapping (format.md §5.7).

    Example:
        >>> ColumnMapping.of(pa.schema([("a", pa.int64())])).mapped
        False
    """

    schema: pa.Schema
    """The table schema, with its mapping metadata."""
    mapped: bool
    """Some physical name differs from its field's name."""
    read_schema: pa.Schema
    """The schema under physical names, for scanning the data files."""
    by_physical: dict[str, pa.Field]
    """Top-level physical name -> the field as users see it."""
    metadata: dict[bytes, bytes] | None
    """The schema-level metadata."""

    @classmethod
    def of(cls, schema: pa.Schema) -> ColumnMapping:
        """The mapping of a table schema."""
        logical = logical_schema(schema)
        return cls(schema=schema, mapped=not is_identity(schema), read_schema=read_schema(schema),
                   by_physical={physical_name(f): logical.field(i) for i, f in enumerate(schema)},
                   metadata=logical.metadata)

    def physical(self, expr: pc.Expression | None) -> pc.Expression | None:
        """A filter over the table's columns as a filter over the data files' (physical) columns."""
        if expr is None or not self.mapped:
            return expr
        return rename_fields(expr, lambda path: physical_path(self.schema, path))

    def physical_columns(self, columns: list[str] | None) -> list[str] | None:
        """Column names as the data files name them."""
        if columns is None or not self.mapped:
            return columns
        return [physical_name(self.schema.field(c)) for c in columns]

    def logical(self, data: Any) -> Any:
        """A table or batch read under physical names, under the table's names (nested ones too)."""
        if not self.mapped:
            return data
        return relabel(data, pa.schema([self.by_physical[n] for n in data.schema.names], metadata=self.metadata))


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """What to push into a Parquet scan and what to filter after reading (see :func:`scan_plan`)."""

    read: list[str] | None
    """Columns to read (the wanted ones plus those the residual filter needs)."""
    pushed: pc.Expression | None
    """Filter pushed into the scan."""
    residual: pc.Expression | None
    """Filter applied to the rows after reading."""
    columns: list[str] | None
    """Columns to return."""

    def finish(self, table: pa.Table) -> pa.Table:
        """Apply the residual filter and the projection to the rows read."""
        if self.residual is not None:
            table = table.filter(self.residual)
        if self.columns is not None and table.column_names != self.columns:
            table = table.select(self.columns)
        return table


def _no_floats(expr: pc.Expression, floats: set[str]) -> bool:
    try:
        return not (referenced_columns(expr) & floats)
    except Exception:
        return False


def scan_plan(schema: pa.Schema, columns: list[str] | None, expr: pc.Expression | None) -> ScanPlan:
    """Split ``expr`` (over ``schema``, the logical schema) into what a scan may push down and the rest.

    pyarrow's scan skips row groups by Parquet statistics, which ignore NaN: a row group whose
    min == max == 1.5 is dropped for ``f != 1.5`` although its NaN rows match. Terms on
    floating-point columns are therefore evaluated after reading, on the rows themselves.

    Example:
        >>> p = scan_plan(pa.schema([("f", pa.float64()), ("i", pa.int64())]), ["i"], pc.field("f") > 1)
        >>> p.read, p.pushed, p.residual is not None
        (['i', 'f'], None, True)
    """
    if expr is None:
        return ScanPlan(columns, None, None, columns)
    floats = {f.name for f in schema if pa.types.is_floating(f.type)}
    if _no_floats(expr, floats):
        return ScanPlan(columns, expr, None, columns)
    pushed: pc.Expression | None = None
    for term in conjuncts(expr):
        if _no_floats(term, floats):
            pushed = term if pushed is None else pushed & term
    read = None if columns is None else columns + sorted(referenced_columns(expr) - set(columns))
    return ScanPlan(read, pushed, expr, columns)


def build_tasks(files: pa.Table, *, storage: Storage, metadata: Metadata, version: int,
                filter: pc.Expression | None, columns: Sequence[str] | None) -> list[FileTask]:
    """One task per row of the files table ``files`` (already pruned), for a read with ``filter``
    (over the table's column names) and ``columns``.

    Raises:
        InvalidFilterError: the filter cannot be written as expression JSON.
    """
    schema_text = _encode_schema(metadata.schema)
    filter_text = encode_expression(filter) if filter is not None else None
    cols = tuple(columns) if columns is not None else None
    names = _logical_names(metadata.schema)
    tasks = []
    storage.check_contained(files.column("path").to_pylist())  # local disk: no link out of the root (§3.1)
    for add in files_to_adds(files, metadata):
        full = storage.full_path(add.path)
        tasks.append(FileTask(
            uri=full if storage.is_local else storage.fs.unstrip_protocol(full), size_bytes=add.size_bytes,
            num_rows=add.num_rows, partition_values=dict(zip(metadata.partition_by, add.partition)),
            stats=_named_stats(add, names), filter=filter_text, columns=cols, schema=schema_text, path=add.path,
            version=version))
    return tasks


def _partition_expression(task: FileTask, schema: pa.Schema, partition_by: Sequence[str]) -> pc.Expression:
    expr: pc.Expression = pc.scalar(True)
    for name, physical in zip(partition_by, partition_columns(schema, partition_by)):
        value = decode_values([task.partition_values[name]], schema.field(name).type)[0]
        term = pc.field(physical).is_null() if not value.is_valid else pc.field(physical) == value
        expr = expr & term
    return expr


def read_task(task: FileTask, *, storage_options: Mapping[str, Any] | None = None) -> pa.Table:
    """Read one planned file: its rows matching the task's filter, the task's columns, under the
    table's column names and types; exactly that file's share of ``Snapshot.to_arrow(columns=, filter=)``.

    Needs nothing but the task (no log read), so it runs on a worker or in a subprocess;
    ``storage_options`` are those of the table's filesystem.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-read-task", pa.table({"a": [1, 2, 3]}))
        >>> [task] = t.snapshot().plan_files(filter=[("a", ">", 1)], columns=["a"])
        >>> lh.read_task(task).column("a").to_pylist()
        [2, 3]
    """
    schema, expr, columns = _task_parts(task)
    partition_by = list(task.partition_values)
    mapping = ColumnMapping.of(schema)
    plan = scan_plan(logical_schema(schema), columns, expr)
    storage = Storage.from_uri(task.uri, storage_options)
    fmt = ds.ParquetFileFormat()
    fs = storage.arrow_filesystem()
    fragment = fmt.make_fragment(storage.root, filesystem=fs, file_size=task.size_bytes,
                                 partition_expression=_partition_expression(task, schema, partition_by))
    dataset = ds.FileSystemDataset([fragment], schema=mapping.read_schema, format=fmt, filesystem=fs)
    try:
        table = dataset.to_table(columns=mapping.physical_columns(plan.read), filter=mapping.physical(plan.pushed))
    except FileNotFoundError as exc:
        raise VersionNotFoundError(f"a data file of version {task.version} is gone (removed by vacuum, or lost): "
                                   f"{exc}", version=task.version) from None
    return plan.finish(mapping.logical(table))


def _task_parts(task: Any) -> tuple[pa.Schema, pc.Expression | None, list[str] | None]:
    """The schema, filter and columns of ``task``, checked: a task that did not come from
    ``plan_files`` (or was altered) is refused with a typed error, not a pyarrow one."""
    if not isinstance(task, FileTask):
        raise ArgumentTypeError(f"task must be a FileTask (from Snapshot.plan_files), got {type(task).__name__}",
                                argument="task")
    try:
        schema = _decode_schema(check_str(task.schema, "task.schema"))
    except (ValueError, TypeError, OSError, pa.ArrowException) as exc:  # binascii.Error is a ValueError
        raise InvalidArgumentError(f"task.schema is not an encoded Arrow schema ({exc})", argument="task") from None
    if task.filter is not None and not isinstance(task.filter, str):
        raise ArgumentTypeError(f"task.filter must be None or str, got {type(task.filter).__name__}", argument="task")
    expr = decode_expression(task.filter) if task.filter is not None else None
    columns = check_names(task.columns, "task.columns")
    names = logical_schema(schema).names
    for c in columns or ():
        if c not in names:
            raise ColumnNotFoundError(c, available=names)
    return schema, expr, columns


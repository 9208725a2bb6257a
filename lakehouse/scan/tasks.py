"""Reads as picklable values for distributed engines: :class:`FileTask`, :func:`build_tasks`, :func:`read_task`.

A task names one data file with everything needed to read it anywhere (its schema, filter, columns,
partition values, statistics and deletion vector); :func:`read_task` reads it through a one-file
:class:`~lakehouse.scan.dataset.TableDataset`, so it returns exactly what the scan of a snapshot
returns for that file.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ..arguments import check_names, check_str
from ..datafile import logical_names, named_stats
from ..dv_read import VectorSet
from ..errors import ArgumentTypeError, ColumnNotFoundError, InvalidArgumentError, VersionNotFoundError
from ..expr.codec import decode_expression, encode_expression
from ..log import DeletionVectorDescriptor, Metadata
from ..schema import decode_values, logical_schema
from ..state import files_to_adds
from ..stats import partition_columns
from ..storage import Storage
from .dataset import partition_expression, table_dataset
from .groups import FileGroups
from .mapping import ColumnMapping, scan_plan

__all__ = ["FileTask", "build_tasks", "read_task", "task_groups"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileTask:
    """One data file to read, with everything needed to read it anywhere (see :func:`read_task`).

    Attributes:
        uri: the data file's full URI (a plain path on local disk; absolute, format §3); never shown
            by ``repr``, as it may hold a URL's user info.
        size_bytes: the file's size in bytes.
        num_rows: how many rows the file holds.
        partition_values: partition column name -> value (log-encoded), in the table's partition order.
        stats: ``{"min": {column: value}, "max": {...}, "null_count": {...}}``; a column absent is unknown.
        filter: the read's filter as canonical expression JSON (``docs/format.md`` §16.2), or None.
        columns: the columns to return (None: all), in order.
        schema: the table schema with its column mapping: base64 of the Arrow IPC schema.
        path: the data file's path relative to the table root.
        version: the table version the task was planned at.
        num_deleted_rows: the rows of the file its deletion vector deletes (0: none).
        deletion_vector: where that vector is stored (a descriptor, format §5.8), or None.

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
    num_deleted_rows: int = 0
    """The rows of the file its deletion vector deletes (0: none); :func:`read_task` never returns
    them. ``num_rows`` stays the file's physical row count."""
    deletion_vector: DeletionVectorDescriptor | None = field(default=None, repr=False)
    """Where the file's deletion vector is (format §5.8), None without one."""


def _encode_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


@functools.lru_cache(maxsize=16)
def _decode_schema(text: str) -> pa.Schema:
    # the tasks of one plan share their schema text: decoded once (a pa.Schema is immutable)
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


@functools.lru_cache(maxsize=16)
def _mapping(text: str) -> ColumnMapping:
    # keyed by the text: pa.Schema equality ignores metadata, where the column mapping lives
    return ColumnMapping.of(_decode_schema(text))


def build_tasks(files: pa.Table, *, storage: Storage, metadata: Metadata, version: int,
                filter: pc.Expression | None, columns: Sequence[str] | None) -> list[FileTask]:
    """One task per row of the files table ``files`` (already pruned), for a read with ``filter``
    (over the table's column names) and ``columns``.

    Args:
        files: rows of a files table (physical column names), e.g. :meth:`Scan.pruned`.
        storage: where the table lives (the tasks carry full URIs).
        metadata: the table metadata at ``version`` (its schema is encoded into every task).
        version: the version planned.
        filter: the bound filter, or None.
        columns: the checked columns to return, or None (all).

    Returns:
        One :class:`FileTask` per row of ``files``, in order.

    Raises:
        InvalidFilterError: the filter cannot be written as expression JSON.
        UnsafePathError: on local disk, a path leads out of the table root.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> state = lh.write_table("memory://doc-build-tasks", pa.table({"a": [1, 2]})).snapshot().state
        >>> [task.num_rows for task in build_tasks(state.files, storage=Storage.from_uri("memory://doc-build-tasks"),
        ...     metadata=state.metadata, version=0, filter=None, columns=None)]
        [2]
    """
    schema_text = _encode_schema(metadata.schema)
    filter_text = encode_expression(filter) if filter is not None else None
    cols = tuple(columns) if columns is not None else None
    names = logical_names(metadata.schema)
    tasks = []
    storage.check_contained(files.column("path").to_pylist())  # local disk: no link out of the root (§3.1)
    for add in files_to_adds(files, metadata):
        full = storage.full_path(add.path)
        tasks.append(FileTask(
            uri=full if storage.is_local else storage.fs.unstrip_protocol(full), size_bytes=add.size_bytes,
            num_rows=add.num_rows, partition_values=dict(zip(metadata.partition_by, add.partition)),
            stats=named_stats(add, names), filter=filter_text, columns=cols, schema=schema_text, path=add.path,
            version=version, num_deleted_rows=add.deletion_vector.cardinality if add.deletion_vector else 0,
            deletion_vector=add.deletion_vector))
    return tasks


def read_task(task: FileTask, *, storage_options: Mapping[str, Any] | None = None) -> pa.Table:
    """Read one planned file: its rows matching the task's filter, the task's columns, under the
    table's column names and types; exactly that file's share of ``Snapshot.to_arrow(columns=, filter=)``.

    Needs nothing but the task (no log read), so it runs on a worker or in a subprocess.

    Args:
        task: a task from :meth:`lakehouse.Snapshot.plan_files` (possibly unpickled elsewhere).
        storage_options: those of the table's filesystem (credentials, endpoint), or None.

    Returns:
        The file's rows matching the task's filter, as a ``pyarrow.Table``.

    Raises:
        ArgumentTypeError: ``task`` is not a :class:`FileTask`, or a field has the wrong type.
        InvalidArgumentError: ``task.schema`` is not an encoded Arrow schema.
        ColumnNotFoundError: ``task.columns`` names a column the schema does not have.
        VersionNotFoundError: the data file is gone (removed by vacuum, or lost).

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-read-task", pa.table({"a": [1, 2, 3]}))
        >>> [task] = t.snapshot().plan_files(filter=[("a", ">", 1)], columns=["a"])
        >>> lh.read_task(task).column("a").to_pylist()
        [2, 3]
    """
    schema, expr, columns = _task_parts(task)
    mapping = _mapping(task.schema)
    plan = scan_plan(logical_schema(schema), columns, expr)
    fragment, vectors = _fragment(task, schema, storage_options)
    fmt, fs = fragment.format, fragment.filesystem
    dataset = table_dataset([fragment], schema=mapping.read_schema, format=fmt, filesystem=fs, vectors=vectors)
    try:
        table = dataset.to_table(columns=mapping.physical_columns(plan.read), filter=mapping.physical(plan.pushed))
    except FileNotFoundError as exc:
        raise VersionNotFoundError(f"a data file of version {task.version} is gone (removed by vacuum, or lost): "
                                   f"{exc}", version=task.version) from None
    return plan.finish(mapping.logical(table))


def _fragment(task: FileTask, schema: pa.Schema, storage_options: Mapping[str, Any] | None
              ) -> tuple[ds.ParquetFileFragment, VectorSet | None]:
    """The task's file as a Parquet fragment (with its partition values) and its deletion vector."""
    partition_by = list(task.partition_values)
    storage = Storage.from_uri(task.uri, storage_options)
    fmt = ds.ParquetFileFormat()
    fs = storage.arrow_filesystem()
    values = [decode_values([task.partition_values[n]], schema.field(n).type)[0] for n in partition_by]
    fragment = fmt.make_fragment(storage.root, filesystem=fs, file_size=task.size_bytes,
                                 partition_expression=partition_expression(
                                     partition_columns(schema, partition_by), values))
    vectors = None
    if task.deletion_vector is not None:
        vectors = VectorSet(_table_storage(task, storage, storage_options),
                            {fragment.path: (task.deletion_vector, task.num_rows)})
    return fragment, vectors


def task_groups(task: FileTask, *, storage_options: Mapping[str, Any] | None = None) -> FileGroups:
    """A planned file, readable by row group with positions among its live rows (row-level writes).

    Args:
        task: a task from ``plan_files``.
        storage_options: those of the table's filesystem, or None.

    Returns:
        Its :class:`~lakehouse.scan.groups.FileGroups` (the task's filter and columns are ignored).

    Raises:
        ArgumentTypeError, InvalidArgumentError: as :func:`read_task`.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-task-groups", pa.table({"a": [1, 2]}))
        >>> task_groups(t.plan_files()[0]).num_rows
        2
    """
    schema, _, _ = _task_parts(task)
    fragment, vectors = _fragment(task, schema, storage_options)
    return FileGroups(fragment, mapping=_mapping(task.schema), num_rows=task.num_rows, vectors=vectors,
                      version=task.version)


def _table_storage(task: FileTask, file: Storage, storage_options: Mapping[str, Any] | None) -> Storage:
    """The storage of the table ``task`` belongs to (where its deletion vector file is): ``task.uri``
    is the table root followed by ``task.path``."""
    d = task.deletion_vector
    if d is None or d.is_inline:
        return file
    if not isinstance(task.path, str) or not task.path or not task.uri.endswith("/" + task.path):
        raise InvalidArgumentError(f"task.uri does not end with task.path {task.path!r}: the table's deletion "
                                   f"vector file cannot be found", argument="task")
    return Storage.from_uri(task.uri[:-len(task.path) - 1], storage_options)


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
    if task.deletion_vector is not None and not isinstance(task.deletion_vector, DeletionVectorDescriptor):
        raise ArgumentTypeError(f"task.deletion_vector must be None or a DeletionVectorDescriptor, got "
                                f"{type(task.deletion_vector).__name__}", argument="task")
    columns = check_names(task.columns, "task.columns")
    names = logical_schema(schema).names
    for c in columns or ():
        if c not in names:
            raise ColumnNotFoundError(c, available=names)
    return schema, expr, columns

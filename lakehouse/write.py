"""Writing data files: Arrow data in, Parquet files and their descriptors out. Never commits.

Data is streamed: each incoming batch is conformed to the table schema, split by partition and
buffered per partition; a partition's buffer becomes one Parquet file when it reaches the target
size, and the largest buffer is flushed whenever all buffers together exceed the memory budget,
so memory stays bounded for streams of any length. Files are written on a thread pool.

Example:
    >>> import pyarrow as pa
    >>> from lakehouse.storage import Storage
    >>> s = Storage.from_uri("memory://doc-write")
    >>> adds = write_data_files(s, pa.table({"a": [1, 2]}), schema=pa.schema([("a", pa.int64())]))
    >>> [a.num_rows for a in adds]
    [2]
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import posixpath
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .clock import now_ms
from .log import AddFile, validate_data_path
from .partitioning import partition_dir, split_by_partition
from .progress import ProgressEvent, ProgressLike, progress_callback
from .schema import conformed_batches, file_schema, relabel, to_reader
from .stats import file_stats
from .storage import Storage

__all__ = ["WriteOptions", "delete_files", "write_data_files"]


ROW_GROUP_ROWS = 1 << 14
"""Rows per Parquet row group unless told otherwise (tests lower it to get many groups per file)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteOptions:
    """How data files are laid out.

    Attributes:
        target_file_bytes: in-memory (Arrow) bytes buffered per partition before they become one
            file: an upper bound of the Parquet file size (table property ``target_file_size``).
        max_buffer_bytes: Arrow bytes buffered across all partitions before the largest buffer is flushed.
        row_group_rows: rows per Parquet row group: small enough that row-group statistics skip data
            inside a file.
        compression: the Parquet compression codec.
        max_workers: threads encoding files at once.

    Example:
        >>> WriteOptions(compression="snappy").compression
        'snappy'
    """

    target_file_bytes: int = 128 << 20
    max_buffer_bytes: int = 192 << 20
    row_group_rows: int = field(default_factory=lambda: ROW_GROUP_ROWS)
    compression: str = "zstd"
    max_workers: int = field(default_factory=lambda: max(2, min(8, os.cpu_count() or 2)))


_DICTIONARY_MAX_RATIO = 0.5  # dictionary-encode a flat column whose sample is at most this share distinct
_HEAD_ROWS = 1 << 10  # rows the repetition test looks at first
_DELTA_MIN_BITS_SAVED = 4  # delta-encode an integer column whose steps need this many bits fewer than its span


@functools.lru_cache(maxsize=64)
def _leaf_paths(schema: pa.Schema) -> dict[str, tuple[str, ...]]:
    """Each top-level column's Parquet leaf paths (``s.a``, ``l.list.element``), as the writer names them."""
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    md = pq.read_metadata(pa.BufferReader(sink.getvalue()))
    out: dict[str, list[str]] = {}
    for i in range(md.num_columns):
        path = md.schema.column(i).path
        out.setdefault(path.split(".", 1)[0], []).append(path)
    return {name: tuple(paths) for name, paths in out.items()}


def _distinct(sample: pa.ChunkedArray) -> tuple[int, int]:
    """(distinct non-null values, non-null values) of ``sample``."""
    valid = len(sample) - sample.null_count
    return (pc.count_distinct(sample).as_py() if valid else 0), valid


def _is_repetitive(column: pa.ChunkedArray, sample_rows: int) -> bool:
    """Whether at most half of the non-null values of the first ``sample_rows`` rows are distinct.

    Counting distinct values of a mostly-unique column is the costly case (a hash table of every
    value), so the first rows decide when they are clear: repetitive already, or hundreds of
    values all distinct (then the whole sample is almost surely mostly unique too).
    """
    distinct, valid = _distinct(column.slice(0, min(sample_rows, _HEAD_ROWS)))
    if valid and distinct <= _DICTIONARY_MAX_RATIO * valid:
        return True
    if (valid >= _HEAD_ROWS // 4 and distinct == valid) or sample_rows <= _HEAD_ROWS:
        return False
    distinct, valid = _distinct(column.slice(0, sample_rows))
    return bool(valid) and distinct <= _DICTIONARY_MAX_RATIO * valid


def _is_smooth(column: pa.ChunkedArray, sample_rows: int) -> bool:
    """Whether consecutive values differ by much less than the values range (ids, timestamps)."""
    sample = column.slice(0, sample_rows).drop_null()
    try:
        if not pa.types.is_integer(sample.type):  # temporal: through its storage integer
            sample = sample.cast(pa.int32() if sample.type.bit_width == 32 else pa.int64())
        values = sample.cast(pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. uint64 beyond int64
        return False
    if len(values) < 2:
        return False
    spread = int(values.max()) - int(values.min())
    steps = np.diff(values)  # wraps around for extreme values: then it only looks rough
    return (int(steps.max()) - int(steps.min())).bit_length() + _DELTA_MIN_BITS_SAVED <= spread.bit_length()


def _integer_like(typ: pa.DataType) -> bool:
    return (pa.types.is_integer(typ) or pa.types.is_timestamp(typ) or pa.types.is_date(typ)
            or pa.types.is_time(typ) or pa.types.is_duration(typ))


def column_encodings(rows: pa.Table, sample_rows: int) -> tuple[list[str], dict[str, str]]:
    """How to encode each Parquet leaf of ``rows``: the paths to dictionary-encode, and the others'.

    A flat column is dictionary-encoded only if at most half of the (non-null) values of its first
    ``sample_rows`` rows are distinct: dictionary pages of mostly-unique values (ids, measurements,
    free text) cost encoding time and bytes and are read back slower. Nested columns always are.
    An integer-like column that is not is delta-encoded (``DELTA_BINARY_PACKED``) when its values
    step by much less than they span (ids, timestamps): written 2-3x faster than compressed plain
    values, smaller, and read back faster.

    Example:
        >>> t = pa.table({"id": range(100), "kind": ["a", "b"] * 50, "x": [i * 7919 % 101 for i in range(100)]})
        >>> column_encodings(t, 1024)
        (['kind'], {'id': 'DELTA_BINARY_PACKED'})
    """
    paths = _leaf_paths(rows.schema)
    dictionary: list[str] = []
    other: dict[str, str] = {}
    for name, column in zip(rows.column_names, rows.columns, strict=True):
        typ = column.type
        if pa.types.is_nested(typ) or pa.types.is_dictionary(typ):
            dictionary.extend(paths.get(name, ()))
        elif pa.types.is_boolean(typ) or pa.types.is_null(typ):
            continue
        elif _is_repetitive(column, sample_rows):
            dictionary.extend(paths.get(name, ()))
        elif _integer_like(typ) and _is_smooth(column, sample_rows):
            other.update(dict.fromkeys(paths.get(name, ()), "DELTA_BINARY_PACKED"))
    return dictionary, other


_PARALLEL_TAKE_ROWS = 1 << 16  # batches at least this long are reordered one column per thread


def _column_take(pool: ThreadPoolExecutor, sample_rows: int) -> Callable[[pa.Table, pa.Array], pa.Table]:
    """A ``take`` for :func:`split_by_partition` that reorders the columns of a table on ``pool``
    (a string column is repetitive by the same test, and sample, as the file encodings use).

    Reordering a batch by partition is the writer's one step that would otherwise run on a single
    thread (string columns dominate it); Arrow kernels release the GIL, so columns go side by side.
    """
    def take_column(column: pa.ChunkedArray, order: pa.Array) -> pa.Array | pa.ChunkedArray:
        typ = column.type
        if (pa.types.is_string(typ) or pa.types.is_binary(typ)) and _is_repetitive(column, sample_rows):
            # gathering strings at random is cache-bound; gathering small indices and then
            # strings from a dictionary that fits in cache is twice as fast
            return column.combine_chunks().dictionary_encode().take(order).dictionary_decode()
        return column.take(order)

    def take(table: pa.Table, order: pa.Array) -> pa.Table:
        if table.num_rows < _PARALLEL_TAKE_ROWS:
            return table.take(order)
        columns = list(pool.map(take_column, table.columns, itertools.repeat(order)))
        return pa.Table.from_arrays(columns, schema=table.schema)

    return take


@dataclass(slots=True)
class _Buffer:
    encoded: tuple[Any, ...]
    values: tuple[Any, ...]
    tables: list[pa.Table] = field(default_factory=list)
    nbytes: int = 0


def _write_one(storage: Storage, buf: _Buffer, physical: pa.Schema, data_columns: Sequence[str],
               columns: Sequence[str], options: WriteOptions) -> AddFile:
    folder = partition_dir(columns, buf.values)
    name = f"part-{uuid.uuid4().hex}.parquet"
    rel = f"{folder}/{name}" if folder else name
    full = storage.full_path(rel)
    parent = posixpath.dirname(full)
    if storage.is_local:
        os.makedirs(parent, exist_ok=True)
        storage.check_contained((rel,))  # never write through a link out of the root (format §3.1)
    else:
        storage.fs.makedirs(parent, exist_ok=True)
    afs = storage.arrow_filesystem()
    try:
        with afs.open_output_stream(full) as out:
            # one table (chunks are not copied) so row groups span the buffered batches; columns and
            # struct children take their physical names (format.md §7)
            rows = relabel(pa.concat_tables(buf.tables).select(data_columns), physical)
            dictionary, encodings = column_encodings(rows, options.row_group_rows)
            writer = pq.ParquetWriter(out, physical, compression=options.compression, use_dictionary=dictionary,
                                      column_encoding=encodings or None)
            writer.write_table(rows, row_group_size=options.row_group_rows)
            writer.close()
            size = out.tell()
    except BaseException:
        delete_files(storage, [rel])
        raise
    md = writer.writer.metadata
    mins, maxs, nulls = file_stats(md, physical)
    return AddFile(path=rel, size_bytes=size, num_rows=md.num_rows, modification_time=now_ms(),
                   partition=buf.encoded, min=mins, max=maxs, null_count=nulls)


def delete_files(storage: Storage, paths: Sequence[str]) -> None:
    """Best-effort removal of data files that no commit references (e.g. after a conflict).

    Only paths that format §3 allows (relative, inside the table root) are deleted: a path given by a
    caller (``Table.commit_files``) never makes a clean-up reach outside the root.

    Args:
        storage: the table's storage.
        paths: data file paths relative to the table root; others are skipped.

    Example:
        >>> from lakehouse.storage import Storage
        >>> storage = Storage.from_uri("memory://doc-delete-files")
        >>> storage.put_if_absent("part-1.parquet", b"x")
        >>> delete_files(storage, ["part-1.parquet", "../elsewhere.parquet"])
        >>> storage.exists("part-1.parquet")
        False
    """
    for p in paths:
        try:
            validate_data_path(p)
        except ValueError:
            continue  # not a path of this table: never delete it
        with contextlib.suppress(OSError):  # what stays behind is an orphan for vacuum
            storage.delete(p)


def write_data_files(
    storage: Storage,
    data: Any,
    *,
    schema: pa.Schema,
    partition_by: Sequence[str] = (),
    options: WriteOptions | None = None,
    check: Callable[[pa.RecordBatch], None] | None = None,
    widen: bool = False,
    progress: ProgressLike = None,
    operation: str = "write",
) -> list[AddFile]:
    """Write Arrow-shaped ``data`` as Parquet files under ``storage``; return their add actions.

    ``schema`` is the table schema (with its column mapping: files use the physical names and
    carry the field ids, statistics are keyed by physical name). ``widen`` (``schema_mode="merge"``)
    lets data columns of a narrower type be cast up and fills the nullable columns the data lacks
    with nulls. Any string flavour or dictionary fits a string or dictionary column. ``check`` sees
    every conformed batch before it is buffered and may raise to abort the write. On any error the
    files already written are deleted and the error propagates. ``progress`` (see
    :mod:`lakehouse.progress`) hears of every file written as ``(operation, "files")`` and
    ``(operation, "bytes")`` events; the totals are known, and sent, at the end.

    Args:
        storage: the table's storage.
        data: Arrow-shaped data (a ``pyarrow.Table``, batches, a reader, ``__arrow_c_stream__``).
        schema: the table schema, with its column mapping.
        partition_by: the partition columns.
        options: how files are laid out (defaults if None).
        check: called with every conformed batch; may raise to abort the write.
        widen: cast narrower columns up and fill missing nullable columns with nulls.
        progress: None (silent), True (a progress bar) or a callable taking
            :class:`~lakehouse.progress.ProgressEvent` values.
        operation: the operation name progress events carry.

    Returns:
        The add actions of the files written, statistics keyed by physical column name.

    Raises:
        SchemaMismatchError: the data does not fit ``schema``.
        InvalidDataError: ``data`` is not Arrow-shaped.
        ConstraintViolationError: a NOT NULL column holds a null (or ``check`` raised it).

    Example:
        >>> from lakehouse.storage import Storage
        >>> adds = write_data_files(Storage.from_uri("memory://doc-write-data"), pa.table({"a": [1, 2]}),
        ...                         schema=pa.schema([("a", pa.int64())]))
        >>> [a.num_rows for a in adds]
        [2]
    """
    opts = options or WriteOptions()
    columns = list(partition_by)
    physical = file_schema(schema, columns)
    data_columns = [f.name for f in schema if f.name not in columns]
    buffers: dict[tuple[Any, ...], _Buffer] = {}
    pending: list[Future[AddFile]] = []
    done: list[AddFile] = []
    pool: ThreadPoolExecutor | None = None
    take_pool: ThreadPoolExecutor | None = None
    take: Callable[[pa.Table, pa.Array], pa.Table] | None = None  # default: Table.take
    report = progress_callback(progress)
    written_bytes = 0

    def record(add: AddFile) -> None:
        nonlocal written_bytes
        done.append(add)
        written_bytes += add.size_bytes
        report(ProgressEvent(operation, "files", len(done), None, "files"))
        report(ProgressEvent(operation, "bytes", written_bytes, None, "bytes"))

    def flush(key: tuple[Any, ...], *, final: bool = False) -> None:
        nonlocal pool
        buf = buffers.pop(key)
        if final and not pending and not buffers:  # a single file: no threads to start
            record(_write_one(storage, buf, physical, data_columns, columns, opts))
            return
        while len(pending) >= opts.max_workers:  # bounds memory: buffers + one file per worker
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                pending.remove(f)
                record(f.result())
        if pool is None:
            pool = ThreadPoolExecutor(opts.max_workers, thread_name_prefix="lakehouse-write")
        pending.append(pool.submit(_write_one, storage, buf, physical, data_columns, columns, opts))

    try:
        for batch in conformed_batches(to_reader(data), schema, widen=widen, fill_missing=widen):
            if check is not None:
                check(batch)
            if take_pool is None and columns and batch.num_rows >= _PARALLEL_TAKE_ROWS:
                take_pool = ThreadPoolExecutor(opts.max_workers, thread_name_prefix="lakehouse-take")
                take = _column_take(take_pool, opts.row_group_rows)
            for encoded, values, part in split_by_partition(pa.Table.from_batches([batch]), columns, take=take):
                buf = buffers.get(encoded) or buffers.setdefault(encoded, _Buffer(encoded, values))
                buf.tables.append(part)
                buf.nbytes += part.nbytes
                if buf.nbytes >= opts.target_file_bytes:
                    flush(encoded)
            while buffers and sum(b.nbytes for b in buffers.values()) > opts.max_buffer_bytes:
                flush(max(buffers, key=lambda k: buffers[k].nbytes))
        for key in list(buffers):
            flush(key, final=True)
        for f in pending:
            record(f.result())
        report(ProgressEvent(operation, "files", len(done), len(done), "files"))
        report(ProgressEvent(operation, "bytes", written_bytes, written_bytes, "bytes"))
    except BaseException:
        for f in pending:
            f.cancel()
        wait(pending)
        written = [f.result().path for f in pending if not f.cancelled() and f.exception() is None]
        delete_files(storage, [a.path for a in done] + written)
        raise
    finally:
        for p in (pool, take_pool):
            if p is not None:
                p.shutdown(wait=True)
        report.close()
    return done

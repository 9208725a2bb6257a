"""Inspection tables: a table's files, partitions and history as ``pyarrow.Table`` values.

Get an :class:`Inspect` from ``Table.inspect``. Every method returns a new ``pyarrow.Table`` whose
schema is fixed by the table's own schema (documented in ``docs/inspect.md``), built with vectorised
Arrow operations from the snapshot's files table (:meth:`lakehouse.Snapshot.files`) or from
:meth:`lakehouse.Table.history`; nothing here writes.

* :meth:`Inspect.files` — one row per live data file: ``path``, ``size_bytes``, ``num_rows``,
  ``num_deleted_rows``, ``modification_time``, ``partition`` (a struct of the typed partition values) and ``stats`` (a
  struct with ``min``/``max``/``null_count`` per column that has statistics).
* :meth:`Inspect.partitions` — one row per partition: ``partition``, ``file_count``, ``row_count``,
  ``size_bytes``, ``last_modified``.
* :meth:`Inspect.history` — one row per commit, newest first.
* :meth:`Inspect.diff` — the files one version adds and removes compared with another.
* :meth:`Inspect.log_entry` — the raw log entry of a version as JSON-ready values.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-inspect", pa.table({"id": [1, 2, 3], "day": [1, 1, 2]}),
    ...                    partition_by=["day"])
    >>> t.inspect.partitions().select(["partition", "row_count"]).to_pylist()
    [{'partition': {'day': 1}, 'row_count': 2}, {'partition': {'day': 2}, 'row_count': 1}]
    >>> t.inspect.history().column("operation").to_pylist()
    ['write']
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import msgpack
import pyarrow as pa
import pyarrow.compute as pc

from .arguments import check_int
from .errors import VersionNotFoundError
from .expr.dnf import FilterLike
from .handle import TableHandle
from .log import entry_name, unseal
from .snapshot import Snapshot

__all__ = ["DIFF_FIELDS", "FILES_FIELDS", "HISTORY_SCHEMA", "PARTITIONS_FIELDS", "Inspect", "jsonable"]

_TS = pa.timestamp("ms", tz="UTC")

FILES_FIELDS = (
    pa.field("path", pa.string(), nullable=False),
    pa.field("size_bytes", pa.int64(), nullable=False),
    pa.field("num_rows", pa.int64(), nullable=False),
    pa.field("num_deleted_rows", pa.int64(), nullable=False),
    pa.field("modification_time", _TS, nullable=False),
)
"""The fixed leading columns of :meth:`Inspect.files` (``partition`` and ``stats`` follow)."""

PARTITIONS_FIELDS = (
    pa.field("file_count", pa.int64(), nullable=False),
    pa.field("row_count", pa.int64(), nullable=False),
    pa.field("size_bytes", pa.int64(), nullable=False),
    pa.field("last_modified", _TS, nullable=False),
)
"""The columns of :meth:`Inspect.partitions` after ``partition``."""

DIFF_FIELDS = (
    pa.field("change", pa.string(), nullable=False),
    *FILES_FIELDS,
)
"""The fixed leading columns of :meth:`Inspect.diff` (``partition`` follows)."""

HISTORY_SCHEMA = pa.schema([
    pa.field("version", pa.int64(), nullable=False),
    pa.field("timestamp", _TS, nullable=False),
    pa.field("operation", pa.string(), nullable=False),
    pa.field("parameters", pa.string(), nullable=False),
    pa.field("read_version", pa.int64()),
    pa.field("blind_append", pa.bool_(), nullable=False),
    pa.field("data_change", pa.bool_(), nullable=False),
    pa.field("commit_id", pa.string(), nullable=False),
    pa.field("lakehouse_version", pa.string(), nullable=False),
    pa.field("files_added", pa.int64(), nullable=False),
    pa.field("files_removed", pa.int64(), nullable=False),
    pa.field("rows_added", pa.int64(), nullable=False),
    pa.field("rows_removed", pa.int64(), nullable=False),
])
"""The schema of :meth:`Inspect.history` (``parameters`` is a JSON object as text)."""


def jsonable(value: Any) -> Any:
    """``value`` with every part JSON can hold as is; others as text (dates ISO 8601, bytes base64).

    Args:
        value: a value built of dicts, lists, tuples, scalars, dates, decimals and bytes.

    Returns:
        The same shape with JSON-ready leaves: dicts (keys as text) and lists of str, int, float,
        bool and None.

    Example:
        >>> import datetime as dt
        >>> jsonable({"when": dt.date(2024, 5, 1), "raw": b"\\x00", "n": [1, None]})
        {'when': '2024-05-01', 'raw': {'$base64': 'AA=='}, 'n': [1, None]}
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)  # Decimal, UUID, ...


def _array(column: pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks()


def _struct(arrays: list[pa.Array], fields: list[pa.Field], length: int) -> pa.StructArray:
    if not fields:
        return pa.StructArray.from_buffers(pa.struct([]), length, [None])
    return pa.StructArray.from_arrays(arrays, fields=fields)


def _split(files: pa.Table) -> tuple[list[str], list[str]]:
    """The partition columns and the columns with statistics named by a files table."""
    parts: list[str] = []
    stats: list[str] = []
    for name in files.column_names:
        kind, _, column = name.partition(".")
        if kind == "partition":
            parts.append(column)
        elif kind == "min":
            stats.append(column)
    return parts, stats


def _partition_struct(files: pa.Table, parts: list[str]) -> pa.StructArray:
    arrays = [_array(files.column(f"partition.{c}")) for c in parts]
    return _struct(arrays, [pa.field(c, a.type) for c, a in zip(parts, arrays)], files.num_rows)


def _stats_struct(files: pa.Table, stats: list[str]) -> pa.StructArray:
    per_column = []
    for c in stats:
        arrays = [_array(files.column(f"{kind}.{c}")) for kind in ("min", "max", "null_count")]
        fields = [pa.field("min", arrays[0].type), pa.field("max", arrays[1].type), pa.field("null_count", pa.int64())]
        per_column.append(_struct(arrays, fields, files.num_rows))
    return _struct(per_column, [pa.field(c, a.type) for c, a in zip(stats, per_column)], files.num_rows)


def _files_view(files: pa.Table) -> pa.Table:
    """A files table (``partition.<c>``, ``min.<c>``, ... columns) in the shape of :meth:`Inspect.files`."""
    parts, stats = _split(files)
    arrays = [_array(files.column(f.name)).cast(f.type) for f in FILES_FIELDS]
    arrays += [_partition_struct(files, parts), _stats_struct(files, stats)]
    fields = [*FILES_FIELDS, pa.field("partition", arrays[-2].type, nullable=False),
              pa.field("stats", arrays[-1].type, nullable=False)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


class Inspect:
    """Read-only views of a table as ``pyarrow.Table`` values; get one from ``Table.inspect``.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-inspect-cls", pa.table({"a": [1, 2]}))
        >>> t.inspect.files().select(["num_rows", "stats"]).to_pylist()
        [{'num_rows': 2, 'stats': {'a': {'min': 1, 'max': 2, 'null_count': 0}}}]
    """

    __slots__ = ("_handle",)

    def __init__(self, handle: TableHandle) -> None:
        self._handle = handle

    def __repr__(self) -> str:
        return f"Inspect({self._handle!r})"

    def _snapshot(self, version: int | None, as_of: dt.datetime | None) -> Snapshot:
        return Snapshot(self._handle.storage, self._handle.state_at(version, as_of))

    def files(self, *, filter: FilterLike | pc.Expression | None = None, version: int | None = None,
              as_of: dt.datetime | None = None) -> pa.Table:
        """One row per live data file (of ``version`` / ``as_of``) that may hold rows matching ``filter``.

        Columns: ``path`` (relative to the table root), ``size_bytes``, ``num_rows`` (the file's physical
        rows), ``num_deleted_rows`` (those its deletion vector deletes, 0 without one; the file's live
        rows are the difference), ``modification_time`` (timestamp[ms, UTC]), ``partition`` (struct: one
        typed field per partition column, empty for an unpartitioned table) and ``stats`` (struct: per
        column with statistics a struct ``min``, ``max``, ``null_count``).
        With ``filter``, only the files pruning keeps.

        Args:
            filter: keep only the files that may hold matching rows (DNF tuples, SQL-like text or a
                ``pyarrow.compute.Expression``), as pruning by partition values and statistics decides.
            version: inspect this version instead of the handle's.
            as_of: an aware datetime: inspect the newest version committed at or before it.

        Returns:
            The files table described above.

        Raises:
            ColumnNotFoundError: ``filter`` names a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.
            VersionNotFoundError: ``version`` does not exist (any more), or nothing was committed at or
                before ``as_of``.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-inspect-files", pa.table({"a": [1, 2], "p": [1, 2]}),
            ...                    partition_by=["p"])
            >>> t.inspect.files(filter=[("p", "=", 2)]).column("partition").to_pylist()
            [{'p': 2}]
        """
        return _files_view(self._snapshot(version, as_of).files(filter=filter))

    def partitions(self, *, filter: FilterLike | pc.Expression | None = None, version: int | None = None,
                   as_of: dt.datetime | None = None) -> pa.Table:
        """One row per partition (of ``version`` / ``as_of``), sorted by partition value, nulls last.

        Columns: ``partition`` (struct as in :meth:`files`), ``file_count``, ``row_count`` (live rows:
        deleted rows not counted),
        ``size_bytes`` and ``last_modified`` (the newest file's modification time). An unpartitioned
        table with files has one row with an empty ``partition``; a table without files has none.

        Args:
            filter: keep only the files that may hold matching rows (DNF tuples, SQL-like text or a
                ``pyarrow.compute.Expression``), as pruning by partition values and statistics decides.
            version: inspect this version instead of the handle's.
            as_of: an aware datetime: inspect the newest version committed at or before it.

        Returns:
            The partitions table described above.

        Raises:
            ColumnNotFoundError: ``filter`` names a column the table does not have.
            InvalidFilterError: ``filter`` cannot be understood.
            VersionNotFoundError: ``version`` does not exist (any more), or nothing was committed at or
                before ``as_of``.
            InvalidArgumentError: both ``version`` and ``as_of``, or a naive ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-inspect-parts", pa.table({"a": [1, 2, 3], "p": [1, 1, 2]}),
            ...                    partition_by=["p"])
            >>> t.inspect.partitions().select(["file_count", "row_count"]).to_pylist()
            [{'file_count': 1, 'row_count': 2}, {'file_count': 1, 'row_count': 1}]
        """
        files = self._snapshot(version, as_of).files(filter=filter)
        parts, _ = _split(files)
        keys = [f"partition.{c}" for c in parts]
        live = pc.subtract(files.column("num_rows"), files.column("num_deleted_rows"))  # rows a reader sees
        files = files.set_column(files.schema.get_field_index("num_rows"), "num_rows", live)
        grouped = files.group_by(keys, use_threads=False).aggregate([
            ("path", "count"), ("num_rows", "sum"), ("size_bytes", "sum"), ("modification_time", "max"),
        ])
        if keys:
            grouped = grouped.sort_by([(k, "ascending") for k in keys])  # nulls sort last
        n = grouped.num_rows
        partition = _partition_struct(grouped, parts)
        values = [grouped.column(c) for c in ("path_count", "num_rows_sum", "size_bytes_sum", "modification_time_max")]
        arrays = [partition] + [_array(v).cast(f.type) for v, f in zip(values, PARTITIONS_FIELDS)]
        schema = pa.schema([pa.field("partition", partition.type, nullable=False), *PARTITIONS_FIELDS])
        if n == 0:
            return schema.empty_table()
        return pa.Table.from_arrays(arrays, schema=schema)

    def history(self, *, limit: int | None = None) -> pa.Table:
        """One row per commit, newest first (at most ``limit``), with the schema :data:`HISTORY_SCHEMA`.

        ``timestamp`` is timestamp[ms, UTC]; ``parameters`` the operation's parameters as a JSON object
        (text); ``read_version`` the version the writer read (null for the first commit).

        Args:
            limit: the most commits to return (all if None).

        Returns:
            The history table; entries removed by log clean-up are not listed.

        Raises:
            InvalidArgumentError: ``limit`` is negative (``ArgumentTypeError`` if not an int).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-inspect-hist", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]}))
            >>> t.inspect.history().select(["version", "operation", "rows_added"]).to_pylist()[0]
            {'version': 1, 'operation': 'append', 'rows_added': 1}
        """
        commits = self._handle.history(limit)
        info = [c.info for c in commits]
        columns: dict[str, list[Any]] = {
            "version": [c.version for c in commits],
            "timestamp": [c.timestamp for c in commits],
            "operation": [c.operation for c in commits],
            "parameters": [json.dumps(jsonable(i.get("parameters", {})), sort_keys=True) for i in info],
            "read_version": [i.get("read_version") for i in info],
            "blind_append": [bool(i.get("blind_append", False)) for i in info],
            "data_change": [bool(i.get("data_change", True)) for i in info],
            "commit_id": [i.get("commit_id", "") for i in info],
            "lakehouse_version": [i.get("lakehouse_version", "") for i in info],
        }
        for key in ("files_added", "files_removed", "rows_added", "rows_removed"):
            columns[key] = [int(i.get(key, 0)) for i in info]
        return pa.Table.from_pydict(columns, schema=HISTORY_SCHEMA)

    def diff(self, from_version: int, to_version: int | None = None) -> pa.Table:
        """The data files ``to_version`` (latest if None) has and ``from_version`` has not, and the reverse.

        One row per file: ``change`` (``"added"`` or ``"removed"``), then the columns of
        :meth:`files` without ``stats``. Added files come first, each group sorted by path. A file
        whose deletion vector changed between the versions shows twice, removed with its old
        ``num_deleted_rows`` and added with its new one (as the log records it, format §4.2).

        Args:
            from_version: the older version.
            to_version: the newer version (the latest if None).

        Returns:
            The changed files, as described above.

        Raises:
            VersionNotFoundError: either version does not exist (any more).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-inspect-diff", pa.table({"a": [1]}))
            >>> _ = t.overwrite(pa.table({"a": [2, 3]}))
            >>> t.inspect.diff(0, 1).select(["change", "num_rows"]).to_pylist()
            [{'change': 'added', 'num_rows': 2}, {'change': 'removed', 'num_rows': 1}]
        """
        old_files = self._snapshot(from_version, None).files()
        new_files = self._snapshot(to_version, None).files()
        old = _files_view(old_files).drop_columns(["stats"])
        new = _files_view(new_files).drop_columns(["stats"])
        # a file whose deletion vector changed (removed and re-added, format §4.2) shows on both sides
        old_keys, new_keys = _file_keys(old_files), _file_keys(new_files)
        added = new.filter(pc.invert(pc.is_in(new_keys, value_set=old_keys)))
        removed = old.filter(pc.invert(pc.is_in(old_keys, value_set=new_keys)))
        if added.schema.field("partition").type != removed.schema.field("partition").type:
            # the partitioning changed between the versions (a restore or replace): show values as text
            added, removed = (_partition_as_text(t) for t in (added, removed))
        parts = []
        for change, table in (("added", added), ("removed", removed)):
            table = table.sort_by("path")
            label = pa.array([change] * table.num_rows, pa.string())
            parts.append(table.add_column(0, pa.field("change", pa.string(), nullable=False), label))
        return pa.concat_tables(parts)

    def log_entry(self, version: int) -> dict[str, Any]:
        """The log entry of ``version`` as stored (the msgpack body), with JSON-ready values.

        The envelope's checksum is checked (``CorruptLogError`` if damaged); ``VersionNotFoundError`` if
        there is no entry (never written, or removed by log clean-up). Bytes show as
        ``{"$base64": ...}``, except the metadata's Arrow schema, shown as ``{"$arrow_schema": text}``.

        Args:
            version: the version whose entry to show.

        Returns:
            The entry as a dict of JSON-ready values (see :func:`jsonable`).

        Raises:
            VersionNotFoundError: there is no entry for ``version``.
            CorruptLogError: the entry is damaged.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-inspect-log", pa.table({"a": [1]}))
            >>> e = t.inspect.log_entry(0)
            >>> e["version"], e["commit"]["operation"], e["add"][0]["num_rows"]
            (0, 'write', 1)
        """
        storage = self._handle.storage
        rel = entry_name(check_int(version, "version"))
        try:
            data = storage.read(rel)
        except FileNotFoundError:
            raise VersionNotFoundError(f"there is no log entry for version {version} (never written, or "
                                       f"removed by log clean-up)", version=version) from None
        body = msgpack.unpackb(unseal(data, path=storage.full_path(rel)), raw=False)
        metadata = body.get("metadata") if isinstance(body, dict) else None
        if isinstance(metadata, dict) and isinstance(metadata.get("schema"), bytes):
            metadata["schema"] = {"$arrow_schema": _schema_text(metadata["schema"])}
        out: dict[str, Any] = jsonable(body)
        return out


def _schema_text(data: bytes) -> str:
    try:
        schema = pa.ipc.read_schema(pa.py_buffer(data))
    except Exception:  # shown, not trusted: a damaged schema stays readable as base64
        return "<undecodable: " + base64.b64encode(data).decode("ascii") + ">"
    return schema.to_string(show_field_metadata=False, show_schema_metadata=False)


def _partition_as_text(table: pa.Table) -> pa.Table:
    text = pa.array([json.dumps(jsonable(v), sort_keys=True) for v in table.column("partition").to_pylist()],
                    pa.string())
    i = table.schema.get_field_index("partition")
    return table.set_column(i, pa.field("partition", pa.string(), nullable=False), text)


def _file_keys(files: pa.Table) -> pa.Array:
    """One key per file of a files table (format §8): its path and where its deletion vector is (the
    inline bytes, or the vector file and offset), so a changed vector is a changed key even when it
    deletes as many rows as the old one did."""
    parts = [pc.cast(files.column(c), pa.binary()) for c in ("path", "deletion_vector_path")]
    parts.append(pc.cast(pc.cast(files.column("deletion_vector_offset"), pa.string()), pa.binary()))
    parts.append(files.column("deletion_vector_inline"))
    filled = [pc.fill_null(part, b"") for part in parts]
    return _array(pc.binary_join_element_wise(*filled, b"\x00"))

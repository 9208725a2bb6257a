"""``DataFile``: a data file written by :func:`lakehouse.write_files` and not yet committed.

A distributed write runs :func:`lakehouse.write_files` on workers, which return :class:`DataFile`
values, and the driver commits them all at once with :meth:`lakehouse.Table.commit_files`. A record
holds primitives only (str, int, float, bool, None, bytes for binary values, and dicts of those), so
it pickles and crosses process boundaries cheaply. Values (partition values, statistics) are in the
log encoding of ``docs/format.md`` §6, keyed by the columns' current (logical) names.

Example:
    >>> import lakehouse as lh, pyarrow as pa, pickle
    >>> t = lh.write_table("memory://doc-datafile-mod", pa.table({"a": [1, 2]}))
    >>> [f] = lh.write_files("memory://doc-datafile-mod", pa.table({"a": [3]}))
    >>> pickle.loads(pickle.dumps(f)).num_rows
    1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .errors import InvalidArgumentError
from .log import AddFile, Metadata
from .schema import physical_name

__all__ = ["DataFile", "logical_names", "named_stats"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DataFile:
    """A data file written by :func:`lakehouse.write_files` and not yet committed (a picklable add action).

    Attributes:
        path: the file's path, relative to the table root.
        size_bytes: the file's size in bytes.
        num_rows: how many rows it holds.
        modification_time: milliseconds since the epoch when the file was finished.
        partition_values: partition column name -> value (log-encoded), in the table's partition order.
        stats: ``{"min": {column: value}, "max": {...}, "null_count": {...}}`` by column name.
        version: the table version whose schema the file was written with.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-datafile", pa.table({"a": [1, 2]}))
        >>> files = lh.write_files("memory://doc-datafile", pa.table({"a": [3]}))
        >>> files[0].num_rows, files[0].stats["max"]
        (1, {'a': 3})
    """

    path: str
    size_bytes: int
    num_rows: int
    modification_time: int
    partition_values: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 0

    @classmethod
    def from_add(cls, add: AddFile, metadata: Metadata, *, version: int) -> DataFile:
        """The record of an add action written under ``metadata``.

        Args:
            add: the add action (statistics keyed by physical column name).
            metadata: the table metadata it was written under.
            version: the table version of ``metadata``.

        Returns:
            The record, keyed by the columns' current names.

        Example:
            >>> from lakehouse.log import AddFile
            >>> import lakehouse as lh
            >>> meta = lh.write_table("memory://doc-from-add", pa.table({"a": [1]})).snapshot().state.metadata
            >>> add = AddFile(path="x.parquet", size_bytes=10, num_rows=1, modification_time=0, min={"a": 1})
            >>> DataFile.from_add(add, meta, version=0).stats["min"]
            {'a': 1}
        """
        names = logical_names(metadata.schema)
        return cls(path=add.path, size_bytes=add.size_bytes, num_rows=add.num_rows,
                   modification_time=add.modification_time,
                   partition_values=dict(zip(metadata.partition_by, add.partition)),
                   stats=named_stats(add, names), version=version)

    def to_add(self, metadata: Metadata) -> AddFile:
        """The add action of this file for a table with ``metadata``; ``InvalidArgumentError`` if it does not fit.

        Args:
            metadata: the metadata of the table the file is committed to.

        Returns:
            The add action, statistics keyed by physical column name.

        Raises:
            InvalidArgumentError: the record's partition columns differ from the table's, or it has
                statistics for a column the table does not have.

        Example:
            >>> import lakehouse as lh
            >>> t = lh.write_table("memory://doc-to-add", pa.table({"a": [1]}))
            >>> [f] = lh.write_files(t.uri, pa.table({"a": [2]}))
            >>> f.to_add(t.snapshot().state.metadata).num_rows
            1
        """
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


def logical_names(schema: pa.Schema) -> dict[str, str]:
    """Physical name -> column name for every top-level column of a table schema (format.md §5.7).

    Args:
        schema: the table schema, with its column-mapping metadata.

    Returns:
        A dict from each column's physical name to its current name.

    Example:
        >>> logical_names(pa.schema([("a", pa.int64())]))
        {'a': 'a'}
    """
    return {physical_name(f): f.name for f in schema}


def named_stats(add: AddFile, names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The statistics of ``add`` (keyed by physical name) keyed by column name.

    Args:
        add: the add action.
        names: physical name -> column name (:func:`logical_names`).

    Returns:
        ``{"min": {column: value}, "max": {...}, "null_count": {...}}``.

    Example:
        >>> add = AddFile(path="x.parquet", size_bytes=1, num_rows=1, modification_time=0, min={"c1": 5})
        >>> named_stats(add, {"c1": "a"})["min"]
        {'a': 5}
    """
    return {kind: {names.get(c, c): v for c, v in getattr(add, kind).items()} for kind in ("min", "max", "null_count")}

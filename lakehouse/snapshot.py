"""Snapshots: an immutable view of a table pinned to one version, and loading it from storage.

A reader takes the newest checkpoint at or before the version it wants (found through
``_last_checkpoint`` without listing, or by listing the log folder when the hint is missing or
too new) and replays only the log entries after it.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-snapshot", pa.table({"a": [1, 2]}))
    >>> s = t.snapshot()
    >>> s.version, s.to_arrow().num_rows
    (0, 2)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .checkpoint import decode_checkpoint, read_pointer
from .errors import (
    ColumnNotFoundError,
    CorruptLogError,
    SchemaMismatchError,
    TableNotFoundError,
    UnsupportedFormatError,
    VersionNotFoundError,
)
from .expressions import FilterLike, conjuncts, files_mask, referenced_columns, rename_fields, to_expression
from .log import LOG_DIR, LogEntry, checkpoint_name, decode_entry, entry_name, parse_log_name
from .schema import (
    field_id,
    is_identity,
    is_legacy,
    logical_schema,
    physical_name,
    physical_path,
    read_schema,
    relabel,
    renamed_paths,
)
from .state import TableState
from .stats import partition_columns, stats_columns
from .storage import Storage

__all__ = ["Snapshot", "list_log", "load_state", "read_ahead", "read_entries", "read_entry"]

_PROBE_BATCH = 16


def read_entry(storage: Storage, version: int) -> LogEntry | None:
    """The log entry at ``version``, or None if there is none."""
    try:
        data = storage.read(entry_name(version))
    except FileNotFoundError:
        return None
    return decode_entry(data, path=storage.full_path(entry_name(version)), version=version)


def read_entries(storage: Storage, start: int, stop: int | None = None) -> list[LogEntry]:
    """Entries ``start..stop`` (all must exist), or from ``start`` until the first missing one."""
    out: list[LogEntry] = []
    v = start
    # local reads are cheap one by one; on object stores probe concurrently, doubling the batch
    # while every probed entry exists (few requests when little is new, few rounds when much is)
    batch = 1 if storage.is_local else (_PROBE_BATCH if stop is not None else 2)
    while stop is None or v <= stop:
        hi = v + batch if stop is None else min(v + batch, stop + 1)
        datas = storage.read_many([entry_name(i) for i in range(v, hi)])
        for i, data in enumerate(datas, start=v):
            if data is None:
                if stop is not None:
                    raise VersionNotFoundError(f"log entry for version {i} is missing", version=i)
                return out
            out.append(decode_entry(data, path=storage.full_path(entry_name(i)), version=i))
        v = hi
        if not storage.is_local:
            batch = min(batch * 2, 64)
    return out


def list_log(storage: Storage) -> tuple[list[int], list[int]]:
    """The versions of the log entries and of the checkpoints in the log folder, ascending."""
    entries: list[int] = []
    checkpoints: list[int] = []
    for name in storage.list(LOG_DIR):
        parsed = parse_log_name(name)
        if parsed is not None:
            (entries if parsed[1] == "entry" else checkpoints).append(parsed[0])
    return sorted(entries), sorted(checkpoints)


def _checkpoint_start(storage: Storage, version: int | None, *,
                      use_pointer: bool = True) -> tuple[int | None, list[int] | None]:
    """The checkpoint version to start from, and the listed entry versions if we had to list."""
    pointer = read_pointer(storage) if use_pointer else None
    if pointer is not None and (version is None or pointer <= version):
        return pointer, None
    entries, checkpoints = list_log(storage)
    if not entries and not checkpoints:
        raise TableNotFoundError(storage.uri)
    usable = [c for c in checkpoints if version is None or c <= version]
    return (usable[-1] if usable else None), entries


def _read_checkpoint(storage: Storage, version: int) -> TableState | None:
    rel = checkpoint_name(version)
    try:
        data = storage.read(rel)
    except FileNotFoundError:
        return None
    return decode_checkpoint(data, path=storage.full_path(rel), version=version)


def _usable_checkpoint(storage: Storage, start: int, version: int | None) -> TableState | None:
    """The state of checkpoint ``start``; if it is damaged, of the newest older one that is intact.

    None means: replay from version 0. A checkpoint from a newer format is never skipped.
    """
    try:
        return _read_checkpoint(storage, start)
    except UnsupportedFormatError:
        raise
    except CorruptLogError as damaged:
        _, checkpoints = list_log(storage)
        for older in reversed([c for c in checkpoints if c < start]):
            try:
                return _read_checkpoint(storage, older)
            except UnsupportedFormatError:
                raise
            except CorruptLogError:
                continue
        if read_entry(storage, 0) is None:
            raise damaged from None
        return None


def load_state(storage: Storage, version: int | None = None) -> TableState:
    """The table state at ``version`` (latest if None).

    Raises ``TableNotFoundError`` if there is no table, ``VersionNotFoundError`` for a version
    the log does not have, ``CorruptLogError`` for a damaged entry at or before ``version``.
    """
    if version is not None and version < 0:
        raise VersionNotFoundError(f"version {version} does not exist: versions start at 0", version=version)
    start, listed = _checkpoint_start(storage, version)
    state = _usable_checkpoint(storage, start, version) if start is not None else None
    if start is not None and state is None and listed is None:
        # the pointer names a checkpoint that is not there: treat it as absent and list (§9)
        start, listed = _checkpoint_start(storage, version, use_pointer=False)
        state = _usable_checkpoint(storage, start, version) if start is not None else None
    if start is None and listed and listed[0] > 0 and version is not None and version < listed[0]:
        raise VersionNotFoundError(f"version {version} was cleaned up from the log (the oldest version kept is "
                                   f"{listed[0]})", version=version)
    first = state.version + 1 if state is not None else 0
    if version is not None and listed is not None and listed and version > listed[-1]:
        raise VersionNotFoundError(f"version {version} does not exist (latest is {listed[-1]})", version=version)
    if version is None:
        entries = read_entries(storage, first)
    else:
        entries = read_entries(storage, first, version) if first <= version else []
    if state is None:
        if not entries:
            if listed:  # entries exist but not from version 0: the early log was cleaned up
                raise VersionNotFoundError(
                    f"version {version if version is not None else 0} was cleaned up from the log", version=version
                )
            raise TableNotFoundError(storage.uri)
        state = TableState.initial(entries)
    else:
        state = state.apply(entries)
    if version is None and listed and listed[-1] > state.version:
        missing = storage.full_path(entry_name(state.version + 1))
        raise CorruptLogError(f"the log has a gap: entry {state.version + 1} is missing but {listed[-1]} exists",
                              path=missing)
    if version is not None and state.version != version:
        raise VersionNotFoundError(f"version {version} does not exist (latest is {state.version})", version=version)
    return state


def _as_datetime(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


def _partition_expression(names: Sequence[str], values: Sequence[pa.Scalar]) -> pc.Expression:
    expr: pc.Expression | None = None
    for name, value in zip(names, values):
        term = pc.field(name).is_null() if not value.is_valid else pc.field(name) == value
        expr = term if expr is None else expr & term
    return expr if expr is not None else pc.scalar(True)


class Snapshot:
    """An immutable view of a table at one version. Reading it never sees later commits.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-snap2", pa.table({"a": [1, 2, 3]}))
        >>> t.snapshot().to_arrow(filter=[("a", ">", 1)]).num_rows
        2
    """

    __slots__ = ("_mapping", "_state", "_storage")

    def __init__(self, storage: Storage, state: TableState) -> None:
        self._storage = storage
        self._state = state
        self._mapping: _Mapping | None = None

    # -- identity ------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The version this snapshot is pinned to."""
        return self._state.version

    @property
    def timestamp(self) -> dt.datetime:
        """When this version was committed (aware, UTC)."""
        return _as_datetime(self._state.timestamp)

    @property
    def schema(self) -> pa.Schema:
        """The table schema at this version (without the column-mapping metadata, see :attr:`field_ids`)."""
        return logical_schema(self._state.metadata.schema)

    @property
    def field_ids(self) -> dict[str, int]:
        """The stable id of every top-level column (empty for a table written before ids existed).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> lh.write_table("memory://doc-ids", pa.table({"a": [1], "b": ["x"]})).snapshot().field_ids
            {'a': 1, 'b': 2}
        """
        schema = self._state.metadata.schema
        if is_legacy(schema):  # ids such a schema carries are not lakehouse's (format.md §5.7)
            return {}
        return {f.name: i for f in schema if (i := field_id(f)) is not None}

    @property
    def partition_by(self) -> list[str]:
        """The partition columns."""
        return list(self._state.metadata.partition_by)

    @property
    def properties(self) -> dict[str, str]:
        """The table properties at this version."""
        return dict(self._state.metadata.properties)

    @property
    def uri(self) -> str:
        """Where the table lives."""
        return self._storage.uri

    @property
    def state(self) -> TableState:
        """The underlying immutable state (metadata, protocol, files table)."""
        return self._state

    def app_version(self, app_id: str) -> int | None:
        """The highest version recorded for the idempotent writer ``app_id`` at this snapshot."""
        return self._state.app_version(app_id)

    def __repr__(self) -> str:
        return f"Snapshot(uri={self.uri!r}, version={self.version})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self._storage.uri, self.version, dict(self._storage.storage_options)))

    # -- planning ------------------------------------------------------------------------------
    def _expression(self, filter: FilterLike | pc.Expression | None) -> pc.Expression | None:
        return to_expression(filter, self.schema)

    # -- column mapping (format.md §5.7): data files and the files table use physical names --------
    @property
    def _columns(self) -> _Mapping:
        """The column mapping of this version's schema (computed once)."""
        if self._mapping is None:
            self._mapping = _Mapping.of(self._state.metadata.schema)
        return self._mapping

    @property
    def _mapped(self) -> bool:
        """True if some column's physical name differs from its name (after a rename)."""
        return self._columns.mapped

    def _physical(self, expr: pc.Expression | None) -> pc.Expression | None:
        """A filter over the table's columns as a filter over the data files' (physical) columns."""
        if expr is None or not self._mapped:
            return expr
        schema = self._state.metadata.schema
        return rename_fields(expr, lambda path: physical_path(schema, path))

    def _physical_columns(self, columns: list[str] | None) -> list[str] | None:
        if columns is None or not self._mapped:
            return columns
        schema = self._state.metadata.schema
        return [physical_name(schema.field(c)) for c in columns]

    def _logical(self, data: Any) -> Any:
        """A table or batch read under physical names, under the table's names (nested ones too)."""
        if not self._mapped:
            return data
        m = self._columns
        return relabel(data, pa.schema([m.by_physical[name] for name in data.schema.names], metadata=m.metadata))

    def _pruned(self, expr: pc.Expression | None) -> pa.Table:
        """The files table rows that may hold rows where ``expr`` (over the table's columns) is true."""
        files = self._state.files
        if expr is None or files.num_rows == 0:
            return files
        meta = self._state.metadata
        mask = files_mask(self._physical(expr), files, partition_columns=partition_columns(meta.schema,
                          meta.partition_by), stats_columns=stats_columns(meta.schema, meta.partition_by))
        return files.filter(mask)

    def _logical_files(self, files: pa.Table) -> pa.Table:
        """The files table with ``partition.<c>``, ``min.<c>``, ... named by column name, not physical name."""
        if not self._mapped:
            return files
        names = {physical_name(f): f.name for f in self._state.metadata.schema}
        out = []
        for name in files.column_names:
            kind, _, column = name.partition(".")
            out.append(f"{kind}.{names[column]}" if column in names else name)
        return files.rename_columns(out)

    def files(self, *, filter: FilterLike | pc.Expression | None = None) -> pa.Table:
        """One row per live data file that may hold rows matching ``filter``.

        Columns: ``path`` (relative to the table root), ``size_bytes``, ``num_rows``,
        ``modification_time``, ``partition.<c>``, and ``min.<c>``/``max.<c>``/``null_count.<c>``
        (``<c>`` the column's current name).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-files", pa.table({"a": [1, 2], "p": [1, 2]}), partition_by=["p"])
            >>> t.snapshot().files(filter=[("p", "=", 1)]).num_rows
            1
        """
        return self._logical_files(self._pruned(self._expression(filter)))

    def _check_columns(self, columns: Sequence[str] | None) -> list[str] | None:
        if columns is None:
            return None
        names = self.schema.names
        for c in columns:
            if c not in names:
                raise ColumnNotFoundError(c, available=names)
        return list(columns)

    def _dataset(self, files: pa.Table) -> ds.FileSystemDataset:
        """A dataset of ``files`` under the physical schema (see :meth:`_logical`)."""
        fmt = ds.ParquetFileFormat()
        fs = self._storage.arrow_filesystem()
        meta = self._state.metadata
        parts = partition_columns(meta.schema, meta.partition_by)
        paths = files.column("path").to_pylist()
        sizes = files.column("size_bytes").to_pylist()
        part_cols = [files.column(f"partition.{c}") for c in parts]
        fragments = []
        for i, (path, size) in enumerate(zip(paths, sizes)):
            expr = _partition_expression(parts, [col[i] for col in part_cols])
            fragments.append(fmt.make_fragment(self._storage.full_path(path), filesystem=fs,
                                               partition_expression=expr, file_size=size))
        return ds.FileSystemDataset(fragments, schema=self._columns.read_schema, format=fmt, filesystem=fs)

    def _scan_fragment(self, fragment: ds.Fragment, *, filter: pc.Expression | None = None,
                       columns: list[str] | None = None) -> pa.Table:
        """The rows of one fragment of :meth:`_dataset` where ``filter`` holds, under the table's names."""
        return self._logical(ds.Scanner.from_fragment(
            fragment, schema=self._columns.read_schema, filter=self._physical(filter),
            columns=self._physical_columns(columns)).to_table())

    def _count_fragment(self, fragment: ds.Fragment, filter: pc.Expression) -> int:
        """How many rows of one fragment of :meth:`_dataset` match ``filter`` (pushed into the scan)."""
        return ds.Scanner.from_fragment(fragment, schema=self._columns.read_schema,
                                        filter=self._physical(filter), columns=[]).count_rows()

    def to_pyarrow_dataset(self, *, filter: FilterLike | pc.Expression | None = None) -> ds.Dataset:
        """A lazy ``pyarrow.dataset.Dataset`` of this version's files (pruned by ``filter`` if given).

        A dataset reads the data files by column name, so after a column was renamed (or a dropped
        name re-added) it cannot show the table's columns: ``SchemaMismatchError`` naming the column
        (read with :meth:`to_batches` instead).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-ds", pa.table({"a": [1, 2]}))
            >>> t.snapshot().to_pyarrow_dataset().count_rows()
            2
        """
        if self._mapped:
            column = renamed_paths(self._state.metadata.schema)[0]
            raise SchemaMismatchError(
                f"column {column!r} is stored under another name in the data files (renamed or re-added), "
                f"which a pyarrow dataset cannot show; read with to_batches() or to_arrow()", column=column)
        return self._dataset(self._pruned(self._expression(filter)))

    def _scan_plan(self, columns: list[str] | None, expr: pc.Expression | None) -> _ScanPlan:
        """What to push into the Parquet scan and what to filter after reading.

        pyarrow's scan skips row groups by Parquet statistics, which ignore NaN: a row group whose
        min == max == 1.5 is dropped for ``f != 1.5`` although its NaN rows match. Terms on
        floating-point columns are therefore evaluated after reading, on the rows themselves.
        """
        if expr is None:
            return _ScanPlan(columns, None, None, columns)
        floats = {f.name for f in self.schema if pa.types.is_floating(f.type)}
        try:
            exact = not (referenced_columns(expr) & floats)
        except Exception:
            exact = False
        if exact:
            return _ScanPlan(columns, expr, None, columns)
        pushed: pc.Expression | None = None
        for term in conjuncts(expr):
            try:
                safe = not (referenced_columns(term) & floats)
            except Exception:
                safe = False
            if safe:
                pushed = term if pushed is None else pushed & term
        read = None if columns is None else columns + sorted(referenced_columns(expr) - set(columns))
        return _ScanPlan(read, pushed, expr, columns)

    def to_arrow(
        self, *, columns: Sequence[str] | None = None, filter: FilterLike | pc.Expression | None = None
    ) -> pa.Table:
        """Read this version into a ``pyarrow.Table``: rows where ``filter`` is true, ``columns`` only.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-arrow", pa.table({"a": [1, 2], "b": ["x", "y"]}))
            >>> t.snapshot().to_arrow(columns=["b"], filter=[("a", "=", 2)]).to_pylist()
            [{'b': 'y'}]
        """
        cols = self._check_columns(columns)
        expr = self._expression(filter)
        plan = self._scan_plan(cols, expr)
        try:
            table = self._dataset(self._pruned(expr)).to_table(columns=self._physical_columns(plan.read),
                                                               filter=self._physical(plan.pushed))
        except FileNotFoundError as exc:
            raise self._missing_file(exc) from None
        return plan.finish(self._logical(table))

    def _missing_file(self, exc: OSError) -> VersionNotFoundError:
        return VersionNotFoundError(f"a data file of version {self.version} is gone (removed by vacuum, or lost): "
                                    f"{exc}", version=self.version)

    def to_batches(
        self, *, columns: Sequence[str] | None = None, filter: FilterLike | pc.Expression | None = None
    ) -> pa.RecordBatchReader:
        """Stream this version as a ``pyarrow.RecordBatchReader`` (nothing is read up front).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-batches", pa.table({"a": [1, 2]}))
            >>> t.snapshot().to_batches().read_all().num_rows
            2
        """
        cols = self._check_columns(columns)
        expr = self._expression(filter)
        plan = self._scan_plan(cols, expr)
        reader = self._dataset(self._pruned(expr)).scanner(columns=self._physical_columns(plan.read),
                                                           filter=self._physical(plan.pushed)).to_reader()
        if plan.residual is None and not self._mapped:
            return reader
        first = plan.finish(self._logical(reader.schema.empty_table()))
        batches = (b for batch in reader for b in plan.finish(self._logical(pa.Table.from_batches([batch])))
                   .to_batches())
        return pa.RecordBatchReader.from_batches(first.schema, batches)

    def to_pandas(self, **kwargs: Any) -> Any:
        """Read into a pandas DataFrame (needs pandas); arguments as :meth:`to_arrow`."""
        return self.to_arrow(**kwargs).to_pandas()


@dataclass(frozen=True, slots=True)
class _Mapping:
    """What reading needs to know about a schema's column mapping (format.md §5.7)."""

    mapped: bool
    """Some physical name differs from its field's name."""
    read_schema: pa.Schema
    """The schema under physical names, for scanning the data files."""
    by_physical: dict[str, pa.Field]
    """Top-level physical name -> the field as users see it."""
    metadata: dict[bytes, bytes] | None
    """The schema-level metadata."""

    @classmethod
    def of(cls, schema: pa.Schema) -> _Mapping:
        logical = logical_schema(schema)
        return cls(mapped=not is_identity(schema), read_schema=read_schema(schema),
                   by_physical={physical_name(f): logical.field(i) for i, f in enumerate(schema)},
                   metadata=logical.metadata)


@dataclass(frozen=True, slots=True)
class _ScanPlan:
    read: list[str] | None
    """Columns to read (the wanted ones plus those the residual filter needs)."""
    pushed: pc.Expression | None
    """Filter pushed into the scan."""
    residual: pc.Expression | None
    """Filter applied to the rows after reading."""
    columns: list[str] | None
    """Columns to return."""

    def finish(self, table: pa.Table) -> pa.Table:
        if self.residual is not None:
            table = table.filter(self.residual)
        if self.columns is not None and table.column_names != self.columns:
            table = table.select(self.columns)
        return table


def _reopen(uri: str, version: int, storage_options: Mapping[str, Any]) -> Snapshot:
    storage = Storage.from_uri(uri, storage_options)
    return Snapshot(storage, load_state(storage, version))


def read_ahead(read: Callable[[Any], pa.Table], items: Sequence[Any]) -> Iterator[pa.RecordBatch]:
    """The batches of ``read(item)`` for each item in order, reading the next item on a thread while
    the current one is consumed (at most two tables in memory).

    Example:
        >>> sum(b.num_rows for b in read_ahead(lambda n: pa.table({"a": list(range(n))}), [1, 2]))
        3
    """
    if not items:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="lakehouse-read") as pool:
        ahead = pool.submit(read, items[0])
        for i in range(1, len(items) + 1):
            table = ahead.result()
            if i < len(items):
                ahead = pool.submit(read, items[i])
            yield from table.to_batches()

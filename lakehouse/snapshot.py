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
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .arguments import check_names, check_str
from .clock import from_ms
from .errors import (
    ColumnNotFoundError,
    InvalidArgumentError,
    InvalidFilterError,
    InvalidTableError,
    SchemaMismatchError,
    VersionNotFoundError,
)
from .expressions import (
    FilterLike,
    exact_integer_literals,
    files_mask,
    partition_verdicts,
    referenced_columns,
    to_expression,
)
from .replay import list_log, load_state, read_entries, read_entry, version_as_of
from .schema import (
    field_id,
    has_stats,
    is_legacy,
    logical_schema,
    physical_name,
    renamed_paths,
)
from .state import TableState
from .stats import partition_columns, stats_columns
from .storage import Storage
from .tasks import ColumnMapping as _Mapping
from .tasks import FileTask, build_tasks, scan_plan
from .tasks import ScanPlan as _ScanPlan

__all__ = ["Snapshot", "check_table_id", "list_log", "load_state", "read_ahead", "read_entries", "read_entry",
           "version_as_of"]

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
        return from_ms(self._state.timestamp)

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
        return self._state.app_version(check_str(app_id, "app_id", empty=True))

    def __repr__(self) -> str:
        return f"Snapshot(uri={self._storage.display_uri!r}, version={self.version})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self._storage.uri, self.version, dict(self._storage.storage_options),
                          self._state.metadata.table_id))

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
        return self._columns.physical(expr)

    def _physical_columns(self, columns: list[str] | None) -> list[str] | None:
        return self._columns.physical_columns(columns)

    def _logical(self, data: Any) -> Any:
        """A table or batch read under physical names, under the table's names (nested ones too)."""
        return self._columns.logical(data)

    def _pruned(self, expr: pc.Expression | None) -> pa.Table:
        """The files table rows that may hold rows where ``expr`` (over the table's columns) is true."""
        files = self._state.files
        if expr is None or files.num_rows == 0:
            return files
        meta = self._state.metadata
        mask = files_mask(self._physical(expr), files, partition_columns=partition_columns(meta.schema,
                          meta.partition_by), stats_columns=stats_columns(meta.schema, meta.partition_by))
        return files.filter(mask)

    def _whole_file_verdicts(self, expr: pc.Expression, files: pa.Table) -> pa.Array | None:
        """Per row of ``files``: is ``expr`` TRUE for every row of the file (True) or for none (False),
        decided exactly from the partition values; None when only reading the rows can tell
        (:func:`lakehouse.expressions.partition_verdicts`)."""
        meta = self._state.metadata
        return partition_verdicts(self._physical(expr), files,
                                  partition_columns=partition_columns(meta.schema, meta.partition_by))

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
        columns = check_names(columns, "columns")
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
        self._storage.check_contained(paths)  # local disk: no link out of the root (format §3.1)
        sizes = files.column("size_bytes").to_pylist()
        part_cols = [files.column(f"partition.{c}") for c in parts]
        fragments = []
        for i, (path, size) in enumerate(zip(paths, sizes)):
            expr = _partition_expression(parts, [col[i] for col in part_cols])
            fragments.append(fmt.make_fragment(self._storage.full_path(path), filesystem=fs,
                                               partition_expression=expr, file_size=size))
        return _NanSafeDataset(fragments, schema=self._columns.read_schema, format=fmt, filesystem=fs)

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
        return self._guarded_dataset(self._pruned(self._expression(filter)))

    def _scan_plan(self, columns: list[str] | None, expr: pc.Expression | None) -> _ScanPlan:
        """What to push into the scan and what to filter after reading (:func:`lakehouse.tasks.scan_plan`)."""
        return scan_plan(self.schema, columns, expr)

    def plan_files(self, *, filter: FilterLike | pc.Expression | None = None,
                   columns: Sequence[str] | None = None) -> list[FileTask]:
        """Plan a read as one picklable :class:`~lakehouse.tasks.FileTask` per data file pruning keeps.

        Pruning is the same as :meth:`to_arrow`'s (partition values and statistics); concatenating
        :func:`lakehouse.read_task` over the tasks gives the rows of ``to_arrow(columns=, filter=)``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-plan", pa.table({"a": [1, 2], "p": [1, 2]}), partition_by=["p"])
            >>> [task.partition_values for task in t.snapshot().plan_files(filter=[("p", ">", 1)])]
            [{'p': 2}]
        """
        cols = self._check_columns(columns)
        expr = self._expression(filter)
        return build_tasks(self._pruned(expr), storage=self._storage, metadata=self._state.metadata,
                           version=self.version, filter=expr, columns=cols)

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
        files = self._pruned(expr)
        try:
            table = self._dataset(files).to_table(columns=self._physical_columns(plan.read),
                                                  filter=self._physical(plan.pushed))
            return plan.finish(self._logical(table))
        except FileNotFoundError as exc:
            raise self._missing_file(exc) from None
        except pa.ArrowInvalid as exc:
            raise self._filter_error(exc, expr, files) from exc

    def _filter_error(self, exc: pa.ArrowInvalid, expr: pc.Expression | None, files: pa.Table) -> Exception:
        """``InvalidFilterError`` naming ``expr`` when ``exc`` came from evaluating it on the rows of
        ``files`` (e.g. ``add_checked`` overflowing), else ``exc`` itself (a read error)."""
        if expr is None:
            return exc
        try:  # read only the filter's columns, unfiltered, and evaluate the filter on them
            names = [n for n in self.schema.names if n in referenced_columns(expr)]
            scan = self._dataset(files).scanner(columns=self._physical_columns(names))
            batches = iter(scan.to_batches())
            while (batch := next(batches, None)) is not None:
                rows = self._logical(pa.Table.from_batches([batch], schema=scan.projected_schema))
                try:
                    rows.filter(expr)
                except pa.ArrowInvalid as error:
                    return InvalidFilterError(f"the filter {str(expr)[:200]} cannot be evaluated on the rows of "
                                              f"version {self.version}: {str(error).splitlines()[0]}")
        except Exception:
            return exc
        return exc

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
        files = self._pruned(expr)
        reader = self._dataset(files).scanner(columns=self._physical_columns(plan.read),
                                              filter=self._physical(plan.pushed)).to_reader()
        if expr is None and not self._mapped:
            return reader
        first = plan.finish(self._logical(reader.schema.empty_table()))

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for batch in reader:
                    yield from plan.finish(self._logical(pa.Table.from_batches([batch]))).to_batches()
            except pa.ArrowInvalid as exc:
                raise self._filter_error(exc, expr, files) from exc
        return pa.RecordBatchReader.from_batches(first.schema, batches())

    def to_pandas(self, **kwargs: Any) -> Any:
        """Read into a pandas DataFrame (needs the ``pandas`` extra); arguments as :meth:`to_arrow`.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-snap-pandas", pa.table({"a": [1, 2]}))
            >>> t.snapshot().to_pandas(filter=[("a", ">", 1)])["a"].tolist()  # doctest: +SKIP
            [2]
        """
        _require("pandas")
        return self.to_arrow(**kwargs).to_pandas()

    # -- ecosystem: the Arrow C stream interface, polars, duckdb --------------------------------
    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """A fresh Arrow C stream of this version's rows on every call (the Arrow PyCapsule interface),
        so ``polars.DataFrame(snapshot)``, ``pa.table(snapshot)`` and DuckDB read it directly.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-snap-stream", pa.table({"a": [1, 2]})).snapshot()
            >>> pa.table(s).num_rows, pa.table(s).num_rows
            (2, 2)
        """
        return self.to_batches().__arrow_c_stream__(requested_schema)

    def to_polars(self) -> Any:
        """A lazy ``polars.LazyFrame`` over :meth:`to_pyarrow_dataset` (needs the ``polars`` extra):
        polars pushes its filters and column selection into the scan, which skips whole files
        (except on a table with a timestamp column in a time zone other than UTC, where Polars'
        pushed filter would be wrong: there Polars filters the rows after the scan).

        Example:
            >>> import lakehouse as lh, pyarrow as pa, polars as pl  # doctest: +SKIP
            >>> t = lh.write_table("memory://doc-snap-polars", pa.table({"a": [1, 2]}))  # doctest: +SKIP
            >>> t.snapshot().to_polars().filter(pl.col("a") > 1).collect()["a"].to_list()  # doctest: +SKIP
            [2]
        """
        pl = _require("polars")
        # Polars turns a comparison with a zoned datetime into a pyarrow filter that is wrong on a
        # column with a time zone other than UTC (rows lost around DST changes): on such a table
        # Polars filters the rows itself, after the scan, and no file is skipped by its filter
        zoned = any(pa.types.is_timestamp(t) and t.tz not in (None, "UTC", "Etc/UTC", "+00:00")
                    for t in _leaf_types(self.schema))
        return pl.scan_pyarrow_dataset(self.to_pyarrow_dataset(), allow_pyarrow_filter=not zoned)

    def to_duckdb(self, name: str, connection: Any = None) -> Any:
        """Register :meth:`to_pyarrow_dataset` (lazy: nothing is read now) as the view ``name`` in
        ``connection`` (a new in-memory DuckDB connection if None) and return the connection
        (needs the ``duckdb`` extra). DuckDB pushes its filters and projections into the scan.

        Example:
            >>> import lakehouse as lh, pyarrow as pa  # doctest: +SKIP
            >>> t = lh.write_table("memory://doc-snap-duckdb", pa.table({"a": [1, 2]}))  # doctest: +SKIP
            >>> t.snapshot().to_duckdb("events").sql("select sum(a) from events").fetchall()  # doctest: +SKIP
            [(3,)]
        """
        duckdb = _require("duckdb")
        con = duckdb.connect() if connection is None else connection
        try:
            con.register(check_str(name, "name"), self.to_pyarrow_dataset())
        except duckdb.Error as exc:
            raise InvalidArgumentError(f"DuckDB refuses the view name {name!r}: {exc}", argument="name") from exc
        return con

    def _guarded_dataset(self, files: pa.Table) -> ds.FileSystemDataset:
        """:meth:`_dataset` whose fragments' partition expressions also carry each file's min/max
        (null-aware) per data column, so engines scanning the dataset skip files by themselves."""
        dataset = self._dataset(files)
        guards = _stats_guards(files, self._state.metadata)
        if not any(g is not None for g in guards):
            return dataset
        fragments = []
        sizes = files.column("size_bytes").to_pylist()
        for fragment, guard, size in zip(dataset.get_fragments(), guards, sizes):
            expr = fragment.partition_expression
            if guard is not None:
                expr = expr & guard if self._state.metadata.partition_by else guard
            fragments.append(dataset.format.make_fragment(fragment.path, filesystem=dataset.filesystem,
                                                          partition_expression=expr, file_size=size))
        return _NanSafeDataset(fragments, schema=dataset.schema, format=dataset.format,
                               filesystem=dataset.filesystem)


class _NanSafeDataset(ds.FileSystemDataset):
    """A pyarrow dataset whose scans never let pyarrow decide a floating-point term by Parquet statistics.

    pyarrow skips row groups by their Parquet min/max, which leave NaN out, and it folds comparisons
    with a NaN literal wrongly against them (``~(f < NaN)`` read no row of a file whose rows all
    match). Every scan of this dataset (``to_table``, ``to_batches``, ``count_rows``, ``head``,
    ``scanner``; Polars and DuckDB scan through them) pushes only the conjuncts of its filter that
    name no floating-point column and evaluates the whole filter on the rows read
    (:func:`lakehouse.tasks.scan_plan`). Such a scan is a one-shot scanner over the filtered batches.
    """

    _lh_filter: pc.Expression | None = None  # set by filter(): kept here, not in pyarrow's scan options

    def __reduce__(self) -> tuple[Any, ...]:
        _, args = super().__reduce__()
        return (_nan_safe_dataset, (args, self._lh_filter))

    def filter(self, expression: pc.Expression) -> _NanSafeDataset:
        """As :meth:`pyarrow.dataset.Dataset.filter`: a dataset whose scans also apply ``expression``."""
        out = _NanSafeDataset(list(self.get_fragments()), schema=self.schema, format=self.format,
                              filesystem=self.filesystem)
        out._lh_filter = expression if self._lh_filter is None else self._lh_filter & expression
        return out

    def scanner(self, columns: Any = None, filter: pc.Expression | None = None, **kwargs: Any) -> ds.Scanner:
        """As :meth:`pyarrow.dataset.Dataset.scanner`, with terms on floating-point columns evaluated on rows."""
        if self._lh_filter is not None:
            filter = self._lh_filter if filter is None else self._lh_filter & filter
        if filter is not None:  # Polars pushes `u < 5` with an int64 literal: compare integers exactly
            filter = exact_integer_literals(filter, self.schema)
        named = list(columns) if isinstance(columns, list | tuple) else None
        plan = scan_plan(self.schema, named, filter) if filter is not None else None
        if plan is None or plan.residual is None:
            return super().scanner(columns=columns, filter=filter, **kwargs)
        read = plan.read if isinstance(columns, list | tuple) or columns is None else None
        base = super().scanner(columns=read, filter=plan.pushed, **kwargs)
        project = _projection(columns, base.projected_schema)
        schema = project(base.projected_schema.empty_table().filter(plan.residual)).schema

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in base.to_batches():
                yield from project(pa.Table.from_batches([batch]).filter(plan.residual)).to_batches()

        return ds.Scanner.from_batches(batches(), schema=schema)


def _leaf_types(schema: pa.Schema) -> Iterator[pa.DataType]:
    """Every type in ``schema``, nested ones included."""
    stack = [f.type for f in schema]
    while stack:
        t = stack.pop()
        yield t
        stack.extend(t.field(i).type for i in range(t.num_fields))


def _nan_safe_dataset(args: tuple[Any, ...], filter: pc.Expression | None) -> _NanSafeDataset:
    """Unpickle a :class:`_NanSafeDataset`."""
    out = _NanSafeDataset(*args)
    out._lh_filter = filter
    return out


def _projection(columns: Any, schema: pa.Schema) -> Callable[[pa.Table], pa.Table]:
    """The projection of a scan's ``columns`` argument (None, names, or names -> expressions)."""
    if columns is None:
        return lambda table: table
    if isinstance(columns, dict):
        import pyarrow.acero as acero

        def evaluate(table: pa.Table) -> pa.Table:
            return acero.Declaration.from_sequence([
                acero.Declaration("table_source", acero.TableSourceNodeOptions(table)),
                acero.Declaration("project", acero.ProjectNodeOptions(list(columns.values()), list(columns))),
            ]).to_table(use_threads=False)
        return evaluate
    names = list(columns)
    return lambda table: table.select(names)


def _reopen(uri: str, version: int, storage_options: Mapping[str, Any], table_id: str | None = None) -> Snapshot:
    storage = Storage.from_uri(uri, storage_options)
    return Snapshot(storage, check_table_id(storage, load_state(storage, version), table_id))


def check_table_id(storage: Storage, state: TableState, table_id: str | None) -> TableState:
    """``state`` if its table is the one with id ``table_id`` (None: any), for a handle reopened
    from a pickle: the URI may now hold another table (deleted and created again, or another
    folder reached through a changed working directory).

    Args:
        storage: where ``state`` was read.
        state: the state read there.
        table_id: the table id the pickled handle had.

    Returns:
        ``state``.

    Raises:
        InvalidTableError: the table there has another id.
    """
    found = state.metadata.table_id
    if table_id is not None and found != table_id:
        raise InvalidTableError(
            f"the table at {storage.display_uri!r} (id {found!r}) is not the table this handle was "
            f"pickled from (id {table_id!r}); open it again to use the table there")
    return state


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


def _stats_guard(column: pc.Expression, low: pa.Scalar, high: pa.Scalar, nulls: int | None,
                 rows: int) -> pc.Expression | None:
    """What one file's statistics guarantee about every row of ``column`` (None: nothing known).

    Never excludes a row that exists: a file that may hold nulls (``nulls`` > 0 or unknown) also
    allows null. Only for ordered, non-floating-point columns (NaN is outside min/max).

    Example:
        >>> a = pc.field("a")
        >>> str(_stats_guard(a, pa.scalar(1), pa.scalar(5), 0, 3))
        '((a >= 1) and (a <= 5))'
        >>> str(_stats_guard(a, pa.scalar(1), pa.scalar(5), None, 3))
        '(((a >= 1) or is_null(a, {nan_is_null=false})) and ((a <= 5) or is_null(a, {nan_is_null=false})))'
        >>> str(_stats_guard(a, pa.scalar(None, pa.int64()), pa.scalar(None, pa.int64()), 2, 2))
        'is_null(a, {nan_is_null=false})'
    """
    if nulls is not None and nulls >= rows:
        return column.is_null()
    if not low.is_valid or not high.is_valid:
        return None
    if nulls == 0:
        return (column >= low) & (column <= high)
    # one nullable inequality per conjunct: the form pyarrow's guarantee simplification understands
    return ((column >= low) | column.is_null()) & ((column <= high) | column.is_null())


def _stats_guards(files: pa.Table, meta: Any) -> list[pc.Expression | None]:
    """Per row of ``files``, the conjunction of :func:`_stats_guard` over the stats columns (by
    physical name: the names a scan of the data files uses), floating-point columns left out."""
    guards: list[pc.Expression | None] = [None] * files.num_rows
    rows = files.column("num_rows").to_pylist()
    names = set(files.column_names)
    for field in meta.schema:
        c = physical_name(field)
        if (field.name in meta.partition_by or not has_stats(field.type) or pa.types.is_floating(field.type)
                or not {f"min.{c}", f"max.{c}", f"null_count.{c}"} <= names):
            continue
        lows, highs = files.column(f"min.{c}"), files.column(f"max.{c}")
        nulls = files.column(f"null_count.{c}").to_pylist()
        for i in range(files.num_rows):
            term = _stats_guard(pc.field(c), lows[i], highs[i], nulls[i], rows[i])
            if term is not None:
                guards[i] = term if guards[i] is None else guards[i] & term
    return guards


def _require(module: str) -> Any:
    """Import an optional dependency, or ``ImportError`` naming the extra that installs it.

    Example:
        >>> _require("pyarrow").__name__
        'pyarrow'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"this needs {module}: pip install 'lakehouse-format[{module}]'") from exc

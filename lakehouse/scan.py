"""Scanning: everything between a pinned table state and rows.

A :class:`Scan` binds a state (one version's metadata and files table) to its storage and does
what every read needs: the column mapping of format.md §5.7 (:class:`ColumnMapping`; data files and
the files table use physical names, users see current names), pruning the files table by
partition values and statistics (:meth:`Scan.pruned`), splitting a filter into what a Parquet scan
may push down and what is evaluated on the rows read (:func:`scan_plan`), and the datasets that
read the data files (:meth:`Scan.dataset`). Distributed engines get the same read as picklable
:class:`FileTask` values (:func:`build_tasks`) read anywhere by :func:`read_task`.

Where every read meets the data files: each reader reaches them through ONE method,
:meth:`TableDataset.scanner`. ``Snapshot.to_arrow`` (and so ``to_pandas``) and
``Snapshot.to_batches`` (and so the Arrow PyCapsule stream) scan :meth:`Scan.dataset`;
``to_pyarrow_dataset`` (and so Polars, DuckDB) hands out :meth:`Scan.dataset` with statistics
guards, whose ``to_table``/``to_batches``/``count_rows``/``head`` pyarrow routes through
``scanner``; :meth:`Scan.scan_fragment` / :meth:`Scan.count_fragment` (deletes, optimize) and
:func:`read_task` (Dask, any engine running :class:`FileTask` values) scan a one-file
:class:`TableDataset`. Row-level work that must happen for every reader, such as applying a data
file's deletion vector, belongs in :meth:`TableDataset.scanner` and nowhere else: there a file with
a vector is read in order, unfiltered, its deleted positions dropped (:mod:`lakehouse.dv_read`), and
the filter applied to the rows left; files without one keep pushdown and row-group skipping.

Example:
    >>> import lakehouse as lh, pyarrow as pa, pickle
    >>> t = lh.write_table("memory://doc-scan", pa.table({"a": [1, 2, 3], "p": [1, 1, 2]}), partition_by=["p"])
    >>> tasks = t.snapshot().plan_files(filter=[("p", "=", 1)])
    >>> [task.partition_values for task in tasks]
    [{'p': 1}]
    >>> lh.read_task(pickle.loads(pickle.dumps(tasks[0]))).column("a").to_pylist()
    [1, 2]
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .arguments import check_names, check_str
from .datafile import logical_names, named_stats
from .dv_read import VectorSet, kept_batches
from .errors import (
    ArgumentTypeError,
    ColumnNotFoundError,
    InvalidArgumentError,
    InvalidFilterError,
    SchemaMismatchError,
    VersionNotFoundError,
)
from .expr.bridge import exact_integer_literals, referenced_columns, rename_fields
from .expr.codec import decode_expression, encode_expression
from .expr.dnf import FilterLike, to_expression
from .expr.prune import conjuncts, files_mask, partition_verdicts
from .log import DeletionVectorDescriptor, Metadata
from .schema import (
    decode_values,
    has_stats,
    is_identity,
    logical_schema,
    physical_name,
    physical_path,
    read_schema,
    relabel,
    renamed_paths,
)
from .state import TableState, files_to_adds, vector_descriptors
from .stats import partition_columns, stats_columns
from .storage import Storage

__all__ = ["ColumnMapping", "FileTask", "Scan", "ScanPlan", "TableDataset", "build_tasks", "read_ahead",
           "read_task", "scan_plan"]


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
    num_deleted_rows: int = 0
    """The rows of the file its deletion vector deletes (0: none); :func:`read_task` never returns
    them. ``num_rows`` stays the file's physical row count."""
    deletion_vector: DeletionVectorDescriptor | None = field(default=None, repr=False)
    """Where the file's deletion vector is (format §5.8), None without one."""


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

    Args:
        schema: the table's (logical) schema.
        columns: the columns to return (None: all).
        expr: the bound filter (None: every row).

    Returns:
        The :class:`ScanPlan`: columns to read, filter to push, residual filter, columns to return.

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


class Scan:
    """The scan machinery of one pinned state: column mapping, pruning, datasets, reads.

    Arguments are taken as already checked: ``columns`` names of the table's columns
    (:meth:`check_columns`), filters bound expressions over the table's column names
    (:meth:`expression`). ``Snapshot``'s public verbs check them, then delegate here.

    Args:
        storage: where the table lives.
        state: the pinned state (its files table is the set of files scanned).

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-scan-class", pa.table({"a": [1, 2, 3]}))
        >>> scan = Scan(t._storage, t._state)
        >>> scan.to_table(["a"], scan.expression([("a", ">", 1)])).column("a").to_pylist()
        [2, 3]
    """

    __slots__ = ("_mapping", "_vectors", "state", "storage")

    def __init__(self, storage: Storage, state: TableState) -> None:
        self.storage = storage
        self.state = state
        self._mapping: ColumnMapping | None = None
        self._vectors: VectorSet | None = None

    @property
    def schema(self) -> pa.Schema:
        """The table schema as users see it (no column-mapping metadata)."""
        return logical_schema(self.state.metadata.schema)

    @property
    def columns(self) -> ColumnMapping:
        """The column mapping of the state's schema (computed once)."""
        if self._mapping is None:
            self._mapping = ColumnMapping.of(self.state.metadata.schema)
        return self._mapping

    @property
    def mapped(self) -> bool:
        """True if some column's physical name differs from its name (after a rename)."""
        return self.columns.mapped

    # -- arguments ----------------------------------------------------------------------------------
    def expression(self, filter: FilterLike | pc.Expression | None) -> pc.Expression | None:
        """A user filter as a bound expression over the table's columns (:func:`lakehouse.expr.dnf.to_expression`).

        Raises:
            ColumnNotFoundError: the filter names an unknown column.
            InvalidFilterError: the filter is malformed or does not fit the columns' types.
        """
        return to_expression(filter, self.schema)

    def check_columns(self, columns: Sequence[str] | None) -> list[str] | None:
        """``columns`` as a list of the table's column names (None: all).

        Raises:
            ArgumentTypeError: ``columns`` is not a sequence of names.
            ColumnNotFoundError: a name is not a column of the table.
        """
        columns = check_names(columns, "columns")
        if columns is None:
            return None
        names = self.schema.names
        for c in columns:
            if c not in names:
                raise ColumnNotFoundError(c, available=names)
        return list(columns)

    # -- column mapping (format.md §5.7) ----------------------------------------------------------
    def physical(self, expr: pc.Expression | None) -> pc.Expression | None:
        """A filter over the table's columns as a filter over the data files' (physical) columns."""
        return self.columns.physical(expr)

    def physical_columns(self, columns: list[str] | None) -> list[str] | None:
        """Column names as the data files name them."""
        return self.columns.physical_columns(columns)

    def logical(self, data: Any) -> Any:
        """A table or batch read under physical names, under the table's names (nested ones too)."""
        return self.columns.logical(data)

    # -- pruning the files table --------------------------------------------------------------------
    def pruned(self, expr: pc.Expression | None) -> pa.Table:
        """The files table rows that may hold rows where ``expr`` (over the table's columns) is true.

        Args:
            expr: a bound filter, or None (every live file).

        Returns:
            The rows of the state's files table (physical column names) pruning keeps.
        """
        files = self.state.files
        if expr is None or files.num_rows == 0:
            return files
        meta = self.state.metadata
        mask = files_mask(self.physical(expr), files, partition_columns=partition_columns(meta.schema,
                          meta.partition_by), stats_columns=stats_columns(meta.schema, meta.partition_by))
        return files.filter(mask)

    def whole_file_verdicts(self, expr: pc.Expression, files: pa.Table) -> pa.Array | None:
        """Per row of ``files``: is ``expr`` TRUE for every row of the file (True) or for none (False),
        decided exactly from the partition values; None when only reading the rows can tell
        (:func:`lakehouse.expr.prune.partition_verdicts`)."""
        meta = self.state.metadata
        return partition_verdicts(self.physical(expr), files,
                                  partition_columns=partition_columns(meta.schema, meta.partition_by))

    def logical_files(self, files: pa.Table) -> pa.Table:
        """The files table with ``partition.<c>``, ``min.<c>``, ... named by column name, not physical name."""
        if not self.mapped:
            return files
        names = logical_names(self.state.metadata.schema)
        out = []
        for name in files.column_names:
            kind, _, column = name.partition(".")
            out.append(f"{kind}.{names[column]}" if column in names else name)
        return files.rename_columns(out)

    # -- deletion vectors (format §5.8) ---------------------------------------------------------------
    def vectors(self, files: pa.Table | None = None) -> VectorSet:
        """The deletion vectors of ``files`` (rows of the files table; None: every live file), keyed
        by the full path their fragments have; empty when no file has one (no I/O: loaded on use)."""
        if files is None:
            if self._vectors is None:
                self._vectors = _vector_set(self.storage, self.state.files)
            return self._vectors
        return _vector_set(self.storage, files)

    # -- datasets -------------------------------------------------------------------------------------
    def dataset(self, files: pa.Table, *, guards: bool = False) -> TableDataset:
        """A dataset of ``files`` (rows of the files table) under the physical schema (see :meth:`logical`).

        Args:
            files: the files to scan.
            guards: also put each file's min/max (null-aware) per data column into its fragment's
                partition expression, so engines scanning the dataset skip files by themselves.

        Returns:
            A :class:`TableDataset`, one fragment per row of ``files``, in order.

        Raises:
            UnsafePathError: on local disk, a path leads out of the table root.
        """
        fmt = ds.ParquetFileFormat()
        fs = self.storage.arrow_filesystem()
        meta = self.state.metadata
        parts = partition_columns(meta.schema, meta.partition_by)
        paths = files.column("path").to_pylist()
        self.storage.check_contained(paths)  # local disk: no link out of the root (format §3.1)
        sizes = files.column("size_bytes").to_pylist()
        part_cols = [files.column(f"partition.{c}") for c in parts]
        stats = _stats_guards(files, meta) if guards else [None] * len(paths)
        fragments = []
        for i, (path, size, guard) in enumerate(zip(paths, sizes, stats)):
            expr = _partition_expression(parts, [col[i] for col in part_cols])
            if guard is not None:
                expr = expr & guard if parts else guard
            fragments.append(fmt.make_fragment(self.storage.full_path(path), filesystem=fs,
                                               partition_expression=expr, file_size=size))
        out = TableDataset(fragments, schema=self.columns.read_schema, format=fmt, filesystem=fs)
        out._lh_vectors = self.vectors(files) or None
        return out

    def pyarrow_dataset(self, expr: pc.Expression | None) -> TableDataset:
        """The guarded dataset of the files ``expr`` may match, for engines (``Snapshot.to_pyarrow_dataset``).

        Raises:
            SchemaMismatchError: a column is stored under another name in the data files (renamed or
                re-added), which a pyarrow dataset cannot show.
        """
        if self.mapped:
            column = renamed_paths(self.state.metadata.schema)[0]
            raise SchemaMismatchError(
                f"column {column!r} is stored under another name in the data files (renamed or re-added), "
                f"which a pyarrow dataset cannot show; read with to_batches() or to_arrow()", column=column)
        return self.dataset(self.pruned(expr), guards=True)

    def _one(self, fragment: ds.Fragment) -> TableDataset:
        out = TableDataset([fragment], schema=self.columns.read_schema, format=fragment.format,
                           filesystem=fragment.filesystem)
        vectors = self.vectors()
        out._lh_vectors = vectors.subset([fragment.path]) if fragment.path in vectors else None
        return out

    def scan_fragment(self, fragment: ds.Fragment, *, filter: pc.Expression | None = None,
                      columns: list[str] | None = None) -> pa.Table:
        """The rows of one fragment of :meth:`dataset` where ``filter`` holds, under the table's names.

        Args:
            fragment: a fragment of :meth:`dataset`.
            filter: pushed into the scan (over the table's columns), or None.
            columns: the columns to read (None: all).
        """
        return self.logical(self._one(fragment).to_table(columns=self.physical_columns(columns),
                                                         filter=self.physical(filter)))

    def count_fragment(self, fragment: ds.Fragment, filter: pc.Expression) -> int:
        """How many rows of one fragment of :meth:`dataset` match ``filter`` (pushed into the scan; live
        rows only: a row its deletion vector deletes is not counted)."""
        return self._one(fragment).count_rows(filter=self.physical(filter))

    # -- reads ------------------------------------------------------------------------------------------
    def plan(self, columns: list[str] | None, expr: pc.Expression | None) -> ScanPlan:
        """What to push into the scan and what to filter after reading (:func:`scan_plan`)."""
        return scan_plan(self.schema, columns, expr)

    def to_table(self, columns: list[str] | None, expr: pc.Expression | None) -> pa.Table:
        """The rows where ``expr`` is true, ``columns`` only (``Snapshot.to_arrow``).

        Raises:
            VersionNotFoundError: a data file is gone (vacuumed or lost).
            InvalidFilterError: the filter cannot be evaluated on the rows (e.g. an overflow).
        """
        plan = self.plan(columns, expr)
        files = self.pruned(expr)
        try:
            table = self.dataset(files).to_table(columns=self.physical_columns(plan.read),
                                                 filter=self.physical(plan.pushed))
            return plan.finish(self.logical(table))
        except FileNotFoundError as exc:
            raise self._missing_file(exc) from None
        except pa.ArrowInvalid as exc:
            raise self._filter_error(exc, expr, files) from exc

    def to_batches(self, columns: list[str] | None, expr: pc.Expression | None) -> pa.RecordBatchReader:
        """Stream the rows where ``expr`` is true, ``columns`` only (``Snapshot.to_batches``).

        Raises:
            InvalidFilterError: while streaming, the filter cannot be evaluated on the rows.
        """
        plan = self.plan(columns, expr)
        files = self.pruned(expr)
        reader = self.dataset(files).scanner(columns=self.physical_columns(plan.read),
                                             filter=self.physical(plan.pushed)).to_reader()
        if expr is None and not self.mapped:
            return reader
        first = plan.finish(self.logical(reader.schema.empty_table()))

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for batch in reader:
                    yield from plan.finish(self.logical(pa.Table.from_batches([batch]))).to_batches()
            except pa.ArrowInvalid as exc:
                raise self._filter_error(exc, expr, files) from exc
        return pa.RecordBatchReader.from_batches(first.schema, batches())

    def tasks(self, columns: list[str] | None, expr: pc.Expression | None) -> list[FileTask]:
        """One :class:`FileTask` per file pruning keeps (``Snapshot.plan_files``; :func:`build_tasks`)."""
        return build_tasks(self.pruned(expr), storage=self.storage, metadata=self.state.metadata,
                           version=self.state.version, filter=expr, columns=columns)

    def _filter_error(self, exc: pa.ArrowInvalid, expr: pc.Expression | None, files: pa.Table) -> Exception:
        """``InvalidFilterError`` naming ``expr`` when ``exc`` came from evaluating it on the rows of
        ``files`` (e.g. ``add_checked`` overflowing), else ``exc`` itself (a read error)."""
        if expr is None:
            return exc
        try:  # read only the filter's columns, unfiltered, and evaluate the filter on them
            names = [n for n in self.schema.names if n in referenced_columns(expr)]
            scan = self.dataset(files).scanner(columns=self.physical_columns(names))
            batches = iter(scan.to_batches())
            while (batch := next(batches, None)) is not None:
                rows = self.logical(pa.Table.from_batches([batch], schema=scan.projected_schema))
                try:
                    rows.filter(expr)
                except pa.ArrowInvalid as error:
                    return InvalidFilterError(f"the filter {str(expr)[:200]} cannot be evaluated on the rows of "
                                              f"version {self.state.version}: {str(error).splitlines()[0]}")
        except Exception:
            return exc
        return exc

    def _missing_file(self, exc: OSError) -> VersionNotFoundError:
        version = self.state.version
        return VersionNotFoundError(f"a data file of version {version} is gone (removed by vacuum, or lost): "
                                    f"{exc}", version=version)


class TableDataset(ds.FileSystemDataset):
    """The dataset every read of data files goes through; its :meth:`scanner` is the one place where
    a file's rows are read (see the module docstring: deletion vectors are applied there).

    It never lets pyarrow decide a floating-point term by Parquet statistics: pyarrow skips row
    groups by their Parquet min/max, which leave NaN out, and it folds comparisons with a NaN literal
    wrongly against them (``~(f < NaN)`` read no row of a file whose rows all match). Every scan of
    this dataset (``to_table``, ``to_batches``, ``count_rows``, ``head``, ``scanner``; Polars and
    DuckDB scan through them) pushes only the conjuncts of its filter that name no floating-point
    column and evaluates the whole filter on the rows read (:func:`scan_plan`). Such a scan is a
    one-shot scanner over the filtered batches.
    """

    _lh_filter: pc.Expression | None = None  # set by filter(): kept here, not in pyarrow's scan options
    _lh_vectors: VectorSet | None = None  # the deletion vectors of its files that have one (None: none has)

    def __reduce__(self) -> tuple[Any, ...]:
        _, args = super().__reduce__()
        return (_table_dataset, (args, self._lh_filter, self._lh_vectors))

    def _sub(self, fragments: list[ds.Fragment]) -> TableDataset:
        """A dataset of some of its fragments (same filter, their vectors)."""
        out = TableDataset(fragments, schema=self.schema, format=self.format, filesystem=self.filesystem)
        out._lh_filter = self._lh_filter
        if self._lh_vectors:
            out._lh_vectors = self._lh_vectors.subset(f.path for f in fragments) or None
        return out

    def filter(self, expression: pc.Expression) -> TableDataset:
        """As :meth:`pyarrow.dataset.Dataset.filter`: a dataset whose scans also apply ``expression``."""
        out = self._sub(list(self.get_fragments()))
        out._lh_filter = expression if self._lh_filter is None else self._lh_filter & expression
        return out

    def count_rows(self, filter: pc.Expression | None = None, **kwargs: Any) -> int:
        """As :meth:`pyarrow.dataset.Dataset.count_rows`; live rows only (deleted rows are not counted).

        Without a filter, a file with a deletion vector is counted from the files table (no read).
        """
        vectors = self._lh_vectors
        if not vectors:
            return super().count_rows(filter=filter, **kwargs)
        if filter is None and self._lh_filter is None:
            fragments = list(self.get_fragments())
            plain = [f for f in fragments if f.path not in vectors]
            count = self._sub(plain).count_rows(**kwargs) if plain else 0
            return count + sum(vectors.live_rows(f.path) for f in fragments if f.path in vectors)
        wanted = filter if self._lh_filter is None else self._lh_filter if filter is None else self._lh_filter & filter
        names = [n for n in self.schema.names if n in referenced_columns(wanted)]
        return self.scanner(columns=names, filter=filter, **kwargs).count_rows()

    def scanner(self, columns: Any = None, filter: pc.Expression | None = None, **kwargs: Any) -> ds.Scanner:
        """As :meth:`pyarrow.dataset.Dataset.scanner`, with terms on floating-point columns evaluated on rows.

        Args:
            columns: None, a list of column names, or a dict of name -> expression (as pyarrow's).
            filter: a filter over the dataset's (physical) columns, or None.
            **kwargs: passed to pyarrow's scanner.

        Returns:
            A ``pyarrow.dataset.Scanner``.
        """
        if self._lh_filter is not None:
            filter = self._lh_filter if filter is None else self._lh_filter & filter
        if filter is not None:  # Polars pushes `u < 5` with an int64 literal: compare integers exactly
            filter = exact_integer_literals(filter, self.schema)
        if self._lh_vectors:
            return self._vector_scanner(columns, filter, kwargs)
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


    def _vector_scanner(self, columns: Any, filter: pc.Expression | None, kwargs: dict[str, Any]) -> ds.Scanner:
        """The scanner of a dataset where some files have deletion vectors: runs of files without one
        are scanned as before (filter pushed, files and row groups skipped); a file with one is read
        whole in file order (the columns returned and those the filter needs), its deleted positions
        dropped, and then the filter evaluated on the rows left. Rows come in fragment order."""
        vectors = self._lh_vectors
        assert vectors
        fragments = list(self.get_fragments())
        pushed = scan_plan(self.schema, None, filter).pushed if filter is not None else None
        if pushed is not None:  # a file with a vector is read whole: skip it if its guarantee rules it out
            possible = {f.path for f in super().get_fragments(filter=pushed)}
            fragments = [f for f in fragments if f.path not in vectors or f.path in possible]
        runs: list[tuple[bool, list[ds.Fragment]]] = []  # consecutive files without / with a vector
        for fragment in fragments:
            marked = fragment.path in vectors
            if runs and runs[-1][0] == marked:
                runs[-1][1].append(fragment)
            else:
                runs.append((marked, [fragment]))
        plain = TableDataset([], schema=self.schema, format=self.format, filesystem=self.filesystem)
        schema = plain.scanner(columns=columns, filter=filter, **kwargs).projected_schema
        if isinstance(columns, list | tuple):
            read: list[str] | None = list(columns)
            if filter is not None:
                read = [*columns, *sorted(referenced_columns(filter) - set(columns))]
        else:
            read = None  # all columns, then the projection (None or name -> expression)
        project = _projection(columns, schema)
        options = {k: v for k, v in kwargs.items() if k not in ("columns", "filter")}

        def marked_batches(run: list[ds.Fragment], keeps: dict[str, pa.BooleanArray]) -> Iterator[pa.RecordBatch]:
            sub = TableDataset(run, schema=self.schema, format=self.format, filesystem=self.filesystem)
            # no filter: every row of every file, each file's batches in order (files read ahead)
            tagged = ds.FileSystemDataset.scanner(sub, columns=read, **options).scan_batches()
            for batch in kept_batches(((t.fragment.path, t.record_batch) for t in tagged), keeps):
                rows = pa.Table.from_batches([batch])
                if filter is not None:
                    rows = rows.filter(filter)
                if rows.num_rows:
                    yield from project(rows).to_batches()

        def batches() -> Iterator[pa.RecordBatch]:
            loaded = vectors.load(f.path for f in fragments if f.path in vectors)
            for marked, run in runs:
                if not marked:  # (``filter`` already holds the dataset's own filter)
                    sub = TableDataset(run, schema=self.schema, format=self.format, filesystem=self.filesystem)
                    yield from sub.scanner(columns=columns, filter=filter, **kwargs).to_batches()
                    continue
                yield from marked_batches(run, {f.path: loaded[f.path].mask(vectors.num_rows(f.path), arrow=True)
                                                for f in run})

        return ds.Scanner.from_batches(batches(), schema=schema)


def _table_dataset(args: tuple[Any, ...], filter: pc.Expression | None,
                   vectors: VectorSet | None = None) -> TableDataset:
    """Unpickle a :class:`TableDataset`."""
    out = TableDataset(*args)
    out._lh_filter = filter
    out._lh_vectors = vectors
    return out


def _vector_set(storage: Storage, files: pa.Table) -> VectorSet:
    """The deletion vectors of the rows of ``files`` that have one, by full path (empty: none has)."""
    if files.num_rows == 0 or "num_deleted_rows" not in files.column_names:
        return VectorSet(storage, {})
    deleted = files.column("num_deleted_rows")
    if not pc.max(deleted).as_py():
        return VectorSet(storage, {})
    marked = files.filter(pc.greater(deleted, 0))
    return VectorSet(storage, {storage.full_path(p): (d, n) for p, n, d in zip(
        marked.column("path").to_pylist(), marked.column("num_rows").to_pylist(), vector_descriptors(marked))
        if d is not None})


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


def _partition_expression(names: Sequence[str], values: Sequence[pa.Scalar]) -> pc.Expression:
    """The guarantee a file's partition values give: ``name == value`` (or ``is_null``) per column."""
    expr: pc.Expression | None = None
    for name, value in zip(names, values):
        term = pc.field(name).is_null() if not value.is_valid else pc.field(name) == value
        expr = term if expr is None else expr & term
    return expr if expr is not None else pc.scalar(True)


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


def _stats_guards(files: pa.Table, meta: Metadata) -> list[pc.Expression | None]:
    """Per row of ``files``, the conjunction of :func:`_stats_guard` over the stats columns (by
    physical name: the names a scan of the data files uses), floating-point columns left out."""
    guards: list[pc.Expression | None] = [None] * files.num_rows
    rows = files.column("num_rows").to_pylist()
    names = set(files.column_names)
    for field_ in meta.schema:
        c = physical_name(field_)
        if (field_.name in meta.partition_by or not has_stats(field_.type) or pa.types.is_floating(field_.type)
                or not {f"min.{c}", f"max.{c}", f"null_count.{c}"} <= names):
            continue
        lows, highs = files.column(f"min.{c}"), files.column(f"max.{c}")
        nulls = files.column(f"null_count.{c}").to_pylist()
        for i in range(files.num_rows):
            term = _stats_guard(pc.field(c), lows[i], highs[i], nulls[i], rows[i])
            if term is not None:
                guards[i] = term if guards[i] is None else guards[i] & term
    return guards


def read_ahead(read: Callable[[Any], pa.Table], items: Sequence[Any]) -> Iterator[pa.RecordBatch]:
    """The batches of ``read(item)`` for each item in order, reading the next item on a thread while
    the current one is consumed (at most two tables in memory).

    Args:
        read: reads one item into a table (e.g. :meth:`Scan.scan_fragment`).
        items: what to read, in order.

    Returns:
        An iterator over the batches of every item's table, in order.

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
        >>> t = lh.write_table("memory://doc-build-tasks", pa.table({"a": [1, 2]}))
        >>> [task.num_rows for task in build_tasks(t._state.files, storage=t._storage,
        ...     metadata=t._state.metadata, version=0, filter=None, columns=None)]
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
    partition_by = list(task.partition_values)
    mapping = ColumnMapping.of(schema)
    plan = scan_plan(logical_schema(schema), columns, expr)
    storage = Storage.from_uri(task.uri, storage_options)
    fmt = ds.ParquetFileFormat()
    fs = storage.arrow_filesystem()
    values = [decode_values([task.partition_values[n]], schema.field(n).type)[0] for n in partition_by]
    fragment = fmt.make_fragment(storage.root, filesystem=fs, file_size=task.size_bytes,
                                 partition_expression=_partition_expression(
                                     partition_columns(schema, partition_by), values))
    dataset = TableDataset([fragment], schema=mapping.read_schema, format=fmt, filesystem=fs)
    if task.deletion_vector is not None:
        dataset._lh_vectors = VectorSet(_table_storage(task, storage, storage_options),
                                        {fragment.path: (task.deletion_vector, task.num_rows)})
    try:
        table = dataset.to_table(columns=mapping.physical_columns(plan.read), filter=mapping.physical(plan.pushed))
    except FileNotFoundError as exc:
        raise VersionNotFoundError(f"a data file of version {task.version} is gone (removed by vacuum, or lost): "
                                   f"{exc}", version=task.version) from None
    return plan.finish(mapping.logical(table))


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

"""The scan machinery of one pinned state: :class:`Scan` (column mapping, pruning, datasets, reads)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ..arguments import check_names
from ..datafile import logical_names
from ..dv_read import VectorSet
from ..errors import ColumnNotFoundError, InvalidFilterError, SchemaMismatchError, VersionNotFoundError
from ..expr.bridge import referenced_columns
from ..expr.dnf import FilterLike, to_expression
from ..expr.prune import files_mask, partition_verdicts
from ..schema import logical_schema, renamed_paths
from ..state import TableState
from ..stats import partition_columns, stats_columns
from ..storage import Storage
from .dataset import (
    LiveDataset,
    TableDataset,
    live_dataset,
    partition_expression,
    stats_guards,
    table_dataset,
    vector_set,
)
from .groups import FileGroups
from .mapping import ColumnMapping, ScanPlan, scan_plan
from .tasks import FileTask, build_tasks

__all__ = ["Scan"]


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
        >>> scan = Scan(Storage.from_uri(t.uri), t.snapshot().state)
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

        Args:
            filter: DNF tuples, SQL-like text or a ``pyarrow.compute.Expression``, or None.

        Returns:
            The bound expression, or None for no filter.

        Raises:
            ColumnNotFoundError: the filter names an unknown column.
            InvalidFilterError: the filter is malformed or does not fit the columns' types.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-expression", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> scan.expression([("a", ">", 1)]), scan.expression(None)
            (<pyarrow.compute.Expression (a > 1)>, None)
        """
        return to_expression(filter, self.schema)

    def check_columns(self, columns: Sequence[str] | None) -> list[str] | None:
        """``columns`` as a list of the table's column names (None: all).

        Args:
            columns: the names given by the caller, or None.

        Returns:
            The names as a list, or None for all columns.

        Raises:
            ArgumentTypeError: ``columns`` is not a sequence of names.
            ColumnNotFoundError: a name is not a column of the table.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-check-columns", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> scan.check_columns(("a",)), scan.check_columns(None)
            (['a'], None)
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
        """A filter over the table's columns as a filter over the data files' (physical) columns.

        Args:
            expr: a filter over the table's columns, or None.

        Returns:
            The same filter over the physical columns (see :meth:`ColumnMapping.physical`).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-physical", pa.table({"a": [1]})).snapshot()
            >>> Scan(Storage.from_uri(s.uri), s.state).physical(pc.field("a") == 1)
            <pyarrow.compute.Expression (a == 1)>
        """
        return self.columns.physical(expr)

    def physical_columns(self, columns: list[str] | None) -> list[str] | None:
        """Column names as the data files name them.

        Args:
            columns: names of the table's columns, or None (all).

        Returns:
            Their physical names (see :meth:`ColumnMapping.physical_columns`).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-physical-columns", pa.table({"a": [1]})).snapshot()
            >>> Scan(Storage.from_uri(s.uri), s.state).physical_columns(["a"])
            ['a']
        """
        return self.columns.physical_columns(columns)

    def logical(self, data: Any) -> Any:
        """A table or batch read under physical names, under the table's names (nested ones too).

        Args:
            data: a ``pyarrow.Table`` or ``RecordBatch`` read from data files.

        Returns:
            The same data under the table's names (see :meth:`ColumnMapping.logical`).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-logical", pa.table({"a": [1]})).snapshot()
            >>> Scan(Storage.from_uri(s.uri), s.state).logical(pa.table({"a": [2]})).column_names
            ['a']
        """
        return self.columns.logical(data)

    # -- pruning the files table --------------------------------------------------------------------
    def pruned(self, expr: pc.Expression | None) -> pa.Table:
        """The files table rows that may hold rows where ``expr`` (over the table's columns) is true.

        Args:
            expr: a bound filter, or None (every live file).

        Returns:
            The rows of the state's files table (physical column names) pruning keeps.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> data = pa.table({"a": [1, 2], "p": [1, 2]})
            >>> s = lh.write_table("memory://doc-scan-pruned", data, partition_by=["p"]).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> scan.pruned(scan.expression([("p", "=", 2)])).num_rows, scan.pruned(None).num_rows
            (1, 2)
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
        (:func:`lakehouse.expr.prune.partition_verdicts`).

        Args:
            expr: a bound filter over the table's columns.
            files: rows of the files table.

        Returns:
            A boolean array with one verdict (or null) per file, or None if no file is decided.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> data = pa.table({"a": [1, 2], "p": [1, 2]})
            >>> s = lh.write_table("memory://doc-scan-verdicts", data, partition_by=["p"]).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> scan.whole_file_verdicts(scan.expression([("p", "=", 2)]), scan.pruned(None)).to_pylist()
            [False, True]
        """
        meta = self.state.metadata
        return partition_verdicts(self.physical(expr), files,
                                  partition_columns=partition_columns(meta.schema, meta.partition_by))

    def logical_files(self, files: pa.Table) -> pa.Table:
        """The files table with ``partition.<c>``, ``min.<c>``, ... named by column name, not physical name.

        Args:
            files: rows of the files table (physical names).

        Returns:
            The same rows, their columns named by the table's column names.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-logical-files", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> "min.a" in scan.logical_files(scan.pruned(None)).column_names
            True
        """
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
        by the full path their fragments have; empty when no file has one (no I/O: loaded on use).

        Args:
            files: rows of the files table, or None for every live file (then computed once).

        Returns:
            A :class:`~lakehouse.dv_read.VectorSet` (falsy when no file has a vector).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-vectors", pa.table({"a": [1, 2]})).snapshot()
            >>> len(Scan(Storage.from_uri(s.uri), s.state).vectors())
            0
        """
        if files is None:
            if self._vectors is None:
                self._vectors = vector_set(self.storage, self.state.files)
            return self._vectors
        return vector_set(self.storage, files)

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

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-dataset", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> scan.dataset(scan.pruned(None)).to_table().num_rows
            3
        """
        fmt = ds.ParquetFileFormat()
        fs = self.storage.arrow_filesystem()
        meta = self.state.metadata
        parts = partition_columns(meta.schema, meta.partition_by)
        paths = files.column("path").to_pylist()
        self.storage.check_contained(paths)  # local disk: no link out of the root (format §3.1)
        sizes = files.column("size_bytes").to_pylist()
        part_cols = [files.column(f"partition.{c}") for c in parts]
        stats = stats_guards(files, meta) if guards else [None] * len(paths)
        fragments = []
        for i, (path, size, guard) in enumerate(zip(paths, sizes, stats)):
            expr = partition_expression(parts, [col[i] for col in part_cols])
            if guard is not None:
                expr = expr & guard if parts else guard
            fragments.append(fmt.make_fragment(self.storage.full_path(path), filesystem=fs,
                                               partition_expression=expr, file_size=size))
        return table_dataset(fragments, schema=self.columns.read_schema, format=fmt, filesystem=fs,
                             vectors=self.vectors(files))

    def pyarrow_dataset(self, expr: pc.Expression | None) -> TableDataset | LiveDataset:
        """The guarded dataset of the files ``expr`` may match, for engines (``Snapshot.to_pyarrow_dataset``).

        When some of those files carry deletion vectors, they are read now, their live rows held in
        memory, so that every consumer of the dataset, pyarrow's C++ included, sees live rows only
        (:func:`~lakehouse.scan.dataset.live_dataset`).

        Args:
            expr: a bound filter over the table's columns (:meth:`expression`), or None: every row.

        Returns:
            A :class:`TableDataset` with statistics guards (see :meth:`dataset`) when no file kept has
            a vector, else a :class:`~lakehouse.scan.dataset.LiveDataset` of it.

        Raises:
            SchemaMismatchError: a column is stored under another name in the data files (renamed or
                re-added), which a pyarrow dataset cannot show.
            VersionNotFoundError: a data file with a vector is gone (vacuumed or lost).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-pyarrow-dataset", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> scan.pyarrow_dataset(scan.expression([("a", ">", 1)])).count_rows()
            3
        """
        if self.mapped:
            column = renamed_paths(self.state.metadata.schema)[0]
            raise SchemaMismatchError(
                f"column {column!r} is stored under another name in the data files (renamed or re-added), "
                f"which a pyarrow dataset cannot show; read with to_batches() or to_arrow()", column=column)
        try:
            return live_dataset(self.dataset(self.pruned(expr), guards=True))
        except FileNotFoundError as exc:
            raise self._missing_file(exc) from None

    def _one(self, fragment: ds.Fragment) -> TableDataset:
        vectors = self.vectors()
        return table_dataset([fragment], schema=self.columns.read_schema, format=fragment.format,
                             filesystem=fragment.filesystem,
                             vectors=vectors.subset([fragment.path]) if fragment.path in vectors else None)

    def file_groups(self, fragment: ds.Fragment, num_rows: int) -> FileGroups:
        """One fragment of :meth:`dataset`, readable by row group with live positions (row-level writes).

        Args:
            fragment: a fragment of :meth:`dataset`.
            num_rows: its file's physical row count.

        Returns:
            Its :class:`~lakehouse.scan.groups.FileGroups`.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-file-groups", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> [fragment] = scan.dataset(scan.pruned(None)).get_fragments()
            >>> scan.file_groups(fragment, 3).read(["a"])[1].tolist()
            [0, 1, 2]
        """
        vectors = self.vectors()
        return FileGroups(fragment, mapping=self.columns, num_rows=num_rows,
                          vectors=vectors.subset([fragment.path]) if fragment.path in vectors else None,
                          version=self.state.version)

    def scan_fragment(self, fragment: ds.Fragment, *, filter: pc.Expression | None = None,
                      columns: list[str] | None = None) -> pa.Table:
        """The rows of one fragment of :meth:`dataset` where ``filter`` holds, under the table's names.

        Args:
            fragment: a fragment of :meth:`dataset`.
            filter: pushed into the scan (over the table's columns), or None.
            columns: the columns to read (None: all).

        Returns:
            The rows, under the table's column names.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-scan-fragment", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> [fragment] = scan.dataset(scan.pruned(None)).get_fragments()
            >>> scan.scan_fragment(fragment, filter=pc.field("a") > 1).num_rows
            2
        """
        return self.logical(self._one(fragment).to_table(columns=self.physical_columns(columns),
                                                         filter=self.physical(filter)))

    def count_fragment(self, fragment: ds.Fragment, filter: pc.Expression) -> int:
        """How many rows of one fragment of :meth:`dataset` match ``filter`` (pushed into the scan; live
        rows only: a row its deletion vector deletes is not counted).

        Args:
            fragment: a fragment of :meth:`dataset`.
            filter: a filter over the table's columns.

        Returns:
            How many of its rows match.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-count-fragment", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> [fragment] = scan.dataset(scan.pruned(None)).get_fragments()
            >>> scan.count_fragment(fragment, pc.field("a") >= 2)
            2
        """
        return self._one(fragment).count_rows(filter=self.physical(filter))

    # -- reads ------------------------------------------------------------------------------------------
    def plan(self, columns: list[str] | None, expr: pc.Expression | None) -> ScanPlan:
        """What to push into the scan and what to filter after reading (:func:`scan_plan`).

        Args:
            columns: the table's columns to return (None: all), as :meth:`check_columns` gives them.
            expr: a bound filter over the table's columns (:meth:`expression`), or None: every row.

        Returns:
            The :class:`ScanPlan`.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-plan", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> scan.plan(["a"], scan.expression([("a", ">", 1)])).pushed
            <pyarrow.compute.Expression (a > 1)>
        """
        return scan_plan(self.schema, columns, expr)

    def to_table(self, columns: list[str] | None, expr: pc.Expression | None) -> pa.Table:
        """The rows where ``expr`` is true, ``columns`` only (``Snapshot.to_arrow``).

        Args:
            columns: the table's columns to return (None: all), as :meth:`check_columns` gives them.
            expr: a bound filter over the table's columns (:meth:`expression`), or None: every row.

        Returns:
            The rows, under the table's column names.

        Raises:
            VersionNotFoundError: a data file is gone (vacuumed or lost).
            InvalidFilterError: the filter cannot be evaluated on the rows (e.g. an overflow).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-to-table", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> scan.to_table(["a"], scan.expression([("a", ">", 1)])).column("a").to_pylist()
            [2, 3]
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

        Args:
            columns: the table's columns to return (None: all), as :meth:`check_columns` gives them.
            expr: a bound filter over the table's columns (:meth:`expression`), or None: every row.

        Returns:
            A ``pyarrow.RecordBatchReader``; files are read as it is consumed.

        Raises:
            InvalidFilterError: while streaming, the filter cannot be evaluated on the rows.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-to-batches", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> scan.to_batches(None, scan.expression([("a", "<", 3)])).read_all().num_rows
            2
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
        """One :class:`FileTask` per file pruning keeps (``Snapshot.plan_files``; :func:`build_tasks`).

        Args:
            columns: the table's columns to return (None: all), as :meth:`check_columns` gives them.
            expr: a bound filter over the table's columns (:meth:`expression`), or None: every row.

        Returns:
            The tasks, one per data file that may hold matching rows.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> s = lh.write_table("memory://doc-scan-tasks", pa.table({"a": [1, 2, 3]})).snapshot()
            >>> scan = Scan(Storage.from_uri(s.uri), s.state)
            >>> [t.num_rows for t in scan.tasks(["a"], None)]
            [3]
        """
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


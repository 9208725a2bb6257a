"""The dataset every read of data files goes through, and how its fragments are described.

:class:`TableDataset` (its :meth:`~TableDataset.scanner` is the one place where a file's rows are
read: deletion vectors are applied there, with :mod:`lakehouse.dv_read`), the guarantees a fragment
carries (partition values, null-aware statistics guards), and :func:`read_ahead`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ..dv_read import VectorSet, kept_batches
from ..expr.bridge import exact_integer_literals, referenced_columns
from ..log import Metadata
from ..schema import has_stats, physical_name
from ..state import vector_descriptors
from ..storage import Storage
from .mapping import scan_plan

__all__ = ["LiveDataset", "TableDataset", "live_dataset", "partition_expression", "read_ahead", "stats_guards",
           "table_dataset", "vector_set"]


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
        return (_unpickle, (args, self._lh_filter, self._lh_vectors))

    def _sub(self, fragments: list[ds.Fragment]) -> TableDataset:
        """A dataset of some of its fragments (same filter, their vectors)."""
        out = TableDataset(fragments, schema=self.schema, format=self.format, filesystem=self.filesystem)
        out._lh_filter = self._lh_filter
        if self._lh_vectors:
            out._lh_vectors = self._lh_vectors.subset(f.path for f in fragments) or None
        return out._native()

    def filter(self, expression: pc.Expression) -> TableDataset | LiveDataset:
        """As :meth:`pyarrow.dataset.Dataset.filter`: a dataset whose scans also apply ``expression``.

        pyarrow's C++ (``Scanner.from_dataset``, ``write_dataset``, Acero joins) scans a dataset
        without calling its Python methods, so the filter is also given to pyarrow itself. A filter
        with a term on a floating-point column cannot be: pyarrow would decide it by Parquet
        statistics, which leave NaN out (a row group whose min and max are 1.5 is dropped for
        ``f != 1.5`` although its NaN rows match). Such a dataset is filtered now, its matching rows
        held in memory (a :class:`LiveDataset` with no plain files).

        Args:
            expression: a filter over the dataset's (physical) columns.

        Returns:
            A new :class:`TableDataset` over the same fragments, or a :class:`LiveDataset` of the
            matching rows when ``expression`` has a floating-point term.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-table-dataset-filter", pa.table({"f": [0.5, 1.5]}))
            >>> dataset = t.to_pyarrow_dataset()
            >>> dataset.filter(pc.field("f") > 1).count_rows()
            1
        """
        combined = expression if self._lh_filter is None else self._lh_filter & expression
        if scan_plan(self.schema, None, exact_integer_literals(combined, self.schema)).residual is not None:
            return _live(self._sub([]), self.to_table(filter=expression))
        out = self._sub(list(self.get_fragments()))
        out._lh_filter = combined
        return out._native()

    def _native(self) -> TableDataset:
        """This dataset with its filter also in pyarrow's own scan options (for its C++ scans); not
        when it has deletion vectors: their files are read unfiltered, positions counted from the
        file's start (such a dataset is never handed to pyarrow's C++: see :class:`LiveDataset`)."""
        if self._lh_filter is None or self._lh_vectors:
            return self
        out = ds.FileSystemDataset.filter(self, exact_integer_literals(self._lh_filter, self.schema))
        assert isinstance(out, TableDataset)
        out._lh_filter, out._lh_vectors = self._lh_filter, self._lh_vectors
        return out

    def count_rows(self, filter: pc.Expression | None = None, **kwargs: Any) -> int:
        """As :meth:`pyarrow.dataset.Dataset.count_rows`; live rows only (deleted rows are not counted).

        Without a filter, a file with a deletion vector is counted from the files table (no read).

        Args:
            filter: a filter over the dataset's (physical) columns, or None.
            **kwargs: passed to pyarrow's scanner.

        Returns:
            How many live rows match.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-dataset-count-rows", pa.table({"f": [0.5, float("nan")]}))
            >>> t.to_pyarrow_dataset().count_rows(filter=~(pc.field("f") < 1.0))
            1
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

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-dataset-scanner", pa.table({"f": [0.5, float("nan")]}))
            >>> dataset = t.to_pyarrow_dataset()
            >>> dataset.scanner(filter=~(pc.field("f") < 1.0)).to_table().num_rows
            1
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


_NOT_FOR_MEMORY = ("fragment_scan_options", "cache_metadata")  # scanner options only file fragments take


class LiveDataset(ds.UnionDataset):
    """The lazy dataset of a table some of whose files carry deletion vectors (see :func:`live_dataset`).

    A fragment cannot express a deletion vector, and pyarrow's C++ scans a dataset without calling
    its Python methods (``Scanner.from_dataset``, ``ds.dataset([...])`` unions, Acero scan nodes and
    joins, fragments read one by one). So this is a ``pyarrow.dataset.UnionDataset`` of two children
    that hold only live rows by themselves: a :class:`TableDataset` of the files without a vector
    (lazy: filter pushdown, file and row-group skipping) and a ``pyarrow.dataset.InMemoryDataset`` of
    the live rows of the files with one, read when the dataset was made. Its own :meth:`scanner`
    (and so ``to_table``, ``to_batches``, ``count_rows``, ``head``, ``take``, Polars, DuckDB) scans the
    first through :meth:`TableDataset.scanner` (floating-point terms evaluated on rows) and filters
    the second row by row. ``get_fragments()`` yields the Parquet fragments of the plain files, then
    in-memory fragments of the live rows. It pickles with its rows.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> plain = lh.write_table("memory://doc-live", pa.table({"a": [1, 2]})).to_pyarrow_dataset()
        >>> d = live_dataset(plain, pa.table({"a": [9]}))
        >>> sorted(ds.Scanner.from_dataset(d).to_table().column("a").to_pylist())
        [1, 2, 9]
    """

    _lh_plain: TableDataset  # the files without a vector
    _lh_live: pa.Table  # the live rows of the files with one (physical names)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_live, (self._lh_plain, self._lh_live))

    def filter(self, expression: pc.Expression) -> LiveDataset:
        """As :meth:`pyarrow.dataset.Dataset.filter`: a dataset whose scans also apply ``expression``.

        Args:
            expression: a filter over the dataset's (physical) columns.

        Returns:
            A new :class:`LiveDataset`: the plain files' dataset filtered (:meth:`TableDataset.filter`)
            and the live rows that match.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> plain = lh.write_table("memory://doc-live-filter", pa.table({"a": [1, 2, 3]})).to_pyarrow_dataset()
            >>> d = live_dataset(table_dataset([], schema=plain.schema, format=plain.format,
            ...                                filesystem=plain.filesystem), plain.to_table())
            >>> d.filter(pc.field("a") > 1).count_rows()
            2
        """
        plain = self._lh_plain.filter(expression)
        live = self._lh_live.filter(exact_integer_literals(expression, self.schema))
        if isinstance(plain, LiveDataset):  # a floating-point term: the plain files were filtered now
            return _live(plain._lh_plain, pa.concat_tables([plain._lh_live, live]))
        return _live(plain, live)

    def count_rows(self, filter: pc.Expression | None = None, **kwargs: Any) -> int:
        """As :meth:`pyarrow.dataset.Dataset.count_rows`: the live rows where ``filter`` holds.

        Args:
            filter: a filter over the dataset's (physical) columns, or None.
            **kwargs: passed to pyarrow's scanner.

        Returns:
            How many live rows match.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> plain = lh.write_table("memory://doc-live-count", pa.table({"a": [1, 2, 3]})).to_pyarrow_dataset()
            >>> live_dataset(plain, pa.table({"a": [7]})).count_rows(filter=pc.field("a") > 1)
            3
        """
        plain = self._lh_plain.count_rows(filter=filter, **kwargs)
        if filter is None:
            return plain + self._lh_live.num_rows
        return plain + self._lh_live.filter(exact_integer_literals(filter, self.schema)).num_rows

    def scanner(self, columns: Any = None, filter: pc.Expression | None = None, **kwargs: Any) -> ds.Scanner:
        """As :meth:`pyarrow.dataset.Dataset.scanner`: the plain files' rows, then the live rows in memory.

        Args:
            columns: None, a list of column names, or a dict of name -> expression (as pyarrow's).
            filter: a filter over the dataset's (physical) columns, or None.
            **kwargs: passed to pyarrow's scanners.

        Returns:
            A one-shot ``pyarrow.dataset.Scanner``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> plain = lh.write_table("memory://doc-live-scanner", pa.table({"a": [1, 2]})).to_pyarrow_dataset()
            >>> live_dataset(plain, pa.table({"a": [5]})).scanner(filter=pc.field("a") > 1).to_table().num_rows
            2
        """
        plain = self._lh_plain.scanner(columns=columns, filter=filter, **kwargs)
        if filter is not None:
            filter = exact_integer_literals(filter, self.schema)
        options = {k: v for k, v in kwargs.items() if k not in _NOT_FOR_MEMORY}
        memory = ds.InMemoryDataset(self._lh_live, schema=self.schema).scanner(columns=columns, filter=filter,
                                                                             **options)
        schema = plain.projected_schema

        def batches() -> Iterator[pa.RecordBatch]:
            yield from plain.to_batches()
            for batch in memory.to_batches():
                yield batch if batch.schema == schema else batch.cast(schema)

        return ds.Scanner.from_batches(batches(), schema=schema)


def _live(plain: TableDataset, live: pa.Table) -> LiveDataset:
    """The union of ``plain`` and the rows ``live`` (also unpickles a :class:`LiveDataset`).

    pyarrow's C++ scans a union's children without their own scan options, so the plain files'
    filter (if any; ``live`` is filtered already) is also the union's."""
    out = LiveDataset(plain.schema, [plain, ds.InMemoryDataset(live, schema=plain.schema)])
    if plain._lh_filter is not None and not plain._lh_vectors:
        out = ds.UnionDataset.filter(out, exact_integer_literals(plain._lh_filter, plain.schema))
        assert isinstance(out, LiveDataset)
    out._lh_plain = plain
    out._lh_live = live
    return out


def live_dataset(dataset: TableDataset, live: pa.Table | None = None) -> TableDataset | LiveDataset:
    """``dataset`` as a dataset whose underlying Arrow object itself yields only live rows.

    A dataset with no deletion vector is returned as it is. Otherwise the files carrying one are read
    now, through :meth:`TableDataset.scanner` (their deleted rows dropped), into memory, and the
    result is a :class:`LiveDataset` of the other files (still lazy) and those rows.

    Args:
        dataset: a :class:`TableDataset` (e.g. :meth:`lakehouse.scan.Scan.dataset`).
        live: rows to hold in memory instead of reading ``dataset``'s files with vectors (then
            ``dataset`` is taken as the plain part, whole).

    Returns:
        ``dataset`` itself, or a :class:`LiveDataset`.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> plain = lh.write_table("memory://doc-live-dataset", pa.table({"a": [1, 2]})).to_pyarrow_dataset()
        >>> live_dataset(plain) is plain, live_dataset(plain, pa.table({"a": [3]})).count_rows()
        (True, 3)
    """
    if live is not None:
        return _live(dataset, live)
    vectors = dataset._lh_vectors
    if not vectors:
        return dataset
    fragments = list(dataset.get_fragments())
    marked = dataset._sub([f for f in fragments if f.path in vectors])
    plain = dataset._sub([f for f in fragments if f.path not in vectors])
    return _live(plain, marked.to_table())


def _unpickle(args: tuple[Any, ...], filter: pc.Expression | None,
                   vectors: VectorSet | None = None) -> TableDataset:
    """Unpickle a :class:`TableDataset`."""
    out = TableDataset(*args)
    out._lh_filter = filter
    out._lh_vectors = vectors
    return out._native()


def table_dataset(fragments: Iterable[ds.Fragment], *, schema: pa.Schema, format: ds.FileFormat,
                  filesystem: Any, vectors: VectorSet | None = None) -> TableDataset:
    """A :class:`TableDataset` of ``fragments`` whose reads apply ``vectors``.

    Args:
        fragments: the data files' fragments, in order.
        schema: the schema the files are scanned under (physical names).
        format: their file format (Parquet).
        filesystem: the Arrow filesystem the fragments are on.
        vectors: the deletion vectors of those fragments that have one (None or empty: none has).

    Returns:
        The dataset; its scans never return a row a vector deletes.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> plain = lh.write_table("memory://doc-table-dataset", pa.table({"a": [1, 2]})).to_pyarrow_dataset()
        >>> fragments = list(plain.get_fragments())
        >>> table_dataset(fragments, schema=plain.schema, format=plain.format, filesystem=plain.filesystem).count_rows()
        2
    """
    out = TableDataset(list(fragments), schema=schema, format=format, filesystem=filesystem)
    out._lh_vectors = vectors or None
    return out


def vector_set(storage: Storage, files: pa.Table) -> VectorSet:
    """The deletion vectors of the rows of ``files`` that have one, keyed by full path (no I/O).

    Args:
        storage: where the table lives (vectors are loaded from it on first use).
        files: rows of a files table.

    Returns:
        A :class:`~lakehouse.dv_read.VectorSet`, empty (falsy) when no file has a vector.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-vector-set", pa.table({"a": [1, 2]}))
        >>> bool(vector_set(Storage.from_uri(t.uri), t.snapshot().state.files))
        False
    """
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


def partition_expression(names: Sequence[str], values: Sequence[pa.Scalar]) -> pc.Expression:
    """The guarantee a file's partition values give: ``name == value`` (or ``is_null``) per column.

    Args:
        names: the partition columns, as the data files name them.
        values: the file's value of each, in order (a null scalar: the null partition).

    Returns:
        Their conjunction (``true`` with no partition column).

    Example:
        >>> str(partition_expression(["p", "q"], [pa.scalar(1), pa.scalar(None, pa.int64())]))
        '((p == 1) and is_null(q, {nan_is_null=false}))'
    """
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


def stats_guards(files: pa.Table, meta: Metadata) -> list[pc.Expression | None]:
    """Per row of ``files``, the conjunction of :func:`_stats_guard` over the stats columns (by
    physical name: the names a scan of the data files uses), floating-point columns left out.

    Args:
        files: rows of a files table (physical column names).
        meta: the table metadata (schema, partition columns).

    Returns:
        One guard per row of ``files``, None where nothing is known.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> state = lh.write_table("memory://doc-stats-guards", pa.table({"a": [1, 5]})).snapshot().state
        >>> [str(g) for g in stats_guards(state.files, state.metadata)]
        ['((a >= 1) and (a <= 5))']
    """
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


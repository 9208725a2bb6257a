"""One data file read by Parquet row group, each row with its position among the file's live rows.

Row-level writes (``delete``, ``update``, ``merge``) must find *where* rows are, not only what they
hold: a deletion vector or a rewrite names a file's rows by position. Reading a whole file to find
one row costs the whole file; :class:`FileGroups` reads only the row groups whose Parquet statistics
may hold what is looked for (by a filter pyarrow prunes with, or by a caller's test of each group's
min/max, :meth:`FileGroups.bounds`: e.g. a probe of a merge source's sorted keys), and returns each
row read with its position among the file's live rows, the numbering ``Transaction.remove_rows``
takes. The file's deletion vector is applied here too, on positions: a row it deletes is never
returned (the rows-for-users path stays :meth:`lakehouse.scan.dataset.TableDataset.scanner`).

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-groups", pa.table({"a": [5, 6, 7]}))
    >>> [task] = t.plan_files()
    >>> from lakehouse.scan.tasks import task_groups
    >>> rows, positions = task_groups(task).read(["a"], prune=pc.field("a") >= 6)
    >>> rows.column("a").to_pylist(), positions.tolist()
    ([5, 6, 7], [0, 1, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..deletion_vector import DeletionVector
from ..dv_read import VectorSet
from ..errors import VersionNotFoundError
from .mapping import ColumnMapping

__all__ = ["TAKE_GROUPS", "FileGroups", "RowGroup"]

TAKE_GROUPS = 4
"""Row groups :meth:`FileGroups.take` reads at once."""

_NO_PREBUFFER = ds.ParquetFragmentScanOptions(pre_buffer=False)


@dataclass(frozen=True, slots=True)
class RowGroup:
    """One Parquet row group of a data file.

    Attributes:
        index: its number in the file.
        start: the position (among all the file's rows) of its first row.
        num_rows: how many rows it holds.

    Example:
        >>> RowGroup(0, 0, 10).num_rows
        10
    """

    index: int
    start: int
    num_rows: int


class FileGroups:
    """One data file, read by row group (see the module docstring).

    Args:
        fragment: the file's Parquet fragment (with its partition expression).
        mapping: the table's column mapping (the file holds physical names).
        num_rows: the file's physical row count.
        vectors: the file's deletion vector (keyed by ``fragment.path``), or None.
        version: the table version (named when the file is gone).

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-file-groups", pa.table({"a": [1, 2, 3]}))
        >>> from lakehouse.scan.tasks import task_groups
        >>> files = task_groups(t.plan_files()[0])
        >>> len(files.groups), files.take(np.array([2, 0]), ["a"]).column("a").to_pylist()
        (1, [3, 1])
    """

    def __init__(self, fragment: ds.ParquetFileFragment, *, mapping: ColumnMapping, num_rows: int,
                 vectors: VectorSet | None = None, version: int = 0) -> None:
        self.fragment = fragment
        self.mapping = mapping
        self.num_rows = num_rows
        self._vectors = vectors if vectors and fragment.path in vectors else None
        self._version = version
        self._groups: list[RowGroup] | None = None
        self._keep: np.ndarray | None = None

    # -- what the file holds ----------------------------------------------------------------------------
    @property
    def groups(self) -> list[RowGroup]:
        """The file's row groups, in order (reads the footer once)."""
        if self._groups is None:
            try:
                self.fragment.ensure_complete_metadata()
            except FileNotFoundError as exc:
                raise VersionNotFoundError(f"a data file of version {self._version} is gone (removed by vacuum, "
                                           f"or lost): {exc}", version=self._version) from None
            out, start = [], 0
            for g in self.fragment.row_groups:
                out.append(RowGroup(g.id, start, g.num_rows))
                start += g.num_rows
            self._groups = out
        return self._groups

    def bounds(self, column: str) -> list[tuple[Any, Any] | None]:
        """Per row group (in order): the (min, max) of ``column`` from its statistics, as Python
        values; None where the group has none (anything may be in it).

        Args:
            column: a table column (top level).

        Returns:
            One entry per group of :attr:`groups`.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> from lakehouse.scan.tasks import task_groups
            >>> t = lh.write_table("memory://doc-groups-bounds", pa.table({"a": [5, 6, 7]}))
            >>> files = task_groups(t.plan_files()[0])
            >>> files.bounds("a")
            [(5, 7)]
        """
        groups = self.groups
        physical = (self.mapping.physical_columns([column]) or [column])[0]
        meta = self.fragment.metadata
        names = [meta.schema.column(j).path for j in range(meta.num_columns)]
        if physical not in names:
            return [None] * len(groups)
        j = names.index(physical)
        out: list[tuple[Any, Any] | None] = []
        for g in groups:
            stats = meta.row_group(g.index).column(j).statistics
            out.append((stats.min, stats.max) if stats is not None and stats.has_min_max else None)
        return out

    @property
    def vector(self) -> DeletionVector | None:
        """The file's deletion vector (loaded on first use), or None."""
        if self._vectors is None:
            return None
        return self._vectors.load([self.fragment.path])[self.fragment.path]

    def _kept(self) -> np.ndarray | None:
        """Per physical row: is it live (None: every row is)."""
        if self._keep is None:
            vector = self.vector
            if vector is None or not vector.cardinality:
                return None
            self._keep = vector.mask(self.num_rows)
        return self._keep

    # -- reading --------------------------------------------------------------------------------------
    def select(self, *, prune: pc.Expression | None = None,
               keep: Sequence[bool] | None = None) -> list[RowGroup]:
        """The row groups that may hold rows where ``prune`` holds and that ``keep`` accepts.

        Args:
            prune: a filter over the table's columns, judged on each group's statistics by pyarrow
                (give only terms statistics decide safely: no floating-point terms, see
                :func:`~lakehouse.scan.mapping.scan_plan`), or None.
            keep: per group of :attr:`groups`, may it hold wanted rows (e.g. a test of :meth:`bounds`),
                or None.

        Returns:
            The groups, in file order.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> from lakehouse.scan.tasks import task_groups
            >>> t = lh.write_table("memory://doc-groups-select", pa.table({"a": [5, 6, 7]}))
            >>> files = task_groups(t.plan_files()[0])
            >>> len(files.select(prune=pc.field("a") > 9)), len(files.select(prune=pc.field("a") > 6))
            (0, 1)
        """
        groups = self.groups
        if prune is not None and groups:
            physical = self.mapping.physical(prune)
            sub = self.fragment.subset(filter=physical, schema=self.mapping.read_schema)
            wanted = {g.id for g in sub.row_groups}
            groups = [g for g in groups if g.index in wanted]
        if keep is not None:
            groups = [g for g in groups if keep[g.index]]
        return groups

    def read(self, columns: Sequence[str] | None, groups: Sequence[RowGroup] | None = None, *,
             prune: pc.Expression | None = None,
             keep: Sequence[bool] | None = None) -> tuple[pa.Table, np.ndarray]:
        """The live rows of some row groups, and their positions among the file's live rows.

        Rows are not filtered: ``prune`` and ``keep`` only skip whole groups (:meth:`select`).

        Args:
            columns: the table columns to read (None: all).
            groups: the groups to read (None: those :meth:`select` picks with ``prune``/``keep``).
            prune: see :meth:`select`.
            keep: see :meth:`select`.

        Returns:
            (rows under the table's names, their live positions as sorted ``int64``).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> from lakehouse.scan.tasks import task_groups
            >>> t = lh.write_table("memory://doc-groups-read", pa.table({"a": [5, 6, 7]}))
            >>> files = task_groups(t.plan_files()[0])
            >>> rows, positions = files.read(["a"], keep=[True])
            >>> rows.column("a").to_pylist(), positions.tolist()
            ([5, 6, 7], [0, 1, 2])
        """
        if groups is None:
            groups = self.select(prune=prune, keep=keep)
        if not groups:
            empty = pa.Table.from_batches([], schema=self.mapping.read_schema)
            if columns is not None:
                empty = empty.select(self.mapping.physical_columns(list(columns)) or [])
            return self.mapping.logical(empty), np.empty(0, np.int64)
        physical = np.concatenate([np.arange(g.start, g.start + g.num_rows, dtype=np.int64) for g in groups])
        every = len(groups) == len(self.groups)
        fragment = self.fragment if every else self.fragment.subset(row_group_ids=[g.index for g in groups])
        dataset = ds.FileSystemDataset([fragment], self.mapping.read_schema, self.fragment.format,
                                       self.fragment.filesystem)
        cols = None if columns is None else self.mapping.physical_columns(list(columns))
        try:
            rows = self._direct(cols, groups)
            if rows is None:
                rows = dataset.to_table(columns=cols, use_threads=False, fragment_scan_options=self._options())
        except FileNotFoundError as exc:
            raise VersionNotFoundError(f"a data file of version {self._version} is gone (removed by vacuum, or "
                                       f"lost): {exc}", version=self._version) from None
        rows = self.mapping.logical(rows)
        kept = self._kept()
        if kept is None:
            return rows, physical
        live = kept[physical]
        before = np.cumsum(kept, dtype=np.int64) - 1  # the live number of each physical row that is kept
        return rows.filter(pa.array(live)), before[physical[live]]

    def _direct(self, columns: list[str] | None, groups: Sequence[RowGroup]) -> pa.Table | None:
        """``columns`` (physical names) of ``groups`` read straight from the Parquet file (the footer
        already parsed), or None when the dataset's reading is needed: all columns asked for, or one
        the file lacks, holds in another type (evolved, dictionary) or that is a partition column."""
        if not columns:
            return None
        stored = self.fragment.physical_schema
        for name in columns:
            i = stored.get_field_index(name)
            if i < 0 or stored.field(i).type != self.mapping.read_schema.field(name).type:
                return None
        local = isinstance(self.fragment.filesystem, pafs.LocalFileSystem)
        with self.fragment.filesystem.open_input_file(self.fragment.path) as handle:
            parquet = pq.ParquetFile(handle, metadata=self.fragment.metadata, pre_buffer=not local)
            return parquet.read_row_groups([g.index for g in groups], columns=columns, use_threads=False)

    def _options(self) -> ds.ParquetFragmentScanOptions | None:
        """On local disk, no pre-buffering: coalescing a few row groups' column chunks into large
        reads saves requests on object stores, but on local disk it only holds memory (outside
        Arrow's pool) that grows with the row groups read."""
        if isinstance(self.fragment.filesystem, pafs.LocalFileSystem):
            return _NO_PREBUFFER
        return None

    def take(self, positions: np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        """The live rows at ``positions`` (among the file's live rows), in that order; reads only the
        row groups that hold them.

        Args:
            positions: live positions (any order, repeats allowed).
            columns: the table columns to read (None: all).

        Returns:
            The rows, one per position.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> from lakehouse.scan.tasks import task_groups
            >>> t = lh.write_table("memory://doc-groups-take", pa.table({"a": [5, 6, 7]}))
            >>> files = task_groups(t.plan_files()[0])
            >>> files.take(np.array([2, 2, 0]), ["a"]).column("a").to_pylist()
            [7, 7, 5]
        """
        positions = np.asarray(positions, dtype=np.int64)
        kept = self._kept()
        physical = positions if kept is None else np.flatnonzero(kept)[positions]
        starts = np.array([g.start for g in self.groups], dtype=np.int64)
        holding = np.unique(np.searchsorted(starts, physical, side="right") - 1)
        order = np.argsort(positions, kind="stable")
        wanted = positions[order]
        parts = []
        # a few groups at a time: what is held at once does not grow with the file
        for i in range(0, len(holding), TAKE_GROUPS):
            rows, live = self.read(columns, [self.groups[g] for g in holding[i:i + TAKE_GROUPS]])
            lo, hi = np.searchsorted(wanted, [live[0], live[-1] + 1]) if len(live) else (0, 0)
            parts.append(rows.take(pa.array(np.searchsorted(live, wanted[lo:hi]))))
        if not parts:
            return self.read(columns, [])[0]
        taken = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return taken.take(pa.array(back))

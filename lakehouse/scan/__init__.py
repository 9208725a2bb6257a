"""Scanning: everything between a pinned table state and rows.

A :class:`Scan` binds a state (one version's metadata and files table) to its storage and does
what every read needs: the column mapping of format.md §5.7 (:class:`ColumnMapping`; data files and
the files table use physical names, users see current names), pruning the files table by
partition values and statistics (:meth:`Scan.pruned`), splitting a filter into what a Parquet scan
may push down and what is evaluated on the rows read (:func:`scan_plan`), and the datasets that
read the data files (:meth:`Scan.dataset`). Distributed engines get the same read as picklable
:class:`FileTask` values (:func:`build_tasks`) read anywhere by :func:`read_task`.

The package, by concern: :mod:`lakehouse.scan.mapping` (:class:`ColumnMapping`, :func:`scan_plan`),
:mod:`lakehouse.scan.dataset` (:class:`TableDataset`, where deletion vectors are applied; fragment
guarantees; :func:`read_ahead`), :mod:`lakehouse.scan.tasks` (:class:`FileTask`, :func:`build_tasks`,
:func:`read_task`, :func:`task_groups`), :mod:`lakehouse.scan.groups` (:class:`FileGroups`: a data
file read by row group, rows with their live positions, for row-level writes) and
:mod:`lakehouse.scan.core` (:class:`Scan`); every name is re-exported here.

Where every read meets the data files: each reader reaches them through ONE method,
:meth:`TableDataset.scanner`. ``Snapshot.to_arrow`` (and so ``to_pandas``) and
``Snapshot.to_batches`` (and so the Arrow PyCapsule stream) scan :meth:`Scan.dataset`;
``to_pyarrow_dataset`` (and so Polars, DuckDB) hands out :meth:`Scan.dataset` with statistics
guards, whose ``to_table``/``to_batches``/``count_rows``/``head`` pyarrow routes through
``scanner`` (when some files carry vectors, a :class:`LiveDataset`: those files' live rows, read
through ``scanner`` when it is made, held in memory next to the plain files' dataset, so that
pyarrow's C++, which never calls ``scanner``, sees live rows only too); :meth:`Scan.scan_fragment`
/ :meth:`Scan.count_fragment` (deletes, optimize) and
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

from .core import Scan
from .dataset import LiveDataset, TableDataset, read_ahead
from .groups import FileGroups, RowGroup
from .mapping import ColumnMapping, ScanPlan, scan_plan
from .tasks import FileTask, build_tasks, read_task, task_groups

__all__ = ["ColumnMapping", "FileGroups", "FileTask", "LiveDataset", "RowGroup", "Scan", "ScanPlan", "TableDataset",
           "build_tasks", "read_ahead", "read_task", "scan_plan", "task_groups"]

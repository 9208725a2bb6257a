"""The maintenance verbs of :class:`~lakehouse.Table`, which it inherits from :class:`TableMaintenance`.

``checkpoint``, ``vacuum``, ``cleanup_log``, ``restore`` and ``optimize`` act on the latest version:
each moves the table there first, then calls :mod:`lakehouse.maintenance` (or the checkpoint
writer) and reports a new version to the table. They see the table only through its
:class:`~lakehouse.handle.TableHandle` (storage, refresh, ``state_at``, the on-commit callback,
write options) and its public ``schema``: this module needs nothing of ``table`` (no cycle).

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-table-maintenance", pa.table({"a": [1]}))
    >>> _ = t.append(pa.table({"a": [2]}))
    >>> isinstance(t, TableMaintenance), t.optimize(), t.checkpoint()
    (True, 2, 2)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from . import maintenance
from .arguments import check_names
from .checkpoint import write_checkpoint
from .errors import ColumnNotFoundError, InvalidArgumentError, InvalidTableError
from .expr.dnf import FilterLike, to_expression
from .progress import ProgressEvent, ProgressLike, progress_callback
from .properties import target_file_size as target_file_size_property

if TYPE_CHECKING:
    from .handle import TableHandle

__all__ = ["TableMaintenance"]


class TableMaintenance:
    """The maintenance verbs of :class:`~lakehouse.Table`, on top of its handle and ``schema``.

    A class using it provides ``_handle`` (a :class:`~lakehouse.handle.TableHandle` on itself) and
    ``schema``, as ``Table`` does.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-table-maintenance-class", pa.table({"a": [1]}))
        >>> _ = t.append(pa.table({"a": [2]}))
        >>> t.restore(0), t.to_arrow().num_rows
        (2, 1)
    """

    if TYPE_CHECKING:
        @property
        def _handle(self) -> TableHandle: ...

        @property
        def schema(self) -> pa.Schema: ...

    # -- maintenance ---------------------------------------------------------------------------
    def checkpoint(self, *, progress: ProgressLike = None) -> int:
        """Write a checkpoint at the latest version; returns that version. ``progress`` as for
        :meth:`append` (one ``("checkpoint", "write")`` step).

        Args:
            progress: None (silent), True (a progress bar) or a callable taking
                :class:`~lakehouse.progress.ProgressEvent` values.

        Returns:
            The version the checkpoint holds (the latest).

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> lh.write_table("memory://doc-checkpoint", pa.table({"a": [1]})).checkpoint()
            0
        """
        handle = self._handle
        state = handle.refresh()
        report = progress_callback(progress)
        try:
            report(ProgressEvent("checkpoint", "write", 0, 1, "checkpoints"))
            version = write_checkpoint(handle.storage, state)
            report(ProgressEvent("checkpoint", "write", 1, 1, "checkpoints"))
        finally:
            report.close()
        return version

    def vacuum(self, *, retention: dt.timedelta = dt.timedelta(days=7), dry_run: bool = True,
               enforce_retention: bool = True, progress: ProgressLike = None) -> list[str]:
        """Delete files no version within ``retention`` can read (and orphans older than it).

        Returns the paths (relative to the table root) deleted, or that would be with ``dry_run``
        (the default). A retention below the table's minimum (property
        ``vacuum_min_retention_seconds``, default 7 days) raises ``RetentionError`` unless
        ``enforce_retention=False``. ``progress`` as for :meth:`append` (one event per file deleted).
        Only files named as the table's data files are deleted (format §17.1): other files in the
        folder stay, and so does a file a restore committed while the vacuum ran. Only regular files
        are deleted, and on local disk never through a symbolic link (format §3.1): a partition
        folder linked onto another disk stays, with everything under it.

        Args:
            retention: how far back versions stay readable.
            dry_run: only list what would be deleted.
            enforce_retention: refuse a retention below the table's minimum.
            progress: None (silent), True (a progress bar) or a callable taking
                :class:`~lakehouse.progress.ProgressEvent` values.

        Returns:
            The paths, relative to the table root, deleted (or that would be).

        Raises:
            RetentionError: ``retention`` is below the table's minimum and ``enforce_retention`` is set.

        Example:
            >>> import lakehouse as lh, pyarrow as pa, datetime as dt
            >>> t = lh.write_table("memory://doc-vacuum-m", pa.table({"a": [1]}))
            >>> _ = t.overwrite(pa.table({"a": [2]}))
            >>> len(t.vacuum(retention=dt.timedelta(0), enforce_retention=False, dry_run=False))
            1
            >>> t.to_arrow().column("a").to_pylist()
            [2]
        """
        handle = self._handle
        return maintenance.vacuum(handle.storage, handle.refresh(), retention=retention, dry_run=dry_run,
                                  enforce_retention=enforce_retention, progress=progress)

    def cleanup_log(self, *, retention: dt.timedelta = dt.timedelta(days=30), enforce_retention: bool = True) -> int:
        """Remove log entries older than ``retention`` that a checkpoint covers; returns how many.

        Time travel to a removed version then raises ``VersionNotFoundError``. A retention below
        the property ``log_min_retention_seconds`` (default 7 days) needs ``enforce_retention=False``.

        Args:
            retention: how long log entries are kept.
            enforce_retention: refuse a retention below the table's minimum.

        Returns:
            How many log entries were removed.

        Raises:
            RetentionError: ``retention`` is below the table's minimum and ``enforce_retention`` is set.

        Example:
            >>> import lakehouse as lh, pyarrow as pa, datetime as dt
            >>> t = lh.write_table("memory://doc-cleanup-m", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]})); _ = t.checkpoint()
            >>> t.cleanup_log(retention=dt.timedelta(0), enforce_retention=False)
            1
        """
        handle = self._handle
        return maintenance.cleanup_log(handle.storage, handle.refresh(), retention=retention,
                                       enforce_retention=enforce_retention)

    def restore(self, version: int | None = None, *, as_of: dt.datetime | None = None) -> int:
        """Commit a new version whose files and schema equal ``version``'s (or ``as_of``'s): it reads
        exactly as that version did, whatever schema changes came since.

        Raises ``VersionNotFoundError`` if that version's files were vacuumed (before the restore,
        or by a vacuum running at the same time: the restore is then undone, format §17.1).

        Args:
            version: the version to restore.
            as_of: an aware datetime: restore the newest version committed at or before it.

        Returns:
            The new version.

        Raises:
            InvalidArgumentError: neither or both of ``version`` and ``as_of``.
            VersionNotFoundError: that version does not exist, or its files were vacuumed.
            CommitConflictError: a concurrent commit conflicts with the restore.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-restore-m", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]}))
            >>> t.restore(0), t.to_arrow().num_rows, t.history(1)[0].operation
            (2, 1, 'restore')
        """
        if (version is None) == (as_of is None):
            raise InvalidArgumentError("pass exactly one of version or as_of")
        handle = self._handle
        target = handle.state_at(version, as_of)
        result = maintenance.restore(handle.storage, handle.refresh(), target)
        handle.on_commit(result.state, False)
        return result.version

    def optimize(self, *, target_file_size: int | None = None, filter: FilterLike | pc.Expression | None = None,
                 sort_by: Sequence[str] | None = None, progress: ProgressLike = None) -> int | None:
        """Compact small files into files of about ``target_file_size`` bytes (property
        ``target_file_size``), optionally sorted by ``sort_by``; returns the new version, or None
        if there was nothing to do. Rows do not change: concurrent appends never conflict with it,
        and time travel to older versions still reads the old files until vacuum removes them.

        ``filter`` limits the work to the files it may match (e.g. some partitions). With
        ``sort_by`` every partition of more than one file is rewritten as a whole, sorted.
        A file with a deletion vector is always rewritten, without its deleted rows (vectors fold away).
        ``progress`` as for :meth:`append` (one event per group of files rewritten).

        Args:
            target_file_size: the size in bytes to aim for (the table property if None).
            filter: compact only the files it may match (DNF tuples, SQL-like text or an expression).
            sort_by: columns to sort each rewritten partition by.
            progress: None (silent), True (a progress bar) or a callable taking
                :class:`~lakehouse.progress.ProgressEvent` values.

        Returns:
            The new version, or None if no file needed rewriting.

        Raises:
            InvalidTableError: ``target_file_size`` is not a positive integer below ``2**63``.
            ColumnNotFoundError: ``sort_by`` or ``filter`` name a column the table does not have.
            CommitConflictError: a concurrent delete or overwrite removed files being rewritten.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-optimize-m", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]}))
            >>> t.optimize(), len(t.files()), t.optimize()
            (2, 1, None)
        """
        handle = self._handle
        state = handle.refresh()
        size = target_file_size if target_file_size is not None else \
            target_file_size_property(state.metadata.properties)
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size < 1 << 63:
            raise InvalidTableError(f"target_file_size must be a positive integer below 2**63, got {size!r}")
        columns = check_names(sort_by, "sort_by") or []
        for c in columns:
            if c not in self.schema.names:
                raise ColumnNotFoundError(c, available=self.schema.names)
        expr = to_expression(filter, self.schema)
        result = maintenance.optimize(handle.storage, state, target_file_size=size, filter=expr,
                                      sort_by=columns, options=handle.write_options(), progress=progress)
        if result is None:
            return None
        handle.on_commit(result.state, False)
        return result.version

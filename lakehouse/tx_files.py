"""The files of one transaction: what it wrote, removed and re-added with a new deletion vector, its
view of the live files, and the lineage of the rows it moved (format §5.4).

``lakehouse.transaction.Transaction`` holds one :class:`TransactionFiles` and records every change of
files through it; the conflict declarations (read filters, files and rows) and the commit stay with
the transaction. Row removal is planned by ``lakehouse.removal_plan`` and carried out here.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> from lakehouse.replay import load_state
    >>> from lakehouse.storage import Storage
    >>> t = lh.write_table("memory://doc-tx-files", pa.table({"a": [1, 2]}))
    >>> storage = Storage.from_uri(t.uri)
    >>> files = TransactionFiles(storage, load_state(storage), {})
    >>> files.include(files.write(pa.table({"a": [3]})))
    >>> files.files.num_rows, len(files.added)
    (2, 1)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .clock import now_ms
from .constraints import combine_checks, constraint_checker
from .deletion_vector import DeletionVector
from .dv_store import write_vectors
from .errors import CommitConflictError, CommitError, InvalidArgumentError
from .log import AddFile, Metadata, RemoveFile
from .progress import ProgressLike
from .properties import delete_mode
from .removal_plan import Removal, kept_rows, merged_vectors, parts_in, plan_removal
from .replay import read_entry
from .schema import logical_schema
from .state import TableState, adds_to_table, files_to_adds, retype_adds, vector_descriptors
from .storage import Storage
from .write import WriteOptions, delete_files, write_data_files

__all__ = ["TransactionFiles"]


class TransactionFiles:
    """The data files and deletion vectors of one transaction, and its view of the live files.

    Attributes:
        storage: the table's storage.
        state: the state the transaction works on (its metadata includes the transaction's changes).
        added: path -> add action of the data files written (or given) and still part of the commit.
        removed: path -> remove action of the live files removed (vector replacements too).
        revectored: path -> add action of the live files re-added with a new deletion vector.
        vector_files: the deletion-vector files written.
        lineage_files: those of them holding the commit's ``dropped_rows`` (format §5.4).

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> from lakehouse.replay import load_state
        >>> from lakehouse.storage import Storage
        >>> t = lh.write_table("memory://doc-tx-files-class", pa.table({"a": [1]}))
        >>> files = TransactionFiles(Storage.from_uri(t.uri), load_state(Storage.from_uri(t.uri)), {})
        >>> files.drop(files.files)
        >>> files.files.num_rows, len(files.removed)
        (0, 1)
    """

    def __init__(self, storage: Storage, base: TableState, options: WriteOptions) -> None:
        """Start with no change over ``base``; ``options``: the table's write options."""
        self.storage = storage
        self.state = base
        self._options = options
        self._working = base.files
        self._pending: list[AddFile] = []  # added files not yet joined into ``_working``
        self.added: dict[str, AddFile] = {}
        self.removed: dict[str, RemoveFile] = {}
        self.revectored: dict[str, AddFile] = {}  # live files re-added with a new deletion vector (never deleted)
        self.vector_files: set[str] = set()
        self.lineage_files: set[str] = set()
        # lineage (format §5.4): per removed file rewritten in part, the rows it dropped (a removed file
        # absent here dropped all its live rows); False once a transaction re-touches rows it carried
        self._dropped: dict[str, DeletionVector] = {}
        self._lineage = True

    @property
    def files(self) -> pa.Table:
        """The live files as the transaction sees them. Added files join the table only when an
        operation reads it, so a plain append builds no files-table rows here (the commit does)."""
        if self._pending:
            added = adds_to_table(self._pending, self.state.metadata)
            self._working = pa.concat_tables([self._working, added])
            self._pending = []
        return self._working

    def include(self, adds: list[AddFile]) -> None:
        """Make the written files ``adds`` live in the transaction's view.

        Args:
            adds: add actions of files written by :meth:`write` (or given to the transaction).
        """
        self._pending.extend(adds)

    def write(self, data: Any, check: Callable[[pa.RecordBatch], None] | None = None, *, widen: bool = False,
              progress: ProgressLike = None, operation: str = "write") -> list[AddFile]:
        """Write ``data`` into data files under the current metadata (CHECK constraints, format §16.1).

        Args:
            data: Arrow-shaped data.
            check: a further check of each batch, or None.
            widen: let the data's types be widened to the schema's (a merged schema).
            progress: None, True or a callable taking ``ProgressEvent``.
            operation: the operation name reported to ``progress``.

        Returns:
            The add actions of the files written (recorded in :attr:`added`, not yet live).

        Raises:
            SchemaMismatchError: the data does not fit the schema.
            ConstraintViolationError: a row breaks a constraint or ``check``.
        """
        meta = self.state.metadata
        check = combine_checks(constraint_checker(meta.properties), check)  # CHECK constraints (format §16.1)
        self.storage.check_atomic_create()  # an unsafe store is refused before any data file is written
        adds = write_data_files(self.storage, data, schema=meta.schema, partition_by=meta.partition_by,
                                options=self._options, check=check, widen=widen, progress=progress,
                                operation=operation)
        self.added.update((a.path, a) for a in adds)
        return adds

    def evolve(self, meta: Metadata) -> None:
        """Continue under ``meta`` (a changed schema or properties), re-encoding the recorded adds.

        Args:
            meta: the new metadata.
        """
        old = self.state.metadata
        files = self.files  # added files join under the schema they were written with
        self.state = self.state.with_metadata(meta)
        self._working = self.state.with_files(files).with_metadata(meta).files
        # values of add actions are typed by the commit's schema (format.md §5.3): re-encode ours
        carried = {a.path: a.carried_rows for a in self.added.values()}
        self.added = {a.path: dataclasses.replace(a, carried_rows=carried[a.path])
                      for a in retype_adds(list(self.added.values()), old, meta)}
        self.revectored = {a.path: a for a in retype_adds(list(self.revectored.values()), old, meta)}

    def drop(self, rows: pa.Table, partial: Mapping[str, DeletionVector] | None = None) -> None:
        """Remove the live files ``rows``; a file the transaction wrote is deleted at once.

        Args:
            rows: rows of the files table.
            partial: of those rewritten in part, the rows dropped (lineage; the others dropped every
                live row).
        """
        if rows.num_rows == 0:
            return
        now = now_ms()
        paths = rows.column("path").to_pylist()
        ours = {p for p in paths if p in self.added}
        for p in ours:
            if self.added[p].carried_rows:  # rows carried from a removed file: which file is not known
                self._lineage = False
            del self.added[p]
        delete_files(self.storage, sorted(ours))  # never committed, so nobody can read them
        sizes, counts = rows.column("size_bytes").to_pylist(), rows.column("num_rows").to_pylist()
        deleted = rows.column("num_deleted_rows").to_pylist()
        for p, size, n, d in zip(paths, sizes, counts, deleted):
            if p not in ours:
                if partial is not None and p in partial:
                    self._dropped[p] = self._dropped[p].union(partial[p]) if p in self._dropped else partial[p]
                else:
                    self._dropped.pop(p, None)  # every live row (at the base) goes
            self.revectored.pop(p, None)  # its remove (with the vector it had at the base) is recorded
            if p not in ours and p not in self.removed:
                self.removed[p] = RemoveFile(path=p, deletion_time=now, size_bytes=size, num_rows=n,
                                             num_deleted_rows=d)
        files = self.files
        self._working = files.filter(pc.invert(pc.is_in(files.column("path"), pa.array(paths, pa.string()))))

    def revector(self, rows: pa.Table, vectors: dict[str, DeletionVector],
                 fresh: Mapping[str, DeletionVector]) -> None:
        """Remove ``rows`` (live files) and re-add them with ``vectors`` (format §4.2, §5.8).

        Args:
            rows: rows of the files table, one per key of ``vectors``.
            vectors: path -> the file's whole new deletion vector.
            fresh: the positions each vector deletes that the file's current one did not (lineage,
                should the file be dropped later in the transaction).
        """
        for p, v in fresh.items():
            self._dropped[p] = self._dropped[p].union(v) if p in self._dropped else v
        descriptors = write_vectors(self.storage, vectors)
        self.vector_files.update(d.path for d in descriptors.values() if d.path is not None)
        now = now_ms()
        adds = files_to_adds(rows, self.state.metadata)
        for a, deleted in zip(adds, rows.column("num_deleted_rows").to_pylist()):
            if a.path not in self.removed:  # the remove records the vector the file had at the base
                self.removed[a.path] = RemoveFile(path=a.path, deletion_time=now, size_bytes=a.size_bytes,
                                                  num_rows=a.num_rows, num_deleted_rows=deleted)
            self.revectored[a.path] = dataclasses.replace(a, deletion_vector=descriptors[a.path])
        files = self.files
        self._working = files.filter(pc.invert(pc.is_in(files.column("path"), rows.column("path"))))
        self.include([self.revectored[a.path] for a in adds])

    def add_vectors(self, vectors: Mapping[str, DeletionVector]) -> int:
        """Mark rows of live files deleted, in addition to their current vectors (format §5.8): each
        changed file is removed and re-added with its new vector; a file whose rows all go is removed.

        Args:
            vectors: path of a live file (not one the transaction wrote) -> positions (in file order).

        Returns:
            How many files changed (0: nothing new is deleted).

        Raises:
            InvalidArgumentError: a path is not live or names a file the transaction wrote, or a
                position is not below the file's ``num_rows``.
        """
        rows = parts_in(self.files, list(vectors))
        found = rows.column("path").to_pylist()
        missing = sorted(set(vectors) - set(found))
        if missing:
            raise InvalidArgumentError(f"files to mark rows deleted in are not live: {missing[:5]}", argument="vectors")
        ours = sorted(p for p in found if p in self.added)
        if ours:
            raise InvalidArgumentError(f"this transaction wrote {ours[0]!r}: rewrite it instead of marking rows "
                                       f"deleted in it", argument="vectors")
        new = merged_vectors(self.storage, rows, vectors)
        whole = [p for p, (v, n, _) in new.items() if v.cardinality == n]
        changed = {p: v for p, (v, n, _) in new.items() if v.cardinality != n}
        if whole:
            self.drop(parts_in(rows, whole))
        if changed:
            self.revector(parts_in(rows, list(changed)), changed, {p: new[p][2] for p in changed})
        return len(new)

    def plan_removal(self, rows: pa.Table, positions: Mapping[str, np.ndarray]) -> Removal:
        """Per file: drop, vector or rewrite, under the table's ``delete_mode`` (``removal_plan.plan_removal``).

        Args:
            rows: the touched live files.
            positions: path -> the positions removed, among the file's live rows.

        Returns:
            The plan.

        Raises:
            InvalidArgumentError: a position is beyond its file's live rows.
        """
        mode = delete_mode(self.state.metadata.properties)
        return plan_removal(self.storage, rows, positions, mode=mode, written=self.added)

    def write_kept(self, removal: Removal) -> list[AddFile]:
        """Write the kept rows of the files ``removal`` rewrites, in file order: those of files in the
        log into files of their own (all rows carried over, format §5.4), those of files this
        transaction wrote (new rows of this commit) into others.

        Args:
            removal: the plan.

        Returns:
            The add actions of the files written (not yet live).
        """
        out: list[AddFile] = []
        schema = logical_schema(self.state.metadata.schema)
        for carried, reader in kept_rows(self.storage, self.state, removal, schema, set(self.added)):
            adds = self.write(reader)
            if carried:
                adds = [dataclasses.replace(a, carried_rows=a.num_rows) for a in adds]
                self.added.update((a.path, a) for a in adds)
            out += adds
        return out

    def apply_removal(self, removal: Removal) -> None:
        """Drop and revector the files of ``removal`` (after its rewrites and the new rows are written).

        Args:
            removal: the plan.
        """
        gone = removal.drop + [p for p, _ in removal.rewrite]
        if gone:
            self.drop(parts_in(removal.rows, gone), {p: removal.fresh[p] for p, _ in removal.rewrite})
        if removal.vectors:
            self.revector(parts_in(removal.rows, list(removal.vectors)), removal.vectors,
                          {p: removal.fresh[p] for p in removal.vectors})

    def lineage_actions(self) -> tuple[list[AddFile], tuple[RemoveFile, ...]]:
        """The adds (not the vector replacements) and removes of the commit with their lineage (format
        §5.4): when the commit removes files (vector replacements too), every add records
        ``carried_rows`` and every remove of a file rewritten in part its ``dropped_rows`` (the others
        dropped all their live rows); none if this transaction lost track (it rewrote again rows it
        had carried). Writes the ``dropped_rows`` vectors (:attr:`lineage_files`).

        Returns:
            The adds and the removes.
        """
        added, removed = list(self.added.values()), tuple(self.removed.values())
        if not self._lineage or not removed:
            return [a if a.carried_rows is None else dataclasses.replace(a, carried_rows=None) for a in added], removed
        added = [a if a.carried_rows is not None else dataclasses.replace(a, carried_rows=0) for a in added]
        partial = {p: v for p, v in self._dropped.items() if p in self.removed and p not in self.revectored}
        if not partial:
            return added, removed
        descriptors = write_vectors(self.storage, partial)
        self.lineage_files = {d.path for d in descriptors.values() if d.path is not None}
        self.vector_files.update(self.lineage_files)
        return added, tuple(dataclasses.replace(r, dropped_rows=descriptors[r.path]) if r.path in descriptors else r
                            for r in removed)

    def discard(self) -> None:
        """Delete every data file and deletion-vector file written (an abort, or a commit skipped)."""
        delete_files(self.storage, [*self.added, *sorted(self.vector_files)])

    def discard_lost(self, exc: CommitError) -> None:
        """Delete what a commit that failed with ``exc`` (it certainly did not land) wrote, except the
        data files the winning commit of a conflict added.

        Args:
            exc: the failure.
        """
        delete_files(self.storage, [p for p in self.added if p not in self._committed_by(exc)])
        delete_files(self.storage, sorted(self.vector_files))  # fresh names: no other commit has them

    def discard_unused_vectors(self, files: pa.Table) -> None:
        """After a commit, delete the vector files its entry does not refer to (a rebase may have
        replaced the transaction's vectors by merged ones, format §12).

        Args:
            files: the files table of the committed state.
        """
        if not self.vector_files:
            return
        live = vector_descriptors(parts_in(files, list(self.revectored)))
        kept = {d.path for d in live if d is not None} | self.lineage_files  # the entry refers to these
        delete_files(self.storage, sorted(self.vector_files - kept))

    def _committed_by(self, exc: CommitError) -> set[str]:
        """Paths the winning commit of a conflict added: never deleted, even if this one added them too."""
        version = getattr(exc, "version", None)
        if not isinstance(exc, CommitConflictError) or version is None:
            return set()
        if exc.live_paths:  # the conflict found them live (after a log clean-up)
            return set(exc.live_paths)
        try:
            entry = read_entry(self.storage, version)
        except Exception:  # cannot tell: keep every file (an orphan is vacuum's, a lost file is not)
            return set(self.added)
        # a winner the log no longer holds (cleaned up) cannot tell which files it added: keep them all
        return set(self.added) if entry is None else {a.path for a in entry.add}

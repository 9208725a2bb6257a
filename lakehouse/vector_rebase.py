"""Row-level concurrency: rebasing a commit's deletion vectors over winners that changed the same files
(format.md §12, "Row-level changes").

A commit that replaces the deletion vector of a live file ``F`` (remove ``F`` and re-add it with a new
vector, §5.8) and loses the race to winners that also only replaced ``F``'s vector is not a conflict
when the two changed different rows: the rows it newly deletes (its vector minus ``F``'s vector at
the version it is based on) and the rows the winners newly deleted (``F``'s vector after them minus
the same base) must not intersect, nor may the winners have deleted a row the commit declared it
read (``CommitRequest.read_rows``). The rebased commit re-adds ``F`` with the union of its vector
and the winners' (a new descriptor: inline or in a new vector file), and its remove records the
vector ``F`` has after the winners. :func:`revectored` tells which paths of an entry are such
vector replacements; :func:`rebase_vectors` does the merge.

Example:
    >>> from lakehouse.log import AddFile, RemoveFile
    >>> revectored([RemoveFile(path="f", deletion_time=1)], [AddFile(path="f", size_bytes=1, num_rows=2,
    ...            modification_time=1), AddFile(path="g", size_bytes=1, num_rows=2, modification_time=1)])
    frozenset({'f'})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from .deletion_vector import DeletionVector
from .dv_store import MAX_INLINE_BYTES_PER_COMMIT, load_vectors, write_vectors
from .errors import CommitConflictError
from .log import AddFile, RemoveFile
from .state import TableState, vector_descriptors
from .storage import Storage

__all__ = ["Rebased", "rebase_vectors", "revectored"]

_EMPTY = DeletionVector.from_positions([])


def revectored(remove: Iterable[RemoveFile], add: Iterable[AddFile]) -> frozenset[str]:
    """The paths an entry (or a request) both removes and re-adds: vector replacements (format §4.2,
    §5.8; the log guarantees the re-add is the same physical file).

    Args:
        remove: the remove actions.
        add: the add actions.

    Returns:
        The paths in both.
    """
    removed = {r.path for r in remove}
    return frozenset(a.path for a in add if a.path in removed)


def _vectors_at(storage: Storage, state: TableState, paths: list[str]) -> dict[str, tuple[DeletionVector, int]]:
    """Per path (live in ``state``): its deletion vector there (empty without one) and its row count."""
    files = state.files
    rows = files.filter(pc.is_in(files.column("path"), pa.array(paths, pa.string())))
    found = rows.column("path").to_pylist()
    counts = rows.column("num_rows").to_pylist()
    descs = vector_descriptors(rows)
    wanted = [(d, n) for d, n in zip(descs, counts) if d is not None]
    loaded = iter(load_vectors(storage, wanted))
    return {p: (next(loaded) if d is not None else _EMPTY, n) for p, d, n in zip(found, descs, counts)}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Rebased:
    """The actions of a rebased commit and the vector files written for them.

    Attributes:
        add: the add actions.
        remove: the remove actions.
        written: the vector files (relative paths) the rebase wrote.
    """

    add: tuple[AddFile, ...]
    remove: tuple[RemoveFile, ...]
    written: frozenset[str] = frozenset()


def rebase_vectors(storage: Storage, request: Rebased, read_rows: Mapping[str, DeletionVector], state: TableState,
                   after: TableState, touched: Mapping[str, int]) -> Rebased:
    """The actions of ``request`` (a commit decided on ``state``) rebased onto ``after``, where
    winners replaced the deletion vectors of the files ``touched`` (path -> the last winning version
    that did).

    For each touched path, the rows the winners newly deleted must contain every row of ``state``'s
    vector (no winner took a deletion back, as a restore does) and must not meet the rows the request
    newly deletes or declared it read; a path the request re-adds gets the union of its vector and
    the one it has in ``after`` (the file is removed instead if that covers every row).

    Args:
        storage: the table's storage (new vectors are written there).
        request: the losing commit's actions.
        read_rows: the rows of live files the commit declared it read (``CommitRequest.read_rows``).
        state: the state ``request`` is based on.
        after: ``state`` with the winners applied.
        touched: paths whose vectors winners replaced and that ``request`` re-adds or read row by row.

    Returns:
        The rebased actions, and the vector files written for them.

    Raises:
        CommitConflictError: a winner deleted a row the request also deletes or read, or took back
            a deletion; ``.path`` names the data file.
    """
    if not touched:
        return request
    paths = sorted(touched)
    base, final = _vectors_at(storage, state, paths), _vectors_at(storage, after, paths)
    ours = {a.path: a for a in request.add if a.path in touched}
    with_vector = [(a.path, a.deletion_vector, a.num_rows) for a in ours.values() if a.deletion_vector is not None]
    mine = dict(zip([p for p, _, _ in with_vector], load_vectors(storage, [(d, n) for _, d, n in with_vector])))
    merged: dict[str, DeletionVector] = {}
    for path in paths:
        s, w = base.get(path, (_EMPTY, 0))[0], final[path][0]
        if s.difference(w).cardinality:
            raise CommitConflictError(
                f"concurrent commit at version {touched[path]} took back deleted rows of {path!r}, which this "
                f"commit changes or read", version=touched[path], path=path)
        changed = mine[path].difference(s) if path in mine else _EMPTY
        if changed.union(read_rows.get(path, _EMPTY)).intersects(w.difference(s)):
            raise CommitConflictError(
                f"concurrent commit at version {touched[path]} changed rows of {path!r} that this commit also "
                f"changes or read", version=touched[path], path=path)
        if path in mine:
            merged[path] = mine[path].union(w)
        elif path in ours:  # re-added without a vector (only a restore does that): nothing to merge
            raise CommitConflictError(f"concurrent commit at version {touched[path]} changed rows of {path!r}, "
                                      f"which this commit re-adds whole", version=touched[path], path=path)
    return _with_vectors(storage, request, merged, {p: final[p][0].cardinality for p in merged})


def _with_vectors(storage: Storage, request: Rebased, merged: dict[str, DeletionVector],
                  before: dict[str, int]) -> Rebased:
    """``request`` with the re-adds of ``merged`` carrying those vectors (a file they wholly cover is
    only removed) and their removes recording the ``before`` cardinalities."""
    if not merged:
        return request
    rows = {a.path: a.num_rows for a in request.add if a.path in merged}
    whole = {p for p, v in merged.items() if v.cardinality >= rows[p]}
    keep = {p: v for p, v in merged.items() if p not in whole}
    used = sum(len(a.deletion_vector.inline) for a in request.add
               if a.path not in merged and a.deletion_vector is not None and a.deletion_vector.inline is not None)
    descriptors = write_vectors(storage, keep, inline_budget=max(0, MAX_INLINE_BYTES_PER_COMMIT - used)) if keep \
        else {}
    add = tuple(a if a.path not in merged else dataclasses.replace(a, deletion_vector=descriptors[a.path])
                for a in request.add if a.path not in whole)
    remove = tuple(r if r.path not in merged else dataclasses.replace(r, num_deleted_rows=before[r.path])
                   for r in request.remove)
    written = frozenset(d.path for d in descriptors.values() if d.path is not None)
    return Rebased(add=add, remove=remove, written=request.written | written)

"""Planning how a transaction removes rows of live files: which rows a delete's filter matches, and
per file whether it is dropped, given a deletion vector or rewritten (``lakehouse.rowremoval``).

Functions of explicit arguments (the storage, the files table rows, the positions): they read data
files and deletion vectors but write nothing; ``lakehouse.tx_files.TransactionFiles`` writes and
records what they plan.

Example:
    >>> import pyarrow as pa
    >>> files = pa.table({"path": ["a.parquet", "b.parquet"], "num_rows": [3, 4]})
    >>> parts_in(files, ["b.parquet"]).column("num_rows").to_pylist()
    [4]
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .deletion_vector import DeletionVector
from .dv_store import load_vectors
from .errors import InvalidArgumentError, InvalidFilterError
from .expr.bridge import evaluate, referenced_columns
from .rowremoval import physical_positions, removal_kind
from .scan import Scan, read_ahead
from .state import TableState, vector_descriptors
from .storage import Storage

__all__ = ["Removal", "RowsRemoved", "kept_rows", "matching_positions", "merged_vectors", "parts_in", "plan_removal"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RowsRemoved:
    """What :meth:`lakehouse.Transaction.remove_rows` did.

    Attributes:
        files_added: paths of the data files written.
        files_removed: files removed for good (dropped or rewritten).
        deletion_vectors: files given a new deletion vector instead.

    Example:
        >>> RowsRemoved().files_removed
        0
    """

    files_added: tuple[str, ...] = ()
    """Paths of the data files written (kept rows of rewritten files, then the new rows)."""
    files_removed: int = 0
    """Files removed: dropped (all their rows went) or rewritten; not those given a deletion vector."""
    deletion_vectors: int = 0
    """Files that kept their place with a new deletion vector (merge-on-read)."""


def parts_in(files: pa.Table, paths: list[str]) -> pa.Table:
    """The rows of the files table ``files`` whose path is in ``paths`` (in the order of ``files``).

    Args:
        files: rows of a files table (a ``path`` column).
        paths: the paths wanted.

    Returns:
        The matching rows.

    Example:
        >>> parts_in(pa.table({"path": ["a", "b"]}), ["a"]).num_rows
        1
    """
    return files.filter(pc.is_in(files.column("path"), pa.array(paths, pa.string())))


@dataclass(slots=True)
class Removal:
    """How one operation removes rows of live files (see ``lakehouse.rowremoval``).

    Attributes:
        rows: the touched files (rows of the files table).
        drop: paths of the files removed whole.
        vectors: path -> its whole new deletion vector.
        fresh: path -> the positions newly deleted (vectored and rewritten files).
        rewrite: (path, keep mask over its live rows) of the files rewritten.

    Example:
        >>> Removal(rows=pa.table({"path": pa.array([], pa.string())})).drop
        []
    """

    rows: pa.Table
    drop: list[str] = field(default_factory=list)
    vectors: dict[str, DeletionVector] = field(default_factory=dict)
    fresh: dict[str, DeletionVector] = field(default_factory=dict)
    rewrite: list[tuple[str, np.ndarray]] = field(default_factory=list)


def plan_removal(storage: Storage, rows: pa.Table, positions: Mapping[str, np.ndarray], *, mode: str,
                 written: Container[str]) -> Removal:
    """Per file: drop, vector or rewrite (``rowremoval.removal_kind`` under ``mode``).

    Args:
        storage: the table's storage (the files' current deletion vectors are read from it).
        rows: the touched live files (rows of the files table).
        positions: path -> the positions removed, among the file's live rows.
        mode: the table's ``delete_mode``.
        written: paths of the files the transaction wrote itself.

    Returns:
        The plan (:class:`Removal`).

    Raises:
        InvalidArgumentError: a position is beyond its file's live rows.
        CorruptDeletionVectorError: a file's current vector cannot be read.

    Example:
        >>> from lakehouse.log import AddFile, Metadata
        >>> from lakehouse.state import adds_to_table
        >>> from lakehouse.storage import Storage
        >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
        >>> rows = adds_to_table([AddFile(path="f", size_bytes=1, num_rows=5, modification_time=0)], meta)
        >>> plan_removal(Storage.from_uri("memory://doc-plan"), rows, {"f": np.arange(5)},
        ...              mode="merge-on-read", written=()).drop
        ['f']
    """
    paths = rows.column("path").to_pylist()
    counts, deleted = rows.column("num_rows").to_pylist(), rows.column("num_deleted_rows").to_pylist()
    descriptors = vector_descriptors(rows)
    kinds = [removal_kind(num_rows=n, num_deleted=d, removing=len(positions[p]), mode=mode,
                          written=p in written) for p, n, d in zip(paths, counts, deleted)]
    load = [i for i, k in enumerate(kinds) if k != "drop" and descriptors[i] is not None]
    wanted = [(d, counts[i]) for i in load if (d := descriptors[i]) is not None]
    loaded = dict(zip(load, load_vectors(storage, wanted)))
    out = Removal(rows=rows)
    for i, (p, n, d, kind) in enumerate(zip(paths, counts, deleted, kinds)):
        live = positions[p]
        if len(live) and (int(live.min()) < 0 or int(live.max()) >= n - d):
            raise InvalidArgumentError(f"row position {int(live.max())} is beyond the {n - d} live rows of {p!r}",
                                       argument="removed")
        if kind == "drop":
            out.drop.append(p)
            continue
        current = loaded.get(i)
        fresh = DeletionVector.from_positions(physical_positions(live, current, n))
        out.fresh[p] = fresh
        if kind == "vector":
            out.vectors[p] = fresh if current is None else current.union(fresh)
        else:
            keep = np.ones(n - d, dtype=bool)
            keep[live] = False
            out.rewrite.append((p, keep))
    return out


def kept_rows(storage: Storage, state: TableState, removal: Removal, schema: pa.Schema,
              written: Container[str]) -> Iterator[tuple[bool, pa.RecordBatchReader]]:
    """The kept rows of the files ``removal`` rewrites, in file order, as one reader for the files in
    the log (``True``: their rows are carried over, format §5.4), then one for those the transaction
    wrote (``False``); a group without files is left out. Each reader reads its files lazily.

    Args:
        storage: the table's storage.
        state: the state the files are read under (its metadata).
        removal: the plan.
        schema: the table's (logical) schema, the readers' schema.
        written: paths of the files the transaction wrote itself.

    Yields:
        ``(carried, reader)`` pairs.

    Example:
        >>> from lakehouse.storage import Storage
        >>> empty = Removal(rows=pa.table({"path": pa.array([], pa.string())}))
        >>> list(kept_rows(Storage.from_uri("memory://doc-kept"), None, empty, pa.schema([]), ()))
        []
    """
    if not removal.rewrite:
        return
    rows = parts_in(removal.rows, [p for p, _ in removal.rewrite])
    scan = Scan(storage, state.with_files(rows))
    keep = dict(removal.rewrite)
    paths = rows.column("path").to_pylist()
    fragments = list(scan.dataset(rows).get_fragments())  # in the order of ``rows``

    def read(item: tuple[ds.Fragment, str]) -> pa.Table:
        fragment, path = item
        return scan.scan_fragment(fragment).filter(pa.array(keep[path]))

    for carried in (True, False):
        items = [(f, p) for f, p in zip(fragments, paths) if (p not in written) == carried]
        if items:
            yield carried, pa.RecordBatchReader.from_batches(schema, read_ahead(read, items))


def matching_positions(scan: Scan, candidates: pa.Table, expr: pc.Expression) -> dict[str, np.ndarray]:
    """Per file of ``candidates`` with rows where ``expr`` is true, their positions among its live rows.

    Args:
        scan: a scan of the files (the transaction's view).
        candidates: the files that may hold matching rows (rows of the files table).
        expr: the bound filter.

    Returns:
        path -> the live positions (in file order) where ``expr`` is true; files without any are absent.

    Raises:
        InvalidFilterError: ``expr`` cannot be evaluated on the rows.

    Example:
        >>> import lakehouse as lh
        >>> t = lh.write_table("memory://doc-matching", pa.table({"a": [1, 2, 3]}))
        >>> from lakehouse.replay import load_state
        >>> from lakehouse.storage import Storage
        >>> storage = Storage.from_uri(t.uri)
        >>> state = load_state(storage)
        >>> found = matching_positions(Scan(storage, state), state.files, pc.field("a") >= 2)
        >>> [v.tolist() for v in found.values()]
        [[1, 2]]
    """
    fragments = list(scan.dataset(candidates).get_fragments())
    plan = scan.plan(None, expr)  # float terms are evaluated on rows, not on Parquet stats
    needed = sorted(referenced_columns(expr))

    def matched(fragment: ds.Fragment) -> int:
        if plan.residual is None:
            return scan.count_fragment(fragment, expr)
        return scan.scan_fragment(fragment, filter=plan.pushed, columns=needed).filter(plan.residual).num_rows

    num_rows = dict(zip(candidates.column("path").to_pylist(), candidates.column("num_rows").to_pylist()))

    def positions(item: tuple[ds.Fragment, str]) -> np.ndarray:
        """The live positions (among the file's live rows, in file order) where ``expr`` is true,
        reading only the row groups whose statistics may hold such rows."""
        fragment, path = item
        rows, live = scan.file_groups(fragment, num_rows[path]).read(needed, prune=plan.pushed)
        try:
            values = evaluate(expr, rows)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise InvalidFilterError(f"the filter {expr} cannot be evaluated: {str(exc).splitlines()[0]}") from None
        return live[np.flatnonzero(pc.fill_null(values, False).to_numpy(zero_copy_only=False))]

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(matched, fragments))
        # live rows: the scan never returns (nor counts) a row a file's deletion vector deletes
        totals = pc.subtract(candidates.column("num_rows"), candidates.column("num_deleted_rows")).to_pylist()
        paths = candidates.column("path").to_pylist()
        whole = [p for p, c, n in zip(paths, counts, totals) if c and c == n]
        partial = [(f, p) for f, p, c, n in zip(fragments, paths, counts, totals) if c and c != n]
        found = dict(zip([p for _, p in partial], pool.map(positions, partial)))
    removed: dict[str, np.ndarray] = {p: np.arange(n) for p, n in zip(paths, totals) if p in set(whole)}
    removed.update(found)
    return removed


def merged_vectors(storage: Storage, rows: pa.Table, vectors: Mapping[str, DeletionVector]) -> dict[str, tuple[
        DeletionVector, int, DeletionVector]]:
    """Per file whose vector changes: its new vector (the current one plus ``vectors``), row count
    and the positions newly deleted.

    Args:
        storage: the table's storage (the current vectors are read from it).
        rows: the live files (rows of the files table), one per key of ``vectors``.
        vectors: path -> the positions (in file order) to delete.

    Returns:
        path -> (new vector, the file's ``num_rows``, the positions newly deleted); a file whose
        vector does not change is absent.

    Raises:
        InvalidArgumentError: a position is not below the file's ``num_rows``.
        CorruptDeletionVectorError: a file's current vector cannot be read.

    Example:
        >>> from lakehouse.log import AddFile, Metadata
        >>> from lakehouse.state import adds_to_table
        >>> from lakehouse.storage import Storage
        >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
        >>> rows = adds_to_table([AddFile(path="f", size_bytes=1, num_rows=5, modification_time=0)], meta)
        >>> new = merged_vectors(Storage.from_uri("memory://doc-merged"), rows,
        ...                      {"f": DeletionVector.from_positions([1])})
        >>> new["f"][0].positions.tolist(), new["f"][1]
        ([1], 5)
    """
    out: dict[str, tuple[DeletionVector, int, DeletionVector]] = {}
    paths, counts = rows.column("path").to_pylist(), rows.column("num_rows").to_pylist()
    for path, n in zip(paths, counts):
        vector = vectors[path]
        if vector.cardinality and int(vector.positions[-1]) >= n:
            raise InvalidArgumentError(f"row position {int(vector.positions[-1])} is beyond the {n} rows of "
                                       f"{path!r}", argument="vectors")
    descriptors = vector_descriptors(rows)
    # the current vectors in one batched read (neighbours in one request, files concurrently), not one by one
    wanted = [(d, n) for d, n in zip(descriptors, counts) if d is not None]
    loaded = iter(load_vectors(storage, wanted))
    for path, n, current in zip(paths, counts, descriptors):
        vector = fresh = vectors[path]
        if current is not None:
            old = next(loaded)
            vector = old.union(vector)
            if vector.cardinality == current.cardinality:
                continue  # nothing new is deleted
            fresh = vector.difference(old)
        if vector.cardinality:
            out[path] = (vector, n, fresh)
    return out

"""Applying deletion vectors to the rows read from data files (format.md §5.8).

A deletion vector names row *positions* of a data file: the n-th row stored in the file, counted
from 0 over the whole file. So a file with a vector is read in file order, unfiltered by anything
that could drop rows (no pushed filter, no row-group skipping), its deleted positions dropped batch
by batch with a running row offset, and only then is a filter evaluated on the rows left.

:class:`VectorSet` holds the vectors of the files of one read (by the full path their dataset
fragments have), loaded on first use in one batched call (:func:`lakehouse.dv_store.load_vectors`);
:func:`kept_batches` drops the deleted rows of files' batches. ``lakehouse.scan.dataset.TableDataset``
calls them from its ``scanner``, the one place every reader goes through.

Example:
    >>> import pyarrow as pa
    >>> from lakehouse.deletion_vector import DeletionVector
    >>> batches = [pa.record_batch({"a": [0, 1, 2]}), pa.record_batch({"a": [3, 4]})]
    >>> keep = DeletionVector.from_positions([1, 3]).mask(5, arrow=True)
    >>> [b.column(0).to_pylist() for b in kept_batches(((("x"), b) for b in batches), {"x": keep})]
    [[0, 2], [4]]
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from .deletion_vector import DeletionVector
from .dv_store import load_vectors
from .errors import CorruptDeletionVectorError
from .log import DeletionVectorDescriptor
from .storage import Storage

__all__ = ["VectorSet", "kept_batches"]


class VectorSet:
    """The deletion vectors of some data files, keyed by the full path of each file's fragment.

    Each entry is the file's vector (a :class:`DeletionVector`, or the descriptor to load it from
    ``storage``) and its physical row count. Loaded vectors are cached (a scan may be started more
    than once: Polars asks for a schema, then the rows). Pickles as its storage and entries.

    Args:
        storage: the table's storage (where descriptors that are not inline point).
        entries: full fragment path -> (vector or descriptor, the data file's ``num_rows``).

    Example:
        >>> s = Storage.from_uri("memory://doc-vector-set")
        >>> v = VectorSet(s, {"/t/x.parquet": (DeletionVector.from_positions([0]), 3)})
        >>> "/t/x.parquet" in v, v.live_rows("/t/x.parquet"), v.load(["/t/x.parquet"])["/t/x.parquet"].cardinality
        (True, 2, 1)
    """

    __slots__ = ("_entries", "_loaded", "_lock", "storage")

    def __init__(self, storage: Storage,
                 entries: Mapping[str, tuple[DeletionVector | DeletionVectorDescriptor, int]]) -> None:
        self.storage = storage
        self._entries = dict(entries)
        self._loaded: dict[str, DeletionVector] = {p: v for p, (v, _) in self._entries.items()
                                                   if isinstance(v, DeletionVector)}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def __reduce__(self) -> tuple[Any, ...]:
        return (VectorSet, (self.storage, self._entries))

    def __repr__(self) -> str:
        return f"VectorSet({len(self._entries)} files)"

    def num_rows(self, path: str) -> int:
        """The physical row count of the data file at ``path``."""
        return self._entries[path][1]

    def live_rows(self, path: str) -> int:
        """The rows of the data file at ``path`` its vector keeps (no I/O)."""
        vector, rows = self._entries[path]
        return rows - vector.cardinality

    def subset(self, paths: Iterable[str]) -> VectorSet:
        """The entries of ``paths`` that have a vector (sharing the cache of vectors loaded so far)."""
        out = VectorSet(self.storage, {p: self._entries[p] for p in paths if p in self._entries})
        out._loaded.update((p, v) for p, v in self._loaded.items() if p in out._entries)
        return out

    def load(self, paths: Iterable[str]) -> dict[str, DeletionVector]:
        """The vectors of ``paths`` (each must be in the set), loading those not loaded yet in one
        batched call (each checked against its file's row count).

        Raises:
            CorruptDeletionVectorError: a vector is unreadable or does not fit its file.
            VersionNotFoundError: a vector file is gone (vacuumed).
        """
        wanted = list(dict.fromkeys(paths))
        with self._lock:
            missing = [p for p in wanted if p not in self._loaded]
            if missing:
                items = [(d, n) for p in missing for d, n in [self._entries[p]]
                         if isinstance(d, DeletionVectorDescriptor)]  # (every one not loaded yet)
                self._loaded.update(zip(missing, load_vectors(self.storage, items)))
            return {p: self._loaded[p] for p in wanted}


def kept_batches(batches: Iterator[tuple[str, pa.RecordBatch]],
                 keeps: Mapping[str, pa.BooleanArray]) -> Iterator[pa.RecordBatch]:
    """The rows of data files' batches that their keep-masks keep.

    Args:
        batches: (the file's path, a batch) for every row of every file in ``keeps``, each file's
            batches in file order and together (as ``Scanner.scan_batches`` gives them), none of
            its rows skipped.
        keeps: per file, its keep-mask (:meth:`DeletionVector.mask` with ``arrow=True``).

    Returns:
        The batches with the deleted rows dropped (empty batches are not yielded).

    Raises:
        CorruptDeletionVectorError: a file holds another number of rows than its mask (the files
            table and the data file disagree).
    """
    offsets = dict.fromkeys(keeps, 0)
    for path, batch in batches:
        keep = keeps[path]
        at, n = offsets[path], batch.num_rows
        if at + n > len(keep):
            raise CorruptDeletionVectorError(f"the data file holds more than the {len(keep)} rows the files "
                                             f"table records; its deletion vector cannot be applied", path=path)
        offsets[path] = at + n
        part = keep.slice(at, n)
        if part.false_count == 0:  # no deleted row in this batch (deletes are often clustered): no copy
            yield batch
        elif part.true_count:
            yield batch.filter(part)
    for path, at in offsets.items():
        if at != len(keeps[path]):
            raise CorruptDeletionVectorError(f"the data file holds {at} rows, the files table records "
                                             f"{len(keeps[path])}; its deletion vector cannot be applied", path=path)

"""Storing deletion vectors: inline in the log when small, else in a vector file (format.md §5.8).

:func:`write_vectors` turns the vectors one commit sets (data-file path -> :class:`DeletionVector`)
into the descriptors its add actions carry: a vector whose serialized bytes (Delta's magic number
then the 64-bit portable Roaring bitmap, format §18) are at most ``MAX_INLINE_VECTOR_BYTES`` long is
inlined; the others share one new file ``_deletion_vectors/dv-<32 hex>.bin`` in Delta's on-file
framing (a version byte ``1``, then per vector its 4-byte big-endian size, the bytes and their
4-byte big-endian CRC-32). :func:`load_vector` reads one back, checking every byte of it.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> from lakehouse.deletion_vector import DeletionVector
    >>> storage = Storage.from_uri(lh.write_table("memory://doc-dv-store", pa.table({"a": [1, 2, 3]})).uri)
    >>> d = write_vectors(storage, {"x.parquet": DeletionVector.from_positions([0, 2])})["x.parquet"]
    >>> d.is_inline, load_vector(storage, d, num_rows=3).positions.tolist()
    (True, [0, 2])
"""

from __future__ import annotations

import os
import stat
import uuid
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from .deletion_vector import DeletionVector, from_delta_bytes, to_delta_bytes, to_delta_file
from .errors import (
    CorruptDeletionVectorError,
    CorruptLogError,
    InvalidArgumentError,
    UnsafePathError,
    VersionNotFoundError,
)
from .log import MAX_INLINE_VECTOR_BYTES, MAX_VECTOR_BYTES, VECTOR_DIR, DeletionVectorDescriptor, validate_vector_path
from .storage import MAX_ENTRY_BYTES, Storage

__all__ = ["MAX_INLINE_BYTES_PER_COMMIT", "load_vector", "load_vectors", "vector_file_name", "write_vectors"]

MAX_INLINE_BYTES_PER_COMMIT = 64 * 1024
"""A commit inlines at most this many vector bytes in its log entry (smallest vectors first; format
§18.3), so entries stay small single requests (§11.1)."""
_SPAN_GAP = 1 << 20
"""Vectors of one file closer than this are fetched in one range request by :func:`load_vectors`."""


def vector_file_name() -> str:
    """A new vector file's path relative to the table root (format §3, §5.8).

    Returns:
        ``_deletion_vectors/dv-<32 hex digits>.bin``, a new name on every call.

    Example:
        >>> vector_file_name().startswith("_deletion_vectors/dv-")
        True
    """
    return f"{VECTOR_DIR}/dv-{uuid.uuid4().hex}.bin"


def write_vectors(storage: Storage, vectors: Mapping[str, DeletionVector], *,
                  inline_budget: int = MAX_INLINE_BYTES_PER_COMMIT) -> dict[str, DeletionVectorDescriptor]:
    """Store ``vectors`` (data-file path -> vector, none empty) and return their descriptors.

    Vectors of at most ``MAX_INLINE_VECTOR_BYTES`` serialized bytes are inlined, smallest first, up to
    ``inline_budget`` bytes in all; the rest go into one new vector file, published whole
    (format §5.8, §18.3) and never overwritten.

    Args:
        storage: the table's storage.
        vectors: the vector of each data file; each must delete at least one row.
        inline_budget: how many serialized bytes may be inlined (a rebase passes what its commit's
            other vectors left of ``MAX_INLINE_BYTES_PER_COMMIT``).

    Returns:
        The descriptor of each data file's vector, in the order of ``vectors``.

    Raises:
        InvalidArgumentError: a vector is empty.
        UnsafePathError: on local disk, the vector folder leads out of the table root (format §3.1).

    Example:
        >>> s = Storage.from_uri("memory://doc-write-vectors")
        >>> small, large = DeletionVector.from_positions([1]), DeletionVector.from_positions(range(0, 20000, 3))
        >>> ds = write_vectors(s, {"a.parquet": small, "b.parquet": large})
        >>> ds["a.parquet"].is_inline, ds["b.parquet"].path.startswith("_deletion_vectors/")
        (True, True)
    """
    out: dict[str, DeletionVectorDescriptor] = {}
    large: list[tuple[str, DeletionVector]] = []
    serialized: list[tuple[int, str, bytes]] = []
    for path, vector in vectors.items():
        if vector.cardinality == 0:
            raise InvalidArgumentError(f"the deletion vector of {path!r} deletes no row", argument="vectors")
        serialized.append((len(data := to_delta_bytes(vector)), path, data))
    budget = inline_budget
    for size, path, data in sorted(serialized, key=lambda item: item[0]):
        if size <= MAX_INLINE_VECTOR_BYTES and size <= budget:
            out[path] = DeletionVectorDescriptor(cardinality=vectors[path].cardinality, inline=data)
            budget -= size
        else:
            large.append((path, vectors[path]))
    if large:
        content, slots = to_delta_file([v for _, v in large])
        rel = vector_file_name()
        _publish(storage, rel, content)
        for (path, vector), (offset, size) in zip(large, slots):
            out[path] = DeletionVectorDescriptor(cardinality=vector.cardinality, path=rel, offset=offset, size=size)
    return {p: out[p] for p in vectors}


def _publish(storage: Storage, rel: str, content: bytes) -> None:
    """Publish a new vector file whole: put-if-absent where one request can carry it, else the atomic
    whole-file write (a fresh random name: nothing to replace)."""
    if storage.is_local or storage.is_memory or len(content) <= MAX_ENTRY_BYTES:
        storage.put_if_absent(rel, content)
    else:
        storage.overwrite(rel, content)


def load_vectors(storage: Storage, items: Sequence[tuple[DeletionVectorDescriptor, int | None]]) -> list[
        DeletionVector]:
    """The vectors of ``items`` (descriptor, the data file's ``num_rows``), each checked as
    :func:`load_vector` does, reading neighbouring vectors of one file in one range request (a scan of
    many files with vectors from one commit costs about one request per vector file, not one per data
    file; no request is larger than one vector may be), different vector files concurrently on object
    stores.

    Args:
        storage: the table's storage.
        items: per data file, its descriptor and row count.

    Returns:
        The vectors, in the order of ``items``.

    Raises:
        CorruptDeletionVectorError: as :func:`load_vector`.
        VersionNotFoundError: a vector file is gone (vacuumed).

    Example:
        >>> s = Storage.from_uri("memory://doc-load-vectors")
        >>> ds = write_vectors(s, {"x": DeletionVector.from_positions(range(0, 9000, 2)),
        ...                        "y": DeletionVector.from_positions([3])})
        >>> [v.cardinality for v in load_vectors(s, [(ds["x"], 9000), (ds["y"], 9000)])]
        [4500, 1]
    """
    out: dict[int, DeletionVector] = {}
    by_file: dict[str, list[int]] = {}
    for i, (d, n) in enumerate(items):
        if d.inline is not None:
            out[i] = _decode("<inline>", d, None, n)
        else:
            by_file.setdefault(_checked_file(storage, d), []).append(i)

    def read_file(rel: str) -> None:
        where = storage.full_path(rel)
        for group in _spans(sorted(by_file[rel], key=lambda i: items[i][0].offset), items):
            first = items[group[0]][0].offset
            span = _read_range(storage, rel, first, max(_end(items[j][0]) for j in group) - first)
            for j in group:
                d, n = items[j]
                out[j] = _decode(where, d, span[d.offset - first:_end(d) - first], n)

    if storage.is_local or len(by_file) < 2:
        for rel in by_file:
            read_file(rel)
    else:
        with ThreadPoolExecutor(min(8, len(by_file))) as pool:
            list(pool.map(read_file, by_file))
    return [out[i] for i in range(len(items))]


def _end(d: DeletionVectorDescriptor) -> int:
    return d.offset + d.size + 8


def _spans(order: list[int], items: Sequence[tuple[DeletionVectorDescriptor, int | None]]) -> list[list[int]]:
    """``order`` (indexes of ``items`` in one file, by offset) cut into runs read with one request each:
    gaps under ``_SPAN_GAP``, a run at most as long as the longest single vector read."""
    runs: list[list[int]] = []
    for i in order:
        d = items[i][0]
        if runs:
            run = runs[-1]
            start, end = items[run[0]][0].offset, max(_end(items[j][0]) for j in run)
            if d.offset <= end + _SPAN_GAP and max(end, _end(d)) - start <= MAX_VECTOR_BYTES + 8:
                run.append(i)
                continue
        runs.append([i])
    return runs


def load_vector(storage: Storage, descriptor: DeletionVectorDescriptor, *,
                num_rows: int | None = None) -> DeletionVector:
    """The vector ``descriptor`` names, checked: for a vector file, the bytes at its offset must be the
    size it records, then the vector, then a matching CRC-32; every vector must have Delta's magic
    number, decode, hold exactly ``cardinality`` positions and (given ``num_rows``) none beyond the
    data file's rows. At most ``size + 8`` bytes of a vector file are read.

    Args:
        storage: the table's storage.
        descriptor: from an add action or the files table.
        num_rows: the data file's row count, which bounds the positions (and the memory of the decode).

    Returns:
        The vector.

    Raises:
        CorruptDeletionVectorError: (a ``CorruptLogError``) any check above fails; ``.path`` names the
            vector file (or ``"<inline>"``).
        VersionNotFoundError: the vector file is gone (vacuumed).
        UnsafePathError: on local disk, the vector file resolves outside the table root.

    Example:
        >>> s = Storage.from_uri("memory://doc-load-vector")
        >>> d = write_vectors(s, {"x.parquet": DeletionVector.from_positions(range(0, 20000, 3))})["x.parquet"]
        >>> load_vector(s, d, num_rows=20000).cardinality
        6667
    """
    if descriptor.inline is not None:
        return _decode("<inline>", descriptor, None, num_rows)
    rel = _checked_file(storage, descriptor)
    framed = _read_range(storage, rel, descriptor.offset, descriptor.size + 8)
    return _decode(storage.full_path(rel), descriptor, framed, num_rows)


def _checked_file(storage: Storage, d: DeletionVectorDescriptor) -> str:
    """The vector file of ``d``, its name and range checked (format §5.8)."""
    rel = validate_vector_path(d.path or "")
    if not 1 <= d.size <= MAX_VECTOR_BYTES or d.offset < 1:
        raise CorruptDeletionVectorError(f"deletion vector offset {d.offset} / size {d.size} out of range",
                                         path=storage.full_path(rel))
    return rel


def _decode(where: str, d: DeletionVectorDescriptor, framed: bytes | None, num_rows: int | None) -> DeletionVector:
    """The vector of ``d``: its inline bytes, or ``framed`` (size field, vector, CRC) read from its file."""
    if framed is None:
        data = bytes(d.inline or b"")
    else:
        if int.from_bytes(framed[:4], "big") != d.size:
            raise CorruptDeletionVectorError(f"the vector at offset {d.offset} declares "
                                             f"{int.from_bytes(framed[:4], 'big')} bytes, its descriptor {d.size}",
                                             path=where)
        data = framed[4:4 + d.size]
        if zlib.crc32(data) != int.from_bytes(framed[4 + d.size:], "big"):
            raise CorruptDeletionVectorError(f"the vector at offset {d.offset} fails its CRC-32 check", path=where)
    try:
        vector = from_delta_bytes(data, num_rows=num_rows)
    except CorruptDeletionVectorError as exc:
        raise CorruptDeletionVectorError(str(exc), path=where) from None
    if vector.cardinality != d.cardinality:
        raise CorruptDeletionVectorError(f"the vector holds {vector.cardinality} positions, its descriptor says "
                                         f"{d.cardinality}", path=where)
    return vector


def _read_range(storage: Storage, rel: str, start: int, length: int) -> bytes:
    """Exactly ``length`` bytes of the regular file ``rel`` from ``start``; ``CorruptDeletionVectorError``
    if the file is shorter or not a regular file, ``VersionNotFoundError`` if it is gone."""
    path = storage.full_path(rel)
    try:
        if storage.is_local:
            storage.check_contained((rel,))  # no link out of the root (format §3.1)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise CorruptDeletionVectorError("not a regular file; not read", path=path)
                data = os.pread(fd, length, start)
            finally:
                os.close(fd)
        else:
            data = bytes(storage.fs.cat_file(path, start=start, end=start + length))
    except FileNotFoundError:
        raise VersionNotFoundError(f"deletion vector file {path} no longer exists (vacuumed?)") from None
    except (CorruptLogError, UnsafePathError):
        raise
    except OSError as exc:
        raise CorruptDeletionVectorError(f"unreadable deletion vector file ({exc})", path=path) from None
    if len(data) != length:
        raise CorruptDeletionVectorError(f"the vector file ends {length - len(data)} bytes before the vector at "
                                         f"offset {start} does", path=path)
    return data

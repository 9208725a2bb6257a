"""The 64-bit Roaring bitmap "portable" serialization, encoded and decoded with numpy.

This is the byte layout that Iceberg v3 ``deletion-vector-v1`` blobs and Delta deletion vectors
share (format §18.1): a little-endian ``uint64`` count of 32-bit *buckets*, then for each bucket,
in increasing order of its ``uint32`` key (the high 32 bits of its positions), the key and a
standard 32-bit RoaringBitmap in the RoaringFormatSpec layout:

- a cookie: ``12346`` (no run containers) followed by a ``uint32`` container count, or ``12347``
  in the low 16 bits with ``count - 1`` in the high 16 bits, followed by one bit per container
  telling whether it is a run container;
- a descriptive header: per container, its ``uint16`` key (bits 16..31) and ``cardinality - 1``;
- an offset header (cookie ``12346``, or ``12347`` with at least 4 containers): per container the
  ``uint32`` byte offset of its data from the start of the 32-bit bitmap;
- the containers: *array* (``cardinality <= 4096`` sorted ``uint16``), *bitmap* (1024
  little-endian ``uint64`` words) or *run* (``uint16`` run count, then ``(start, length - 1)``
  ``uint16`` pairs).

Everything is little-endian. The encoder picks, per container, the smallest of the array or bitmap
form (by cardinality) and the run form (ties go to the non-run form, as CRoaring's
``run_optimize`` does), so its bytes equal CRoaring's after ``run_optimize``. The decoder reads
every valid variant and refuses anything else with
:class:`~lakehouse.errors.CorruptDeletionVectorError`: it never reads past the input, and it
allocates no more than the input's size plus the positions the caller allows (``max_cardinality``).

The functions here take and return canonical positions: a one-dimensional ``uint64`` numpy array,
sorted, without duplicates, every value below ``2**63``. :mod:`lakehouse.deletion_vector` is the
public face.

Example:
    >>> import numpy as np
    >>> data = encode_portable(np.array([3, 4, 7], dtype=np.uint64))
    >>> data.hex()
    '0100000000000000000000003a300000010000000000020010000000030004000700'
    >>> decode_portable(data, limit=2**63, max_cardinality=10).tolist()
    [3, 4, 7]
"""

from __future__ import annotations

import numpy as np

from .errors import CorruptDeletionVectorError

__all__ = ["LIMIT", "decode_native", "decode_portable", "encode_portable"]

LIMIT = 2**63
"""Positions are below this bound: the most significant bit of a position must be 0 (Iceberg, Delta)."""

COOKIE_NO_RUN = 12346
COOKIE_RUN = 12347
NO_OFFSET_THRESHOLD = 4
ARRAY_MAX = 4096
"""A container of at most this many values is an array container unless it is a run container."""
BITMAP_BYTES = 8192
_U16 = np.dtype("<u2")
_U32 = np.dtype("<u4")


def _spread(first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indexes ``first[i], first[i] + 1, ..., first[i] + counts[i] - 1`` for every ``i``, concatenated."""
    return np.arange(int(counts.sum())) + np.repeat(first - (np.cumsum(counts) - counts), counts)


class _Layout:
    """The containers of a position set and the encoded data of all containers, in order.

    Every container's data has an even size, so the data is built as little-endian ``uint16`` words.
    """

    def __init__(self, positions: np.ndarray) -> None:
        n = positions.size
        high = positions >> np.uint64(16)
        self.low = (positions & np.uint64(0xFFFF)).astype(_U16)
        new_container = np.empty(n, dtype=bool)
        new_container[0] = True
        np.not_equal(high[1:], high[:-1], out=new_container[1:])
        self.start = np.flatnonzero(new_container)
        self.card = np.diff(np.append(self.start, n))
        self.key48 = high[self.start]
        run_start = new_container.copy()
        run_start[1:] |= positions[1:] != positions[:-1] + np.uint64(1)
        self.run_start = np.flatnonzero(run_start)
        self.nruns = np.diff(np.searchsorted(self.run_start, np.append(self.start, n)))
        plain = np.where(self.card <= ARRAY_MAX, 2 * self.card, BITMAP_BYTES)
        as_run = 2 + 4 * self.nruns
        self.is_run = as_run < plain
        self.offset = np.zeros(self.start.size + 1, dtype=np.int64)
        np.cumsum(np.where(self.is_run, as_run, plain), out=self.offset[1:])
        self.words = np.zeros(int(self.offset[-1]) // 2, dtype=_U16)
        self._arrays()
        self._bitmaps()
        self._runs(n)

    def _arrays(self) -> None:
        is_array = ~self.is_run & (self.card <= ARRAY_MAX)
        if is_array.all():  # the usual case: the data is the low 16 bits of every position
            self.words[:] = self.low
            return
        containers = np.flatnonzero(is_array)
        if containers.size:
            counts = self.card[containers]
            source = _spread(self.start[containers], counts)
            self.words[_spread(self.offset[containers] // 2, counts)] = self.low[source]

    def _bitmaps(self) -> None:
        containers = np.flatnonzero(~self.is_run & (self.card > ARRAY_MAX))
        if not containers.size:
            return
        counts = self.card[containers]
        bits = np.zeros(containers.size * 65536, dtype=bool)
        ordinal = np.repeat(np.arange(containers.size) * 65536, counts)
        bits[ordinal + self.low[_spread(self.start[containers], counts)]] = True
        blocks = np.packbits(bits, bitorder="little").view(_U16).reshape(containers.size, BITMAP_BYTES // 2)
        for k, at in enumerate((self.offset[containers] // 2).tolist()):
            self.words[at:at + BITMAP_BYTES // 2] = blocks[k]

    def _runs(self, n: int) -> None:
        containers = np.flatnonzero(self.is_run)
        if not containers.size:
            return
        counts = self.nruns[containers]
        self.words[self.offset[containers] // 2] = counts
        first_run = np.searchsorted(self.run_start, self.start[containers])
        runs = _spread(first_run, counts)  # indexes into run_start of the runs of run containers
        starts = self.run_start[runs]
        lengths = np.append(self.run_start, n)[runs + 1] - starts
        at = _spread(self.offset[containers] // 2 + 1, 2 * counts)
        self.words[at[0::2]] = self.low[starts]
        self.words[at[1::2]] = lengths - 1


def encode_portable(positions: np.ndarray) -> bytes:
    """The 64-bit portable Roaring serialization of canonical ``positions``.

    Args:
        positions: a sorted ``uint64`` array without duplicates, every value below :data:`LIMIT`.

    Returns:
        The serialized bitmap (8 bytes for an empty set).

    Example:
        >>> len(encode_portable(np.array([], np.uint64))), len(encode_portable(np.array([1, 5], np.uint64)))
        (8, 32)
    """
    if positions.size == 0:
        return bytes(8)
    layout = _Layout(positions)
    bucket = layout.key48 >> np.uint64(16)
    first = np.flatnonzero(np.append(True, bucket[1:] != bucket[:-1]))
    ends = np.append(first[1:], bucket.size)
    pieces = [int(first.size).to_bytes(8, "little")]
    for s, e in zip(first.tolist(), ends.tolist()):
        pieces.append(int(bucket[s]).to_bytes(4, "little"))
        pieces.append(_header32(layout, s, e))
        pieces.append(layout.words[layout.offset[s] // 2:layout.offset[e] // 2].tobytes())
    return b"".join(pieces)


def _header32(layout: _Layout, s: int, e: int) -> bytes:
    """The cookie, descriptive and offset headers of the 32-bit bitmap made of containers ``s..e-1``."""
    size = e - s
    runs = layout.is_run[s:e]
    if runs.any():
        flags = np.packbits(runs, bitorder="little").tobytes()
        cookie = (COOKIE_RUN | ((size - 1) << 16)).to_bytes(4, "little") + flags
        with_offsets = size >= NO_OFFSET_THRESHOLD
    else:
        cookie = COOKIE_NO_RUN.to_bytes(4, "little") + size.to_bytes(4, "little")
        with_offsets = True
    desc = np.empty((size, 2), dtype=_U16)
    desc[:, 0] = layout.key48[s:e] & np.uint64(0xFFFF)
    desc[:, 1] = layout.card[s:e] - 1
    header = cookie + desc.tobytes()
    if not with_offsets:
        return header
    start = len(header) + 4 * size
    offsets = (start + layout.offset[s:e] - layout.offset[s]).astype(_U32)
    return header + offsets.tobytes()


# ------------------------------------------------------------------------------------------ decoding


def _corrupt(message: str) -> CorruptDeletionVectorError:
    return CorruptDeletionVectorError(f"deletion vector: {message}")


class _Reader:
    """Bounds-checked little-endian reads from one input."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.buf = np.frombuffer(data, dtype=np.uint8)

    def need(self, end: int, what: str) -> None:
        if end > len(self.data):
            raise _corrupt(f"truncated: {what} needs {end} bytes, the input has {len(self.data)}")

    def uint(self, at: int, width: int, what: str, order: str = "little") -> int:
        self.need(at + width, what)
        return int.from_bytes(self.data[at:at + width], order)  # type: ignore[arg-type]

    def array(self, dtype: np.dtype, count: int, at: int, what: str) -> np.ndarray:
        self.need(at + dtype.itemsize * count, what)
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=at)


class _Budget:
    """How many more positions a decode may produce."""

    def __init__(self, max_cardinality: int) -> None:
        self.cap = self.left = max_cardinality

    def take(self, count: int) -> None:
        if count > self.left:
            raise _corrupt(f"holds more positions than the {self.cap} allowed here "
                           "(the data file's row count, or the cap for vectors read without one)")
        self.left -= count


def decode_portable(data: bytes, *, limit: int = LIMIT, max_cardinality: int) -> np.ndarray:
    """The positions of a 64-bit portable Roaring serialization that is exactly ``data``.

    Args:
        data: the serialized bitmap, nothing before or after it.
        limit: every position must be below this (at most :data:`LIMIT`): the file's row count.
        max_cardinality: the most positions the bitmap may hold; checked on the headers before any
            position is materialised, so a small input cannot make the decoder allocate more.

    Returns:
        The canonical positions (sorted ``uint64``, no duplicates).

    Raises:
        CorruptDeletionVectorError: the bytes are not such a bitmap (truncated, a bad cookie, counts
            beyond the input, keys out of order, a container that overflows or disagrees with its
            header, trailing bytes), or it holds a position at or beyond ``limit`` or more than
            ``max_cardinality`` positions.

    Example:
        >>> data = encode_portable(np.array([1, 5], np.uint64))
        >>> decode_portable(data, limit=10, max_cardinality=10).tolist()
        [1, 5]
    """
    data = bytes(data)
    reader = _Reader(data)
    count = reader.uint(0, 8, "the bucket count")
    if count > (len(data) - 8) // 12:
        raise _corrupt(f"declares {count} buckets, more than {len(data)} bytes can hold")
    budget = _Budget(max_cardinality)
    at, previous, parsed = 8, -1, []
    for _ in range(count):  # every header first: the cardinality is known before any position exists
        key = reader.uint(at, 4, "a bucket key")
        if key <= previous:
            raise _corrupt(f"bucket keys are not strictly increasing ({previous} then {key})")
        previous = key
        if key << 32 >= limit:
            raise _corrupt(f"bucket {key} holds positions at or beyond {limit}")
        bitmap = _parse32(reader, at + 4, budget, key << 32, min(limit - (key << 32), 2**32), f"bucket {key}")
        parsed.append((key, bitmap))
        at = bitmap.end
    if at != len(data):
        raise _corrupt(f"{len(data) - at} unexpected bytes after the bitmap")
    return _expand_all(reader, parsed)


def _expand_all(reader: _Reader, parsed: list[tuple[int, _Bitmap32]]) -> np.ndarray:
    chunks = []
    for key, bitmap in parsed:
        chunk = _expand32(reader, bitmap).astype(np.uint64)
        if key:
            chunk |= np.uint64(key << 32)
        chunks.append(chunk)
    if len(chunks) == 1:
        return chunks[0]
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.uint64)


def decode_native(data: bytes, *, limit: int = LIMIT, max_cardinality: int) -> np.ndarray:
    """The positions of Delta's older "native" ``RoaringBitmapArray`` layout (read-only support).

    After its magic number (``1681511376``, big-endian) come a big-endian ``int32`` count of 32-bit
    bitmaps, then for each bitmap ``i`` (which holds the positions whose high 32 bits are ``i``)
    its big-endian ``int32`` byte size and a standard 32-bit RoaringBitmap of that size. ``data`` is
    what follows the magic number. Delta's protocol shows its inline example in this layout.

    Args:
        data: the bytes after the magic number.
        limit: every position must be below this.
        max_cardinality: the most positions the bitmap may hold.

    Returns:
        The canonical positions.

    Raises:
        CorruptDeletionVectorError: as :func:`decode_portable`.

    Example:
        >>> decode_native(bytes(4), limit=10, max_cardinality=10).tolist()
        []
    """
    data = bytes(data)
    reader = _Reader(data)
    count = reader.uint(0, 4, "the bitmap count", "big")
    if count > (len(data) - 4) // 12:
        raise _corrupt(f"declares {count} bitmaps, more than {len(data)} bytes can hold")
    budget = _Budget(max_cardinality)
    at, parsed = 4, []
    for key in range(count):
        size = reader.uint(at, 4, "a bitmap size", "big")
        reader.need(at + 4 + size, f"bitmap {key}")
        bitmap = _parse32(reader, at + 4, budget, key << 32, max(0, min(limit - (key << 32), 2**32)),
                          f"bitmap {key}")
        if bitmap.end != at + 4 + size:
            raise _corrupt(f"bitmap {key} is {bitmap.end - at - 4} bytes, its header says {size}")
        parsed.append((key, bitmap))
        at = bitmap.end
    if at != len(data):
        raise _corrupt(f"{len(data) - at} unexpected bytes after the bitmap")
    return _expand_all(reader, parsed)


class _Bitmap32:
    """The parsed headers of one 32-bit bitmap: container keys, cardinalities, kinds and data offsets."""

    __slots__ = ("base", "bound", "card", "data_at", "end", "is_run", "keys", "what")

    def __init__(self, keys: np.ndarray, card: np.ndarray, is_run: np.ndarray, data_at: np.ndarray, end: int,
                 base: int, bound: int, what: str) -> None:
        self.keys, self.card, self.is_run, self.data_at = keys, card, is_run, data_at
        self.end, self.base, self.bound, self.what = end, base, bound, what


def _expand32(reader: _Reader, bitmap: _Bitmap32) -> np.ndarray:
    """The low 32 bits of the positions of a parsed bitmap, checked against its headers and bound."""
    low = _values(reader, bitmap.keys, bitmap.card, bitmap.is_run, bitmap.data_at, bitmap.what)
    if low.size and int(low[-1]) >= bitmap.bound:
        raise _corrupt(f"{bitmap.what}: position {bitmap.base + int(low[-1])} is at or beyond "
                       f"{bitmap.base + bitmap.bound} (the data file's row count)")
    return low


def _parse32(reader: _Reader, start: int, budget: _Budget, base: int, bound: int, what: str) -> _Bitmap32:
    """The headers of the 32-bit bitmap at ``start`` (its cardinality taken from ``budget``)."""
    cookie = reader.uint(start, 4, f"{what}: the cookie")
    if cookie == COOKIE_NO_RUN:
        size = reader.uint(start + 4, 4, f"{what}: the container count")
        if size > 65536:
            raise _corrupt(f"{what}: {size} containers, at most 65536 exist")
        is_run = np.zeros(size, dtype=bool)
        at, with_offsets = start + 8, True
    elif cookie & 0xFFFF == COOKIE_RUN:
        size = (cookie >> 16) + 1
        flags = reader.array(np.dtype(np.uint8), (size + 7) // 8, start + 4, f"{what}: the run flags")
        is_run = np.unpackbits(flags, bitorder="little")[:size].astype(bool)
        at, with_offsets = start + 4 + flags.size, size >= NO_OFFSET_THRESHOLD
    else:
        raise _corrupt(f"{what}: bad cookie {cookie & 0xFFFF} (expected {COOKIE_NO_RUN} or {COOKIE_RUN})")
    desc = reader.array(_U16, 2 * size, at, f"{what}: the container headers").reshape(size, 2)
    at += 4 * size
    keys = desc[:, 0].astype(np.int64)
    card = desc[:, 1].astype(np.int64) + 1
    if size > 1 and np.any(keys[1:] <= keys[:-1]):
        raise _corrupt(f"{what}: container keys are not strictly increasing")
    if size and (int(keys[-1]) << 16) >= bound:
        raise _corrupt(f"{what}: container {int(keys[-1])} holds positions at or beyond {base + bound} "
                       "(the data file's row count)")
    budget.take(int(card.sum()))
    offsets = None
    if with_offsets:
        offsets = reader.array(_U32, size, at, f"{what}: the offset header").astype(np.int64)
        at += 4 * size
    data_at, end = _container_offsets(reader, start, at, is_run, card, offsets, what)
    return _Bitmap32(keys, card, is_run, data_at, end, base, bound, what)


def _container_offsets(reader: _Reader, start: int, at: int, is_run: np.ndarray, card: np.ndarray,
                       offsets: np.ndarray | None, what: str) -> tuple[np.ndarray, int]:
    """Where each container's data starts (checked against the offset header), and where the bitmap ends."""
    size = card.size
    plain = np.where(card <= ARRAY_MAX, 2 * card, BITMAP_BYTES)
    if not is_run.any():
        ends = at + np.cumsum(plain)
        data_at = ends - plain
    else:
        data_at = np.empty(size, dtype=np.int64)
        for i in range(size):
            data_at[i] = at
            at += 2 + 4 * reader.uint(at, 2, f"{what}: a run count") if is_run[i] else int(plain[i])
        ends = np.append(data_at[1:], at) if size else np.empty(0, dtype=np.int64)
    end = int(ends[-1]) if size else at
    reader.need(end, f"{what}: the containers")
    if offsets is not None and not np.array_equal(offsets, data_at - start):
        raise _corrupt(f"{what}: the offset header disagrees with the container sizes")
    return data_at, end


def _values(reader: _Reader, keys: np.ndarray, card: np.ndarray, is_run: np.ndarray, data_at: np.ndarray,
            what: str) -> np.ndarray:
    """The sorted low 32 bits of every position of the containers, validated against their headers."""
    parts = []
    arrays = np.flatnonzero(~is_run & (card <= ARRAY_MAX))
    if arrays.size:
        parts.append((arrays, _array_values(reader.buf, keys, card, arrays, data_at, what)))
    bitmaps = np.flatnonzero(~is_run & (card > ARRAY_MAX))
    if bitmaps.size:
        parts.append((bitmaps, _bitmap_values(reader.buf, keys, card, bitmaps, data_at, what)))
    runs = np.flatnonzero(is_run)
    if runs.size:
        parts.append((runs, _run_values(reader.buf, keys, card, runs, data_at, what)))
    if len(parts) == 1:  # one kind of container: its values are already in container order
        return parts[0][1]
    out = np.empty(int(card.sum()), dtype=np.uint32)
    out_at = np.cumsum(card) - card
    for containers, values in parts:
        counts = card[containers]
        out[np.arange(values.size) + np.repeat(out_at[containers] - (np.cumsum(counts) - counts), counts)] = values
    return out


def _high(keys: np.ndarray, containers: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each value's container key in bits 16..31."""
    return np.repeat(keys[containers].astype(np.uint32) << 16, counts)


def _array_values(buf: np.ndarray, keys: np.ndarray, card: np.ndarray, arrays: np.ndarray, data_at: np.ndarray,
                  what: str) -> np.ndarray:
    counts = card[arrays]
    first = np.cumsum(counts) - counts
    at = 2 * np.arange(int(counts.sum())) + np.repeat(data_at[arrays] - 2 * first, counts)
    low = buf[at].astype(np.uint32) | (buf[at + 1].astype(np.uint32) << 8)
    unordered = low[1:] <= low[:-1]
    unordered[first[1:] - 1] = False  # a new container may start lower
    if np.any(unordered):
        raise _corrupt(f"{what}: an array container is not strictly increasing")
    return low | _high(keys, arrays, counts)


def _bitmap_values(buf: np.ndarray, keys: np.ndarray, card: np.ndarray, bitmaps: np.ndarray, data_at: np.ndarray,
                   what: str) -> np.ndarray:
    blocks = np.empty((bitmaps.size, BITMAP_BYTES), dtype=np.uint8)
    for k, at in enumerate(data_at[bitmaps].tolist()):
        blocks[k] = buf[at:at + BITMAP_BYTES]
    flat = np.flatnonzero(np.unpackbits(blocks, bitorder="little").view(bool))  # container by container
    counts = card[bitmaps]
    if not np.array_equal(np.bincount(flat >> 16, minlength=bitmaps.size), counts):
        raise _corrupt(f"{what}: a bitmap container's bit count disagrees with its cardinality")
    return (flat & 0xFFFF).astype(np.uint32) | _high(keys, bitmaps, counts)


def _run_values(buf: np.ndarray, keys: np.ndarray, card: np.ndarray, runs: np.ndarray, data_at: np.ndarray,
                what: str) -> np.ndarray:
    """The values of the run containers ``runs`` (their total was checked against the budget)."""
    first = data_at[runs]
    nruns = buf[first].astype(np.int64) | (buf[first + 1].astype(np.int64) << 8)
    if np.any(nruns == 0):
        raise _corrupt(f"{what}: a run container without runs")
    run_first = np.cumsum(nruns) - nruns
    at = 4 * np.arange(int(nruns.sum())) + np.repeat(first + 2 - 4 * run_first, nruns)
    begin = buf[at].astype(np.int64) | (buf[at + 1].astype(np.int64) << 8)
    length = (buf[at + 2].astype(np.int64) | (buf[at + 3].astype(np.int64) << 8)) + 1
    stop = begin + length
    if np.any(stop > 65536):
        raise _corrupt(f"{what}: a run container overflows its 65536 values")
    unordered = begin[1:] < stop[:-1]
    unordered[run_first[1:] - 1] = False
    if np.any(unordered):
        raise _corrupt(f"{what}: a run container's runs overlap or are out of order")
    if not np.array_equal(np.add.reduceat(length, run_first), card[runs]):
        raise _corrupt(f"{what}: a run container's runs disagree with its cardinality")
    value_first = np.cumsum(length) - length
    start = (np.repeat(keys[runs], nruns) << 16) + begin - value_first
    return (np.arange(int(length.sum()), dtype=np.int64) + np.repeat(start, length)).astype(np.uint32)

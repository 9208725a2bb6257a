"""Deletion vectors: the row positions deleted from one data file, and their bytes (format §18).

A :class:`DeletionVector` is a value: the sorted, distinct ``uint64`` positions (0-based row
indexes in the data file) of the rows that are deleted. Readers turn it into a keep-mask over the
file's rows (:meth:`DeletionVector.mask`).

The bytes are the 64-bit Roaring "portable" serialization (:mod:`lakehouse.roaring`), in the
framings Iceberg and Delta use, so the same bytes serve all three:

- raw: :meth:`DeletionVector.to_bytes` / :meth:`DeletionVector.from_bytes`;
- Delta's serialized vector, the magic number ``1681511377`` (little-endian; bytes ``D1 D3 39 64``)
  then the bitmap: :func:`to_delta_bytes` / :func:`from_delta_bytes`;
- Iceberg's puffin blob ``deletion-vector-v1``: the big-endian length of magic + vector, the magic,
  the vector and a big-endian CRC-32 of magic + vector: :func:`to_iceberg_blob` /
  :func:`from_iceberg_blob`;
- Delta's deletion-vector file (a version byte ``1``, then per vector exactly an Iceberg blob):
  :func:`to_delta_file` / :func:`from_delta_file`;
- Delta's inline form (``storageType "i"``), the serialized vector as Z85 text:
  :func:`to_delta_inline` / :func:`from_delta_inline` (and :func:`z85_encode` / :func:`z85_decode`).

Decoding never trusts the input: every malformed input raises
:class:`~lakehouse.errors.CorruptDeletionVectorError`, and the number of positions a decode may
materialise is bounded by the data file's row count (``num_rows=``) or, without one, by
:data:`DEFAULT_MAX_CARDINALITY`.

Example:
    >>> dv = DeletionVector.from_positions([7, 3, 3, 11])
    >>> dv.cardinality, dv.positions.tolist()
    (3, [3, 7, 11])
    >>> dv.mask(12).nonzero()[0].size
    9
    >>> DeletionVector.from_bytes(dv.to_bytes()) == dv
    True
    >>> from_iceberg_blob(to_iceberg_blob(dv)) == dv
    True
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import pyarrow as pa

from .arguments import check_int
from .errors import ArgumentTypeError, CorruptDeletionVectorError, InvalidArgumentError
from .roaring import LIMIT, decode_native, decode_portable, encode_portable

__all__ = [
    "DEFAULT_MAX_CARDINALITY",
    "DELTA_MAGIC",
    "DeletionVector",
    "ICEBERG_MAGIC",
    "from_delta_bytes",
    "from_delta_file",
    "from_delta_inline",
    "from_iceberg_blob",
    "to_delta_bytes",
    "to_delta_file",
    "to_delta_inline",
    "to_iceberg_blob",
    "z85_decode",
    "z85_encode",
]

DELTA_MAGIC = 1681511377
"""Delta's magic number of a portable vector, stored little-endian: the bytes :data:`ICEBERG_MAGIC`."""
ICEBERG_MAGIC = DELTA_MAGIC.to_bytes(4, "little")
"""``D1 D3 39 64``: the magic bytes of an Iceberg ``deletion-vector-v1`` blob (Delta's magic number)."""
_NATIVE_MAGIC = (DELTA_MAGIC - 1).to_bytes(4, "big")
"""Delta's older "native" layout (read only; see :func:`lakehouse.roaring.decode_native`)."""
DELTA_FILE_VERSION = 1
DEFAULT_MAX_CARDINALITY = 1 << 27
"""The most positions a vector decoded without ``num_rows`` may hold (134,217,728: 1 GiB of positions)."""
_MAX_POSITION = LIMIT - 1


def _check_limit(num_rows: int | None) -> tuple[int, int]:
    """``(limit, max_cardinality)`` for a decode given the data file's row count, if known."""
    if num_rows is None:
        return LIMIT, DEFAULT_MAX_CARDINALITY
    rows = check_int(num_rows, "num_rows", minimum=0)
    return rows, rows


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class DeletionVector:
    """The deleted row positions of one data file: a sorted, distinct, read-only ``uint64`` array.

    Build one with :meth:`from_positions` (any order, duplicates allowed) or :meth:`from_bytes`; the
    constructor takes the canonical array only. Two vectors are equal when they hold the same
    positions, and hash alike then.

    Attributes:
        positions: the deleted positions, ascending, each below ``2**63`` (read-only).

    Example:
        >>> DeletionVector.from_positions(range(3)).union(DeletionVector.from_positions([5]))
        DeletionVector(cardinality=4, positions=[0, 1, 2, 5])
    """

    positions: np.ndarray

    def __post_init__(self) -> None:
        p = self.positions
        if not isinstance(p, np.ndarray) or p.dtype != np.uint64 or p.ndim != 1:
            raise ArgumentTypeError("DeletionVector(positions=...) takes a one-dimensional uint64 numpy array; "
                                    "use DeletionVector.from_positions for anything else")
        if p.size > 1 and not bool(np.all(p[1:] > p[:-1])):
            raise InvalidArgumentError("DeletionVector positions must be sorted and distinct; "
                                       "use DeletionVector.from_positions")
        if p.size and int(p[-1]) > _MAX_POSITION:
            raise InvalidArgumentError(f"DeletionVector position {int(p[-1])} is beyond 2**63 - 1")
        if p.flags.writeable or p.base is not None:  # a read-only view may have a writable base
            p = p.copy()
            p.flags.writeable = False
            object.__setattr__(self, "positions", p)

    @classmethod
    def from_positions(cls, positions: Iterable[int] | np.ndarray | pa.Array | pa.ChunkedArray) -> DeletionVector:
        """A vector of ``positions``: non-negative integers below ``2**63``, in any order, repeats allowed.

        Args:
            positions: an iterable of ``int``, or an integer numpy or pyarrow array without nulls.

        Returns:
            The vector.

        Raises:
            ArgumentTypeError: ``positions`` is not a collection of integers (a string, floats,
                booleans, a bare number, nulls).
            InvalidArgumentError: a position is negative or at least ``2**63``.

        Example:
            >>> DeletionVector.from_positions(np.array([9, 2, 9])).positions.tolist()
            [2, 9]
        """
        array = _as_integer_array(positions)
        if array.size and array.dtype.kind == "i" and int(array.min()) < 0:
            raise InvalidArgumentError(f"row positions must be non-negative, got {int(array.min())}")
        if array.size and array.dtype.kind == "u" and int(array.max()) > _MAX_POSITION:
            raise InvalidArgumentError(f"row positions must be below 2**63, got {int(array.max())}")
        return cls(positions=_frozen(_sorted_distinct(array.astype(np.uint64))))

    @classmethod
    def from_bytes(cls, data: bytes, *, num_rows: int | None = None) -> DeletionVector:
        """The vector serialized in ``data`` as a 64-bit portable Roaring bitmap (no magic, no framing).

        Args:
            data: exactly the serialized bitmap.
            num_rows: the data file's row count; every position must be below it, which also bounds
                the memory the decode may use. Without it, at most :data:`DEFAULT_MAX_CARDINALITY`
                positions are accepted.

        Returns:
            The vector.

        Raises:
            CorruptDeletionVectorError: ``data`` is not a valid bitmap, or holds a position at or
                beyond ``num_rows`` (or too many positions).
            ArgumentTypeError: ``data`` is not bytes-like.

        Example:
            >>> v = DeletionVector.from_positions([0, 5, 9])
            >>> DeletionVector.from_bytes(v.to_bytes(), num_rows=10) == v
            True
        """
        limit, cap = _check_limit(num_rows)
        return cls(positions=_frozen(decode_portable(_as_bytes(data), limit=limit, max_cardinality=cap)))

    def to_bytes(self) -> bytes:
        """The 64-bit portable Roaring serialization (run containers where they are smaller).

        Returns:
            The bytes, which :meth:`from_bytes` reads back.

        Example:
            >>> v = DeletionVector.from_positions([0, 5, 9])
            >>> len(v.to_bytes()) > 0, DeletionVector.from_bytes(v.to_bytes()).positions.tolist()
            (True, [0, 5, 9])
        """
        return encode_portable(self.positions)

    @property
    def cardinality(self) -> int:
        """The number of deleted rows."""
        return int(self.positions.size)

    def __len__(self) -> int:
        return int(self.positions.size)

    def __contains__(self, position: object) -> bool:
        return isinstance(position, (int, np.integer)) and not isinstance(position, bool) and self.contains(
            int(position))

    def contains(self, position: int) -> bool:
        """Whether the row at ``position`` is deleted.

        Args:
            position: a row position (any int; negative ones are never deleted).

        Returns:
            ``True`` if the vector holds ``position``.

        Raises:
            ArgumentTypeError: ``position`` is not an int.

        Example:
            >>> v = DeletionVector.from_positions([0, 5, 9])
            >>> v.contains(5), v.contains(6)
            (True, False)
        """
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)):
            raise ArgumentTypeError(f"position must be an int, got {type(position).__name__}")
        position = int(position)
        if position < 0 or position > _MAX_POSITION or not self.positions.size:
            return False
        at = int(np.searchsorted(self.positions, np.uint64(position)))
        return at < self.positions.size and int(self.positions[at]) == position

    def union(self, other: DeletionVector) -> DeletionVector:
        """The rows deleted by either vector (how a rebase merges two writers' deletes of one file).

        Args:
            other: another vector of the same data file.

        Returns:
            The union.

        Raises:
            ArgumentTypeError: ``other`` is not a :class:`DeletionVector`.

        Example:
            >>> DeletionVector.from_positions([1, 3]).union(DeletionVector.from_positions([2, 3])).positions.tolist()
            [1, 2, 3]
        """
        if not isinstance(other, DeletionVector):
            raise ArgumentTypeError(f"union takes a DeletionVector, got {type(other).__name__}")
        if not other.positions.size or other is self:
            return self
        if not self.positions.size:
            return other
        return DeletionVector(positions=_frozen(np.union1d(self.positions, other.positions)))

    def intersects(self, other: DeletionVector) -> bool:
        """Whether the two vectors delete a common row (two writers changed the same row).

        Args:
            other: another vector of the same data file.

        Returns:
            ``True`` if some position is in both.

        Example:
            >>> v = DeletionVector.from_positions([1, 3])
            >>> v.intersects(DeletionVector.from_positions([3])), v.intersects(DeletionVector.from_positions([2]))
            (True, False)
        """
        if not isinstance(other, DeletionVector):
            raise ArgumentTypeError(f"intersects takes a DeletionVector, got {type(other).__name__}")
        small, large = sorted((self.positions, other.positions), key=len)
        if not small.size:
            return False
        at = np.searchsorted(large, small)
        at[at == large.size] = 0
        return bool(np.any(large[at] == small)) if large.size else False

    @overload
    def mask(self, num_rows: int, *, arrow: Literal[False] = ...) -> np.ndarray: ...
    @overload
    def mask(self, num_rows: int, *, arrow: Literal[True]) -> pa.BooleanArray: ...

    def mask(self, num_rows: int, *, arrow: bool = False) -> np.ndarray | pa.BooleanArray:
        """The rows of the data file that are kept: ``True`` where a row is not deleted.

        Args:
            num_rows: the data file's row count.
            arrow: return a ``pyarrow.BooleanArray`` (ready for ``Table.filter``), built straight
                from a bit buffer, instead of a numpy ``bool`` array.

        Returns:
            A mask of ``num_rows`` values.

        Raises:
            CorruptDeletionVectorError: the vector deletes a row at or beyond ``num_rows``.
            InvalidArgumentError: ``num_rows`` is negative.

        Example:
            >>> DeletionVector.from_positions([1]).mask(3, arrow=True).to_pylist()
            [True, False, True]
        """
        rows = check_int(num_rows, "num_rows", minimum=0)
        if self.positions.size and int(self.positions[-1]) >= rows:
            raise CorruptDeletionVectorError(
                f"deletion vector deletes row {int(self.positions[-1])} of a data file with {rows} rows")
        if not arrow:
            keep = np.ones(rows, dtype=bool)
            keep[self.positions] = False
            return keep
        keep = np.ones(rows, dtype=bool)
        keep[self.positions] = False
        bits = np.packbits(keep, bitorder="little")  # Arrow's validity-style bit order
        return pa.BooleanArray.from_buffers(pa.bool_(), rows, [None, pa.py_buffer(bits)])

    def difference(self, other: DeletionVector) -> DeletionVector:
        """The rows this vector deletes and ``other`` does not (what a concurrent writer added to a
        file's vector since the version both read).

        Args:
            other: another vector of the same data file.

        Returns:
            The positions of ``self`` not in ``other``.

        Raises:
            ArgumentTypeError: ``other`` is not a :class:`DeletionVector`.

        Example:
            >>> v = DeletionVector.from_positions([1, 2, 3])
            >>> v.difference(DeletionVector.from_positions([2])).positions.tolist()
            [1, 3]
        """
        if not isinstance(other, DeletionVector):
            raise ArgumentTypeError(f"difference takes a DeletionVector, got {type(other).__name__}")
        if not other.positions.size or not self.positions.size:
            return self
        return DeletionVector(positions=_frozen(np.setdiff1d(self.positions, other.positions, assume_unique=True)))

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # numpy unpickles arrays writable: rebuild through the checks, which freeze a fresh array
        return _from_pickle, (self.positions.tobytes(),)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeletionVector):
            return NotImplemented
        return self.positions.size == other.positions.size and bool(np.array_equal(self.positions, other.positions))

    def __hash__(self) -> int:
        return hash((self.positions.size, self.positions.tobytes()))

    def __repr__(self) -> str:
        shown = ", ".join(str(x) for x in self.positions[:8].tolist())
        if self.positions.size > 8:
            shown += ", ..."
        return f"DeletionVector(cardinality={self.cardinality}, positions=[{shown}])"


def _from_pickle(data: bytes) -> DeletionVector:
    return DeletionVector(positions=_frozen(np.frombuffer(data, dtype=np.uint64).copy()))


def _sorted_distinct(array: np.ndarray) -> np.ndarray:
    """``array`` (a fresh ``uint64`` array) sorted without duplicates; already canonical input is not re-sorted.

    (``np.unique`` is avoided: numpy 2.4 hashes first and took 2.5 s for a million positions.)
    """
    if array.size > 1 and not bool(np.all(array[1:] > array[:-1])):
        array.sort(kind="stable")  # a merge sort: fast on the partly sorted positions writers produce
        keep = np.empty(array.size, dtype=bool)
        keep[0] = True
        np.not_equal(array[1:], array[:-1], out=keep[1:])
        array = array[keep]
    return array


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _as_integer_array(positions: Any) -> np.ndarray:
    """``positions`` as a one-dimensional integer numpy array, or a typed error naming what is wrong."""
    if isinstance(positions, (str, bytes, bytearray, memoryview)) or not isinstance(
            positions, (np.ndarray, pa.Array, pa.ChunkedArray, Iterable)):
        raise ArgumentTypeError(f"positions must be a collection of ints, got {type(positions).__name__}")
    if isinstance(positions, range) and positions.step > 0 and positions.start >= 0 and positions.stop <= LIMIT:
        return np.arange(positions.start, positions.stop, positions.step, dtype=np.int64)
    if isinstance(positions, (pa.Array, pa.ChunkedArray)):
        if not pa.types.is_integer(positions.type) or positions.null_count:
            raise ArgumentTypeError(f"positions must be integers without nulls, got a {positions.type} array "
                                    f"with {positions.null_count} nulls")
        positions = positions.to_numpy()
    if not isinstance(positions, np.ndarray):
        items = list(positions)
        if any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) for x in items):
            bad = next(x for x in items if isinstance(x, bool) or not isinstance(x, (int, np.integer)))
            raise ArgumentTypeError(f"positions must be ints, got {type(bad).__name__} {bad!r}")
        try:
            positions = np.asarray(items) if items else np.empty(0, dtype=np.uint64)
        except OverflowError as exc:
            raise InvalidArgumentError("row positions must be below 2**63") from exc
        if positions.dtype == object:
            raise InvalidArgumentError("row positions must be between 0 and 2**63 - 1")
    if positions.ndim != 1 or positions.dtype.kind not in "iu":
        raise ArgumentTypeError(f"positions must be a one-dimensional integer array, got dtype {positions.dtype} "
                                f"with {positions.ndim} dimensions")
    return positions


def _as_bytes(data: Any) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArgumentTypeError(f"deletion-vector data must be bytes, got {type(data).__name__}")
    return bytes(data)


def _corrupt(message: str, path: str | None = None) -> CorruptDeletionVectorError:
    return CorruptDeletionVectorError(f"deletion vector: {message}", path=path)


# ---------------------------------------------------------------------------------------- Delta, Iceberg


def to_delta_bytes(vector: DeletionVector) -> bytes:
    """Delta's serialized vector: the magic number ``1681511377`` (little-endian), then the bitmap.

    Args:
        vector: the vector.

    Returns:
        The bytes a Delta ``deletionVector`` descriptor's ``sizeInBytes`` counts.

    Example:
        >>> int.from_bytes(to_delta_bytes(DeletionVector.from_positions([1]))[:4], "little")
        1681511377
    """
    return ICEBERG_MAGIC + vector.to_bytes()


def from_delta_bytes(data: bytes, *, num_rows: int | None = None) -> DeletionVector:
    """The vector of Delta's serialized form (portable; the older "native" layout is read too).

    Args:
        data: the magic number and the bitmap, nothing else.
        num_rows: the data file's row count (bounds the positions and the memory).

    Returns:
        The vector.

    Raises:
        CorruptDeletionVectorError: an unknown magic number, or a malformed bitmap.

    Example:
        >>> v = DeletionVector.from_positions([0, 5, 9])
        >>> from_delta_bytes(to_delta_bytes(v), num_rows=10) == v
        True
    """
    data = _as_bytes(data)
    limit, cap = _check_limit(num_rows)
    if data[:4] == ICEBERG_MAGIC:
        positions = decode_portable(data[4:], limit=limit, max_cardinality=cap)
    elif data[:4] == _NATIVE_MAGIC:
        positions = decode_native(data[4:], limit=limit, max_cardinality=cap)
    else:
        raise _corrupt(f"unknown magic number {data[:4].hex()} (expected {ICEBERG_MAGIC.hex()})")
    return DeletionVector(positions=_frozen(positions))


def _framed(payload: bytes) -> bytes:
    """``payload`` between its big-endian length and its big-endian CRC-32."""
    return len(payload).to_bytes(4, "big") + payload + zlib.crc32(payload).to_bytes(4, "big")


def _unframe(data: bytes, at: int, what: str, path: str | None) -> bytes:
    """The payload of the frame at ``at`` (length, payload, CRC), checked."""
    if len(data) < at + 8:
        raise _corrupt(f"{what} is truncated ({len(data) - at} bytes)", path)
    size = int.from_bytes(data[at:at + 4], "big")
    if at + 8 + size > len(data):
        raise _corrupt(f"{what} declares {size} bytes, {len(data) - at - 8} follow", path)
    payload = data[at + 4:at + 4 + size]
    crc = int.from_bytes(data[at + 4 + size:at + 8 + size], "big")
    if zlib.crc32(payload) != crc:
        raise _corrupt(f"{what} fails its CRC-32 check", path)
    return payload


def to_iceberg_blob(vector: DeletionVector) -> bytes:
    """The Iceberg puffin blob ``deletion-vector-v1`` of ``vector``.

    Args:
        vector: the vector.

    Returns:
        Length (4 bytes, big-endian) of magic + vector, the magic ``D1 D3 39 64``, the vector and a
        CRC-32 (big-endian) of magic + vector.

    Example:
        >>> v = DeletionVector.from_positions([0, 5, 9])
        >>> from_iceberg_blob(to_iceberg_blob(v)) == v
        True
    """
    return _framed(to_delta_bytes(vector))


def from_iceberg_blob(blob: bytes, *, num_rows: int | None = None) -> DeletionVector:
    """The vector of an Iceberg ``deletion-vector-v1`` blob (exactly the blob's bytes).

    Args:
        blob: the blob.
        num_rows: the data file's row count (bounds the positions and the memory).

    Returns:
        The vector.

    Raises:
        CorruptDeletionVectorError: a wrong length, magic or CRC, trailing bytes, or a malformed bitmap.

    Example:
        >>> v = DeletionVector.from_positions([0, 5, 9])
        >>> from_iceberg_blob(to_iceberg_blob(v), num_rows=10).positions.tolist()
        [0, 5, 9]
    """
    blob = _as_bytes(blob)
    payload = _unframe(blob, 0, "deletion-vector-v1 blob", None)
    if len(payload) + 8 != len(blob):
        raise _corrupt(f"deletion-vector-v1 blob has {len(blob) - len(payload) - 8} bytes after its checksum")
    if payload[:4] != ICEBERG_MAGIC:
        raise _corrupt(f"deletion-vector-v1 blob has magic {payload[:4].hex()}, expected {ICEBERG_MAGIC.hex()}")
    limit, cap = _check_limit(num_rows)
    return DeletionVector(positions=_frozen(decode_portable(payload[4:], limit=limit, max_cardinality=cap)))


def to_delta_file(vectors: Sequence[DeletionVector]) -> tuple[bytes, list[tuple[int, int]]]:
    """A Delta deletion-vector file holding ``vectors``, and where each one is.

    The file is the version byte ``1`` then, per vector, its Iceberg blob (:func:`to_iceberg_blob`):
    the 4-byte big-endian size of Delta's serialized vector, that vector and its CRC-32.

    Args:
        vectors: the vectors, in file order.

    Returns:
        ``(file bytes, [(offset, size_in_bytes), ...])``: per vector the offset of its size field
        (Delta's descriptor ``offset``) and the size of its serialized form (``sizeInBytes``).

    Example:
        >>> a, b = DeletionVector.from_positions([1]), DeletionVector.from_positions([2, 4])
        >>> data, slots = to_delta_file([a, b])
        >>> [from_delta_file(data, offset=o, size_in_bytes=s) for o, s in slots] == [a, b]
        True
    """
    pieces, slots, at = [bytes([DELTA_FILE_VERSION])], [], 1
    for vector in vectors:
        framed = to_iceberg_blob(vector)
        slots.append((at, len(framed) - 8))
        pieces.append(framed)
        at += len(framed)
    return b"".join(pieces), slots


def from_delta_file(data: bytes, *, offset: int, size_in_bytes: int, num_rows: int | None = None,
                    path: str | None = None) -> DeletionVector:
    """The vector at ``offset`` of a Delta deletion-vector file (all of the file's bytes in ``data``).

    Args:
        data: the file's bytes.
        offset: where the vector's size field is (Delta's descriptor ``offset``, at least 1).
        size_in_bytes: the size the descriptor records; it must match the file's.
        num_rows: the data file's row count (bounds the positions and the memory).
        path: the file's path, named in errors.

    Returns:
        The vector.

    Raises:
        CorruptDeletionVectorError: an unknown version byte, a size or CRC that does not match, or a
            malformed vector.
        InvalidArgumentError: ``offset`` is below 1 or ``size_in_bytes`` negative.

    Example:
        >>> data, [(offset, size)] = to_delta_file([DeletionVector.from_positions([7])])
        >>> from_delta_file(data, offset=offset, size_in_bytes=size, num_rows=8).positions.tolist()
        [7]
    """
    data = _as_bytes(data)
    offset = check_int(offset, "offset", minimum=1)
    size_in_bytes = check_int(size_in_bytes, "size_in_bytes", minimum=0)
    if not data or data[0] != DELTA_FILE_VERSION:
        raise _corrupt(f"unknown deletion-vector file version {data[:1].hex() or 'none'}", path)
    payload = _unframe(data, offset, f"the vector at offset {offset}", path)
    if len(payload) != size_in_bytes:
        raise _corrupt(f"the vector at offset {offset} is {len(payload)} bytes, its descriptor says "
                       f"{size_in_bytes}", path)
    try:
        return from_delta_bytes(payload, num_rows=num_rows)
    except CorruptDeletionVectorError as exc:
        raise _corrupt(f"the vector at offset {offset}: {exc}", path) from exc


# ---------------------------------------------------------------------------------------------- Z85

_Z85 = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_ENCODE = np.frombuffer(_Z85, dtype=np.uint8)
_Z85_DECODE = np.full(256, 255, dtype=np.uint8)
_Z85_DECODE[_Z85_ENCODE] = np.arange(85, dtype=np.uint8)
_POWERS = np.array([85**4, 85**3, 85**2, 85, 1], dtype=np.uint64)


def z85_encode(data: bytes) -> str:
    """``data`` as Z85 text (ZeroMQ RFC 32), zero-padded to a multiple of 4 bytes as Delta pads it.

    Args:
        data: the bytes.

    Returns:
        5 characters per 4 bytes (of the padded input).

    Example:
        >>> z85_encode(bytes([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]))
        'HelloWorld'
    """
    data = _as_bytes(data)
    padded = data + bytes(-len(data) % 4)
    words = np.frombuffer(padded, dtype=">u4").astype(np.uint64)
    digits = (words[:, None] // _POWERS[None, :]) % np.uint64(85)
    return _Z85_ENCODE[digits.astype(np.intp)].tobytes().decode("ascii")


def z85_decode(text: str, size: int | None = None) -> bytes:
    """The bytes of Z85 ``text``; with ``size``, the first ``size`` (the rest must be zero padding).

    Args:
        text: Z85 characters, a multiple of 5.
        size: the unpadded byte count (Delta's ``sizeInBytes``); ``None`` keeps every decoded byte.

    Returns:
        The bytes.

    Raises:
        CorruptDeletionVectorError: a length that is not a multiple of 5, a character outside the
            alphabet, a group above ``2**32 - 1``, or a ``size`` the text does not fit.

    Example:
        >>> z85_decode("HelloWorld").hex()
        '864fd26fb559f75b'
    """
    if not isinstance(text, str):
        raise ArgumentTypeError(f"Z85 text must be a str, got {type(text).__name__}")
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise _corrupt("Z85 text holds a non-ASCII character") from exc
    if len(raw) % 5:
        raise _corrupt(f"Z85 text of {len(raw)} characters is not a multiple of 5")
    digits = _Z85_DECODE[np.frombuffer(raw, dtype=np.uint8)]
    if np.any(digits == 255):
        raise _corrupt("Z85 text holds a character outside the Z85 alphabet")
    values = digits.reshape(-1, 5).astype(np.uint64) @ _POWERS if raw else np.empty(0, dtype=np.uint64)
    if np.any(values > 0xFFFFFFFF):
        raise _corrupt("Z85 text holds a group above 2**32 - 1")
    decoded = values.astype(">u4").tobytes()
    if size is None:
        return decoded
    size = check_int(size, "size", minimum=0)
    if not len(decoded) - 4 < size <= len(decoded) or any(decoded[size:]):
        raise _corrupt(f"Z85 text of {len(raw)} characters does not hold {size} bytes")
    return decoded[:size]


def to_delta_inline(vector: DeletionVector) -> tuple[str, int]:
    """Delta's inline form (``storageType "i"``): the serialized vector as Z85 text, and its size.

    Args:
        vector: the vector.

    Returns:
        ``(pathOrInlineDv, sizeInBytes)``.

    Example:
        >>> v = DeletionVector.from_positions([0, 5, 9])
        >>> text, size = to_delta_inline(v)
        >>> from_delta_inline(text, size) == v
        True
    """
    data = to_delta_bytes(vector)
    return z85_encode(data), len(data)


def from_delta_inline(text: str, size_in_bytes: int, *, num_rows: int | None = None) -> DeletionVector:
    """The vector of Delta's inline form.

    Args:
        text: the descriptor's ``pathOrInlineDv``.
        size_in_bytes: the descriptor's ``sizeInBytes``.
        num_rows: the data file's row count (bounds the positions and the memory).

    Returns:
        The vector.

    Raises:
        CorruptDeletionVectorError: bad Z85 text, or a malformed vector.

    Example:
        >>> v = DeletionVector.from_positions([0, 5, 9])
        >>> from_delta_inline(*to_delta_inline(v), num_rows=10).positions.tolist()
        [0, 5, 9]
    """
    return from_delta_bytes(z85_decode(text, size_in_bytes), num_rows=num_rows)

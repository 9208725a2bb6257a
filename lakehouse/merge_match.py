"""Finding a merge's matches: join keys in the target's types, a sorted-key probe of the source's
keys, and which target files and row groups may hold a match.

A merge source may hold a million keys; the target tens of files of hundreds of thousands of rows.
Hashing the source's keys again for every target file (a ``pa.Table.join`` per file) costs the
source's size once per file; :class:`KeyProbe` sorts them once and answers each file with a binary
search (``numpy.searchsorted``, which runs without the GIL, so files are probed in parallel), and
tells from a row group's min/max whether any source key falls inside it, so that only those groups
are read. Keys of one column whose values are numbers to numpy (integers, floating point, dates,
times, timestamps, durations) are probed this way; other keys (strings, decimals, several columns)
are joined with ``pa.Table.join``.

Example:
    >>> import pyarrow as pa
    >>> probe = KeyProbe.of(pa.chunked_array([[30, 10, 20]]), np.array([0, 1, 2]))
    >>> probe.covers([(0, 5), (15, 25), None])
    [False, True, True]
    >>> [x.tolist() for x in probe.match(pa.chunked_array([[20, 7, 10]]))]
    [[0, 2], [2, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import SchemaMismatchError

__all__ = ["KeyProbe", "SortedKeys", "changed_rows", "file_bounds", "join_type", "key_array", "key_range", "prunable"]


def join_type(t: pa.DataType) -> pa.DataType:
    """The type keys of a column of type ``t`` are compared in (a dictionary's value type).

    Args:
        t: a column's type.

    Returns:
        ``t``, or its value type when it is a dictionary.

    Example:
        >>> join_type(pa.dictionary(pa.int8(), pa.string()))
        DataType(string)
    """
    return t.value_type if pa.types.is_dictionary(t) else t


def key_array(col: pa.ChunkedArray, typ: pa.DataType, column: str) -> pa.ChunkedArray:
    """A join key column in the target's type ``typ``; NaN made null and -0.0 made 0.0 (SQL equality).

    Args:
        col: the key column (of the source or the target).
        typ: the target column's type.
        column: its name (for errors).

    Returns:
        The keys, ready to compare.

    Raises:
        SchemaMismatchError: the keys do not fit ``typ``, or one side has a time zone and the other not.

    Example:
        >>> key_array(pa.chunked_array([[1.5, float("nan"), -0.0]]), pa.float64(), "k").to_pylist()
        [1.5, None, 0.0]
    """
    typ = join_type(typ)
    source = join_type(col.type)
    if pa.types.is_timestamp(typ) and pa.types.is_timestamp(source) and (typ.tz is None) != (source.tz is None):
        raise SchemaMismatchError(f"key column {column!r}: a timestamp with a time zone ({typ if typ.tz else source}) "
                                  f"cannot be matched with one without (it names no instant)", column=column)
    try:
        col = col.cast(typ) if col.type != typ else col
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaMismatchError(f"source key column {column!r} ({col.type}) does not fit the target's type {typ}: "
                                  f"{str(exc).splitlines()[0]}", column=column) from None
    if pa.types.is_floating(typ):
        col = pc.if_else(pc.is_nan(col), pa.scalar(None, typ), pc.add(col, pa.scalar(0.0, typ)))
    return col


def prunable(typ: pa.DataType) -> bool:
    """Whether min/max statistics and ranges of keys of type ``typ`` prune files (ordered types).

    Args:
        typ: the key column's type in the target.

    Returns:
        True for integers, floating point, temporal, decimal, string and binary keys.

    Example:
        >>> prunable(pa.int32()), prunable(pa.float64()), prunable(pa.bool_())
        (True, True, False)
    """
    typ = join_type(typ)
    return (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_temporal(typ)
            or pa.types.is_decimal(typ) or pa.types.is_string(typ) or pa.types.is_large_string(typ)
            or pa.types.is_binary(typ) or pa.types.is_large_binary(typ))


def key_range(keys: pa.ChunkedArray) -> tuple[pa.Scalar, pa.Scalar]:
    """The lowest and highest non-null key (durations, which have no ``min_max`` kernel, through
    their integers).

    Args:
        keys: keys of a :func:`prunable` type.

    Returns:
        (min, max) as scalars of the keys' type (null scalars when there is no key).

    Example:
        >>> import datetime as dt
        >>> low, high = key_range(pa.chunked_array([[dt.timedelta(3), None, dt.timedelta(-1)]]))
        >>> low.as_py(), high.as_py()
        (datetime.timedelta(days=-1), datetime.timedelta(days=3))
    """
    if pa.types.is_duration(keys.type):
        bounds = pc.min_max(keys.cast(pa.int64()))
        return bounds["min"].cast(keys.type), bounds["max"].cast(keys.type)
    bounds = pc.min_max(keys)
    return bounds["min"], bounds["max"]


def _numeric(typ: pa.DataType) -> pa.DataType | None:
    """The numpy-friendly type keys of type ``typ`` are compared as (None: not a number to numpy)."""
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):
        return typ
    if (pa.types.is_timestamp(typ) or pa.types.is_date64(typ) or pa.types.is_time64(typ)
            or pa.types.is_duration(typ)):
        return pa.int64()
    if pa.types.is_date32(typ) or pa.types.is_time32(typ):
        return pa.int32()
    return None


def _values(keys: pa.ChunkedArray | pa.Array, numeric: pa.DataType) -> np.ndarray:
    """The (non-null) keys as a numpy array."""
    if keys.type != numeric:
        keys = keys.cast(numeric)
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks() if keys.num_chunks != 1 else keys.chunk(0)
    return np.asarray(keys.to_numpy(zero_copy_only=False))


class KeyProbe:
    """The keys of a merge source (one column), sorted once, to probe target keys and row groups.

    Args:
        values: the keys as numpy values, sorted.
        rows: the source row number of each, in the same order.
        typ: the keys' Arrow type (the target column's).

    Example:
        >>> probe = KeyProbe.of(pa.chunked_array([[3, 1, 3]]), np.array([7, 8, 9]))
        >>> [x.tolist() for x in probe.match(pa.chunked_array([[3, 2]]))]
        [[0, 0], [7, 9]]
    """

    __slots__ = ("rows", "typ", "values")

    def __init__(self, values: np.ndarray, rows: np.ndarray, typ: pa.DataType) -> None:
        self.values = values
        self.rows = rows
        self.typ = typ

    @classmethod
    def of(cls, keys: pa.ChunkedArray, rows: np.ndarray) -> KeyProbe | None:
        """The probe of ``keys`` (no nulls, already :func:`key_array`), or None when their type is not
        one numpy sorts (then join instead).

        Args:
            keys: the source's keys in the target's type, nulls dropped.
            rows: the source row number of each key.

        Returns:
            The probe, or None.

        Example:
            >>> KeyProbe.of(pa.chunked_array([["a"]]), np.array([0])) is None
            True
        """
        numeric = _numeric(keys.type)
        if numeric is None:
            return None
        values = _values(keys, numeric)
        order = np.argsort(values)
        return cls(values[order], np.asarray(rows)[order], keys.type)

    def _bound(self, value: Any) -> Any:
        """A statistics value (a Python value of the key's type) as a number comparable with the keys."""
        numeric = _numeric(self.typ)
        if numeric is None or value is None:
            return None
        if numeric == self.typ:
            return value
        return pa.scalar(value, type=self.typ).cast(numeric).as_py()

    def covers(self, bounds: Sequence[tuple[Any, Any] | None]) -> list[bool]:
        """Per (min, max) range (of a row group or file; None: unknown): may a source key lie in it.

        Args:
            bounds: one (min, max) per range, as Python values of the key's type, or None.

        Returns:
            One verdict per range; True where unknown or where the bounds cannot be read.

        Example:
            >>> KeyProbe.of(pa.chunked_array([[5]]), np.array([0])).covers([(6, 9), (1, 5)])
            [False, True]
        """
        out = []
        for b in bounds:
            try:
                lo, hi = (None, None) if b is None else (self._bound(b[0]), self._bound(b[1]))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError, OverflowError):
                lo = hi = None
            if lo is None or hi is None:
                out.append(True)
                continue
            first = np.searchsorted(self.values, lo, side="left")
            out.append(bool(first < len(self.values) and self.values[first] <= hi))
        return out

    def match(self, keys: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """Every (index into ``keys``, source row) pair with equal keys (nulls in ``keys`` match nothing).

        Args:
            keys: target keys, already :func:`key_array`, nulls allowed.

        Returns:
            (indexes into ``keys``, source row numbers), both ``int64``, one entry per pair.

        Example:
            >>> probe = KeyProbe.of(pa.chunked_array([[1.5, 2.5]]), np.array([10, 11]))
            >>> [x.tolist() for x in probe.match(pa.chunked_array([[None, 2.5, 9.0]]))]
            [[1], [11]]
        """
        numeric = _numeric(self.typ)
        assert numeric is not None
        if keys.null_count:
            index = np.flatnonzero(np.asarray(pc.is_valid(keys).to_numpy(zero_copy_only=False), dtype=bool))
            target = _values(pc.drop_null(keys), numeric)
        else:
            index = None
            target = _values(keys, numeric)
        lo = np.searchsorted(self.values, target, side="left")
        hi = np.searchsorted(self.values, target, side="right")
        counts = hi - lo
        hit = np.flatnonzero(counts)
        counts = counts[hit]
        total = int(counts.sum())
        which = np.repeat(hit, counts)
        # the i-th pair of a target key takes the i-th of its equal source keys
        starts = np.repeat(lo[hit] - (np.cumsum(counts) - counts), counts)
        sources = self.rows[starts + np.arange(total)]
        if index is not None:
            which = index[which]
        return which.astype(np.int64), sources.astype(np.int64)


class SortedKeys:
    """The distinct keys of a merge source (one column of strings, binary or decimals: those numpy
    does not order), sorted once, to tell which (min, max) ranges of the target may hold one.

    Matching itself stays a hash join; this only skips files and row groups. Strings compare by
    code point, which is the byte order of their UTF-8 (the order of Parquet's statistics).

    Args:
        keys: the distinct keys, sorted (a pyarrow array without nulls).

    Example:
        >>> keys = SortedKeys.of(pa.chunked_array([["pear", "apple", "fig"]]))
        >>> keys.covers([("a", "b"), ("b", "e"), ("g", "z"), None])
        [True, False, True, True]
    """

    __slots__ = ("keys",)

    def __init__(self, keys: pa.Array) -> None:
        self.keys = keys

    @classmethod
    def of(cls, keys: pa.ChunkedArray) -> SortedKeys | None:
        """The sorted distinct ``keys`` (no nulls, already :func:`key_array`), or None when their type
        is not one this orders (string, binary, decimal).

        Args:
            keys: the source's keys in the target's type, nulls dropped.

        Returns:
            The sorted keys, or None.

        Example:
            >>> SortedKeys.of(pa.chunked_array([[1]])) is None
            True
        """
        typ = keys.type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_binary(typ)
                or pa.types.is_large_binary(typ) or pa.types.is_decimal(typ)):
            return None
        distinct = pc.unique(keys)
        if isinstance(distinct, pa.ChunkedArray):
            distinct = distinct.combine_chunks()
        return cls(distinct.take(pc.sort_indices(distinct)))

    def _first_at_least(self, value: Any) -> int:
        """The index of the first key >= ``value`` (binary search over the Arrow array)."""
        lo, hi = 0, len(self.keys)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.keys[mid].as_py() < value:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def covers(self, bounds: Sequence[tuple[Any, Any] | None]) -> list[bool]:
        """Per (min, max) range (None: unknown): may a source key lie in it.

        Args:
            bounds: one (min, max) per range, as Python values of the key's type, or None.

        Returns:
            One verdict per range; True where unknown or where the bounds do not compare with the keys.

        Example:
            >>> SortedKeys.of(pa.chunked_array([[b"k"]])).covers([(b"a", b"j"), (b"j", b"l")])
            [False, True]
        """
        out = []
        for b in bounds:
            if b is None or b[0] is None or b[1] is None:
                out.append(True)
                continue
            try:
                first = self._first_at_least(b[0])
                out.append(first < len(self.keys) and self.keys[first].as_py() <= b[1])
            except TypeError:  # e.g. statistics of another type than the keys'
                out.append(True)
        return out


def file_bounds(stats: dict[str, dict[str, Any]], column: str) -> tuple[Any, Any] | None:
    """The (min, max) of ``column`` in a planned file's statistics (``FileTask.stats``); None: unknown.

    Args:
        stats: ``{"min": {column: value}, "max": {...}, ...}``.
        column: the column.

    Returns:
        (min, max), or None when either is missing.

    Example:
        >>> file_bounds({"min": {"a": 1}, "max": {"a": 9}}, "a"), file_bounds({"min": {}}, "a")
        ((1, 9), None)
    """
    low, high = stats.get("min", {}).get(column), stats.get("max", {}).get(column)
    return None if low is None or high is None else (low, high)


def _same(a: pa.ChunkedArray, b: pa.ChunkedArray) -> np.ndarray:
    """Per row: are ``a`` and ``b`` equal, nulls equal to nulls (and NaN to NaN)."""
    try:
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        if pa.types.is_floating(a.type):
            # compared bit for bit: pc.equal calls -0.0 and 0.0 equal, and an upsert must still write 0.0
            va, vb = (np.asarray(pc.fill_null(x, 0).to_numpy(zero_copy_only=False)) for x in (a, b))
            unsigned = np.dtype(f"u{va.dtype.itemsize}")
            valid = np.asarray(pc.and_(pc.is_valid(a), pc.is_valid(b)).to_numpy(zero_copy_only=False), dtype=bool)
            bits = (va.view(unsigned) == vb.view(unsigned)) | (np.isnan(va) & np.isnan(vb))
            return (valid & bits) | np.asarray(both_null.to_numpy(zero_copy_only=False), dtype=bool)
        out = pc.or_(pc.fill_null(pc.equal(a, b), False), both_null)
        return np.asarray(out.to_numpy(zero_copy_only=False), dtype=bool)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return np.array([x == y for x, y in zip(a.to_pylist(), b.to_pylist())], dtype=bool)


def changed_rows(old: pa.Table, new: pa.Table) -> np.ndarray:
    """Per row: does ``new`` differ from ``old`` in some column (nulls equal nulls, NaN equals NaN,
    floats compared bit for bit so that -0.0 -> 0.0 is a change).

    Args:
        old: rows before (the same columns as ``new``).
        new: the same rows after.

    Returns:
        A boolean mask, one entry per row.

    Example:
        >>> changed_rows(pa.table({"a": [1, None, -0.0]}), pa.table({"a": [1, None, 0.0]})).tolist()
        [False, False, True]
    """
    same = np.ones(old.num_rows, dtype=bool)
    for name in old.column_names:
        same &= _same(old.column(name), new.column(name))
    return ~same

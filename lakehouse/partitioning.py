"""Hive-style partitioning: splitting data by partition values and naming partition folders.

Folder names are for humans only: the typed partition values live in the log. Every byte outside
``[A-Za-z0-9_.-]`` is percent-escaped, so no value can form a path separator, ``..`` segment or NUL.

Example:
    >>> escape_segment("a/b c")
    'a%2Fb%20c'
    >>> partition_dir(["day", "name"], [7, None])
    'day=7/name=__HIVE_DEFAULT_PARTITION__'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .schema import encode_values

__all__ = ["NULL_SEGMENT", "escape_segment", "partition_dir", "split_by_partition"]

NULL_SEGMENT = "__HIVE_DEFAULT_PARTITION__"
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_MAX_SEGMENT = 128


def escape_segment(value: str) -> str:
    """Percent-escape ``value`` for use as (part of) one path segment; long values are shortened.

    Args:
        value: the text.

    Returns:
        The escaped segment: never ``.`` or ``..``, at most the segment length limit (a hash suffix
        keeps shortened values distinct).

    Example:
        >>> escape_segment(".."), escape_segment("a/b")
        ('%2E%2E', 'a%2Fb')
    """
    raw = value.encode("utf-8", "surrogatepass")
    out = "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in raw)
    if out.strip(".") == "":
        out = "".join(f"%{b:02X}" for b in raw)
    if len(out) > _MAX_SEGMENT:
        out = out[: _MAX_SEGMENT - 9] + "-" + hashlib.sha1(raw).hexdigest()[:8]
    return out


def _display(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def partition_dir(columns: Sequence[str], values: Sequence[Any]) -> str:
    """The relative folder for one partition (``""`` for an unpartitioned table).

    Args:
        columns: the partition columns (physical names).
        values: their values, in the same order (None: the null segment).

    Returns:
        ``<column>=<value>`` segments joined by ``/``, each escaped.

    Example:
        >>> partition_dir(["day", "kind"], [3, None]), partition_dir([], [])
        ('day=3/kind=__HIVE_DEFAULT_PARTITION__', '')
    """
    return "/".join(
        f"{escape_segment(c)}={NULL_SEGMENT if v is None else escape_segment(_display(v))}"
        for c, v in zip(columns, values)
    )


def _single_partition(table: pa.Table, columns: Sequence[str]) -> bool:
    for c in columns:
        col = table.column(c)
        nulls = col.null_count
        if nulls == len(col):
            continue
        if nulls:
            return False
        mm = pc.min_max(col)
        if mm["min"] != mm["max"]:
            return False
    return True


def split_by_partition(
    table: pa.Table, columns: Sequence[str], *, take: Callable[[pa.Table, pa.Array], pa.Table] | None = None,
) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...], pa.Table]]:
    """Split ``table`` into its partitions.

    Args:
        table: the rows.
        columns: the partition columns (empty: one partition, the whole table).
        take: ``take(table, indices)`` reorders the rows (default ``table.take``; a writer passes one
            that takes the columns in parallel).

    Yields:
        ``(encoded values, python values, rows)`` per partition, in order of the values (nulls last);
        rows keep their relative order within a partition, partition columns stay in the rows.

    Example:
        >>> t = pa.table({"day": [2, 1, 2], "v": ["a", "b", "c"]})
        >>> [(enc, rows.column("v").to_pylist()) for enc, _, rows in split_by_partition(t, ["day"])]
        [((1,), ['b']), ((2,), ['a', 'c'])]
    """
    if not columns:
        yield (), (), table
        return
    if table.num_rows == 0:
        return
    if not _single_partition(table, columns):
        # sorted under positional names: pyarrow reads a name starting with "." as a nested field path
        keys = pa.table([table.column(c) for c in columns], names=[str(i) for i in range(len(columns))])
        order = pc.sort_indices(keys, sort_keys=[(str(i), "ascending") for i in range(len(columns))])  # nulls last
        table = table.take(order) if take is None else take(table, order)
    bounds = {0, table.num_rows}
    for c in columns:
        ends = pc.run_end_encode(table.column(c).combine_chunks()).run_ends.to_numpy()
        bounds.update(ends.tolist())
    cuts = np.array(sorted(bounds))
    for start, stop in zip(cuts[:-1], cuts[1:]):
        part = table.slice(int(start), int(stop - start))
        heads = [part.column(c).slice(0, 1).combine_chunks() for c in columns]
        encoded = tuple(encode_values(h)[0] for h in heads)
        python = tuple(h.to_pylist()[0] for h in heads)
        yield encoded, python, part

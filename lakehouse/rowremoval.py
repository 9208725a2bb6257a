"""How a row-level change removes rows of one existing data file: drop it, mark the rows in a
deletion vector (merge-on-read) or rewrite it without them (copy-on-write).

Pure functions, no I/O. The table property ``delete_mode`` (``lakehouse.properties.delete_mode``)
picks the mode; in merge-on-read mode a file is still rewritten when that is the cheaper way to
keep reads fast (docs/format.md §16, §5.8):

- a file whose live rows all go is removed (whatever the mode);
- a *small* file, of fewer than :data:`REWRITE_BELOW_ROWS` physical rows, is rewritten;
- a file of which *most rows are gone* after the change — more than :data:`REWRITE_FRACTION` of its
  physical rows deleted (by its current vector and this change together) — is rewritten;
- any other file gets a deletion vector.

Positions: a row-level operation finds the rows it removes by reading a file's *live* rows in file
order (as ``lakehouse.read_task`` returns them), so it numbers them among the live rows;
:func:`physical_positions` turns those into positions in the file (what a vector holds).

Example:
    >>> removal_kind(num_rows=1_000_000, num_deleted=0, removing=1, mode="merge-on-read")
    'vector'
    >>> removal_kind(num_rows=500, num_deleted=0, removing=1, mode="merge-on-read")
    'rewrite'
    >>> removal_kind(num_rows=1_000_000, num_deleted=0, removing=600_000, mode="merge-on-read")
    'rewrite'
    >>> removal_kind(num_rows=1_000_000, num_deleted=0, removing=1, mode="copy-on-write")
    'rewrite'
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .deletion_vector import DeletionVector

__all__ = ["REWRITE_BELOW_ROWS", "REWRITE_FRACTION", "RemovalKind", "physical_positions", "removal_kind"]

REWRITE_BELOW_ROWS = 10_000
"""In merge-on-read mode, a file of fewer physical rows than this is rewritten instead of getting a
deletion vector (rewriting it costs about what reading it does)."""

REWRITE_FRACTION = 0.5
"""In merge-on-read mode, a file of which more than this fraction of its physical rows would be
deleted after the change is rewritten instead of getting a (larger) deletion vector."""

RemovalKind = Literal["drop", "vector", "rewrite"]
"""``"drop"``: remove the file (every live row goes); ``"vector"``: give it a deletion vector;
``"rewrite"``: write its kept rows into new files and remove it."""


def removal_kind(*, num_rows: int, num_deleted: int, removing: int, mode: str, written: bool = False) -> RemovalKind:
    """How to remove ``removing`` more live rows of a file of ``num_rows`` physical rows, of which
    ``num_deleted`` are already deleted by its vector.

    Args:
        num_rows: the file's physical row count.
        num_deleted: the rows its current deletion vector deletes (0: none).
        removing: how many of its live rows the change removes (at least 1).
        mode: the table's ``delete_mode``: ``"merge-on-read"`` or ``"copy-on-write"``.
        written: the file was written by the same transaction (it is never in the log: rewritten).

    Returns:
        ``"drop"``, ``"vector"`` or ``"rewrite"``.

    Example:
        >>> removal_kind(num_rows=100_000, num_deleted=0, removing=1, mode="merge-on-read")
        'vector'
        >>> removal_kind(num_rows=100, num_deleted=0, removing=1, mode="merge-on-read")
        'rewrite'
    """
    if removing >= num_rows - num_deleted:
        return "drop"
    if mode != "merge-on-read" or written:
        return "rewrite"
    if num_rows < REWRITE_BELOW_ROWS or num_deleted + removing > REWRITE_FRACTION * num_rows:
        return "rewrite"
    return "vector"


def physical_positions(live: np.ndarray, current: DeletionVector | None, num_rows: int) -> np.ndarray:
    """The positions in the file (sorted ``uint64``) of the live rows numbered ``live`` (0-based among
    the rows ``current``, the file's vector, keeps; sorted, distinct).

    Args:
        live: indexes among the file's live rows, in file order.
        current: the file's deletion vector, or None.
        num_rows: the file's physical row count.

    Returns:
        Their positions among all the file's rows.

    Example:
        >>> physical_positions(np.array([0, 2]), DeletionVector.from_positions([0, 1]), 5).tolist()
        [2, 4]
    """
    index = np.asarray(live).astype(np.int64)
    if current is None or not current.cardinality:
        return index.astype(np.uint64)
    return np.flatnonzero(current.mask(num_rows))[index].astype(np.uint64)

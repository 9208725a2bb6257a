"""The narrow view of a table that :class:`~lakehouse.alter.Alter`, :class:`~lakehouse.inspect.Inspect`
and :class:`~lakehouse.transaction.Transaction` work through, instead of the whole ``Table``.

A :class:`TableHandle` is what those need of a table and nothing more: its storage, the state it
reads now, a way to move it to the latest version, the callback a landed commit reports to, and
the write options. ``Table`` builds one for itself; the modules above never import ``table``, so
``table`` can import them without a cycle.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-handle", pa.table({"a": [1]}))
    >>> h = t.alter._handle
    >>> h.state().version, [c.operation for c in h.history(None)]
    (0, ['write'])
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from .arguments import check_optional_int
from .replay import Commit, history, load_state, target_version
from .state import TableState
from .storage import Storage
from .write import WriteOptions

__all__ = ["TableHandle"]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class TableHandle:
    """What operations bound to one table need of it (see the module docstring).

    The callables are the table's own: the state they return moves as the table does.
    """

    storage: Storage
    """The table's storage."""
    state: Callable[[], TableState]
    """The state the table reads now: its latest known version, or the version it is pinned to."""
    refresh: Callable[[], TableState]
    """Move the table to the latest version (a pinned table too) and return that state."""
    head: Callable[[], TableState]
    """The newest state history reads: a pinned table's own, else the latest (refreshing)."""
    on_commit: Callable[[TableState, bool], None]
    """Called once a commit landed (``False``) or was skipped as already applied (``True``), with the
    state after it; it never raises."""
    write_options: Callable[[], WriteOptions]
    """How the table lays out the data files it writes now."""
    label: Callable[[], str]
    """The table's ``repr``."""

    def __repr__(self) -> str:
        return self.label()

    def state_at(self, version: int | None = None, as_of: dt.datetime | None = None) -> TableState:
        """The state at ``version`` or at the time ``as_of`` (the table's current state if neither).

        Raises:
            InvalidArgumentError: both are given, or ``as_of`` is naive.
            VersionNotFoundError: no such version, or nothing committed at or before ``as_of``.
        """
        target = target_version(self.storage, version, as_of)
        current = self.state()
        if target is None or target == current.version:
            return current
        return load_state(self.storage, target)

    def history(self, limit: int | None) -> list[Commit]:
        """The table's commits, newest first (at most ``limit``), from :attr:`head` back.

        Raises:
            ArgumentTypeError: ``limit`` is not an int; InvalidArgumentError: it is negative.
        """
        limit = check_optional_int(limit, "limit", minimum=0)
        return history(self.storage, self.head().version, limit)

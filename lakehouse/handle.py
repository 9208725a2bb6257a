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

    Attributes:
        storage: the table's storage.
        state: the state the table reads now: its latest known version, or the version it is pinned to.
        refresh: move the table to the latest version (a pinned table too) and return that state.
        head: the newest state history reads: a pinned table's own, else the latest (refreshing).
        on_commit: called once a commit landed (``False``) or was skipped as already applied
            (``True``), with the state after it; it never raises.
        write_options: how the table lays out the data files it writes now.
        label: the table's ``repr``.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> from lakehouse.storage import Storage
        >>> state = lh.write_table("memory://doc-handle-class", pa.table({"a": [1]})).snapshot().state
        >>> h = TableHandle(storage=Storage.from_uri("memory://doc-handle-class"), state=lambda: state,
        ...                 refresh=lambda: state, head=lambda: state, on_commit=lambda s, skipped: None,
        ...                 write_options=WriteOptions, label=lambda: "a table")
        >>> h, h.state_at(0).version
        (a table, 0)
    """

    storage: Storage
    state: Callable[[], TableState]
    refresh: Callable[[], TableState]
    head: Callable[[], TableState]
    on_commit: Callable[[TableState, bool], None]
    write_options: Callable[[], WriteOptions]
    label: Callable[[], str]

    def __repr__(self) -> str:
        return self.label()

    def state_at(self, version: int | None = None, as_of: dt.datetime | None = None) -> TableState:
        """The state at ``version`` or at the time ``as_of`` (the table's current state if neither).

        Args:
            version: a version of the table, or None.
            as_of: an aware datetime, or None: the newest version committed at or before it.

        Returns:
            The table state at that version (the current one itself if it is that version).

        Raises:
            InvalidArgumentError: both are given, or ``as_of`` is naive.
            VersionNotFoundError: no such version, or nothing committed at or before ``as_of``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-state-at", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]}))
            >>> t.alter._handle.state_at(0).version, t.alter._handle.state_at().version
            (0, 1)
        """
        target = target_version(self.storage, version, as_of)
        current = self.state()
        if target is None or target == current.version:
            return current
        return load_state(self.storage, target)

    def history(self, limit: int | None) -> list[Commit]:
        """The table's commits, newest first (at most ``limit``), from :attr:`head` back.

        Args:
            limit: the most commits to return (all if None).

        Returns:
            :class:`~lakehouse.Commit` records, newest first.

        Raises:
            ArgumentTypeError: ``limit`` is not an int; InvalidArgumentError: it is negative.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> t = lh.write_table("memory://doc-handle-history", pa.table({"a": [1]}))
            >>> _ = t.append(pa.table({"a": [2]}))
            >>> [c.operation for c in t.inspect._handle.history(1)]
            ['append']
        """
        limit = check_optional_int(limit, "limit", minimum=0)
        return history(self.storage, self.head().version, limit)

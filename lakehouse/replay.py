"""Replay: reading log entries and turning the log into a table state at a version — the newest
checkpoint at or before it (found through ``_last_checkpoint`` without listing, or by listing the
log folder when the hint is missing or too new) plus the entries after it — and time travel: the
version committed at or before an instant (:func:`version_as_of`, :func:`version_at`), the oldest
version left (:func:`oldest_version`), the version a ``version`` / ``as_of`` argument names
(:func:`target_version`), and the history records of the entries (:class:`Commit`, :func:`history`)
(format §10, §13). Commit, snapshots, maintenance and the table facade use it.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-replay", pa.table({"a": [1]}))
    >>> load_state(t._storage).version, read_entry(t._storage, 0).version
    (0, 0)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .checkpoint import decode_checkpoint, read_pointer
from .clock import from_ms, to_ms
from .errors import (
    ArgumentTypeError,
    CorruptLogError,
    InvalidArgumentError,
    TableNotFoundError,
    UnsupportedFormatError,
    VersionNotFoundError,
)
from .log import LOG_DIR, LogEntry, checkpoint_name, decode_entry, entry_name, parse_log_name
from .state import TableState
from .storage import MAX_READ_CHECKPOINT_BYTES, Storage

__all__ = [
    "Commit",
    "history",
    "list_log",
    "load_state",
    "oldest_version",
    "read_entries",
    "read_entry",
    "target_version",
    "version_as_of",
    "version_at",
]


_PROBE_BATCH = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """One entry of a table's history.

    Attributes:
        version: the version this commit created.
        timestamp: when it was committed (an aware UTC datetime, from the writer's clock).
        operation: ``"create"``, ``"write"``, ``"append"``, ``"overwrite"``, ``"delete"``,
            ``"restore"``, ``"optimize"``, ``"set_properties"``, ...
        info: the commit's details: ``commit_id``, ``parameters``, ``read_version``,
            ``blind_append``, ``data_change`` (False for a commit that only rearranges rows, such as
            optimize; format §5.6), ``lakehouse_version``, ``files_added``/``files_removed`` and
            ``rows_added``/``rows_removed``.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> lh.write_table("memory://doc-commit-h", pa.table({"a": [1]})).history()[0].operation
        'write'
    """

    version: int
    timestamp: dt.datetime
    operation: str
    info: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_entry(cls, e: LogEntry) -> Commit:
        """The history record of one log entry.

        Args:
            e: a decoded log entry (``lakehouse.log.LogEntry``).

        Returns:
            The entry's version, timestamp, operation and details.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> from lakehouse.replay import read_entry
            >>> from lakehouse.storage import Storage
            >>> _ = lh.write_table("memory://doc-from-entry", pa.table({"a": [1, 2]}))
            >>> c = Commit.from_entry(read_entry(Storage.from_uri("memory://doc-from-entry"), 0))
            >>> c.version, c.operation, c.info["rows_added"]
            (0, 'write', 2)
        """
        c = e.commit
        info = {
            "commit_id": c.id, "parameters": dict(c.parameters), "read_version": c.read_version,
            "blind_append": c.blind_append, "data_change": c.data_change, "lakehouse_version": c.lakehouse_version,
            "files_added": len(e.add), "files_removed": len(e.remove),
            # live rows (format §5.8): a file re-added with a new deletion vector counts its live rows again
            "rows_added": sum(a.num_rows - a.num_deleted_rows for a in e.add),
            "rows_removed": sum(r.num_rows - r.num_deleted_rows for r in e.remove),
        }
        return cls(version=e.version, timestamp=from_ms(c.timestamp), operation=c.operation, info=info)


def read_entry(storage: Storage, version: int) -> LogEntry | None:
    """The log entry at ``version``, or None if there is none."""
    try:
        data = storage.read(entry_name(version))
    except FileNotFoundError:
        return None
    return decode_entry(data, path=storage.full_path(entry_name(version)), version=version)


def read_entries(storage: Storage, start: int, stop: int | None = None) -> list[LogEntry]:
    """Entries ``start..stop`` (all must exist), or from ``start`` until the first missing one."""
    out: list[LogEntry] = []
    v = start
    # local reads are cheap one by one; on object stores probe concurrently, doubling the batch
    # while every probed entry exists (few requests when little is new, few rounds when much is)
    batch = 1 if storage.is_local else (_PROBE_BATCH if stop is not None else 2)
    while stop is None or v <= stop:
        hi = v + batch if stop is None else min(v + batch, stop + 1)
        datas = storage.read_many([entry_name(i) for i in range(v, hi)])
        for i, data in enumerate(datas, start=v):
            if data is None:
                if stop is not None:
                    if not storage.exists(entry_name(stop)):  # not a gap: the log ends before stop
                        raise VersionNotFoundError(f"version {stop} does not exist (latest is {i - 1})",
                                                   version=stop)
                    raise VersionNotFoundError(f"log entry for version {i} is missing", version=i)
                return out
            out.append(decode_entry(data, path=storage.full_path(entry_name(i)), version=i))
        v = hi
        if not storage.is_local:
            batch = min(batch * 2, 64)
    return out


def list_log(storage: Storage) -> tuple[list[int], list[int]]:
    """The versions of the log entries and of the checkpoints in the log folder, ascending."""
    entries: list[int] = []
    checkpoints: list[int] = []
    for name in storage.list(LOG_DIR):
        parsed = parse_log_name(name)
        if parsed is not None:
            (entries if parsed[1] == "entry" else checkpoints).append(parsed[0])
    return sorted(entries), sorted(checkpoints)


def _checkpoint_start(storage: Storage, version: int | None, *,
                      use_pointer: bool = True) -> tuple[int | None, list[int] | None]:
    """The checkpoint version to start from, and the listed entry versions if we had to list."""
    pointer = read_pointer(storage) if use_pointer else None
    if pointer is not None and (version is None or pointer <= version):
        return pointer, None
    entries, checkpoints = list_log(storage)
    if not entries and not checkpoints:
        raise TableNotFoundError(storage.uri)
    usable = [c for c in checkpoints if version is None or c <= version]
    return (usable[-1] if usable else None), entries


def _read_checkpoint(storage: Storage, version: int) -> TableState | None:
    rel = checkpoint_name(version)
    try:
        data = storage.read(rel, max_bytes=MAX_READ_CHECKPOINT_BYTES)
    except FileNotFoundError:
        return None
    return decode_checkpoint(data, path=storage.full_path(rel), version=version)


def _usable_checkpoint(storage: Storage, start: int, version: int | None) -> TableState | None:
    """The state of checkpoint ``start``; if it is damaged, of the newest older one that is intact.

    None means: replay from version 0. A checkpoint from a newer format is never skipped.
    """
    try:
        return _read_checkpoint(storage, start)
    except UnsupportedFormatError:
        raise
    except CorruptLogError as damaged:
        _, checkpoints = list_log(storage)
        for older in reversed([c for c in checkpoints if c < start]):
            try:
                return _read_checkpoint(storage, older)
            except UnsupportedFormatError:
                raise
            except CorruptLogError:
                continue
        if read_entry(storage, 0) is None:
            raise damaged from None
        return None


def load_state(storage: Storage, version: int | None = None) -> TableState:
    """The table state at ``version`` (latest if None).

    Raises ``TableNotFoundError`` if there is no table, ``VersionNotFoundError`` for a version
    the log does not have, ``CorruptLogError`` for a damaged entry at or before ``version``.
    """
    if version is not None and version < 0:
        raise VersionNotFoundError(f"version {version} does not exist: versions start at 0", version=version)
    start, listed = _checkpoint_start(storage, version)
    state = _usable_checkpoint(storage, start, version) if start is not None else None
    if start is not None and state is None and listed is None:
        # the pointer names a checkpoint that is not there: treat it as absent and list (§9)
        start, listed = _checkpoint_start(storage, version, use_pointer=False)
        state = _usable_checkpoint(storage, start, version) if start is not None else None
    if start is None and listed and listed[0] > 0 and version is not None and version < listed[0]:
        raise VersionNotFoundError(f"version {version} was cleaned up from the log (the oldest version kept is "
                                   f"{listed[0]})", version=version)
    first = state.version + 1 if state is not None else 0
    if version is not None and listed is not None and listed and version > listed[-1]:
        raise VersionNotFoundError(f"version {version} does not exist (latest is {listed[-1]})", version=version)
    if version is None:
        entries = read_entries(storage, first)
    else:
        entries = _entries_up_to(storage, first, version) if first <= version else []
    if state is None:
        if not entries:
            if listed:  # entries exist but not from version 0: the early log was cleaned up
                raise VersionNotFoundError(
                    f"version {version if version is not None else 0} was cleaned up from the log", version=version
                )
            raise TableNotFoundError(storage.uri)
        state = TableState.initial(entries)
    else:
        state = state.apply(entries)
    if version is None and listed and listed[-1] > state.version:
        missing = storage.full_path(entry_name(state.version + 1))
        raise CorruptLogError(f"the log has a gap: entry {state.version + 1} is missing but {listed[-1]} exists",
                              path=missing)
    if version is not None and state.version != version:
        raise VersionNotFoundError(f"version {version} does not exist (latest is {state.version})", version=version)
    return state


def _entries_up_to(storage: Storage, first: int, version: int) -> list[LogEntry]:
    """Entries ``first..version``; if one is missing or damaged but ``version`` is past the last entry
    in the log, ``VersionNotFoundError`` says that version does not exist (naming the latest)."""
    try:
        return read_entries(storage, first, version)
    except (VersionNotFoundError, CorruptLogError) as failed:
        # damage on the way to a version that does not exist: say that it does not exist
        entries, checkpoints = list_log(storage)
        latest = max(entries[-1] if entries else -1, checkpoints[-1] if checkpoints else -1)
        if version > latest:
            raise VersionNotFoundError(f"version {version} does not exist (latest is {latest})",
                                       version=version) from None
        raise failed from None


def version_as_of(storage: Storage, ms: int) -> int:
    """The newest version committed at or before ``ms`` (milliseconds since the epoch).

    Commit timestamps strictly increase with the version (format §11.3), so this bisects the
    entries the log folder lists, decoding only the ones it probes: a damaged entry is read only
    when the answer depends on its timestamp (then ``CorruptLogError``). Nothing is replayed.

    Raises:
        TableNotFoundError: no table at the storage root.
        VersionNotFoundError: no version committed at or before ``ms`` is left in the log.
        CorruptLogError: an entry the answer depends on is damaged.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-version-as-of", pa.table({"a": [1]}))
        >>> version_as_of(t._storage, 2**62)
        0
    """
    entries, checkpoints = list_log(storage)
    if not entries:
        if checkpoints:
            raise VersionNotFoundError(f"no version committed at or before {_when(ms)} is left in the log "
                                       f"(only checkpoints are)")
        raise TableNotFoundError(storage.uri)
    # invariant: entries[lo] was committed at or before ms (lo == -1: none known), entries[hi:] after it
    lo, hi = -1, len(entries)
    while hi - lo > 1:
        probe, stamp = _probe(storage, entries, lo, hi)
        if stamp == ms:  # timestamps strictly increase (§11.3): no later entry is needed
            return entries[probe]
        if stamp < ms:
            lo = probe
        else:
            hi = probe
    if lo >= 0:
        return entries[lo]
    if entries[0] > 0:
        raise VersionNotFoundError(f"no version committed at or before {_when(ms)} is left in the log "
                                   f"(versions before {entries[0]} were cleaned up)")
    raise VersionNotFoundError(f"no version of the table existed at {_when(ms)}")


def _probe(storage: Storage, entries: list[int], lo: int, hi: int) -> tuple[int, int]:
    """An index strictly between ``lo`` and ``hi`` (the middle, else the nearest intact entry to it)
    and its entry's commit timestamp. Only if every entry between them is damaged does the answer
    depend on a damaged timestamp: then the middle one's ``CorruptLogError``."""
    mid = (lo + hi) // 2
    first_error: CorruptLogError | None = None
    for offset in range(hi - lo):
        for i in (mid + offset, mid - offset) if offset else (mid,):
            if lo < i < hi:
                try:
                    return i, _listed_entry(storage, entries[i]).commit.timestamp
                except CorruptLogError as exc:
                    first_error = first_error or exc
    assert first_error is not None
    raise first_error


def _listed_entry(storage: Storage, version: int) -> LogEntry:
    entry = read_entry(storage, version)
    if entry is None:  # listed a moment ago: removed by a concurrent log clean-up
        raise VersionNotFoundError(f"log entry {version} was removed while looking for a version by time "
                                   f"(log clean-up ran); try again", version=version)
    return entry


def _when(ms: int) -> str:
    """A commit time for a message (never fails, even for instants datetime cannot hold)."""
    try:
        return from_ms(ms).isoformat()
    except OverflowError:
        return f"{ms} ms since the epoch"


def version_at(storage: Storage, state: TableState, ms: int) -> int | None:
    """The newest version committed at or before ``ms`` (stored commit timestamps increase with
    the version), or None if the oldest version still in the log is newer.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-version-at", pa.table({"a": [1]}))
        >>> version_at(t._storage, t._state, 2**62), version_at(t._storage, t._state, 0)
        (0, None)
    """
    if state.timestamp <= ms:
        return state.version
    lo = oldest_version(storage, state)
    first = read_entry(storage, lo)
    if first is None or first.commit.timestamp > ms:
        return None
    hi = state.version  # invariant: entry lo is at or before ms, entry hi after it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        e = read_entry(storage, mid)
        if e is None:
            raise VersionNotFoundError(f"log entry {mid} is missing", version=mid)
        if e.commit.timestamp <= ms:
            lo = mid
        else:
            hi = mid
    return lo


def oldest_version(storage: Storage, state: TableState) -> int:
    """The oldest version whose entry is still in the log: 0, unless log clean-up removed entries
    (then found by one listing).

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-oldest", pa.table({"a": [1]}))
        >>> oldest_version(t._storage, t._state)
        0
    """
    if read_entry(storage, 0) is not None:
        return 0
    kept = [v for v in list_log(storage)[0] if v <= state.version]
    return kept[0] if kept else state.version


def _as_of_ms(as_of: dt.datetime) -> int:
    """Milliseconds since the epoch, rounded down. A naive datetime names no instant: refused, not guessed."""
    if not isinstance(as_of, dt.datetime):
        raise ArgumentTypeError(f"as_of must be a datetime, got {type(as_of).__name__}")
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise InvalidArgumentError("as_of must be an aware datetime (with a time zone), e.g. "
                                   "datetime.now(timezone.utc)", argument="as_of")
    return to_ms(as_of)  # exact: int(as_of.timestamp() * 1000) lands 1 ms early for some instants


def target_version(storage: Storage, version: int | None, as_of: dt.datetime | None) -> int | None:
    """The version ``version`` / ``as_of`` name (None if neither), found without replaying the log.

    Args:
        storage: the table's storage.
        version: a version, or None.
        as_of: an aware datetime, or None: the newest version committed at or before it.

    Returns:
        The version, or None if both are None.

    Raises:
        InvalidArgumentError: both are given, or ``as_of`` is naive.
        ArgumentTypeError: ``version`` is not an int or ``as_of`` not a datetime.
        VersionNotFoundError: nothing was committed at or before ``as_of`` (see :func:`version_as_of`).

    Example:
        >>> import lakehouse as lh, pyarrow as pa, datetime as dt
        >>> t = lh.write_table("memory://doc-target-version", pa.table({"a": [1]}))
        >>> target_version(t._storage, None, dt.datetime.now(dt.timezone.utc)), target_version(t._storage, 0, None)
        (0, 0)
    """
    if version is not None and as_of is not None:
        raise InvalidArgumentError("pass version or as_of, not both", argument="as_of")
    if as_of is not None:
        return version_as_of(storage, _as_of_ms(as_of))
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ArgumentTypeError(f"version must be an int, got {type(version).__name__}", argument="version")
    return version


def history(storage: Storage, newest: int, limit: int | None = None) -> list[Commit]:
    """The commits from ``newest`` back, newest first (at most ``limit``), down to the oldest entry
    still in the log.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-replay-history", pa.table({"a": [1]}))
        >>> [c.version for c in history(t._storage, 0)]
        [0]
    """
    out: list[Commit] = []
    v = newest
    while v >= 0 and (limit is None or len(out) < limit):
        e = read_entry(storage, v)
        if e is None:
            break  # older entries were cleaned up
        out.append(Commit.from_entry(e))
        v -= 1
    return out

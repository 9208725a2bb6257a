"""Committing: optimistic concurrency with conflict rules, automatic rebase and retries.

A commit creates log entry ``N+1`` only if absent. If another writer took that version, the
winning entries are read and checked against what this commit read and removed; if nothing
conflicts the commit is rebased onto them and retried. An error that leaves the outcome unknown is
resolved by reading the entry back and comparing its commit id; if that is impossible,
:class:`~lakehouse.errors.CommitStateUnknownError` is raised (and the data files are kept).

Example:
    >>> import pyarrow as pa
    >>> from lakehouse.log import Metadata, Protocol
    >>> from lakehouse.storage import Storage
    >>> s = Storage.from_uri("memory://doc-commit")
    >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
    >>> commit(s, None, CommitRequest(operation="create", metadata=meta, protocol=Protocol())).version
    0
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute as pc

from ._version import __version__
from .errors import (
    CommitConflictError,
    CommitError,
    CommitStateUnknownError,
    TableExistsError,
    UnsafeStorageError,
    UnsupportedFormatError,
)
from .expressions import files_mask
from .log import (
    WRITER_VERSION,
    AddFile,
    AppTransaction,
    CommitInfo,
    LogEntry,
    Metadata,
    Protocol,
    RemoveFile,
    encode_entry,
    entry_name,
)
from .snapshot import read_entries, read_entry
from .state import TableState, adds_to_table
from .stats import partition_columns, stats_columns
from .storage import Storage

__all__ = ["CommitRequest", "CommitResult", "commit"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitRequest:
    """What a writer wants to commit, and what it read to decide it."""

    operation: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    add: tuple[AddFile, ...] = ()
    remove: tuple[RemoveFile, ...] = ()
    metadata: Metadata | None = None
    protocol: Protocol | None = None
    txn: tuple[AppTransaction, ...] = ()
    read_predicates: tuple[pc.Expression | None, ...] = ()
    """Filters whose matching rows the commit depends on; None stands for the whole table. They name
    columns by physical name (as the files table does, format.md §5.7)."""
    read_files: frozenset[str] = frozenset()
    """Paths of the files the commit read (their removal by another writer conflicts)."""

    @property
    def blind_append(self) -> bool:
        """True if the commit only adds files without having read anything."""
        return not (self.remove or self.read_predicates or self.read_files or self.metadata)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitResult:
    """The outcome of :func:`commit`: the new version and the state after it."""

    version: int
    state: TableState
    skipped: bool = False
    """True if an idempotent writer's transaction was already applied, so nothing was written."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _already_applied(state: TableState | None, txn: tuple[AppTransaction, ...]) -> bool:
    if state is None:
        return False
    return any((seen := state.app_version(t.app_id)) is not None and seen >= t.version for t in txn)


def _check_conflicts(request: CommitRequest, state: TableState, winners: list[LogEntry]) -> None:
    meta = state.metadata
    removing = {r.path for r in request.remove} | set(request.read_files)
    for w in winners:
        def conflict(why: str, w: LogEntry = w) -> CommitConflictError:
            return CommitConflictError(
                f"concurrent commit at version {w.version} ({w.commit.operation}) {why}", version=w.version
            )

        if w.metadata is not None or w.protocol is not None:
            raise conflict("changed the table metadata")
        if request.metadata is not None:
            raise conflict("landed before this metadata change")
        if removing and any(r.path in removing for r in w.remove):
            raise conflict("removed a file this commit read or removes")
        if request.read_predicates and w.add:
            added = adds_to_table(w.add, meta)
            stats = stats_columns(meta.schema, meta.partition_by)
            for pred in request.read_predicates:
                if pred is None or pc.any(
                    files_mask(pred, added, partition_columns=partition_columns(meta.schema, meta.partition_by),
                               stats_columns=stats)
                ).as_py():
                    raise conflict("added files that match this commit's filter")


def _entry(request: CommitRequest, state: TableState | None, version: int, commit_id: str,
           read_version: int | None) -> LogEntry:
    timestamp = max(_now_ms(), state.timestamp + 1) if state is not None else _now_ms()
    info = CommitInfo(id=commit_id, timestamp=timestamp, operation=request.operation,
                      parameters=dict(request.parameters), read_version=read_version,
                      blind_append=request.blind_append, lakehouse_version=__version__)
    return LogEntry(version=version, commit=info, protocol=request.protocol, metadata=request.metadata,
                    add=request.add, remove=request.remove, txn=request.txn)


def _publish(storage: Storage, entry: LogEntry) -> LogEntry | None:
    """Try to create the entry. Returns None if ours landed, else the entry that holds the version.

    Raises ``CommitStateUnknownError`` when neither can be established: the write failed ambiguously,
    or the name exists (perhaps through an earlier try of ours whose answer was lost) and the entry
    there cannot be read.
    """
    rel = entry_name(entry.version)
    try:
        storage.put_if_absent(rel, encode_entry(entry))
        return None
    except (UnsafeStorageError, ValueError):
        raise
    except FileExistsError:
        pass  # lost the race, or our own write whose response was lost: read it back
    except Exception as exc:
        try:
            held = read_entry(storage, entry.version)
            read_ok = True
        except Exception:
            held, read_ok = None, False
        if held is None and read_ok and storage.is_local:
            # a local link is synchronous, nothing can still be in flight: the name is free, so
            # nothing was committed
            raise CommitError(f"writing version {entry.version} failed ({exc!r}); nothing was committed") from exc
        if held is None:
            raise CommitStateUnknownError(
                f"writing version {entry.version} failed ({exc!r}) and it cannot be told whether it landed; "
                f"look for commit id {entry.commit.id}", version=entry.version, commit_id=entry.commit.id,
            ) from exc
        return None if held.commit.id == entry.commit.id else held
    try:
        held = _read_back(storage, entry.version)
    except Exception as exc:  # the name may hold our own entry (an earlier try landed): never a plain error
        raise CommitStateUnknownError(
            f"version {entry.version} was refused as existing but reading it back failed ({exc!r}), so it "
            f"cannot be told whether it is this commit; look for commit id {entry.commit.id}",
            version=entry.version, commit_id=entry.commit.id,
        ) from exc
    if held is None:
        raise CommitStateUnknownError(f"version {entry.version} was refused as existing but cannot be read",
                                      version=entry.version, commit_id=entry.commit.id)
    return None if held.commit.id == entry.commit.id else held


def _read_back(storage: Storage, version: int, *, attempts: int = 12) -> LogEntry | None:
    """Read the entry a conditional create was refused for, waiting for it to become visible.

    A store can refuse the create while the competing write is still in flight (seen on moto's
    server); the entry becomes readable a moment later.
    """
    for attempt in range(attempts):
        held = read_entry(storage, version)
        if held is not None:
            return held
        time.sleep(min(0.5, 0.005 * 2**attempt))
    return None


def commit(
    storage: Storage,
    base: TableState | None,
    request: CommitRequest,
    *,
    max_attempts: int = 10_000,
    timeout: float = 600.0,
) -> CommitResult:
    """Commit ``request`` on top of ``base`` (None creates the table at version 0).

    Raises ``CommitConflictError`` on a real conflict, ``TableExistsError`` if ``base`` is None and
    a table already exists, ``CommitStateUnknownError`` if the outcome cannot be known.
    """
    if base is not None and base.protocol.min_writer_version > WRITER_VERSION:
        raise UnsupportedFormatError(f"the table needs writer version {base.protocol.min_writer_version}; this "
                                     f"lakehouse writes up to {WRITER_VERSION}: upgrade lakehouse")
    # refuse (or probe, once per endpoint) before anything is sent: a failure here is not ambiguous
    storage.check_atomic_create()
    commit_id = str(uuid.uuid4())
    read_version = base.version if base is not None else None
    state = base
    deadline = time.monotonic() + timeout
    for attempt in range(max_attempts):
        if _already_applied(state, request.txn):
            assert state is not None
            return CommitResult(version=state.version, state=state, skipped=True)
        version = state.version + 1 if state is not None else 0
        entry = _entry(request, state, version, commit_id, read_version)
        winner = _publish(storage, entry)
        if winner is None:
            new_state = state.apply([entry]) if state is not None else TableState.initial([entry])
            return CommitResult(version=version, state=new_state)
        if state is None:
            raise TableExistsError(storage.uri)
        winners = [winner, *read_entries(storage, version + 1)]
        _check_conflicts(request, state, winners)
        state = state.apply(winners)
        if time.monotonic() > deadline:
            break
        time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
    raise CommitConflictError(
        f"gave up after {attempt + 1} attempts: other writers keep winning",
        version=state.version if state is not None else None,
    )

"""Committing: optimistic concurrency with conflict rules, automatic rebase and retries.

A commit creates log entry ``N+1`` only if absent. If another writer took that version, the
winning entries are read and checked against what this commit read and removed; if nothing
conflicts the commit is rebased onto them and retried. An error that leaves the outcome unknown is
resolved by reading the entry back and comparing its commit id; if that is impossible,
:class:`~lakehouse.errors.CommitStateUnknownError` is raised (and the data files are kept).

Version numbers are never reused (format §11.5): log clean-up deletes old entries, which frees their
names, so a writer whose read version is older than what clean-up may have removed must not publish
into such a name. Around publishing, the writer checks that ``_last_checkpoint`` does not point past
its base and that its predecessor entry is still there; :func:`catch_up` moves a state to the latest
version across a cleaned-up stretch of the log.

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

import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ._version import __version__
from .checkpoint import decode_checkpoint, decode_pointer, read_pointer
from .clock import now_ms
from .deletion_vector import DeletionVector
from .errors import (
    CommitConflictError,
    CommitError,
    CommitStateUnknownError,
    CorruptLogError,
    TableExistsError,
    UnsafeStorageError,
    UnsupportedFormatError,
)
from .expr.prune import files_mask
from .log import (
    CHECKPOINT_POINTER,
    DELETION_VECTORS_VERSION,
    READER_VERSION,
    WRITER_VERSION,
    AddFile,
    AppTransaction,
    CommitInfo,
    LogEntry,
    Metadata,
    Protocol,
    RemoveFile,
    checkpoint_name,
    encode_entry,
    entry_name,
)
from .replay import list_log, load_state, read_entries, read_entry
from .state import TableState, adds_to_table
from .stats import partition_columns, stats_columns
from .storage import (
    MAX_ENTRY_BYTES,
    MAX_READ_CHECKPOINT_BYTES,
    MAX_READ_ENTRY_BYTES,
    MAX_READ_POINTER_BYTES,
    Storage,
)
from .vector_rebase import Rebased, rebase_vectors, revectored

__all__ = ["CommitOutcome", "CommitRequest", "CommitResult", "catch_up", "commit", "supported_raise"]

_log = logging.getLogger("lakehouse")


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitRequest:
    """What a writer wants to commit, and what it read to decide it.

    Attributes:
        operation: the operation name recorded in the entry (``"append"``, ``"delete"``, ...).
        parameters: the operation's parameters, recorded as given.
        add: the data files the commit adds.
        remove: the data files it removes.
        metadata: new table metadata (a schema or property change), or None.
        protocol: a new protocol (the features the metadata needs), or None.
        txn: idempotent writers' ``(app_id, version)`` records; the commit is skipped if the table
            already holds one of them at that version or later.
        read_predicates: filters whose matching rows the commit depends on (see below).
        read_files: paths of the files the commit read (see below).
        read_rows: rows of live files the commit read without changing them (see below).
        data_change: False for a commit that only rearranges rows (optimize, folding deletion
            vectors); recorded in the commit info (format.md §5.6).

    Example:
        >>> CommitRequest(operation="append").blind_append
        True
    """

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
    """Paths of the files the commit read whole (their removal, or a change of their deletion vector, by
    another writer conflicts). The files whose vectors the commit replaces need not be listed: their
    rows are checked one by one (format.md §12)."""
    read_rows: Mapping[str, DeletionVector] = field(default_factory=dict)
    """Per live file, positions of rows the commit read and depends on but leaves alone (e.g. target
    rows a merge matched without changing them): a concurrent commit that deletes one of them
    conflicts, one that deletes other rows of the file does not (format.md §12)."""
    data_change: bool = True
    """False for a commit that only rearranges rows (format.md §5.6)."""

    @property
    def blind_append(self) -> bool:
        """True if the commit only adds files without having read anything."""
        return not (self.remove or self.read_predicates or self.read_files or self.read_rows or self.metadata)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitOutcome:
    """What a write did (see ``Table.last_outcome``): committed as ``version``, or, with ``skipped``,
    nothing written because an idempotent writer's ``(app_id, version)`` was already applied; then
    ``version`` is the version of the table state that already records it.

    Attributes:
        version: the version committed, or (``skipped``) the version that already records the write.
        skipped: True if nothing was written.

    Example:
        >>> CommitOutcome(version=3, skipped=True)
        CommitOutcome(version=3, skipped=True)
    """

    version: int
    skipped: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitResult:
    """The outcome of :func:`commit`: the new version and the state after it.

    Attributes:
        version: the committed version (or, ``skipped``, the version that already records it).
        state: the table state at ``version``.
        skipped: see below.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> from lakehouse.storage import Storage
        >>> _ = lh.write_table("memory://doc-commit-result", pa.table({"a": [1]}))
        >>> state = load_state(Storage.from_uri("memory://doc-commit-result"))
        >>> CommitResult(version=0, state=state, skipped=True).outcome
        CommitOutcome(version=0, skipped=True)
    """

    version: int
    state: TableState
    skipped: bool = False
    """True if an idempotent writer's transaction was already applied, so nothing was written."""

    @property
    def outcome(self) -> CommitOutcome:
        """The public record of this result."""
        return CommitOutcome(version=self.version, skipped=self.skipped)


def catch_up(storage: Storage, state: TableState) -> TableState:
    """``state`` moved to the latest version of the log (format §10.1, §11.5).

    The entries after ``state`` are applied. If log clean-up removed some of them (``_last_checkpoint``
    points past the last entry found, or past ``state`` itself), the state is reloaded from the
    checkpoint instead, so a gap is never mistaken for the end of the log.

    Args:
        storage: the table's storage.
        state: a state of the table at some version.

    Returns:
        The state at the latest version.

    Raises:
        CorruptLogError: an entry after ``state`` is damaged.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> from lakehouse.storage import Storage
        >>> t = lh.write_table("memory://doc-catch-up", pa.table({"a": [1]}))
        >>> storage = Storage.from_uri(t.uri)
        >>> old = load_state(storage)
        >>> _ = t.append(pa.table({"a": [2]}))
        >>> old.version, catch_up(storage, old).version
        (0, 1)
    """
    newer = state.apply(read_entries(storage, state.version + 1))
    pointer = read_pointer(storage)
    if pointer is not None and pointer > newer.version and storage.exists(checkpoint_name(pointer)):
        return load_state(storage)
    return newer


def _conflict(w: LogEntry, why: str) -> CommitConflictError:
    return CommitConflictError(f"concurrent commit at version {w.version} ({w.commit.operation}) {why}",
                               version=w.version)


def _check_conflicts(request: CommitRequest, state: TableState, winners: list[LogEntry]) -> dict[str, int]:
    """``CommitConflictError`` if a winner conflicts with ``request`` (format §12 rules 2-5); else the
    files whose deletion vectors winners replaced while ``request`` changes or reads them row by row
    (path -> the last such winner's version), for :func:`rebase_vectors` to merge."""
    meta = state.metadata
    ours = revectored(request.remove, request.add)  # files whose vectors we replace: checked row by row
    by_rows = ours | set(request.read_rows)
    removing = ({r.path for r in request.remove} - ours) | set(request.read_files)
    adding = {a.path for a in request.add} - ours
    touched: dict[str, int] = {}
    for w in winners:
        def conflict(why: str, w: LogEntry = w) -> CommitConflictError:
            return _conflict(w, why)

        if adding and any(a.path in adding for a in w.add):  # e.g. a retried commit_files of the same files
            raise conflict("already added a data file this commit adds")

        if w.metadata is not None or (w.protocol is not None and not supported_raise(w.protocol)):
            raise conflict("changed the table metadata")
        if request.metadata is not None:
            raise conflict("landed before this metadata change")
        theirs = revectored(w.remove, w.add)
        if removing and any(r.path in removing for r in w.remove):
            raise conflict("removed a file this commit read or removes")
        for r in w.remove:
            if r.path in by_rows:
                if r.path not in theirs:
                    raise CommitConflictError(f"concurrent commit at version {w.version} ({w.commit.operation}) "
                                              f"removed {r.path!r}, whose rows this commit changes or read",
                                              version=w.version, path=r.path)
                touched[r.path] = w.version
        added = [a for a in w.add if a.path not in theirs]  # a re-added file (a new vector) adds no row
        if request.read_predicates and added:
            table = adds_to_table(added, meta)
            stats = stats_columns(meta.schema, meta.partition_by)
            for pred in request.read_predicates:
                if pred is None or pc.any(
                    files_mask(pred, table, partition_columns=partition_columns(meta.schema, meta.partition_by),
                               stats_columns=stats)
                ).as_py():
                    raise conflict("added files that match this commit's filter")
    return touched


def _rebase(storage: Storage, request: CommitRequest, state: TableState, winners: list[LogEntry],
            after: TableState) -> tuple[CommitRequest, frozenset[str]]:
    """``request`` (based on ``state``) checked against ``winners`` and rebased onto ``after``: its
    actions unchanged, except re-added files whose vectors winners also replaced (format §12); and the
    vector files written for it. ``CommitConflictError`` on a conflict."""
    touched = _check_conflicts(request, state, winners)
    if not touched:
        return request, frozenset()
    rebased = rebase_vectors(storage, Rebased(add=request.add, remove=request.remove), request.read_rows,
                             state, after, touched)
    return replace(request, add=rebased.add, remove=rebased.remove), rebased.written


def _delete_vector_files(storage: Storage, paths: set[str] | frozenset[str]) -> None:
    """Delete vector files a rebase wrote that no entry refers to (fresh names: nobody else has them)."""
    for rel in sorted(paths):
        try:
            storage.delete(rel)
        except Exception as exc:  # an orphan is vacuum's (format §17.1); never fail the commit for it
            _log.warning("could not delete the unused deletion-vector file %s: %s", rel, exc)


def _unreferenced(request: CommitRequest, written: set[str]) -> set[str]:
    return written - {a.deletion_vector.path for a in request.add if a.deletion_vector is not None}


def _superseded(storage: Storage, request: CommitRequest, written: set[str]) -> set[str]:
    """Delete the vector files of ``written`` that the (rebased) ``request`` no longer refers to; the rest."""
    stale = _unreferenced(request, written)
    _delete_vector_files(storage, stale)
    return written - stale


def _entry(request: CommitRequest, state: TableState | None, version: int, commit_id: str,
           read_version: int | None) -> LogEntry:
    timestamp = max(now_ms(), state.timestamp + 1) if state is not None else now_ms()
    info = CommitInfo(id=commit_id, timestamp=timestamp, operation=request.operation,
                      parameters=dict(request.parameters), read_version=read_version,
                      blind_append=request.blind_append, lakehouse_version=__version__,
                      data_change=request.data_change)
    return LogEntry(version=version, commit=info, protocol=_protocol(request, state), metadata=request.metadata,
                    add=request.add, remove=request.remove, txn=request.txn)


def supported_raise(protocol: Protocol) -> bool:
    """True if a winner's protocol action (without metadata) is one this writer reads and writes, as
    the first deletion vector's raise to 4: a commit rebased over it stays valid, so it is no conflict
    by itself (format §12 rule 2).

    Args:
        protocol: the winner's protocol action.

    Returns:
        Whether both of its versions are ones this library supports.

    Example:
        >>> supported_raise(Protocol(min_reader_version=4, min_writer_version=4))
        True
    """
    return protocol.min_reader_version <= READER_VERSION and protocol.min_writer_version <= WRITER_VERSION


def _protocol(request: CommitRequest, state: TableState | None) -> Protocol | None:
    """The request's protocol action, raised to deletion vectors (both versions at least 4, format §5.2)
    if it adds a file with a vector to a table below them."""
    if all(a.deletion_vector is None for a in request.add):
        return request.protocol
    current = request.protocol or (state.protocol if state is not None else Protocol())
    if min(current.min_reader_version, current.min_writer_version) >= DELETION_VECTORS_VERSION:
        return request.protocol
    return Protocol(min_reader_version=max(current.min_reader_version, DELETION_VECTORS_VERSION),
                    min_writer_version=max(current.min_writer_version, DELETION_VECTORS_VERSION))


def _encoded(storage: Storage, entry: LogEntry) -> bytes:
    """The bytes of ``entry``; ``CommitError`` (nothing is written) if they cannot go out in one
    storage request (format §11.1)."""
    data = encode_entry(entry)
    if len(data) > MAX_READ_ENTRY_BYTES:  # readers would refuse it (format §15)
        raise CommitError(f"the log entry for version {entry.version} is {len(data)} bytes, more than the "
                          f"{MAX_READ_ENTRY_BYTES} bytes readers read of a log entry; commit fewer files at once")
    if len(data) > MAX_ENTRY_BYTES and not (storage.is_local or storage.is_memory):
        raise CommitError(f"the log entry for version {entry.version} is {len(data)} bytes, more than the "
                          f"{MAX_ENTRY_BYTES} bytes one conditional write may carry; commit fewer files at once")
    return data


def _publish(storage: Storage, entry: LogEntry, data: bytes) -> LogEntry | None:
    rel = entry_name(entry.version)
    try:
        storage.put_if_absent(rel, data)
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


class _Stale(Exception):
    """Internal: log clean-up may have removed entries after the base (format §11.5)."""


_POINTER = frozenset({CHECKPOINT_POINTER})


def _caps(rels: list[str]) -> list[int]:
    """The read caps of ``rels``: the pointer's, then log entries' (format §15)."""
    return [MAX_READ_POINTER_BYTES if r == CHECKPOINT_POINTER else MAX_READ_ENTRY_BYTES for r in rels]


def _check_base(storage: Storage, base: TableState) -> None:
    """Before publishing ``base + 1``: raise ``_Stale`` if that name may be one log clean-up freed
    (format §11.5). Clean-up points ``_last_checkpoint`` at a checkpoint ``C`` before it deletes the
    entries below ``C``, so a pointer past ``base`` means entries after ``base`` may be gone; the
    predecessor entry ``base`` must also still be there (a pointer can be missing or damaged).
    """
    rels = [CHECKPOINT_POINTER, entry_name(base.version)]
    try:
        pointer_data, base_data = storage.read_many(rels, max_bytes=_caps(rels), hints=_POINTER)
    except OSError as exc:  # nothing has been sent yet: a definite failure
        raise CommitError(f"checking the log before writing version {base.version + 1} failed ({exc!r}); "
                          f"nothing was committed") from exc
    pointer = None if pointer_data is None else decode_pointer(pointer_data, path=storage.full_path(rels[0]))
    if pointer is not None and pointer > base.version:
        if storage.exists(checkpoint_name(pointer)):
            raise _Stale
        pointer = None  # a pointer naming a missing checkpoint counts as absent (§9)
    if base_data is None and pointer != base.version:
        raise _Stale  # the predecessor is gone: the pointer is missing or damaged, do not trust the gap


def _confirm(storage: Storage, entry: LogEntry) -> None:
    """After our entry landed at ``N``: make sure ``N`` was not a name log clean-up had freed (§11.5).

    Clean-up deletes the entries below a checkpoint ``C`` oldest first, after pointing
    ``_last_checkpoint`` at ``C`` or later. So a pointer at or below ``N``, or the predecessor
    ``N - 1`` still present, proves that version ``N`` had not existed before. Otherwise the commit may
    be invisible: ``CommitStateUnknownError`` (its data files are kept).
    """
    n = entry.version
    rels = [CHECKPOINT_POINTER] + ([entry_name(n - 1)] if n else [])
    try:
        datas = storage.read_many(rels, max_bytes=_caps(rels), hints=_POINTER)
    except OSError as exc:  # the entry landed: the check before publishing stands for this one
        _log.warning("could not re-check the log after committing version %d: %s", n, exc)
        return
    pointer = None if datas[0] is None else decode_pointer(datas[0], path=storage.full_path(rels[0]))
    if n == 0:
        if pointer is not None and not _same_table(storage, pointer, entry):
            # a table whose early log was cleaned up: its entry 0 was free again. Ours is no version of
            # it (readers start at the checkpoint) and nobody can build on it: take it back
            storage.delete(entry_name(0))
            raise TableExistsError(storage.uri)
        return
    if pointer is None or pointer <= n or datas[1] is not None:
        return
    raise CommitStateUnknownError(
        f"version {n} was written, but log clean-up removed versions up to {pointer} meanwhile, so it cannot "
        f"be told whether version {n} had existed before (then this commit is not part of the table); look "
        f"for commit id {entry.commit.id}", version=n, commit_id=entry.commit.id,
    )


def _same_table(storage: Storage, pointer: int, entry: LogEntry) -> bool:
    """True if checkpoint ``pointer`` belongs to the table our entry 0 created (same table id).

    Raises ``CommitStateUnknownError`` if the checkpoint cannot be read to tell.
    """
    rel = checkpoint_name(pointer)
    try:
        data = storage.read(rel, max_bytes=MAX_READ_CHECKPOINT_BYTES)
        meta = decode_checkpoint(data, path=storage.full_path(rel), version=pointer).metadata
    except FileNotFoundError:  # a stale pointer left in the folder names no checkpoint: absent (§9)
        return True
    except (OSError, CorruptLogError) as exc:
        raise CommitStateUnknownError(
            f"version 0 was written, but a checkpoint at version {pointer} appeared and cannot be read ({exc}) to "
            f"tell whether it is of this table; look for commit id {entry.commit.id}",
            version=0, commit_id=entry.commit.id,
        ) from exc
    assert entry.metadata is not None
    return meta.table_id == entry.metadata.table_id


def _across_cleanup(storage: Storage, request: CommitRequest,
                    state: TableState) -> tuple[TableState, CommitRequest, frozenset[str]]:
    """The latest state and the request rebased onto it (with the vector files the rebase wrote), for
    a commit based on ``state`` whose following entries log clean-up may have removed (format §11.5).
    If they are there (clean-up deletes oldest first, so it is enough that the next one is), it is an
    ordinary lost race; if not, the state is reloaded from the checkpoint and only a blind append
    under unchanged metadata can go on (nothing else can be checked)."""
    winners = read_entries(storage, state.version + 1)
    if winners:
        after = state.apply(winners)
        if after.has_applied(request.txn):  # already applied: skipped before any conflict rule (§12)
            return after, request, frozenset()
        return (after, *_rebase(storage, request, state, winners, after))
    latest = load_state(storage)
    if latest.version <= state.version:
        return state, request, frozenset()
    if latest.has_applied(request.txn):
        return latest, request, frozenset()
    if request.blind_append and latest.metadata == state.metadata and supported_raise(latest.protocol):
        adding = pa.array([a.path for a in request.add], pa.string())
        live = latest.files.column("path")
        if len(adding) and pc.any(pc.is_in(live, adding)).as_py():  # e.g. a retried commit_files that landed
            raise CommitConflictError(
                f"a data file this commit adds is already live at version {latest.version}", version=latest.version,
                live_paths=frozenset(live.filter(pc.is_in(live, adding)).to_pylist()))  # never deleted
        return latest, request, frozenset()
    raise CommitConflictError(
        f"this commit read version {state.version}, but log clean-up has removed the entries after it (the "
        f"latest version is {latest.version}), so conflicts cannot be checked; re-read the table and retry",
        version=latest.version,
    )


def commit(
    storage: Storage,
    base: TableState | None,
    request: CommitRequest,
    *,
    max_attempts: int = 10_000,
    timeout: float = 600.0,
) -> CommitResult:
    """Commit ``request`` on top of ``base`` (None creates the table at version 0).

    Conflicting winners are checked against what ``request`` read (format §11); a blind append
    is rebased onto them. A retry after an ambiguous failure reads the log back to learn whether
    its own entry landed.

    Args:
        storage: the table's storage.
        base: the state the request was decided on, or None to create the table.
        request: what to commit.
        max_attempts: how many versions to try before giving up with ``CommitConflictError``.
        timeout: seconds to keep retrying before giving up with ``CommitConflictError``.

    Returns:
        The version committed and the state after it (``skipped`` if an idempotent writer's
        transaction was already applied).

    Raises:
        CommitConflictError: a concurrent commit conflicts with ``request``.
        TableExistsError: ``base`` is None and a table already exists.
        CommitStateUnknownError: the storage failed so that the outcome cannot be known.
        UnsupportedFormatError: the table needs a newer writer.
        UnsafeStorageError: the storage cannot create a file only if it is absent.

    Example:
        >>> import pyarrow as pa
        >>> from lakehouse.creation import new_metadata
        >>> from lakehouse.log import Protocol
        >>> from lakehouse.storage import Storage
        >>> storage = Storage.from_uri("memory://doc-commit-fn")
        >>> meta = new_metadata(pa.schema([("a", pa.int64())]), None, None)
        >>> result = commit(storage, None, CommitRequest(operation="create", metadata=meta, protocol=Protocol()))
        >>> result.version, result.skipped
        (0, False)
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
    if base is None and list_log(storage) != ([], []):
        raise TableExistsError(storage.uri)  # also a table whose entry 0 was cleaned up
    written: set[str] = set()  # vector files rebases wrote (format §12)
    try:
        for attempt in range(max_attempts):
            if state is not None and state.has_applied(request.txn):
                return CommitResult(version=state.version, state=state, skipped=True)
            version = state.version + 1 if state is not None else 0
            entry = _entry(request, state, version, commit_id, read_version)
            data = _encoded(storage, entry)
            if state is not None:
                try:
                    _check_base(storage, state)
                except _Stale:
                    newer, request, new_files = _across_cleanup(storage, request, state)
                    written = _superseded(storage, request, written | new_files)
                    if newer.version != state.version:
                        state = newer
                        continue
                    # nothing newer is there after all (a damaged pointer, a missing predecessor): publish
            winner = _publish(storage, entry, data)
            if winner is None:
                _confirm(storage, entry)
                new_state = state.apply([entry], trusted=True) if state is not None else TableState.initial([entry])
                _delete_vector_files(storage, _unreferenced(request, written))
                return CommitResult(version=version, state=new_state)
            if state is None:
                raise TableExistsError(storage.uri)
            winners = [winner, *read_entries(storage, version + 1)]
            if request.metadata is not None:  # a metadata conflict stays first (§12): ``state`` carries the
                # new metadata, which the winners' actions need not fit
                raise _conflict(winner, "landed before this metadata change")
            after = state.apply(winners)
            if after.has_applied(request.txn):  # already applied: skipped before any conflict rule (§12)
                _delete_vector_files(storage, written)
                return CommitResult(version=after.version, state=after, skipped=True)
            request, new_files = _rebase(storage, request, state, winners, after)
            written = _superseded(storage, request, written | new_files)
            state = after
            if time.monotonic() > deadline:
                break
            time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
    except CommitStateUnknownError:
        _delete_vector_files(storage, _unreferenced(request, written))  # the entry in flight may need the rest
        raise
    except BaseException:
        _delete_vector_files(storage, written)  # no entry of this commit landed
        raise
    _delete_vector_files(storage, written)
    raise CommitConflictError(
        f"gave up after {attempt + 1} attempts: other writers keep winning",
        version=state.version if state is not None else None,
    )

"""Table maintenance: vacuum, log clean-up, restore and optimize (compaction).

Each function takes the table's :class:`~lakehouse.storage.Storage` and its latest
:class:`~lakehouse.state.TableState`; :class:`lakehouse.Table` wraps them as methods. The rules
(see ``docs/format.md``, section "Maintenance"):

* **vacuum** deletes the files in the table folder that no version within the retention window
  references and that are older than the window (this covers files removed long ago and orphans of
  crashed writers alike). A snapshot that ``as_of`` can still reach never loses a file.
* **cleanup_log** deletes log entries (and checkpoints) older than the retention window that a
  newer checkpoint covers; the oldest entries go first, so a crash leaves a readable log.
* **restore** commits a new version whose live files (and metadata) equal an older version's.
* **optimize** rewrites small files of a partition into files near the target size (optionally
  sorted) in a commit that changes no rows: it conflicts only with a commit that removed one of its
  inputs, never with an append.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-maint", pa.table({"a": [1]}))
    >>> _ = t.append(pa.table({"a": [2]}))
    >>> t.optimize()
    2
    >>> len(t.files()), len(t.vacuum(retention=dt.timedelta(0), enforce_retention=False))  # a dry run
    (1, 2)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import posixpath
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import pyarrow as pa
import pyarrow.compute as pc

from .checkpoint import decode_checkpoint, read_pointer, write_pointer
from .clock import ms_from_seconds, to_ms
from .clock import now_ms as wall_clock_ms
from .commit import CommitRequest, CommitResult, commit
from .constraints import constraint_checker
from .errors import (
    CommitConflictError,
    CorruptLogError,
    LakehouseError,
    RetentionError,
    UnsafePathError,
    VersionNotFoundError,
)
from .evolution import narrowing_protocol, raised_protocol
from .log import LOG_DIR, LogEntry, RemoveFile, checkpoint_name, entry_name
from .progress import ProgressEvent, ProgressLike, progress_callback
from .properties import log_min_retention, vacuum_min_retention
from .replay import list_log, load_state, read_entries, version_at
from .scan import Scan, read_ahead
from .state import TableState, files_to_adds, vector_descriptors
from .stats import partition_columns
from .storage import MAX_READ_CHECKPOINT_BYTES, Storage
from .write import WriteOptions, delete_files, write_data_files

__all__ = [
    "LOG_MIN_RETENTION",
    "VACUUM_MIN_RETENTION",
    "cleanup_log",
    "optimize",
    "restore",
    "vacuum",
]

VACUUM_MIN_RETENTION = "vacuum_min_retention_seconds"
"""Table property: the shortest retention ``vacuum`` accepts without ``enforce_retention=False``."""
LOG_MIN_RETENTION = "log_min_retention_seconds"
"""Table property: the shortest retention ``cleanup_log`` accepts without ``enforce_retention=False``."""


def _retention_ms(state: TableState, retention: dt.timedelta, enforce: bool, prop: str, what: str) -> int:
    if not isinstance(retention, dt.timedelta):
        raise RetentionError(f"{what} retention must be a datetime.timedelta, got {type(retention).__name__}")
    if retention < dt.timedelta(0):
        raise RetentionError(f"{what} retention must not be negative, got {retention}")
    minimum = _minimum(state, prop)
    if enforce and retention < minimum:
        raise RetentionError(
            f"{what} retention {retention} is shorter than the table's minimum {minimum} (property "
            f"{prop!r}); readers and writers still using older versions could lose files. Pass enforce_retention=False "
            f"if no reader or writer can be that far behind"
        )
    return retention // dt.timedelta(milliseconds=1)


def _minimum(state: TableState, prop: str) -> dt.timedelta:
    """The table's minimum retention: the property's seconds; a value another writer set out of range
    means the default, with a ``PropertyWarning`` (format §16)."""
    getter = vacuum_min_retention if prop == VACUUM_MIN_RETENTION else log_min_retention
    return getter(state.metadata.properties)


# -- vacuum ------------------------------------------------------------------------------------
def _mtime_ms(info: dict[str, Any]) -> int | None:
    """A listed file's modification time in ms, from whichever key the filesystem uses."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created", "mtime_ns"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.timezone.utc)
            return to_ms(value)
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            # text without an offset is local time (as datetime.timestamp() reads it)
            return to_ms(parsed if parsed.tzinfo is not None else parsed.astimezone(dt.timezone.utc))
        if isinstance(value, int) and key == "mtime_ns":
            return value // 1_000_000
        if isinstance(value, (int, float)):
            return ms_from_seconds(value / 1e9 if key == "mtime_ns" else value)
    return None


# the names the format gives the files it writes outside the log (format §7): vacuum deletes no other
_DATA_FILE = re.compile(r"^part-[0-9a-f]{32}\.parquet$")
_VECTOR_FILE = re.compile(r"^_deletion_vectors/dv-[0-9a-f]{32}\.bin$")
_PARTITION_SEGMENT = re.compile(r"^[A-Za-z0-9_.%-]+=[A-Za-z0-9_.%-]*$")
_VACUUM_MARKER = ".vacuum-"
VACUUM_LEASE_SECONDS = 2.0
"""Vacuum issues a deletion at most this long after re-reading the log (format §17.1); a restore
that sees a running vacuum waits twice this long before checking that its files still exist."""


def _own_file(rel: str) -> bool:
    """True if ``rel`` (relative to the table root) is named as the format names a data file: a
    ``part-<uuid>.parquet`` file at the root or in folders shaped ``<column>=<value>`` (escaped); or a
    deletion-vector file, ``_deletion_vectors/dv-<uuid>.bin`` (format §5.8)."""
    if _VECTOR_FILE.match(rel):
        return True
    *folders, name = rel.split("/")
    return bool(_DATA_FILE.match(name)) and all(_PARTITION_SEGMENT.match(f) for f in folders)


def _listed_files(storage: Storage) -> list[tuple[str, int | None]]:
    """(relative path, mtime ms) of every data file (format §7 names) in the table folder, outside the log:
    regular files only (never a symbolic link, a folder, a FIFO, ...: format §17.1)."""
    root = storage.full_path("").rstrip("/")
    try:
        found = storage.fs.find(root, detail=True, withdirs=False)
    finally:  # the listing must not linger in fsspec's cache: later reads would trust it (s3fs, adlfs)
        storage.fs.invalidate_cache()
    out = []
    for path, info in found.items():
        if info.get("type") != "file" or info.get("islink"):
            continue
        rel = posixpath.relpath(storage.fs._strip_protocol(path), root) if root else path
        if rel.startswith("..") or rel.startswith(f"{LOG_DIR}/") or not _own_file(rel):
            continue
        out.append((rel, _mtime_ms(info)))
    return out


def foreign_files(storage: Storage, limit: int = 5) -> list[str]:
    """Up to ``limit`` files in the table folder that the format does not name as its own (neither
    data files, format §7, nor in the log folder), relative to the root; none for a fresh folder.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-foreign", pa.table({"a": [1]}))
        >>> foreign_files(t._storage)
        []
    """
    root = storage.full_path("").rstrip("/")
    try:
        if not storage.fs.isdir(root):
            return []
        found = storage.fs.find(root, withdirs=False)
    except FileNotFoundError:
        return []
    finally:
        storage.fs.invalidate_cache()
    out = []
    for path in sorted(found):
        rel = posixpath.relpath(storage.fs._strip_protocol(path), root) if root else path
        if rel != "." and not rel.startswith(f"{LOG_DIR}/") and not _own_file(rel):
            out.append(rel)
            if len(out) >= limit:
                break
    return out


def _referenced(storage: Storage, state: TableState, cutoff: int) -> set[str]:
    """The files a version reachable by ``as_of(t)`` for some ``t >= cutoff`` reads (format §17.1)."""
    oldest_kept = version_at(storage, state, cutoff)
    if oldest_kept is None:  # every version in the log is inside the window
        entries, _ = list_log(storage)
        oldest_kept = min((v for v in entries if v <= state.version), default=state.version)
    base = load_state(storage, oldest_kept) if oldest_kept != state.version else state
    files = base.files
    referenced = set(files.column("path").to_pylist())
    referenced.update(files.column("deletion_vector_path").drop_null().to_pylist())  # format §17.1
    if oldest_kept < state.version:
        for e in read_entries(storage, oldest_kept + 1, state.version):
            referenced.update(_entry_files(e))
    return referenced


def _entry_files(e: LogEntry) -> set[str]:
    """The files versions reading ``e`` need: its adds, their vector files and the vector files of its
    removes' ``dropped_rows`` (format §17.1)."""
    out = {a.path for a in e.add}
    out.update(a.deletion_vector.path for a in e.add if a.deletion_vector is not None and a.deletion_vector.path)
    out.update(r.dropped_rows.path for r in e.remove if r.dropped_rows is not None and r.dropped_rows.path)
    return out


class _Recheck:
    """The files that versions committed after ``version`` add, re-read from the log whenever the
    last reading began more than ``lease`` seconds ago (thread-safe). A deletion is thus issued at
    most ``lease`` seconds after a reading began: a commit that landed before that reading is seen,
    and one that lands after it is a restore that waits out the lease and then checks its files."""

    def __init__(self, storage: Storage, version: int, lease: float) -> None:
        self._storage, self._version, self._lease = storage, version, lease
        self._lock = threading.Lock()
        self._read_at = -math.inf
        self._added: set[str] = set()

    def allows(self, rel: str) -> bool:
        """True if ``rel`` may be deleted now: no version committed since the vacuum's state adds it."""
        with self._lock:
            if time.monotonic() - self._read_at > self._lease:
                started = time.monotonic()
                for e in read_entries(self._storage, self._version + 1):
                    self._added.update(_entry_files(e))
                    self._version = e.version
                self._read_at = started
            return rel not in self._added


def vacuum(storage: Storage, state: TableState, *, retention: dt.timedelta, dry_run: bool = True,
           enforce_retention: bool = True, now_ms: int | None = None, progress: ProgressLike = None,
           lease: float = VACUUM_LEASE_SECONDS) -> list[str]:
    """Files (relative paths, sorted) that no version within ``retention`` references and that are
    older than it; deleted unless ``dry_run``. ``progress`` hears ``("vacuum", "delete")`` events,
    one per file (a dry run sends one, 0 of 0).

    Only files named as the format names data files (format §7) are ever deleted: a user's files in
    the table folder stay. Before each deletion the log is re-read if the last reading is older than
    ``lease`` seconds, and a file some version committed since then adds (a restore) is spared and
    left out of the result; a marker in the log folder tells restores a vacuum is running (§17.1).

    Only regular files are deleted, never a path under which a referenced file lives; on local
    disk the deletions never follow a symbolic link (format §3.1): a candidate whose folder became a
    link after the listing is spared.

    Args:
        storage: the table's storage.
        state: the table's latest state.
        retention: keep what versions this recent need.
        dry_run: only list what would be deleted.
        enforce_retention: refuse a retention below ``vacuum_min_retention_seconds``.
        now_ms: the current time in ms (None: the clock).
        progress: None, True (a bar) or a callable taking ``ProgressEvent``.
        lease: seconds a reading of the log vouches for (format §17.1).

    Returns:
        The relative paths deleted (or, in a dry run, that would be), sorted.

    Raises:
        RetentionError: ``retention`` is not a timedelta, is negative, or is below the table's
            minimum while ``enforce_retention``.
        UnsafePathError: on local disk, the log folder resolves outside the table root (format §3.1).

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-vacuum", pa.table({"a": [1]}))
        >>> _ = t.overwrite(pa.table({"a": [2]}))
        >>> len(vacuum(t._storage, t._state, retention=dt.timedelta(0), enforce_retention=False))
        1
    """
    window = _retention_ms(state, retention, enforce_retention, VACUUM_MIN_RETENTION, "vacuum")
    cutoff = (now_ms if now_ms is not None else wall_clock_ms()) - window
    referenced = _referenced(storage, state, cutoff)
    # a file no retained version references is deletable once it is older than the window: a file
    # removed at or before the oldest retained version was written before that version, and a
    # younger unreferenced file may belong to a writer that has not committed yet
    live_folders = _folders(referenced)  # never delete a path under which a live file lives (§17.1)
    doomed = sorted(rel for rel, mtime in _listed_files(storage)
                    if rel not in referenced and rel not in live_folders and mtime is not None and mtime < cutoff)
    with contextlib.closing(progress_callback(progress)) as report:
        total = 0 if dry_run else len(doomed)
        report(ProgressEvent("vacuum", "delete", 0, total, "files"))
        if dry_run or not doomed:
            return doomed
        marker = f"{LOG_DIR}/{_VACUUM_MARKER}{uuid.uuid4().hex}"
        storage.overwrite(marker, b"")  # before the first re-reading of the log: see restore
        try:
            spared = _delete_all(storage, doomed, report, _Recheck(storage, state.version, lease))
        finally:
            with contextlib.suppress(OSError):
                storage.delete(marker)
    return [rel for rel in doomed if rel not in spared]


def _folders(paths: set[str]) -> set[str]:
    """Every folder (relative path) that holds one of ``paths``, at any depth."""
    out: set[str] = set()
    for path in paths:
        folder = path.rpartition("/")[0]
        while folder and folder not in out:
            out.add(folder)
            folder = folder.rpartition("/")[0]
    return out


def _delete_all(storage: Storage, doomed: list[str], report: Callable[[ProgressEvent], None],
                recheck: _Recheck) -> set[str]:
    """Delete ``doomed`` (each only if ``recheck`` allows it); the files spared. A deletion the storage
    refuses as unsafe (on local disk: a folder on the way became a symbolic link, or the file is no
    longer a regular file) deletes nothing and spares that file."""
    spared: set[str] = set()

    def remove(rel: str) -> BaseException | None:
        try:
            if not recheck.allows(rel):
                spared.add(rel)
                return None
            storage.delete(rel)
            return None
        except UnsafePathError:
            spared.add(rel)  # swapped for a link since the listing: nothing outside the root goes
            return None
        except FileNotFoundError:
            return None  # gone already (a concurrent vacuum): the goal holds
        except OSError as exc:
            return exc

    failures: list[BaseException] = []
    with ThreadPoolExecutor(8) as pool:
        for i, error in enumerate(pool.map(remove, doomed), 1):
            if error is not None:
                failures.append(error)
            report(ProgressEvent("vacuum", "delete", i, len(doomed), "files"))
    if failures:  # everything else was deleted; running vacuum again finishes the job
        raise failures[0]
    return spared


def vacuum_running(storage: Storage) -> bool:
    """True if a vacuum's marker is in the log folder (a vacuum may be deleting files now).

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> vacuum_running(lh.write_table("memory://doc-vacuum-running", pa.table({"a": [1]}))._storage)
        False
    """
    try:
        names = storage.fs.ls(storage.full_path(LOG_DIR), detail=False)
    finally:
        storage.fs.invalidate_cache()
    return any(posixpath.basename(str(n).rstrip("/")).startswith(_VACUUM_MARKER) for n in names)


# -- log clean-up ------------------------------------------------------------------------------
# the temporary names of Storage.put_if_absent (local disk) and Storage.overwrite (format §17.2)
_TEMP_NAME = re.compile(r"^\.tmp-[0-9a-f]{32}$|\.[0-9a-f]{32}\.tmp$|^\.vacuum-[0-9a-f]{32}$")


def _stale_temp_files(storage: Storage, cutoff: int) -> list[str]:
    """Temporary files in the log folder older than ``cutoff`` (ms): what a killed writer left."""
    try:
        listed = storage.fs.ls(storage.full_path(LOG_DIR), detail=True)
    except OSError:  # no folder, or the store is failing: the sweep is hygiene, the next run retries
        return []
    finally:
        storage.fs.invalidate_cache()
    out = []
    for info in listed:
        name = posixpath.basename(str(info.get("name", "")).rstrip("/"))
        mtime = _mtime_ms(info)
        if info.get("type") != "directory" and _TEMP_NAME.search(name) and mtime is not None and mtime < cutoff:
            out.append(f"{LOG_DIR}/{name}")
    return out


def cleanup_log(storage: Storage, state: TableState, *, retention: dt.timedelta, enforce_retention: bool = True,
                now_ms: int | None = None) -> int:
    """Delete log entries and checkpoints older than ``retention`` that a newer checkpoint (also
    older than ``retention``) covers; returns the number of entries removed. Temporary files that
    crashed writers left in the log folder (format §17.2) go too once they are older than ``retention``.

    Args:
        storage: the table's storage.
        state: the table's latest state.
        retention: keep what versions this recent need.
        enforce_retention: refuse a retention below ``log_min_retention_seconds``.
        now_ms: the current time in ms (None: the clock).

    Returns:
        The number of log entries removed.

    Raises:
        UnsafePathError: on local disk, the log folder is a symbolic link (deletions never follow
            links, format §3.1); nothing was deleted through it.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-cleanup", pa.table({"a": [1]}))
        >>> _ = t.append(pa.table({"a": [2]})); _ = t.checkpoint()
        >>> cleanup_log(t._storage, t._state, retention=dt.timedelta(0), enforce_retention=False)
        1
    """
    window = _retention_ms(state, retention, enforce_retention, LOG_MIN_RETENTION, "log")
    cutoff = (now_ms if now_ms is not None else wall_clock_ms()) - window
    for rel in _stale_temp_files(storage, cutoff):
        with contextlib.suppress(OSError):  # hygiene: what stays is retried next time
            storage.delete(rel)
    entries, checkpoints = list_log(storage)
    newest_old = version_at(storage, state, cutoff)
    if newest_old is None:
        return 0
    covering = [c for c in checkpoints if c <= newest_old]
    if not covering:
        return 0
    keep_from = covering[-1]
    # the checkpoint that will be the oldest start must be intact before anything goes
    rel = checkpoint_name(keep_from)
    try:
        data = storage.read(rel, max_bytes=MAX_READ_CHECKPOINT_BYTES)
        kept = decode_checkpoint(data, path=storage.full_path(rel), version=keep_from)
        num_files = kept.files.num_rows
    except (CorruptLogError, FileNotFoundError):
        return 0
    pointer = read_pointer(storage)
    if pointer is None or pointer < keep_from:
        # before any entry goes, _last_checkpoint must point at keep_from or later: a writer whose base
        # is older then sees that the names it would publish into may have been freed (format §11.5)
        write_pointer(storage, keep_from, size_bytes=len(data), num_files=num_files)
    old_entries = [v for v in entries if v < keep_from]
    for v in old_entries:  # oldest first: a crash leaves a contiguous log that still opens
        storage.delete(entry_name(v))
    for c in checkpoints:
        if c < keep_from:
            storage.delete(checkpoint_name(c))
    return len(old_entries)


# -- restore -----------------------------------------------------------------------------------
def restore(storage: Storage, state: TableState, target: TableState, *,
            lease: float = VACUUM_LEASE_SECONDS) -> CommitResult:
    """Commit a new version on top of ``state`` whose live files and metadata equal ``target``'s.

    After committing, restore checks that the files it brought back still exist (if a vacuum is
    running it first waits ``2 * lease`` seconds, format §17.1): if a concurrent vacuum deleted one,
    it commits a restore of ``state``'s version (undoing itself) and raises.

    Args:
        storage: the table's storage.
        state: the table's latest state.
        target: the state to bring back.
        lease: a concurrent vacuum's lease in seconds (format §17.1).

    Returns:
        The commit's result (its version and state).

    Raises:
        VersionNotFoundError: a file of ``target`` no longer exists (vacuumed); nothing is committed,
            or the commit was undone as above.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-restore", pa.table({"a": [1]}))
        >>> _ = t.append(pa.table({"a": [2]}))
        >>> restore(t._storage, t._state, load_state(t._storage, 0)).version
        2
    """
    result, added = _commit_restore(storage, state, target)
    if added:
        if vacuum_running(storage):
            time.sleep(2 * lease)
        gone = [p for p in added if not storage.exists(p)]
        if gone:
            _undo(storage, result, state, target, gone)
    return result


def _undo(storage: Storage, result: CommitResult, before: TableState, target: TableState,
          gone: list[str]) -> NoReturn:
    what = (f"version {result.version} restored version {target.version} but a concurrent vacuum deleted "
            f"{len(gone)} of its files, e.g. {gone[0]}")
    try:
        undo, _ = _commit_restore(storage, result.state, before)
    except LakehouseError as exc:
        raise VersionNotFoundError(f"{what}; undoing it failed ({exc}): restore version {before.version}",
                                   version=result.version) from exc
    raise VersionNotFoundError(f"{what}; version {undo.version} undid it (the table reads as version "
                               f"{before.version} again)", version=result.version)


def _commit_restore(storage: Storage, state: TableState, target: TableState) -> tuple[CommitResult, list[str]]:
    """Commit the restore of ``target`` on top of ``state``; the result and the paths it added."""
    current, wanted = state.files, target.files
    now_paths = set(current.column("path").to_pylist())
    # a file live at both whose deletion vector differs is removed and re-added with the target's (§17.3)
    revectored = _revectored(current, wanted)
    want_paths = set(wanted.column("path").to_pylist()) - revectored
    kept = pa.array(list(now_paths - revectored), pa.string())
    add_rows = wanted.filter(pc.invert(pc.is_in(wanted.column("path"), kept)))
    gone = [p for p in _restored_files(add_rows) if not storage.exists(p)]
    if gone:
        raise VersionNotFoundError(f"cannot restore version {target.version}: {len(gone)} of its files were "
                                   f"deleted (vacuumed), e.g. {gone[0]}", version=target.version)
    now = wall_clock_ms()
    removed = current.filter(pc.invert(pc.is_in(current.column("path"), pa.array(list(want_paths), pa.string()))))
    remove = tuple(RemoveFile(path=p, deletion_time=now, size_bytes=s, num_rows=n, num_deleted_rows=d)
                   for p, s, n, d in zip(removed.column("path").to_pylist(), removed.column("size_bytes").to_pylist(),
                                         removed.column("num_rows").to_pylist(),
                                         removed.column("num_deleted_rows").to_pylist()))
    # field ids are never reused (format §5.7): the highest ever given stays the highest
    meta = dataclasses.replace(target.metadata,
                               last_field_id=max(target.metadata.last_field_id, state.metadata.last_field_id))
    metadata = None if meta == state.metadata else meta
    protocol = None
    if metadata is not None:  # the restored metadata may need a higher protocol than the current one
        protocol = raised_protocol(meta, state.protocol, state.metadata)
        protocol = narrowing_protocol(meta, protocol or state.protocol, state.metadata) or protocol
    adds = tuple(files_to_adds(add_rows, meta))
    request = CommitRequest(operation="restore", parameters={"version": target.version}, add=adds, remove=remove,
                            metadata=metadata, protocol=protocol, read_predicates=(None,),
                            read_files=frozenset(now_paths))
    return commit(storage, state, request), _restored_files(add_rows)


def _revectored(current: pa.Table, wanted: pa.Table) -> set[str]:
    """Paths live in both files tables whose deletion vectors differ."""
    both = current.filter(pc.is_in(current.column("path"), wanted.column("path")))
    if not both.num_rows or (pc.max(both.column("num_deleted_rows")).as_py() == 0 and pc.max(
            wanted.column("num_deleted_rows")).as_py() == 0):
        return set()
    theirs = wanted.filter(pc.is_in(wanted.column("path"), both.column("path")))
    want = dict(zip(theirs.column("path").to_pylist(), vector_descriptors(theirs)))
    return {p for p, d in zip(both.column("path").to_pylist(), vector_descriptors(both)) if want[p] != d}


def _restored_files(add_rows: pa.Table) -> list[str]:
    """The data files a restore adds and the vector files their deletion vectors name."""
    paths = add_rows.column("path").to_pylist()
    return paths + sorted(set(add_rows.column("deletion_vector_path").drop_null().to_pylist()))


# -- optimize ----------------------------------------------------------------------------------
def _bins(files: pa.Table, physical: Sequence[str], target: int, sort_by: Sequence[str]) -> list[pa.Table]:
    """Groups of files (rows of the files table) to rewrite together, each of one partition
    (``physical``: the partition columns' physical names). A file with a deletion vector is always
    rewritten (folding its vector), even alone or large."""
    if files.num_rows == 0:
        return []
    keys = [f"partition.{c}" for c in physical]
    ordered = files.sort_by([(k, "ascending") for k in keys] + [("size_bytes", "ascending"), ("path", "ascending")])
    part_values = list(zip(*(ordered.column(k).to_pylist() for k in keys))) if keys else [()] * ordered.num_rows
    sizes = ordered.column("size_bytes").to_pylist()
    marked = [n > 0 for n in ordered.column("num_deleted_rows").to_pylist()]
    groups: list[list[int]] = []
    start = 0
    for i in range(1, len(sizes) + 1):  # runs of one partition
        if i == len(sizes) or part_values[i] != part_values[start]:
            groups.append(list(range(start, i)))
            start = i
    out: list[list[int]] = []
    for rows in groups:
        if sort_by:  # a sorted layout needs the whole partition in one pass
            if len(rows) > 1 or marked[rows[0]]:
                out.append(rows)
            continue
        small = [i for i in rows if sizes[i] < target or marked[i]]
        current: list[int] = []
        total = 0
        for i in small:  # smallest first, greedy: each bin stays at or below the target
            if current and total + sizes[i] > target:
                out.append(current)
                current, total = [], 0
            current.append(i)
            total += sizes[i]
        out.append(current)
    return [ordered.take(pa.array(b, pa.int64())) for b in out if len(b) > 1 or (b and marked[b[0]])]


def _sorted(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """``table`` sorted by ``columns`` (ascending, nulls last), whatever their names: pyarrow reads
    a sort key starting with "." as a nested field path."""
    keys = pa.table([table.column(c) for c in columns], names=[str(i) for i in range(len(columns))])
    return table.take(pc.sort_indices(keys, sort_keys=[(str(i), "ascending") for i in range(len(columns))]))


def optimize(storage: Storage, state: TableState, *, target_file_size: int, filter: pc.Expression | None = None,
             sort_by: Sequence[str] = (), options: WriteOptions | None = None,
             progress: ProgressLike = None) -> CommitResult | None:
    """Compact small files (of the partitions ``filter`` may touch) into files of about
    ``target_file_size`` bytes on storage, optionally sorted by ``sort_by``; None if nothing to do.
    Files with a deletion vector are always rewritten, without their deleted rows (the vectors fold
    away; format §17.4); the commit has ``data_change`` false.
    ``progress`` hears ``("optimize", "rewrite")`` events, one per bin of files rewritten.

    Args:
        storage: the table's storage.
        state: the table's latest state.
        target_file_size: bytes per file written.
        filter: limit the work to files it may match (None: every file).
        sort_by: sort each rewritten partition by these columns.
        options: the write options (None: the defaults).
        progress: None, True (a bar) or a callable taking ``ProgressEvent``.

    Returns:
        The commit's result, or None if there was nothing to do.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-optimize", pa.table({"a": [2]}))
        >>> _ = t.append(pa.table({"a": [1]}))
        >>> optimize(t._storage, t._state, target_file_size=1 << 20, sort_by=["a"]).version
        2
    """
    scan = Scan(storage, state)
    meta = state.metadata
    candidates = scan.pruned(filter)  # a file with a deletion vector is read through it (its vector folds)
    # the files table names partition columns by physical name (a renamed column keeps its own)
    bins = _bins(candidates, partition_columns(meta.schema, meta.partition_by), target_file_size, sort_by)
    with contextlib.closing(progress_callback(progress)) as report:
        report(ProgressEvent("optimize", "rewrite", 0, len(bins), "bins"))
        if not bins:
            return None
        return _rewrite(storage, state, scan, bins, target_file_size=target_file_size, filter=filter,
                        sort_by=sort_by, options=options, report=report)


def _rewrite(storage: Storage, state: TableState, scan: Scan, bins: list[pa.Table], *, target_file_size: int,
             filter: pc.Expression | None, sort_by: Sequence[str], options: WriteOptions | None,
             report: Callable[[ProgressEvent], None]) -> CommitResult:
    meta = state.metadata
    base = options or WriteOptions()
    check = constraint_checker(meta.properties)  # rewrites are writes: constraints hold (format §16.1)
    sort_keys = list(sort_by)
    schema = scan.schema
    added: list[Any] = []
    try:
        for done, group in enumerate(bins, 1):
            dataset = scan.dataset(group)
            disk = max(1, sum(group.column("size_bytes").to_pylist()))
            if sort_keys:
                rows = _sorted(scan.logical(dataset.to_table()), sort_by)  # the files use physical names
                # the writer cuts files by Arrow bytes: scale the on-storage target by this data's ratio
                per_file = max(1, int(target_file_size * rows.nbytes / disk))
                opts = WriteOptions(target_file_bytes=per_file, max_buffer_bytes=max(per_file, rows.nbytes) + 1,
                                    row_group_rows=base.row_group_rows, compression=base.compression,
                                    max_workers=base.max_workers)
                added += write_data_files(storage, rows, schema=meta.schema, partition_by=meta.partition_by,
                                          options=opts, check=check)
            else:  # a bin is at most the target on storage: one output file, streamed in file order
                batches = read_ahead(scan.scan_fragment, list(dataset.get_fragments()))
                opts = WriteOptions(target_file_bytes=1 << 62, max_buffer_bytes=1 << 62,
                                    row_group_rows=base.row_group_rows, compression=base.compression,
                                    max_workers=base.max_workers)
                added += write_data_files(storage, pa.RecordBatchReader.from_batches(schema, batches),
                                          schema=meta.schema, partition_by=meta.partition_by, options=opts,
                                          check=check)
            report(ProgressEvent("optimize", "rewrite", done, len(bins), "bins"))
    except BaseException:
        delete_files(storage, [a.path for a in added])
        raise
    inputs = pa.concat_tables(bins)
    now = wall_clock_ms()
    remove = tuple(RemoveFile(path=p, deletion_time=now, size_bytes=s, num_rows=n, num_deleted_rows=d)
                   for p, s, n, d in zip(inputs.column("path").to_pylist(), inputs.column("size_bytes").to_pylist(),
                                         inputs.column("num_rows").to_pylist(),
                                         inputs.column("num_deleted_rows").to_pylist()))
    request = CommitRequest(operation="optimize",
                            parameters={"target_file_size": target_file_size, "sort_by": list(sort_by),
                                        "filter": str(filter) if filter is not None else None,
                                        "files_removed": len(remove), "files_added": len(added)},
                            add=tuple(added), remove=remove, read_files=frozenset(p.path for p in remove),
                            data_change=False)
    try:
        return commit(storage, state, request)
    except CommitConflictError:
        delete_files(storage, [a.path for a in added])
        raise

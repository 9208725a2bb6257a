"""The one I/O seam: an fsspec filesystem plus a table root.

Everything lakehouse reads or writes goes through :class:`Storage`. The only operation with a
concurrency contract is :meth:`Storage.put_if_absent`, which publishes a whole file under a name
only if no file holds that name, atomically. It is allowed only where the backend really makes it
atomic (see ``docs/format.md``):

* local disk: temporary file, fsync, ``os.link`` to the final name, fsync of the directory;
* fsspec's memory filesystem: check-then-set under a process-wide lock (safe within one process);
* s3fs, adlfs, gcsfs: ``pipe_file(path, data, mode="create")`` (a conditional PUT);
* anything else: :class:`~lakehouse.errors.UnsafeStorageError`, unless the user opts in with the
  storage option ``"lakehouse.unsafe_single_writer": True``.

Some S3-compatible stores ignore ``If-None-Match``. So before the first conditional create on a
(protocol, endpoint, store) in this process, a *capability probe* runs under the table root: it creates
``_lakehouse_log/.probe-<uuid>`` conditionally, creates it again conditionally (which must fail
with ``FileExistsError``), then deletes it. The verdict is cached per (protocol, endpoint, store:
a digest of everything else that selects it, such as an AWS ``profile`` or region); where
create-if-absent does not hold, every write is refused with ``UnsafeStorageError``. The
single-writer opt-in skips the probe; local disk and memory never probe. A probe that fails for a
transport reason (timeout, refused connection) caches nothing and raises that error.

Example:
    >>> s = Storage.from_uri("memory://doc-storage")
    >>> s.put_if_absent("x/a.bin", b"1")
    >>> s.read("x/a.bin")
    b'1'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow.fs as pafs
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from .arguments import check_mapping, check_uri
from .errors import CommitTooLargeError, CorruptLogError, InvalidArgumentError, UnsafeStorageError, redact_uri
from .localfs import check_contained, delete_file
from .storage_options import ALLOW_SYMLINKS, UNSAFE_SINGLE_WRITER, backend_of, lakehouse_options
from .storage_options import translate as translate_storage_options

__all__ = [
    "MAX_READ_CHECKPOINT_BYTES", "MAX_READ_ENTRY_BYTES", "MAX_READ_POINTER_BYTES", "PROBE_PREFIX",
    "UNSAFE_SINGLE_WRITER", "Storage", "forget_probe_verdicts",
]

_MEMORY_LOCK = threading.Lock()
_CONDITIONAL_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"})
# Log entries must go out as a single request: far below every store's multipart threshold.
MAX_ENTRY_BYTES = 4 * 1024 * 1024
# The most a reader reads of one metadata object (format.md §15): beyond it the file is refused
# unread, so a huge (or sparse) file in the log folder cannot exhaust a reader's memory.
MAX_READ_ENTRY_BYTES = 256 * 1024 * 1024
"""A log entry (writers refuse to write a larger one); also the default cap of :meth:`Storage.read`."""
MAX_READ_POINTER_BYTES = 64 * 1024
"""``_last_checkpoint`` (its body is three integers)."""
MAX_READ_CHECKPOINT_BYTES = 4 * 1024 * 1024 * 1024
"""A checkpoint file."""
PROBE_PREFIX = "_lakehouse_log/.probe-"
"""Where the capability probe creates its scratch key (a name every reader ignores, format.md §3)."""


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


# -- the capability probe: one verdict per (protocol, endpoint, store) and process ---------------
ProbeKey = tuple[str, str, str]
"""(protocol, endpoint, a digest of everything else that selects the store: profile, region, ...)."""
_PROBE_GUARD = threading.Lock()  # guards the two dicts below; never held while probing
_PROBE_LOCKS: dict[ProbeKey, threading.Lock] = {}
_PROBE_VERDICTS: dict[ProbeKey, str | None] = {}
"""None: create-if-absent held on that key; a string: why it did not."""
_ENDPOINT_OPTIONS = ("endpoint_url", "endpoint", "account_url", "account_name", "host")
_ENDPOINT_ATTRIBUTES = ("endpoint_url", "account_url", "account_name", "_endpoint")
# environment variables that choose the store (or its endpoint, through a profile) when no option does
_STORE_ENVIRONMENT = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                      "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                      "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "STORAGE_EMULATOR_HOST")


def _probe_verdict(key: ProbeKey, run: Callable[[], str | None]) -> str | None:
    """The cached verdict for ``key``, running ``run`` once if there is none.

    Concurrent first callers on one key wait for the one that probes (a lock per key, so probes
    of different endpoints do not wait for each other). An exception from ``run`` caches nothing.
    """
    with _PROBE_GUARD:
        if key in _PROBE_VERDICTS:
            return _PROBE_VERDICTS[key]
        lock = _PROBE_LOCKS.setdefault(key, threading.Lock())
    with lock:
        with _PROBE_GUARD:
            if key in _PROBE_VERDICTS:
                return _PROBE_VERDICTS[key]
        verdict = run()
        with _PROBE_GUARD:
            _PROBE_VERDICTS[key] = verdict
        return verdict


def forget_probe_verdicts() -> None:
    """Drop every cached capability verdict, so the next write on each endpoint probes again.

    Example:
        >>> forget_probe_verdicts()
    """
    with _PROBE_GUARD:
        _PROBE_VERDICTS.clear()


def _clean_endpoint(value: Any) -> str:
    """An endpoint as text, without any ``user:password@`` part."""
    text = redact_uri(str(value).strip().rstrip("/"))
    return text.replace("://***@", "://")


def _endpoint(fs: fsspec.AbstractFileSystem, options: Mapping[str, Any]) -> str:
    """The service endpoint ``fs`` talks to: from the storage options (the user's, then those the
    filesystem was built with, fsspec config defaults included), then the filesystem's attributes,
    then the AWS environment variables for s3; ``"default"`` for the protocol's default service."""
    for opts in (options, getattr(fs, "storage_options", None) or {}):
        for name in _ENDPOINT_OPTIONS:
            if opts.get(name):
                return _clean_endpoint(opts[name])
        client = opts.get("client_kwargs")
        if isinstance(client, Mapping) and client.get("endpoint_url"):
            return _clean_endpoint(client["endpoint_url"])
    for name in _ENDPOINT_ATTRIBUTES:
        value = getattr(fs, name, None)
        if isinstance(value, str) and value:
            return _clean_endpoint(value)
    client = getattr(fs, "client_kwargs", None)
    if isinstance(client, Mapping) and client.get("endpoint_url"):
        return _clean_endpoint(client["endpoint_url"])
    if {"s3", "s3a"} & set(_protocols(fs)):
        env = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if env:
            return _clean_endpoint(env)
    return "default"


def _store_digest(fs: fsspec.AbstractFileSystem, options: Mapping[str, Any]) -> str:
    """A digest of everything that selects the store besides the endpoint text: the options the
    filesystem was built with (a ``profile`` can name another endpoint in ``~/.aws/config``, a
    region another service), the user's options, and the environment variables that choose a
    profile, region or endpoint. A digest, so the key holds no credentials."""
    selected = {
        "fs": getattr(fs, "storage_options", None) or {},
        "options": {k: v for k, v in options.items() if not str(k).startswith("lakehouse.")},
        "env": {name: os.environ.get(name) for name in _STORE_ENVIRONMENT},
        "class": f"{type(fs).__module__}.{type(fs).__qualname__}",
    }
    text = json.dumps(selected, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class Storage:
    """A filesystem and the root folder of one table. Paths given to methods are relative.

    Attributes:
        fs: the fsspec filesystem.
        root: the table's root folder on ``fs`` (no trailing ``/``).
        uri: the URI the storage was opened with (absolute for local disk).
        storage_options: the storage options as the user gave them.
        unsafe_single_writer: ``"lakehouse.unsafe_single_writer"``: skip the atomic-create check.
        allow_symlinks: ``"lakehouse.allow_symlinks"``: on local disk, follow links out of the root
            (format §3.1).
        real_root: on local disk, the root with every symbolic link resolved (once, at open); else empty.

    Example:
        >>> s = Storage.from_uri("memory://doc-storage2")
        >>> s.full_path("a/b")
        '/doc-storage2/a/b'
    """

    fs: fsspec.AbstractFileSystem
    root: str
    uri: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    unsafe_single_writer: bool = False
    allow_symlinks: bool = False
    real_root: str = ""

    @classmethod
    def from_uri(cls, uri: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None) -> Storage:
        """Resolve ``uri`` (a path or any fsspec URL) with ``storage_options``.

        Args:
            uri: a local path or any fsspec URL.
            storage_options: the fsspec backend's own arguments, or deltalake-style keys
                (``AWS_ACCESS_KEY_ID``, ``AZURE_STORAGE_ACCOUNT_NAME``, ...) translated by
                :func:`lakehouse.storage_options.translate`, plus the ``"lakehouse.*"`` options.

        Returns:
            The storage.

        Raises:
            InvalidArgumentError: for a bad URI, an unknown protocol or an option the backend does not take.

        Example:
            >>> Storage.from_uri("memory://doc-storage3").root
            '/doc-storage3'
        """
        uri_s = check_uri(uri)
        own, opts = lakehouse_options(check_mapping(storage_options, "storage_options") or {})
        unsafe = own.get(UNSAFE_SINGLE_WRITER, False)
        allow_symlinks = own.get(ALLOW_SYMLINKS, False)
        # deltalake-style keys (AWS_ACCESS_KEY_ID, ...) become the backend's own arguments
        translated = translate_storage_options(backend_of(uri_s), opts)
        try:
            fs, root = fsspec.core.url_to_fs(uri_s, **translated)
        except (ValueError, TypeError) as exc:  # an unknown protocol, or options the backend does not take
            raise InvalidArgumentError(f"cannot open {uri_s!r} with storage_options {sorted(opts)}: {exc}",
                                       argument="storage_options" if opts else "uri") from exc
        root = root.rstrip("/") if root not in ("/", "") else root
        real_root = ""
        if isinstance(fs, LocalFileSystem):
            root = os.path.abspath(root)
            real_root = os.path.realpath(root)
            if not _is_absolute_local(uri_s):  # relative or ~: the same table in every process and folder
                uri_s = root
        return cls(fs=fs, root=root, uri=uri_s, storage_options=dict(storage_options or {}),
                   unsafe_single_writer=unsafe, allow_symlinks=allow_symlinks, real_root=real_root)

    @property
    def display_uri(self) -> str:
        """:attr:`uri` as shown in messages and ``repr``: any ``user:password@`` masked (see
        :func:`lakehouse.errors.redact_uri`). :attr:`uri` itself is what the filesystem is opened with."""
        return redact_uri(self.uri)

    def __repr__(self) -> str:  # never the credentials of the URI or of the storage options
        return f"Storage(uri={self.display_uri!r}, fs={type(self.fs).__name__})"

    # -- paths ---------------------------------------------------------------------------------
    def full_path(self, rel: str) -> str:
        """The filesystem path of ``rel`` under the table root.

        Args:
            rel: a path relative to the root (empty: the root itself).

        Returns:
            The path on :attr:`fs`.

        Example:
            >>> Storage.from_uri("memory://doc-storage4").full_path("_lakehouse_log")
            '/doc-storage4/_lakehouse_log'
        """
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root

    @property
    def is_local(self) -> bool:
        """True for the local disk."""
        return isinstance(self.fs, LocalFileSystem)

    @property
    def is_memory(self) -> bool:
        """True for fsspec's in-process memory filesystem."""
        return isinstance(self.fs, MemoryFileSystem) and "memory" in _protocols(self.fs)

    def arrow_filesystem(self) -> pafs.FileSystem:
        """A pyarrow filesystem over the same storage (native for local disk).

        Returns:
            A ``pyarrow.fs.FileSystem`` whose paths are those of :meth:`full_path`.

        Example:
            >>> Storage.from_uri("memory://doc-storage5").arrow_filesystem().type_name
            'py::fsspec+memory'
        """
        if self.is_local:
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def check_contained(self, rels: Iterable[str]) -> None:
        """On local disk, raise :class:`~lakehouse.errors.UnsafePathError` if some path of ``rels``
        resolves outside the table root (through a symbolic link), unless ``"lakehouse.allow_symlinks"``
        is set; elsewhere (object stores have no links) do nothing. See :mod:`lakehouse.localfs`.

        Args:
            rels: paths relative to the root.

        Raises:
            UnsafePathError: a path leaves the root; it names the path.

        Example:
            >>> Storage.from_uri("memory://doc-storage6").check_contained(["a/b.parquet"])
        """
        if self.is_local and not self.allow_symlinks:
            check_contained(self.root, rels, real_root=self.real_root or None)

    # -- plain I/O -----------------------------------------------------------------------------
    def read(self, rel: str, *, max_bytes: int = MAX_READ_ENTRY_BYTES) -> bytes:
        """Read a whole regular file of at most ``max_bytes`` bytes.

        Never more than ``max_bytes + 1`` bytes are read, and on local disk a FIFO, device or
        directory is refused without blocking (format.md §15).

        Args:
            rel: the file, relative to the root.
            max_bytes: the cap: ``MAX_READ_ENTRY_BYTES`` (log entries), ``MAX_READ_POINTER_BYTES``
                (``_last_checkpoint``) or ``MAX_READ_CHECKPOINT_BYTES`` (checkpoints).

        Returns:
            The file's bytes.

        Raises:
            FileNotFoundError: nothing is at ``rel``.
            CorruptLogError: the file is larger than ``max_bytes`` or not a regular file (``.path`` names it).

        Example:
            >>> s = Storage.from_uri("memory://doc-storage7")
            >>> s.overwrite("a.bin", b"abc")
            >>> s.read("a.bin")
            b'abc'
            >>> s.read("a.bin", max_bytes=2)
            Traceback (most recent call last):
            ...
            lakehouse.errors.CorruptLogError: ...larger than the 2 bytes a reader reads of this kind of file; not read
        """
        path = self.full_path(rel)
        if self.is_local:
            self.check_contained((rel,))
            return _local_read(path, max_bytes)
        self._forget(rel)
        if max_bytes > MAX_READ_ENTRY_BYTES:  # a checkpoint: ask its size, then let the store read it in parallel
            size = self.fs.size(path)
            if size is not None:
                _within(b"", max_bytes, path, size)
            return _within(bytes(self.fs.cat_file(path)), max_bytes, path)
        try:
            data = bytes(self.fs.cat_file(path, start=0, end=max_bytes + 1))
        except FileNotFoundError:
            raise
        except Exception:
            if self.fs.size(path) != 0:  # some stores refuse a range of an empty object
                raise
            data = b""
        return _within(data, max_bytes, path)

    def _read_or_none(self, rel: str, cap: int, hints: frozenset[str]) -> bytes | None:
        """:meth:`read`, with None for a missing file and for an oversized or special hint file."""
        try:
            return self.read(rel, max_bytes=cap)
        except FileNotFoundError:
            return None
        except CorruptLogError:
            if rel not in hints:
                raise
            return None

    def read_many(self, rels: list[str], *, max_bytes: int | list[int] = MAX_READ_ENTRY_BYTES,
                  hints: frozenset[str] = frozenset()) -> list[bytes | None]:
        """Read several files (concurrently where the filesystem can); None for a missing file.

        Args:
            rels: the files, relative to the root.
            max_bytes: the size cap of every file, or one per file (see :meth:`read`).
            hints: files that are only hints (``_last_checkpoint``): an oversized or special one
                comes back as None, like a missing one, instead of raising.

        Returns:
            The bytes of each file, in the order of ``rels`` (None where missing).

        Raises:
            CorruptLogError: a file not in ``hints`` is oversized or not a regular file.

        Example:
            >>> s = Storage.from_uri("memory://doc-storage8")
            >>> s.overwrite("a.bin", b"abc")
            >>> s.read_many(["a.bin", "missing.bin"])
            [b'abc', None]
        """
        caps = max_bytes if isinstance(max_bytes, list) else [max_bytes] * len(rels)
        if self.is_local or len(rels) == 1:
            return [self._read_or_none(rel, cap, hints) for rel, cap in zip(rels, caps, strict=True)]
        paths = [self.full_path(r) for r in rels]
        for r in rels:
            self._forget(r)
        got = self.fs.cat(paths, on_error="return", start=0, end=max(caps) + 1)
        result: list[bytes | None] = []
        for rel, p, cap in zip(rels, paths, caps, strict=True):
            value = got.get(p)
            if isinstance(value, FileNotFoundError) or value is None:
                result.append(None)
            elif isinstance(value, BaseException):  # a range of an empty object is refused by some stores
                result.append(self._read_or_none(rel, cap, hints))
            elif len(value) > cap and rel in hints:
                result.append(None)
            else:
                result.append(_within(bytes(value), cap, p))
        return result

    def _forget(self, rel: str) -> None:
        """Drop fsspec's cached listings for ``rel``: the log changes under us, and s3fs answers
        ``info``/``exists``/``cat`` from a stale listing with FileNotFoundError for new entries.
        The folder's listing goes too: adlfs drops only the exact path, and its ``exists`` answers
        True from a cached listing of the folder for a file another writer has since deleted."""
        path = self.full_path(rel)
        self.fs.invalidate_cache(path)
        parent = path.rstrip("/").rpartition("/")[0]
        if parent:
            self.fs.invalidate_cache(parent)

    def exists(self, rel: str) -> bool:
        """True if a file or directory is at ``rel``.

        Args:
            rel: the path, relative to the root.

        Returns:
            Whether something is there (fsspec's cached listings are dropped first).

        Example:
            >>> Storage.from_uri("memory://doc-storage9").exists("nothing")
            False
        """
        self._forget(rel)
        return bool(self.fs.exists(self.full_path(rel)))

    def list(self, rel: str) -> list[str]:
        """Names (not paths) of the entries directly under ``rel``; empty if it does not exist.

        Args:
            rel: a folder, relative to the root.

        Returns:
            The entry names.

        Example:
            >>> s = Storage.from_uri("memory://doc-storage10")
            >>> s.overwrite("d/a.bin", b"1")
            >>> s.list("d"), s.list("nothing")
            (['a.bin'], [])
        """
        base = self.full_path(rel)
        self._forget(rel)
        try:
            entries = self.fs.ls(base, detail=False)
        except FileNotFoundError:
            return []
        return [str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries]

    def delete(self, rel: str) -> None:
        """Delete a file; missing files are ignored.

        On local disk the deletion never follows a symbolic link below the root, whatever
        ``"lakehouse.allow_symlinks"`` says: it is made relative to folder handles opened one segment
        at a time without following links, and only a regular file is removed
        (:func:`lakehouse.localfs.delete_file`).

        Args:
            rel: the file, relative to the root.

        Raises:
            UnsafePathError: on local disk, a folder on the way is a symbolic link or ``rel`` is not a
                regular file; nothing was deleted.

        Example:
            >>> s = Storage.from_uri("memory://doc-storage11")
            >>> s.overwrite("a.bin", b"1")
            >>> s.delete("a.bin"); s.delete("a.bin")
            >>> s.exists("a.bin")
            False
        """
        with contextlib.suppress(FileNotFoundError):
            if self.is_local:
                delete_file(self.root, rel)
            else:
                self.fs.rm_file(self.full_path(rel))

    def overwrite(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel``, replacing any file there (used only for hints).

        On local disk the bytes go to a temporary file, are fsynced, then renamed over ``rel``.

        Args:
            rel: the file, relative to the root.
            data: its new bytes.

        Example:
            >>> s = Storage.from_uri("memory://doc-storage12")
            >>> s.overwrite("a.bin", b"1"); s.overwrite("a.bin", b"2")
            >>> s.read("a.bin")
            b'2'
        """
        path = self.full_path(rel)
        if self.is_local:
            self.check_contained((rel,))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())  # never a renamed-but-empty checkpoint after a power cut
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):  # a failed write (a full disk) leaves no temp file behind
                    os.unlink(tmp)
                raise
            return
        self.fs.pipe_file(path, data)

    def makedirs(self, rel: str) -> None:
        """Create a directory (and parents) where the filesystem has directories (local disk).

        Args:
            rel: the folder, relative to the root.

        Example:
            >>> Storage.from_uri("memory://doc-storage13").makedirs("a/b")
        """
        if self.is_local:
            os.makedirs(self.full_path(rel), exist_ok=True)

    # -- the commit primitive ------------------------------------------------------------------
    @property
    def is_conditional(self) -> bool:
        """True for the object stores whose ``pipe_file(mode="create")`` is a conditional create."""
        return bool(set(_protocols(self.fs)) & _CONDITIONAL_PROTOCOLS)

    @property
    def probe_key(self) -> ProbeKey:
        """What the capability probe's verdict is cached under: (protocol, endpoint, a digest of the
        rest that selects the store: profile, region, client and config arguments, environment)."""
        return (_protocols(self.fs)[0], _endpoint(self.fs, self.storage_options),
                _store_digest(self.fs, self.storage_options))

    def check_atomic_create(self) -> None:
        """Raise :class:`UnsafeStorageError` if ``put_if_absent`` cannot be atomic here.

        On a conditional object store this runs the capability probe once per (protocol,
        endpoint, store) and process (see the module docstring); transport errors of the probe propagate.

        Raises:
            UnsafeStorageError: the filesystem has no atomic create-if-absent, or the probe found the
                store ignores it (and ``"lakehouse.unsafe_single_writer"`` is not set).

        Example:
            >>> Storage.from_uri("memory://doc-storage14").check_atomic_create()
        """
        if self.is_local or self.is_memory or self.unsafe_single_writer:
            return
        if not self.is_conditional:
            raise UnsafeStorageError(
                f"filesystem {type(self.fs).__name__} (protocol {self.fs.protocol!r}) at {self.display_uri!r} has no "
                f"atomic create-if-absent, so concurrent commits could overwrite each other; pass "
                f"storage_options={{{UNSAFE_SINGLE_WRITER!r}: True}} if only one writer ever writes this table"
            )
        key = self.probe_key
        why = _probe_verdict(key, self._probe_create_if_absent)
        if why is not None:
            raise UnsafeStorageError(
                f"the {key[0]!r} store at endpoint {key[1]!r} ({type(self.fs).__name__}) does not enforce "
                f"create-if-absent: {why}. Concurrent commits could overwrite each other, so lakehouse "
                f"refuses to write to {self.display_uri!r}. If only one process ever writes this table, pass "
                f"storage_options={{{UNSAFE_SINGLE_WRITER!r}: True}}; lh.check_storage(uri, "
                f"storage_options=...) races several creators against a store to test it"
            )

    def _probe_create_if_absent(self) -> str | None:
        """Create a scratch key conditionally, twice; the second must fail. None if it did, else why not.

        Three requests (create, create, delete). The scratch key is deleted whatever happens.
        """
        token = uuid.uuid4().hex
        rel = f"{PROBE_PREFIX}{token}"
        path = self.full_path(rel)
        first = f"lakehouse create-if-absent probe {token} first".encode()
        try:
            try:
                self.fs.pipe_file(path, first, mode="create")
            except FileExistsError:
                # a lost response retried into a 412 looks like this: fine if the bytes are ours
                self._forget(rel)
                try:
                    held = bytes(self.fs.cat_file(path))
                except FileNotFoundError:
                    held = None
                if held != first:
                    return f"a conditional create of the fresh key {path!r} was refused as existing"
            try:
                self.fs.pipe_file(path, f"lakehouse create-if-absent probe {token} second".encode(), mode="create")
            except FileExistsError:
                return None
            return f"a second conditional create of {path!r} succeeded (the condition was ignored)"
        finally:
            with contextlib.suppress(Exception):  # best effort: readers ignore the name anyway
                self.fs.rm_file(path)

    def put_if_absent(self, rel: str, data: bytes) -> None:
        """Publish ``data`` whole at ``rel`` only if nothing is there, atomically.

        A reader never sees a partial file at ``rel``. This is the commit primitive.

        Args:
            rel: the file, relative to the root.
            data: its bytes (not empty).

        Raises:
            FileExistsError: a file is already at ``rel``; nothing was written.
            InvalidArgumentError: ``data`` is empty.
            CommitTooLargeError: on an object store, ``data`` is larger than one request may carry.
            UnsafeStorageError: the storage cannot create atomically (see :meth:`check_atomic_create`).

        Example:
            >>> s = Storage.from_uri("memory://doc-storage15")
            >>> s.put_if_absent("a.bin", b"1")
            >>> s.put_if_absent("a.bin", b"2")
            Traceback (most recent call last):
            ...
            FileExistsError: /doc-storage15/a.bin
        """
        if not data:
            raise InvalidArgumentError("put_if_absent refuses empty files")
        if len(data) > MAX_ENTRY_BYTES and not (self.is_local or self.is_memory):
            raise CommitTooLargeError(f"{rel}: {len(data)} bytes is too large for a single-request conditional write "
                                      f"(at most {MAX_ENTRY_BYTES}); it was not written")
        self.check_atomic_create()
        path = self.full_path(rel)
        if self.is_local:
            self.check_contained((rel,))
            _local_put_if_absent(path, data)
        elif self.is_memory:
            with _MEMORY_LOCK:
                if self.fs.exists(path):
                    raise FileExistsError(path)
                self.fs.pipe_file(path, data)
        elif self.unsafe_single_writer:
            # unprobed: the store may ignore the condition, so check first (one writer: no race)
            if self.exists(rel):
                raise FileExistsError(path)
            if self.is_conditional:
                self.fs.pipe_file(path, data, mode="create")
            else:
                self.fs.pipe_file(path, data)
        else:
            self.fs.pipe_file(path, data, mode="create")


def _is_absolute_local(uri: str) -> bool:
    """True if the local URI ``uri`` names its folder without the working directory or ``~``."""
    path = uri.split("://", 1)[1] if "://" in uri else uri
    return os.path.isabs(path) and not path.startswith("~")


def _within(data: bytes, max_bytes: int, path: str, size: int | None = None) -> bytes:
    """``data`` if it holds at most ``max_bytes`` bytes (and ``size``, if given, is within too)."""
    size = len(data) if size is None else size
    if size > max_bytes or len(data) > max_bytes:
        raise CorruptLogError(f"larger than the {max(max_bytes, 0)} bytes a reader reads of this kind of file; "
                              f"not read", path=path)
    return data


def _local_read(path: str, max_bytes: int) -> bytes:
    # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses anything not regular
    # os-level: one fstat and (almost always) one read into one buffer; no file object, no joins
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CorruptLogError("not a regular file; not read", path=path)
        size = st.st_size
        _within(b"", max_bytes, path, size)
        data = os.read(fd, size) if size else b""
        if len(data) < size:  # a short read: finish it (never past the cap: the file may be growing)
            rest = [data]
            got = len(data)
            while got <= max_bytes:
                chunk = os.read(fd, max_bytes + 1 - got)
                if not chunk:
                    break
                rest.append(chunk)
                got += len(chunk)
            data = b"".join(rest)
        return _within(data, max_bytes, path)
    finally:
        os.close(fd)


def _local_put_if_absent(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # raises FileExistsError if the name is taken; publishes all bytes at once
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)

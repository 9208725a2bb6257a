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

Example:
    >>> s = Storage.from_uri("memory://doc-storage")
    >>> s.put_if_absent("x/a.bin", b"1")
    >>> s.read("x/a.bin")
    b'1'
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow.fs as pafs
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from .errors import UnsafeStorageError

__all__ = ["UNSAFE_SINGLE_WRITER", "Storage"]

UNSAFE_SINGLE_WRITER = "lakehouse.unsafe_single_writer"
"""Storage option that allows writing where no atomic create-if-absent exists (one writer only)."""

_MEMORY_LOCK = threading.Lock()
_CONDITIONAL_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"})
# Log entries must go out as a single request: far below every store's multipart threshold.
MAX_ENTRY_BYTES = 4 * 1024 * 1024


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


@dataclass(frozen=True, slots=True, kw_only=True)
class Storage:
    """A filesystem and the root folder of one table. Paths given to methods are relative.

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

    @classmethod
    def from_uri(cls, uri: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None) -> Storage:
        """Resolve ``uri`` (a path or any fsspec URL) with ``storage_options``.

        Example:
            >>> Storage.from_uri("memory://doc-storage3").root
            '/doc-storage3'
        """
        opts = dict(storage_options or {})
        unsafe = bool(opts.pop(UNSAFE_SINGLE_WRITER, False))
        uri_s = os.fspath(uri)
        fs, root = fsspec.core.url_to_fs(uri_s, **opts)
        root = root.rstrip("/") if root not in ("/", "") else root
        if isinstance(fs, LocalFileSystem):
            root = os.path.abspath(root)
        return cls(fs=fs, root=root, uri=uri_s, storage_options=dict(storage_options or {}),
                   unsafe_single_writer=unsafe)

    # -- paths ---------------------------------------------------------------------------------
    def full_path(self, rel: str) -> str:
        """The filesystem path of ``rel`` under the table root."""
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
        """A pyarrow filesystem over the same storage (native for local disk)."""
        if self.is_local:
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    # -- plain I/O -----------------------------------------------------------------------------
    def read(self, rel: str) -> bytes:
        """Read a whole file; ``FileNotFoundError`` if absent."""
        if self.is_local:
            return _local_read(self.full_path(rel))
        self._forget(rel)
        data = self.fs.cat_file(self.full_path(rel))
        return bytes(data)

    def read_many(self, rels: list[str]) -> list[bytes | None]:
        """Read several files (concurrently where the filesystem can); None for a missing file."""
        if self.is_local or len(rels) == 1:
            out: list[bytes | None] = []
            for rel in rels:
                try:
                    out.append(self.read(rel))
                except FileNotFoundError:
                    out.append(None)
            return out
        paths = [self.full_path(r) for r in rels]
        for r in rels:
            self._forget(r)
        got = self.fs.cat(paths, on_error="return")
        result: list[bytes | None] = []
        for p in paths:
            value = got.get(p)
            if isinstance(value, FileNotFoundError) or value is None:
                result.append(None)
            elif isinstance(value, BaseException):
                raise value
            else:
                result.append(bytes(value))
        return result

    def _forget(self, rel: str) -> None:
        """Drop fsspec's cached listings for ``rel``: the log changes under us, and s3fs answers
        ``info``/``exists``/``cat`` from a stale listing with FileNotFoundError for new entries."""
        self.fs.invalidate_cache(self.full_path(rel))

    def exists(self, rel: str) -> bool:
        """True if a file or directory is at ``rel``."""
        self._forget(rel)
        return bool(self.fs.exists(self.full_path(rel)))

    def list(self, rel: str) -> list[str]:
        """Names (not paths) of the entries directly under ``rel``; empty if it does not exist."""
        base = self.full_path(rel)
        self._forget(rel)
        try:
            entries = self.fs.ls(base, detail=False)
        except FileNotFoundError:
            return []
        return [str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries]

    def delete(self, rel: str) -> None:
        """Delete a file; missing files are ignored."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.full_path(rel))

    def overwrite(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel``, replacing any file there (used only for hints)."""
        path = self.full_path(rel)
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            return
        self.fs.pipe_file(path, data)

    def makedirs(self, rel: str) -> None:
        """Create a directory (and parents) where the filesystem has directories."""
        if self.is_local:
            os.makedirs(self.full_path(rel), exist_ok=True)

    # -- the commit primitive ------------------------------------------------------------------
    def check_atomic_create(self) -> None:
        """Raise :class:`UnsafeStorageError` if ``put_if_absent`` cannot be atomic here."""
        if self.is_local or self.is_memory or self.unsafe_single_writer:
            return
        if set(_protocols(self.fs)) & _CONDITIONAL_PROTOCOLS:
            return
        raise UnsafeStorageError(
            f"filesystem {type(self.fs).__name__} (protocol {self.fs.protocol!r}) at {self.uri!r} has no "
            f"atomic create-if-absent, so concurrent commits could overwrite each other; pass "
            f"storage_options={{{UNSAFE_SINGLE_WRITER!r}: True}} if only one writer ever writes this table"
        )

    def put_if_absent(self, rel: str, data: bytes) -> None:
        """Publish ``data`` whole at ``rel`` only if nothing is there; ``FileExistsError`` otherwise.

        A reader never sees a partial file at ``rel``.
        """
        if not data:
            raise ValueError("put_if_absent refuses empty files")
        if len(data) > MAX_ENTRY_BYTES and not (self.is_local or self.is_memory):
            raise ValueError(f"{rel}: {len(data)} bytes is too large for a single-request conditional write")
        self.check_atomic_create()
        path = self.full_path(rel)
        if self.is_local:
            _local_put_if_absent(path, data)
        elif self.is_memory:
            with _MEMORY_LOCK:
                if self.fs.exists(path):
                    raise FileExistsError(path)
                self.fs.pipe_file(path, data)
        elif self.unsafe_single_writer and not set(_protocols(self.fs)) & _CONDITIONAL_PROTOCOLS:
            if self.fs.exists(path):
                raise FileExistsError(path)
            self.fs.pipe_file(path, data)
        else:
            self.fs.pipe_file(path, data, mode="create")


def _local_read(path: str) -> bytes:
    # os-level: one fstat and (almost always) one read into one buffer; no file object, no joins
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size) if size else b""
        if len(data) < size:  # a short read: finish it
            rest = [data]
            while True:
                chunk = os.read(fd, size)
                if not chunk:
                    break
                rest.append(chunk)
            data = b"".join(rest)
        return data
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

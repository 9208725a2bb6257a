"""Fault injection for tables on local disk: every I/O call a local-table operation makes, counted
and faultable through the same :data:`faultfs.PLAN` as ``faultfs://`` and ``faults3://``.

On local disk lakehouse does not go through one fsspec object: it calls the OS itself and hands
data files to pyarrow's native filesystem. :func:`installed` wraps each route at the narrowest point
that still sees every call (the calls still really happen on disk, or really don't):

* ``os`` as seen from ``lakehouse.storage``, ``lakehouse.localfs`` (deletions) and ``lakehouse.write``
  (a proxy module replaces the module attribute; ``os`` itself is untouched): ``open``, ``read``, ``fstat``, ``fsync``,
  ``close``, ``link``, ``unlink``/``remove``, ``replace``/``rename``, ``makedirs``/``mkdir``, and
  the ``write`` of the file objects ``os.fdopen`` returns. That is the put-if-absent protocol
  (temp file, write, fsync, close, link, unlink, directory fsync), log reads and
  ``Storage.overwrite`` (checkpoints, ``_last_checkpoint``);
* the builtin ``open`` of ``lakehouse.storage`` (``Storage.overwrite``), writes on its file objects;
* fsspec's ``LocalFileSystem`` methods (``exists``, ``ls``, ``rm_file``, ``find``, ...), patched
  on the class;
* pyarrow: ``Storage.arrow_filesystem`` returns a ``PyFileSystem`` whose handler forwards every
  call to a real ``pyarrow.fs.LocalFileSystem`` (data files written by ``pq.ParquetWriter`` and
  read by scans). An output stream is one call (faulted at open, or at close after every byte is
  written); an input file is one call (its open: pyarrow reads the footer and columns through it).

Only the outermost call of a thread is counted. :func:`audited` checks the claim "every": a
``sys.audit`` hook (installed once, idle unless a check runs) records file-system events (``open``,
``os.link``, ``os.rename``, ``os.remove``, ``os.mkdir``, ``os.listdir``, ...) under a root that
happen outside a counted call. (Native pyarrow I/O raises no audit events; it is seen because
lakehouse takes every Arrow filesystem from ``Storage.arrow_filesystem``.)

Errors are what a local disk reports: ``OSError(EIO)`` and, for "prefix", ``OSError(ENOSPC)``.
The modes of :data:`faultfs.MODES` and :data:`faultfs.TORN`, for the call with index ``k``:

* ``"before"``: raise without doing the call;
* ``"after"``: do the call, then raise: what NFS reports for a ``link``/``rename`` whose reply was
  lost, or a ``close``/``fsync`` that reports a write error after the fact. A descriptor or file
  opened by the faulted call is closed before the raise (the caller never gets it);
* ``"from"``: every call from ``k`` on fails (the disk or mount went away): clean-up fails too,
  so this mode leaves what a crash leaves (temp files, unreferenced data files);
* ``"lost"``: ``"after"`` at ``k``, then ``"from"``;
* ``"prefix"``: ``k`` counts byte-writing calls only (the ``write`` of a temp file, a pyarrow
  output stream): half of the bytes reach the file, then ``ENOSPC``. A log entry's bytes go to a
  temp file that is fsynced before ``os.link`` publishes it, so what can be torn is the temp
  file, never the final name; a data file is written in place by pyarrow, so a torn file at its
  final path is realistic (the stream's bytes are all written, then truncated to half). The
  process goes on, so lakehouse's clean-up (unlinking the temp file, deleting the data file) runs;
* ``"torn"``: ``"prefix"`` at write ``k``, then every call fails: a crash mid-write, after which
  no clean-up runs. It leaves what a crash can leave: a torn temp file in the log folder, a torn
  data file no version references; never a torn file under a log entry's or checkpoint's name.

``close`` always releases the descriptor (Linux frees it even when ``close`` fails), so "before" on
a close acts as "after". ``fdopen`` does no I/O and is not counted (the ``open`` that made the
descriptor is).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import functools
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from faultfs import PLAN
from fsspec.implementations.local import LocalFileSystem

import lakehouse.localfs
import lakehouse.storage
import lakehouse.write

_tls = threading.local()
_FD_PATHS: dict[int, str] = {}  # descriptor -> path, for readable traces


def _error(kind: str, name: str, path: str) -> OSError:
    code = errno.ENOSPC if kind == "prefix" else errno.EIO
    return OSError(code, f"injected ({kind}): {name} failed", path)


@contextlib.contextmanager
def _counting() -> Iterator[bool]:
    """True if this is the outermost counted call of the thread (only those are counted)."""
    if getattr(_tls, "depth", 0):
        yield False
        return
    _tls.depth = 1
    try:
        yield True
    finally:
        _tls.depth = 0


def _plain(name: str, fn: Callable[..., Any], path_of: Callable[..., str], *,
           release: Callable[[Any], None] | None = None) -> Callable[..., Any]:
    """Count and fault a call that writes no bytes ("prefix" never selects it)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _counting() as outermost:
            if not outermost:
                return fn(*args, **kwargs)
            path = path_of(*args, **kwargs)
            action = PLAN.decide(name, path, False)
            if action == "before":
                raise _error("before", name, path)
            result = fn(*args, **kwargs)
            if action is not None:
                if release is not None:
                    release(result)
                raise _error("after", name, path)
            return result

    return wrapper


def _arg(i: int) -> Callable[..., str]:
    def path_of(*args: Any, **kwargs: Any) -> str:
        value = args[i] if len(args) > i else next(iter(kwargs.values()), "?")
        if isinstance(value, int):
            return _FD_PATHS.get(value, f"fd {value}")
        return os.fsdecode(value) if isinstance(value, (str, bytes, os.PathLike)) else str(value)

    return path_of


# -- os, as lakehouse.storage and lakehouse.write see it ------------------------------------------
class _File:
    """A file object of lakehouse's (from ``open`` or ``os.fdopen``) whose ``write`` and ``close``
    are counted calls. ``write`` flushes inside the call, so its bytes reach the OS there."""

    def __init__(self, f: Any, path: str) -> None:
        self._f, self._path = f, path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _File:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, data: bytes) -> int:
        with _counting() as outermost:
            if not outermost:
                return self._f.write(data)
            action = PLAN.decide("write", self._path, True)
            if action == "before":
                raise _error("before", "write", self._path)
            if action == "prefix":  # a disk that fills up mid-write: a torn file, ENOSPC
                self._f.write(bytes(data)[: len(data) // 2])
                self._f.flush()
                raise _error("prefix", "write", self._path)
            n = self._f.write(data)
            self._f.flush()
            if action is not None:
                raise _error("after", "write", self._path)
            return n

    def close(self) -> None:
        if self._f.closed:
            return
        with _counting() as outermost:
            action = PLAN.decide("close", self._path, False) if outermost else None
            self._f.close()  # released whatever the outcome
            if action is not None:
                raise _error("after", "close", self._path)


def _os_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
    fd = os.open(path, flags, mode, **kwargs)
    _FD_PATHS[fd] = os.fsdecode(path)
    return fd


def _os_close(fd: int) -> None:
    path = _FD_PATHS.pop(fd, f"fd {fd}")
    with _counting() as outermost:
        action = PLAN.decide("close", path, False) if outermost else None
        os.close(fd)  # released whatever the outcome
        if action is not None:
            raise _error("after", "close", path)


def _release_fd(fd: int) -> None:
    _FD_PATHS.pop(fd, None)
    os.close(fd)


def _os_proxy() -> types.ModuleType:
    """A stand-in for ``os``: the I/O functions lakehouse calls are counted, the rest is ``os``."""
    proxy = types.ModuleType("os", "os, with counted I/O calls (tests/localfaults.py)")
    proxy.__dict__.update(os.__dict__)
    first = _arg(0)
    second = _arg(1)
    counted: dict[str, Callable[..., Any]] = {
        "open": _plain("os.open", _os_open, first, release=_release_fd),
        "read": _plain("os.read", os.read, first),
        "fstat": _plain("os.fstat", os.fstat, first),
        "fsync": _plain("os.fsync", os.fsync, first),
        "close": _os_close,
        "link": _plain("os.link", os.link, second),
        "unlink": _plain("os.unlink", os.unlink, first),
        "remove": _plain("os.remove", os.remove, first),
        "replace": _plain("os.replace", os.replace, second),
        "rename": _plain("os.rename", os.rename, second),
        "makedirs": _plain("os.makedirs", os.makedirs, first),
        "mkdir": _plain("os.mkdir", os.mkdir, first),
        "fdopen": lambda fd, *a, **kw: _File(os.fdopen(fd, *a, **kw), _FD_PATHS.get(fd, f"fd {fd}")),
    }
    proxy.__dict__.update(counted)
    return proxy


def _open_file(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> _File:
    return _File(builtins.open(path, mode, *args, **kwargs), os.fsdecode(path))


_builtin_open = _plain("open", _open_file, _arg(0), release=lambda f: f._f.close())


# -- pyarrow --------------------------------------------------------------------------------------
class _FaultyOutput:
    """A pyarrow output stream whose close writes everything ("after") or leaves the first half
    ("prefix"), then raises."""

    def __init__(self, stream: pa.NativeFile, path: str, action: str) -> None:
        self._stream, self._path, self._action = stream, path, action

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def write(self, data: Any) -> int:
        return self._stream.write(data)

    def tell(self) -> int:
        return self._stream.tell()

    def flush(self) -> None:
        self._stream.flush()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if self._stream.closed:
            return
        size = self._stream.tell()
        self._stream.close()
        if self._action == "prefix":
            os.truncate(self._path, size // 2)
        raise _error(self._action, "arrow.write", self._path)


class _ArrowHandler(pafs.FileSystemHandler):
    """Every call forwarded to a real ``pyarrow.fs.LocalFileSystem``, counted and faultable."""

    def __init__(self) -> None:
        self.real = pafs.LocalFileSystem()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ArrowHandler)

    def __hash__(self) -> int:
        return hash(_ArrowHandler)

    def get_type_name(self) -> str:
        return "lakehouse-localfaults"

    def normalize_path(self, path: str) -> str:
        return self.real.normalize_path(path)

    def _call(self, name: str, path: str, fn: Callable[[], Any], release: Callable[[Any], None] | None = None) -> Any:
        """One counted call ``fn()`` on ``path``."""
        return _plain(f"arrow.{name}", lambda _path: fn(), _arg(0), release=release)(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self._call("get_file_info", ",".join(paths), lambda: self.real.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self._call("get_file_info", selector.base_dir, lambda: self.real.get_file_info(selector))

    def create_dir(self, path: str, recursive: bool) -> None:
        self._call("create_dir", path, lambda: self.real.create_dir(path, recursive=recursive))

    def delete_dir(self, path: str) -> None:
        self._call("delete_dir", path, lambda: self.real.delete_dir(path))

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._call("delete_dir_contents", path,
                   lambda: self.real.delete_dir_contents(path, missing_dir_ok=missing_dir_ok))

    def delete_root_dir_contents(self) -> None:
        raise OSError(errno.EPERM, "refusing to delete the root directory's contents")

    def delete_file(self, path: str) -> None:
        self._call("delete_file", path, lambda: self.real.delete_file(path))

    def move(self, src: str, dest: str) -> None:
        self._call("move", dest, lambda: self.real.move(src, dest))

    def copy_file(self, src: str, dest: str) -> None:
        self._call("copy_file", dest, lambda: self.real.copy_file(src, dest))

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self._call("open_input_stream", path, lambda: self.real.open_input_stream(path), _close)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self._call("open_input_file", path, lambda: self.real.open_input_file(path), _close)

    def open_output_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        return self._output("open_output_stream", path, lambda: self.real.open_output_stream(path, metadata=metadata))

    def open_append_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        return self._output("open_append_stream", path, lambda: self.real.open_append_stream(path, metadata=metadata))

    def _output(self, name: str, path: str, fn: Callable[[], pa.NativeFile]) -> pa.NativeFile:
        with _counting() as outermost:
            action = PLAN.decide(f"arrow.{name}", path, True) if outermost else None
            if action == "before":
                raise _error("before", f"arrow.{name}", path)
            stream = fn()
            if action is None:
                return stream
            return pa.PythonFile(_FaultyOutput(stream, path, action), mode="w")


def _close(f: pa.NativeFile) -> None:
    f.close()


def _arrow_filesystem(original: Callable[[lakehouse.storage.Storage], pafs.FileSystem]):
    @functools.wraps(original)
    def arrow_filesystem(self: lakehouse.storage.Storage) -> pafs.FileSystem:
        if self.is_local:
            return pafs.PyFileSystem(_ArrowHandler())
        return original(self)

    return arrow_filesystem


# -- fsspec's LocalFileSystem ---------------------------------------------------------------------
_FSSPEC_METHODS = ("exists", "lexists", "info", "isfile", "isdir", "ls", "find", "glob", "walk", "du",
                   "rm_file", "rm", "makedirs", "mkdir", "rmdir", "mv", "cp_file", "touch", "cat_file",
                   "cat", "created", "modified")


def _fsspec_method(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    return _plain(f"fs.{name}", fn, _arg(1))


def _fsspec_write(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """fsspec writes of local files: lakehouse makes none (it writes through os and pyarrow), so
    they are counted and faulted as plain calls, and "prefix" on them fails loudly."""

    @functools.wraps(fn)
    def wrapper(self: LocalFileSystem, path: str, *args: Any, **kwargs: Any) -> Any:
        mode = args[0] if args else kwargs.get("mode", "rb")
        if name == "_open" and not any(c in mode for c in "wxa+"):
            return _plain("fs._open", fn, _arg(1), release=_close_any)(self, path, *args, **kwargs)
        with _counting() as outermost:
            action = PLAN.decide(f"fs.{name}", str(path), True) if outermost else None
            assert action != "prefix", f"localfaults: no 'prefix' for fsspec's {name} (wrote {path})"
            if action == "before":
                raise _error("before", f"fs.{name}", str(path))
            result = fn(self, path, *args, **kwargs)
            if action is not None:
                _close_any(result)
                raise _error("after", f"fs.{name}", str(path))
            return result

    return wrapper


def _close_any(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


# -- installing -----------------------------------------------------------------------------------
@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Route every I/O call of lakehouse on local disk through :data:`faultfs.PLAN` (see the module
    docstring). Counting happens only while the plan is armed."""
    saved: list[tuple[object, str, object]] = []

    def patch(obj: object, name: str, value: object) -> None:
        saved.append((obj, name, obj.__dict__.get(name, _MISSING)))
        setattr(obj, name, value)

    proxy = _os_proxy()
    try:
        patch(lakehouse.storage, "os", proxy)
        patch(lakehouse.write, "os", proxy)
        patch(lakehouse.localfs, "os", proxy)
        patch(lakehouse.storage, "open", _builtin_open)
        storage_cls = lakehouse.storage.Storage
        patch(storage_cls, "arrow_filesystem", _arrow_filesystem(storage_cls.arrow_filesystem))
        for name in _FSSPEC_METHODS:
            patch(LocalFileSystem, name, _fsspec_method(name, getattr(LocalFileSystem, name)))
        for name in ("_open", "pipe_file", "put_file"):
            patch(LocalFileSystem, name, _fsspec_write(name, getattr(LocalFileSystem, name)))
        yield
    finally:
        for obj, name, old in reversed(saved):
            if old is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, old)


_MISSING = object()


# -- the check that nothing escapes ---------------------------------------------------------------
_AUDIT_EVENTS = ("open", "os.link", "os.symlink", "os.rename", "os.remove", "os.rmdir", "os.mkdir",
                 "os.listdir", "os.scandir", "os.truncate", "os.chmod", "os.chown", "os.utime",
                 "shutil.copyfile", "shutil.rmtree", "shutil.move")
_audit = types.SimpleNamespace(root=None, escaped=None, installed=False)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    root = _audit.root
    if root is None or event not in _AUDIT_EVENTS or getattr(_tls, "depth", 0):
        return
    for value in args:
        if isinstance(value, (str, bytes, os.PathLike)):
            path = os.fsdecode(value)
            if path == root or path.startswith(root + os.sep):
                _audit.escaped.append((event, path))
                return


@contextlib.contextmanager
def audited(root: str) -> Iterator[list[tuple[str, str]]]:
    """Yield a list that collects the file-system events under ``root`` made outside a counted call
    (from this process, while the block runs)."""
    if not _audit.installed:
        sys.addaudithook(_hook)  # cannot be removed: it stays idle while _audit.root is None
        _audit.installed = True
    escaped: list[tuple[str, str]] = []
    _audit.root, _audit.escaped = os.path.abspath(root), escaped
    try:
        yield escaped
    finally:
        _audit.root, _audit.escaped = None, None

"""A test-only fsspec memory filesystem that counts I/O calls and fails one of them on purpose.

``faultfs://`` is fsspec's memory filesystem (same global store) whose I/O methods go through
:data:`PLAN`. Its protocol tuple contains ``"memory"``, so lakehouse treats it as the memory backend
(``put_if_absent`` = lock + ``exists`` + ``pipe_file``; data files through pyarrow's
``PyFileSystem(FSSpecHandler(fs))``, i.e. ``fs.open(path, "wb")``; reads through ``cat_file``/``cat``).

Only the outermost call of a thread is counted and faulted (``pipe_file`` calling ``open``,
``exists`` calling ``info`` and so on count once). Fault modes, for the call with index ``k``:

* ``"before"``: raise ``ConnectionError`` without doing the call;
* ``"after"``: do the call, then raise ``TimeoutError`` (a lost response). For a write stream the
  call is the whole upload: every byte is stored when the stream closes, then the close raises;
* ``"from"``: every call from ``k`` on raises ``ConnectionError`` until :meth:`FaultPlan.disarm`;
* ``"lost"``: ``"after"`` at ``k`` and ``"from"`` after it: the request went through, the
  response was lost and the network stays down (a landed commit whose read-back fails too);
* ``"prefix"``: ``k`` counts write calls only (``pipe_file`` and ``open`` for writing): store the
  first half of the bytes, then raise ``ConnectionError``. Log entries
  (``_lakehouse_log/<20 digits>.msgpack``) are conditional creates, all-or-nothing on real object
  stores: for those nothing is stored;
* ``"torn"`` (:data:`TORN`, not in :data:`MODES`): ``"prefix"`` at write ``k``, then every later
  call fails: a crash in the middle of a write, after which nothing (no clean-up) runs. Used by the
  local-disk variant (``localfaults.py``), where it leaves what a real crash leaves.

``faults3://bucket/key`` (:class:`FaultS3FileSystem`) is s3fs with the same :data:`PLAN` over the
same methods, for a real S3 API (the moto server of the ``s3`` fixture); modes :data:`S3_MODES`.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass, field

import fsspec
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

MODES = ("before", "after", "from", "prefix", "lost")
TORN = "torn"
"""``"prefix"`` at write ``k``, then every call fails (a crash mid-write); see the module docstring."""
S3_MODES = ("before", "after", "from", "lost")
"""The modes of ``faults3://`` (below): "prefix" has no S3 counterpart, a PUT is all-or-nothing."""
_LOG_ENTRY = re.compile(r"/_lakehouse_log/\d{20}\.msgpack$")
_local = threading.local()


def is_log_entry(path: str) -> bool:
    return bool(_LOG_ENTRY.search(path))


@dataclass
class FaultPlan:
    """Which call to fail and how; counts the calls made while counting is on."""

    counting: bool = False
    mode: str | None = None
    k: int = -1
    calls: int = 0
    writes: int = 0
    fired: list[tuple[int, str, str]] = field(default_factory=list)
    trace: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, mode: str | None, k: int = -1) -> None:
        with self.lock:
            assert mode is None or mode in (*MODES, TORN), mode
            self.counting, self.mode, self.k = True, mode, k
            self.calls = self.writes = 0
            self.fired = []
            self.trace = []

    def disarm(self) -> None:
        with self.lock:
            self.counting, self.mode, self.k = False, None, -1

    def decide(self, name: str, path: str, write: bool) -> str | None:
        """Count one call and say which fault (if any) it gets."""
        with self.lock:
            if not self.counting:
                return None
            index, self.calls = self.calls, self.calls + 1
            if write:
                windex, self.writes = self.writes, self.writes + 1
            self.trace.append((name, path))
            action = None
            if self.mode in ("before", "after") and index == self.k:
                action = self.mode
            elif self.mode == "from" and index >= self.k:
                action = "before"
            elif self.mode == "lost" and index >= self.k:
                action = "after" if index == self.k else "before"
            elif self.mode in ("prefix", TORN) and write and windex == self.k:
                action = "prefix"
            elif self.mode == TORN and self.fired:
                action = "before"
            if action is not None:
                self.fired.append((index, name, path))
            return action


PLAN = FaultPlan()


def _injected(kind: str, name: str, path: str) -> OSError:
    if kind == "after":
        return TimeoutError(f"injected: response to {name}({path}) lost")
    return ConnectionError(f"injected: {name}({path}) failed ({kind})")


class _FaultyWriteFile(MemoryFile):
    """The stream of a faulted upload: ``close`` stores all bytes ("after") or a prefix, then raises."""

    action: str = "after"
    done: bool = False

    def close(self) -> None:
        if self.done:
            return
        self.done = True
        if self.action == "prefix":
            if is_log_entry(self.path):
                self.fs.store.pop(self.path, None)
            else:
                self.truncate(self.getbuffer().nbytes // 2)
        raise _injected(self.action, "write", self.path)


def _io(name: str, *, write: bool | None = False):
    """Count and fault calls of ``name``. ``write=None``: a write if the mode argument says so."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(self, path, *args, **kwargs):
            if getattr(_local, "depth", 0):
                return fn(self, path, *args, **kwargs)
            is_write = write
            if is_write is None:
                mode = args[0] if args else kwargs.get("mode", "rb")
                is_write = any(c in mode for c in "wxa")
            _local.depth = 1
            try:
                action = PLAN.decide(name, str(path), bool(is_write))
                if action == "before":
                    raise _injected("before", name, str(path))
                if action == "prefix" and name == "pipe_file":
                    assert self.prefix_faults, f"{type(self).__name__} has no 'prefix' mode"
                    value = args[0] if args else kwargs["value"]
                    if not is_log_entry(str(path)):
                        fn(self, path, bytes(value)[: len(value) // 2], *args[1:], **kwargs)
                    raise _injected("prefix", name, str(path))
                result = fn(self, path, *args, **kwargs)
                if action is not None and name == "_open" and is_write:
                    return self._faulty_write_stream(result, action)
                if action == "after":
                    raise _injected("after", name, str(path))
                return result
            finally:
                _local.depth = 0

        return wrapper

    return deco


class FaultFileSystem(MemoryFileSystem):
    """fsspec's memory filesystem with counted, faultable I/O (see the module docstring)."""

    protocol = ("faultfs", "memory")
    prefix_faults = True  # a memory file can be left half-written

    pipe_file = _io("pipe_file", write=True)(MemoryFileSystem.pipe_file)
    cat_file = _io("cat_file")(MemoryFileSystem.cat_file)
    cat = _io("cat")(MemoryFileSystem.cat)
    _open = _io("_open", write=None)(MemoryFileSystem._open)
    rm_file = _io("rm_file")(MemoryFileSystem.rm_file)
    rm = _io("rm")(MemoryFileSystem.rm)
    exists = _io("exists")(MemoryFileSystem.exists)
    info = _io("info")(MemoryFileSystem.info)
    isfile = _io("isfile")(MemoryFileSystem.isfile)
    isdir = _io("isdir")(MemoryFileSystem.isdir)
    ls = _io("ls")(MemoryFileSystem.ls)
    find = _io("find")(MemoryFileSystem.find)
    makedirs = _io("makedirs")(MemoryFileSystem.makedirs)
    mkdir = _io("mkdir")(MemoryFileSystem.mkdir)

    def _faulty_write_stream(self, f: MemoryFile, action: str) -> MemoryFile:
        out = _FaultyWriteFile(self, f.path)
        out.action = action
        out.commit()  # replaces the (empty) file the open made
        return out


fsspec.register_implementation("faultfs", FaultFileSystem, clobber=True)


# -- the same plan over a real S3 API (s3fs) ------------------------------------------------------
try:
    from fsspec.asyn import sync_wrapper
    from s3fs import S3FileSystem
    from s3fs.core import S3File
except ImportError:  # pragma: no cover - s3fs is an optional extra
    S3FileSystem = None

if S3FileSystem is not None:

    class _FaultyS3File(S3File):
        """A faulted upload to S3: ``close`` completes the upload (every byte stored), then raises."""

        action: str = "after"

        def close(self) -> None:
            if self.closed:
                return
            super().close()
            raise _injected(self.action, "write", self.path)

    def _s3(name: str, *, write: bool | None = False):
        """Fault the sync form of s3fs's coroutine ``_<name>`` (s3fs mirrors them per instance)."""
        return _io(name, write=write)(sync_wrapper(getattr(S3FileSystem, f"_{name}")))

    class FaultS3FileSystem(S3FileSystem):
        """s3fs with counted, faultable I/O: ``faults3://bucket/key``. Its protocol tuple contains
        ``"s3"``, so lakehouse treats it as S3 (``put_if_absent`` = ``pipe_file(mode="create")``, a
        conditional PUT, after the capability probe).

        Modes "before", "after", "from" and "lost" as for ``faultfs``. "prefix" is not supported: a
        PUT (and a small upload, which is one PUT at ``close``) stores all of its bytes or none.
        """

        protocol = ("faults3", "s3")
        prefix_faults = False  # a PUT stores all of its bytes or none

        pipe_file = _s3("pipe_file", write=True)
        cat_file = _s3("cat_file")
        cat = _s3("cat")
        _open = _io("_open", write=None)(S3FileSystem._open)
        rm_file = _s3("rm_file")
        rm = _s3("rm")
        exists = _s3("exists")
        info = _s3("info")
        isfile = _s3("isfile")
        isdir = _s3("isdir")
        ls = _s3("ls")
        find = _s3("find")
        makedirs = _s3("makedirs")
        mkdir = _s3("mkdir")

        def _faulty_write_stream(self, f: S3File, action: str) -> S3File:
            assert action != "prefix", "faults3 has no 'prefix' mode: an S3 PUT is all-or-nothing"
            f.__class__ = _FaultyS3File
            f.action = action
            return f

    fsspec.register_implementation("faults3", FaultS3FileSystem, clobber=True)


def clone_tree(src_root: str, dst_root: str) -> None:
    """Copy every file under ``src_root`` to ``dst_root`` in the memory store (no I/O counted)."""
    store = MemoryFileSystem.store
    src = src_root.rstrip("/") + "/"
    dst = dst_root.rstrip("/") + "/"
    for path in [p for p in store if p.startswith(src)]:
        new = dst + path[len(src) :]
        store[new] = MemoryFile(None, new, bytes(store[path].getbuffer()))


def drop_tree(root: str) -> None:
    store = MemoryFileSystem.store
    prefix = root.rstrip("/") + "/"
    for path in [p for p in store if p.startswith(prefix)]:
        del store[path]
    MemoryFileSystem.pseudo_dirs[:] = [
        d for d in MemoryFileSystem.pseudo_dirs if d != root.rstrip("/") and not d.startswith(prefix)
    ]

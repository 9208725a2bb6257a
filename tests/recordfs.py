"""A test-only fsspec memory filesystem that records every path argument of every call.

``recordfs://name`` is fsspec's memory filesystem (the same global store as ``memory://name``, and
the same paths: ``/name/...``) whose methods record each path they are given in :data:`RECORDER`.
Its protocol tuple contains ``"memory"``, so lakehouse treats it as the memory backend and every
byte it reads or writes goes through a recorded method: log entries and checkpoints through
``cat_file``/``cat``/``exists``/``pipe_file``/``ls``, data files through pyarrow's
``PyFileSystem(FSSpecHandler(fs))`` (``open``, ``info``, ...).

Every method of the filesystem that takes a path (``path``, ``path1``/``path2``, ``paths``,
``lpath``/``rpath``) is wrapped; lists, dicts (``pipe``) and ``os.PathLike`` are expanded. Nested
calls are recorded too, marked as such (``pipe_file`` calling ``open`` records both): the outer
call is what lakehouse (or pyarrow on its behalf) asked for, a nested one is the filesystem talking
to itself. :meth:`Recorder.outside` returns the calls outside a table root: any outer call, and
any nested one except a look at an *ancestor* of the root (fsspec's memory ``_open`` checks that no
parent folder is a file, up to ``/``; a real object store does no such thing).

"Under the root" is judged conservatively: the path must be under it as given, with backslashes
read as separators, and cut at the first NUL (as a backend splitting or truncating there sees it).
Percent escapes are not decoded: every backend lakehouse writes to (local disk, memory, S3, GCS,
Azure) stores ``%2E%2E`` as those six characters, and lakehouse never decodes a path either.

Example::

    with RECORDER.recording():
        lh.Table.open("recordfs://t").to_arrow()
    assert RECORDER.outside("/t") == []
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import posixpath
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
from fsspec.implementations.memory import MemoryFileSystem

PATH_PARAMETERS = ("path", "path1", "path2", "paths", "lpath", "rpath")


_local = threading.local()


@dataclass
class Recorder:
    """The calls recorded while :meth:`recording` is active: (method, path, nested) triples, in order."""

    active: bool = False
    calls: list[tuple[str, str, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def recording(self) -> Iterator[Recorder]:
        with self.lock:
            self.calls = []
            self.active = True
        try:
            yield self
        finally:
            with self.lock:
                self.active = False

    def add(self, method: str, value: Any, *, nested: bool) -> None:
        for path in _flatten(value):
            with self.lock:
                if self.active:
                    self.calls.append((method, path, nested))

    @property
    def paths(self) -> list[str]:
        """Every recorded path, outer and nested calls alike."""
        return [p for _, p, _ in self.calls]

    def outside(self, root: str) -> list[tuple[str, str]]:
        """(method, path) of the recorded calls outside ``root`` (see the module docstring).

        Below ``root`` means: with the protocol removed, ``root`` itself or ``root`` + ``/`` and
        segments none of which is empty, ``.`` or ``..`` (so ``/t/../u`` and ``/t//x`` are outside).
        """
        root = _strip(root).rstrip("/")
        return [(m, p) for m, p, nested in self.calls
                if not _below(_strip(p), root) and not (nested and _ancestor(_strip(p), root))]


def _strip(path: str) -> str:
    return str(RecordFileSystem._strip_protocol(path))


def _below(path: str, root: str) -> bool:
    # as given, and as a backend that splits at backslashes or ends C strings at NUL would see it
    variants = {path, path.replace("\\", "/"), path.split("\x00", 1)[0].replace("\\", "/")}
    return all(_below_posix(p, root) for p in variants)


def _below_posix(path: str, root: str) -> bool:
    if path == root:
        return True
    if not path.startswith(root + "/"):
        return False
    rest = path[len(root) + 1 :].rstrip("/")  # a trailing "/" names the same directory
    if rest == "":
        return True
    clean = all(seg not in ("", ".", "..") for seg in rest.split("/"))
    return clean and posixpath.normpath(path).startswith(root + "/")


def _ancestor(path: str, root: str) -> bool:
    path = path.rstrip("/") or "/"
    return path == "/" or (root.startswith(path + "/") and ".." not in path.split("/"))


def _flatten(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [str(os.fspath(value))]
    if isinstance(value, dict):
        return [p for k in value for p in _flatten(k)]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [p for v in value for p in _flatten(v)]
    return [repr(value)]  # something unexpected in a path argument: record it (it fails the check)


RECORDER = Recorder()


def _recorded(name: str, fn: Any) -> Any:
    sig = inspect.signature(fn)
    names = [p for p in list(sig.parameters)[1:] if p in PATH_PARAMETERS]

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(_local, "depth", 0)
        if RECORDER.active:
            try:
                bound = sig.bind_partial(self, *args, **kwargs).arguments
            except TypeError:
                bound = {}
            for p in names:
                if p in bound:
                    RECORDER.add(name, bound[p], nested=depth > 0)
        _local.depth = depth + 1
        try:
            return fn(self, *args, **kwargs)
        finally:
            _local.depth = depth

    return wrapper


class RecordFileSystem(MemoryFileSystem):
    """fsspec's memory filesystem with every path argument recorded (see the module docstring)."""

    protocol = ("recordfs", "memory")

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, str) and path.startswith("recordfs://"):
            path = "memory://" + path[len("recordfs://") :]
        return super()._strip_protocol(path)


def _wrap_path_methods(cls: type) -> None:
    for name in dir(MemoryFileSystem):
        attr = inspect.getattr_static(MemoryFileSystem, name)
        if isinstance(attr, (classmethod, staticmethod, property)) or not inspect.isfunction(attr):
            continue
        try:
            params = list(inspect.signature(attr).parameters)[1:]
        except (TypeError, ValueError):
            continue
        if any(p in PATH_PARAMETERS for p in params) and name not in ("_strip_protocol", "_parent"):
            setattr(cls, name, _recorded(name, attr))


_wrap_path_methods(RecordFileSystem)
fsspec.register_implementation("recordfs", RecordFileSystem, clobber=True)

"""Local-disk path safety: containment under the table root, and deletions that never follow links.

Tables live in shared folders that other people and jobs can write to, and maintenance often runs
with more privileges than the writers (format §3.1, ``docs/howto-storage.md``). Two rules hold on
local disk:

* **Readers and writers stay under the root.** :func:`check_contained` refuses, with
  :class:`~lakehouse.errors.UnsafePathError`, a path whose resolved location leaves the table root's
  resolved location (a data file, partition folder or ``_lakehouse_log`` that is a symbolic link to
  another table), unless the storage option ``"lakehouse.allow_symlinks": True`` is set. A link that
  stays inside the root is fine. The cost is one ``lstat`` per distinct folder segment and per file
  (one listing instead for many files of one folder), and a ``realpath`` only for a link.
* **Deletions never go through a link.** :func:`delete_file` walks from the root to the file's
  folder one segment at a time, opening each folder with ``O_DIRECTORY | O_NOFOLLOW`` relative to the
  previous one, and unlinks the name relative to that folder's handle, after an ``lstat`` shows a
  regular file. A folder swapped for a symbolic link between a listing and the deletion (a race an
  attacker can win) therefore cannot redirect the deletion anywhere: it is refused. Where the
  platform has no directory handles, the resolved path is re-checked right before the deletion.

Example:
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "p=1"))
    >>> open(os.path.join(root, "p=1", "f"), "wb").close()
    >>> check_contained(root, ["p=1/f"])
    >>> delete_file(root, "p=1/f")
    >>> os.listdir(os.path.join(root, "p=1"))
    []
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable

from .errors import InvalidArgumentError, UnsafePathError

__all__ = ["HAS_DIR_FD", "LIST_FROM", "SCRATCH_PREFIX", "check_contained", "delete_file", "is_under",
           "make_scratch", "remove_scratch"]

HAS_DIR_FD = (hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY") and os.open in os.supports_dir_fd
              and os.unlink in os.supports_dir_fd and os.stat in os.supports_dir_fd)
"""True where deletions can be made relative to directory handles (POSIX); else the re-check fallback."""


def is_under(path: str, root: str) -> bool:
    """True if the (resolved) ``path`` is ``root`` or inside it.

    Args:
        path: an absolute, normalised path.
        root: an absolute, normalised folder.

    Returns:
        Whether ``path`` lies at or below ``root``.

    Example:
        >>> is_under("/data/t/a.parquet", "/data/t"), is_under("/data/tt", "/data/t")
        (True, False)
    """
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_contained(root: str, rels: Iterable[str], *, real_root: str | None = None) -> None:
    """Raise :class:`UnsafePathError` if some ``rel`` resolves outside ``root``'s resolved path.

    A missing file passes (its reader reports it). Only what lies below ``root`` is examined (``root``
    itself, and its ancestors, are the user's): one ``lstat`` per distinct folder segment and per file,
    and a ``realpath`` only where one of them is a symbolic link.

    Args:
        root: the table root, an absolute local path.
        rels: paths relative to ``root``, ``/``-separated.
        real_root: ``os.path.realpath(root)`` if the caller resolved it already.

    Raises:
        UnsafePathError: a folder on the way or the file itself is a link that leaves the root.

    Example:
        >>> import tempfile
        >>> root = tempfile.mkdtemp()
        >>> os.symlink(tempfile.gettempdir(), os.path.join(root, "out"))
        >>> check_contained(root, ["a/missing.parquet"])
        >>> check_contained(root, ["out/x.parquet"])
        Traceback (most recent call last):
        ...
        lakehouse.errors.UnsafePathError: ...
    """
    resolved = [real_root]

    def inside(rel: str) -> bool:  # ``rel`` is a link (or odd): does its target stay under the root?
        real = resolved[0]
        if real is None:
            real = resolved[0] = os.path.realpath(root)
        return is_under(os.path.realpath(os.path.join(root, *rel.split("/"))), real)

    checked: dict[str, bool] = {"": True}  # folder (relative) -> inside the root
    by_folder: dict[str, list[str]] = {}
    for rel in rels:
        by_folder.setdefault(rel.rpartition("/")[0], []).append(rel)
    for folder, members in by_folder.items():
        if not _folder_inside(root, folder, checked, inside):
            raise _outside(root, members[0], folder)
        for rel in _links(root, folder, members):
            if not inside(rel):
                raise _outside(root, rel, rel)


def _links(root: str, folder: str, rels: list[str]) -> list[str]:
    """Those of ``rels`` (files of ``folder``) that are symbolic links: one ``lstat`` each, or one
    listing of the folder when many of its files are asked about (a scan of a partition)."""
    full = os.path.join(root, *folder.split("/")) if folder else root
    if len(rels) >= LIST_FROM:
        try:
            with os.scandir(full) as entries:
                links = {e.name for e in entries if e.is_symlink()}
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [rel for rel in rels if rel.rpartition("/")[2] in links]
    out = []
    for rel in rels:
        try:
            mode = os.lstat(os.path.join(full, rel.rpartition("/")[2])).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISLNK(mode):
            out.append(rel)
    return out


LIST_FROM = 16
"""From this many files of one folder on, :func:`check_contained` lists the folder instead of one
``lstat`` per file."""


def _folder_inside(root: str, folder: str, checked: dict[str, bool], inside: Callable[[str], bool]) -> bool:
    """True if the folder ``folder`` (relative to ``root``) resolves under the root; memoised in ``checked``."""
    known = checked.get(folder)
    if known is not None:
        return known
    parent, _, seg = folder.rpartition("/")
    if not _folder_inside(root, parent, checked, inside):
        checked[folder] = False
        return False
    if seg in ("", ".", ".."):
        verdict = inside(folder)
    else:
        try:
            mode = os.lstat(os.path.join(root, *folder.split("/"))).st_mode
        except (FileNotFoundError, NotADirectoryError):
            mode = 0  # nothing there: nothing to follow
        except OSError:  # a loop of links on the way, say: let the resolved path decide
            mode = stat.S_IFLNK
        verdict = inside(folder) if stat.S_ISLNK(mode) else True
    checked[folder] = verdict
    return verdict


def _outside(root: str, rel: str, link: str) -> UnsafePathError:
    return UnsafePathError(
        f"{rel!r} under the table root {root!r} resolves outside it ({link!r} is or goes through a symbolic "
        f"link); lakehouse refuses to follow it, so this table cannot read or write another table's files. "
        f"If the link is yours (a partition tiered onto another disk), pass "
        f"storage_options={{'lakehouse.allow_symlinks': True}}", path=os.path.join(root, rel))


def delete_file(root: str, rel: str) -> None:
    """Delete the regular file ``rel`` under the local folder ``root`` without following any link below ``root``.

    Args:
        root: the table root, an absolute local path (it may itself be a link: it is the user's).
        rel: the file's path relative to ``root``, ``/``-separated, without ``.`` or ``..`` segments.

    Raises:
        FileNotFoundError: nothing is at ``rel`` (or a folder on the way is missing or is a file).
        UnsafePathError: a folder on the way is a symbolic link, or ``rel`` is not a regular file
            (a link, a folder, a FIFO, ...); nothing was deleted.

    Example:
        >>> import tempfile
        >>> root = tempfile.mkdtemp()
        >>> os.makedirs(os.path.join(root, "d"))
        >>> open(os.path.join(root, "d", "a.parquet"), "wb").close()
        >>> delete_file(root, "d/a.parquet")
        >>> os.listdir(os.path.join(root, "d"))
        []
    """
    *folders, name = rel.split("/")
    if not name or any(seg in ("", ".", "..") for seg in rel.split("/")):
        raise UnsafePathError(f"refusing to delete {rel!r}: not a plain relative path under {root!r}",
                              path=os.path.join(root, rel))
    if not HAS_DIR_FD:  # pragma: no cover - Windows
        _delete_rechecked(root, rel)
        return
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i, seg in enumerate(folders):
            child = _open_folder(fd, seg, root, "/".join(folders[:i + 1]))
            os.close(fd)
            fd = child
        mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafePathError(f"refusing to delete {rel!r} under {root!r}: not a regular file "
                                  f"({_kind(mode)})", path=os.path.join(root, rel))
        os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def _open_folder(parent: int, seg: str, root: str, rel: str) -> int:
    """Open folder ``seg`` relative to the handle ``parent`` without following a link."""
    try:
        return os.open(seg, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise
        mode = os.stat(seg, dir_fd=parent, follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            raise UnsafePathError(f"refusing to delete under {rel!r} in {root!r}: the folder is a symbolic "
                                  f"link (deletions never follow links)", path=os.path.join(root, rel)) from None
        raise FileNotFoundError(errno.ENOENT, f"{rel!r} is not a folder", os.path.join(root, rel)) from None


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return kind
    return "not a regular file"


def _delete_rechecked(root: str, rel: str) -> None:  # pragma: no cover - platforms without dir_fd
    """The fallback: re-check, right before the deletion, that no folder on the way is a link."""
    path = os.path.join(root, *rel.split("/"))
    real_root = os.path.realpath(root)
    if os.path.realpath(os.path.dirname(path)) != os.path.join(real_root, *rel.split("/")[:-1]).rstrip(os.sep):
        raise UnsafePathError(f"refusing to delete {rel!r} under {root!r}: a folder on the way is a link",
                              path=path)
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise UnsafePathError(f"refusing to delete {rel!r} under {root!r}: not a regular file", path=path)
    os.unlink(path)


SCRATCH_PREFIX = "lakehouse-scratch-"
"""The name prefix of the library's own temporary folders (never a table's)."""


def make_scratch(purpose: str) -> str:
    """A new private temporary folder on local disk for the library's own scratch files (a spilled
    merge source), never inside a table.

    Args:
        purpose: a short word put in its name (e.g. ``"merge"``).

    Returns:
        Its absolute path (only this process's user may enter it).

    Example:
        >>> folder = make_scratch("doc")
        >>> os.path.basename(folder).startswith(SCRATCH_PREFIX + "doc-")
        True
        >>> remove_scratch(folder)
    """
    return tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{purpose}-")


def remove_scratch(path: str) -> None:
    """Remove a scratch folder made by :func:`make_scratch`, or one file inside it; missing is fine.

    Only such a folder (by its name; not a link) or a regular file directly inside it is removed:
    anything else is refused, so this never deletes a table's files.

    Args:
        path: the folder, or a file directly inside it.

    Raises:
        InvalidArgumentError: ``path`` is not a scratch folder or a file directly inside one.

    Example:
        >>> folder = make_scratch("doc")
        >>> open(os.path.join(folder, "x"), "wb").close()
        >>> remove_scratch(os.path.join(folder, "x")); os.listdir(folder)
        []
        >>> remove_scratch(folder); os.path.exists(folder)
        False
    """
    path = os.path.abspath(path)
    folder = path if os.path.basename(path).startswith(SCRATCH_PREFIX) else os.path.dirname(path)
    if not os.path.basename(folder).startswith(SCRATCH_PREFIX) or os.path.islink(folder):
        raise InvalidArgumentError(f"{path!r} is not a lakehouse scratch folder or a file in one", argument="path")
    if path == folder:
        shutil.rmtree(folder, ignore_errors=True)  # rmtree never follows a link inside the folder
        return
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.remove(path)
    except FileNotFoundError:
        pass

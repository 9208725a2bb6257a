"""Errors raised by lakehouse.

Every error derives from :class:`LakehouseError`; where a builtin exception fits, the error
inherits it too, so ``except FileNotFoundError`` keeps working::

    LakehouseError
    ├── TableNotFoundError        (also FileNotFoundError)
    ├── TableExistsError          (also FileExistsError)
    ├── VersionNotFoundError      (also LookupError)
    ├── SchemaMismatchError       (also ValueError)
    ├── ColumnNotFoundError       (also KeyError)
    ├── InvalidFilterError        (also ValueError)
    ├── ConstraintViolationError  (also ValueError)
    ├── DuplicateMatchError       (also ValueError)  - a merge target row matched by several source rows
    ├── InvalidTableError         (also ValueError)  - bad arguments for a table (properties, partitioning)
    ├── InvalidDataError          (also TypeError)   - data that is not Arrow-shaped
    ├── InvalidDataFileError      (also ValueError)  - a DataFile record given to commit_files
    ├── RetentionError            (also ValueError)  - a vacuum/log retention below the table's minimum
    ├── InvalidArgumentError      (also ValueError)  - an argument value a function does not take
    │   └── ArgumentTypeError     (also TypeError)   - an argument of the wrong type
    ├── CommitError
    │   ├── CommitConflictError
    │   ├── CommitStateUnknownError
    │   └── CommitTooLargeError   (also ValueError)  - a log entry larger than one storage request
    ├── CorruptLogError
    │   └── UnsupportedFormatError
    ├── UnsafeStorageError
    └── UnsafePathError           (also PermissionError) - a local path that leaves the table root
                                                           through a symbolic link, or is not a regular file

Example:
    >>> import lakehouse as lh
    >>> issubclass(lh.TableNotFoundError, FileNotFoundError)
    True
"""

from __future__ import annotations

import re
import reprlib

__all__ = [
    "ArgumentTypeError",
    "ColumnNotFoundError",
    "CommitConflictError",
    "CommitError",
    "CommitStateUnknownError",
    "CommitTooLargeError",
    "ConstraintViolationError",
    "CorruptLogError",
    "DuplicateMatchError",
    "InvalidArgumentError",
    "InvalidDataError",
    "InvalidDataFileError",
    "InvalidFilterError",
    "InvalidTableError",
    "LakehouseError",
    "RetentionError",
    "SchemaMismatchError",
    "TableExistsError",
    "TableNotFoundError",
    "UnsafePathError",
    "UnsafeStorageError",
    "UnsupportedFormatError",
    "VersionNotFoundError",
]  # and redact_uri, a helper: __all__ holds the error tree only

_USER_INFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")
"""``scheme://`` then user info up to its last ``@`` before the host: where a URL carries credentials."""


def redact_uri(text: str) -> str:
    """``text`` with the user info (``user:password@``) of every URL in it replaced by ``***@``.

    URLs such as ``ftp://user:password@host/t`` log in with their user info; lakehouse shows a URI
    (in an error, a ``repr``, the command line's output) only through this function. It takes a URI
    or any text holding URIs, and is idempotent.

    Args:
        text: a URI, or a message that may hold URIs.

    Returns:
        The text with every URL's user info masked.

    Example:
        >>> redact_uri("ftp://user:s3cr%40t@host:21/data/t")
        'ftp://***@host:21/data/t'
        >>> redact_uri("no table at 's3://bucket/t' (from http://u:p@proxy/)")
        "no table at 's3://bucket/t' (from http://***@proxy/)"
    """
    return _USER_INFO.sub(r"\g<scheme>***@", text)


class LakehouseError(Exception):
    """Root of every error raised by lakehouse. Its message never shows the user info
    (``user:password@``) of a URL: see :func:`redact_uri`."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_uri(a) if isinstance(a, str) else a for a in args))


class TableNotFoundError(LakehouseError, FileNotFoundError):
    """No table exists at ``uri``."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"no lakehouse table at {redact_uri(uri)!r}")
        self.uri = redact_uri(uri)
        """The URI, with any user info masked."""

    def __str__(self) -> str:
        return str(self.args[0])


class TableExistsError(LakehouseError, FileExistsError):
    """A table already exists at ``uri``."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"a lakehouse table already exists at {redact_uri(uri)!r}")
        self.uri = redact_uri(uri)
        """The URI, with any user info masked."""

    def __str__(self) -> str:
        return str(self.args[0])


class VersionNotFoundError(LakehouseError, LookupError):
    """The requested version (or point in time) is not in the table's log."""

    def __init__(self, message: str, *, version: int | None = None) -> None:
        super().__init__(message)
        self.version = version


class SchemaMismatchError(LakehouseError, ValueError):
    """Data does not match the table schema; ``.column`` names the column at fault."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class ColumnNotFoundError(LakehouseError, KeyError):
    """A filter or projection names a column the table does not have."""

    def __init__(self, column: str, *, available: list[str] | None = None) -> None:
        msg = f"unknown column {column!r}"
        if available is not None:
            msg += f"; the table has {available}"
        super().__init__(msg)
        self.column = column

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidFilterError(LakehouseError, ValueError):
    """A filter could not be understood (bad operator, bad value, bad shape)."""


class ConstraintViolationError(LakehouseError, ValueError):
    """Data breaks a rule of the write: a CHECK or NOT NULL constraint, or an overwrite's ``filter``.

    ``.constraint`` names the constraint (``"NOT NULL"`` for a non-nullable column), ``.expression``
    is a CHECK constraint's expression text, ``.column`` the non-nullable column, and ``.rows`` a
    sample (at most 5) of the offending rows as dicts; the message shows the sample too.
    """

    def __init__(self, message: str, *, constraint: str | None = None, expression: str | None = None,
                 column: str | None = None, rows: list[dict[str, object]] | None = None) -> None:
        if rows:
            message = f"{message}; offending rows (up to 5): {_sample_text(rows)}"
        super().__init__(message)
        self.constraint = constraint
        self.expression = expression
        self.column = column
        self.rows = list(rows or [])


class DuplicateMatchError(LakehouseError, ValueError):
    """A merge found a target row matched by several source rows (SQL MERGE refuses to pick one);
    nothing was written. ``.path`` is the target data file, ``.position`` the row's position in it,
    ``.key`` the row's join-key values and ``.matches`` how many source rows matched it."""

    def __init__(self, message: str, *, path: str | None = None, position: int | None = None,
                 key: dict[str, object] | None = None, matches: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.position = position
        self.key = dict(key or {})
        self.matches = matches


def _sample_text(rows: list[dict[str, object]]) -> str:
    """Rows for a message, with long values shortened."""
    r = reprlib.Repr()
    r.maxlist, r.maxdict, r.maxstring, r.maxother, r.maxlevel = 5, 32, 60, 60, 3
    return r.repr(rows)


class InvalidTableError(LakehouseError, ValueError):
    """Invalid table definition: a bad property, partition column or schema."""


class InvalidDataError(LakehouseError, TypeError):
    """Data is not Arrow-shaped (no Table, RecordBatch, reader or ``__arrow_c_stream__``)."""


class InvalidDataFileError(LakehouseError, ValueError):
    """A :class:`~lakehouse.DataFile` record given to ``Table.commit_files`` that the log cannot hold
    (a path outside the table root, a value of the wrong type, a count out of range); ``.path`` is
    the record's path."""

    def __init__(self, message: str, *, path: object = None) -> None:
        super().__init__(message)
        self.path = path


class RetentionError(LakehouseError, ValueError):
    """A retention for vacuum or log clean-up that is invalid or below the table's minimum."""


class InvalidArgumentError(LakehouseError, ValueError):
    """An argument has a value the function does not take (an unknown mode, a naive ``as_of``,
    ``version`` together with ``as_of``, ...); the message names the argument, ``.argument`` too
    where it is known."""

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class ArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument of the wrong type (``version="3"``, ``as_of=0``, ``progress=1``, ...)."""


class CommitError(LakehouseError):
    """A commit did not land."""


class CommitConflictError(CommitError):
    """A concurrent commit conflicts with this one; ``.version`` is the winning version;
    ``.live_paths`` the data files this commit adds that the table already holds (never deleted)."""

    def __init__(self, message: str, *, version: int | None = None,
                 live_paths: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.version = version
        self.live_paths = live_paths


class CommitStateUnknownError(CommitError):
    """The storage failed in a way that leaves the commit's fate unknown.

    The data files are kept; re-open the table to see whether ``.version`` holds the commit
    with id ``.commit_id``.
    """

    def __init__(self, message: str, *, version: int | None = None, commit_id: str | None = None) -> None:
        super().__init__(message)
        self.version = version
        self.commit_id = commit_id


class CommitTooLargeError(CommitError, ValueError):
    """A log entry is larger than the storage can create in one conditional request; nothing was
    committed. Commit fewer files at a time."""


class CorruptLogError(LakehouseError):
    """A log entry or checkpoint is damaged or invalid; ``.path`` names the file."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class UnsupportedFormatError(CorruptLogError):
    """A log entry or checkpoint needs a newer lakehouse than this one."""


class UnsafeStorageError(LakehouseError):
    """The filesystem cannot create a file atomically only-if-absent, so commits are unsafe."""


class UnsafePathError(LakehouseError, PermissionError):
    """A path under a table root on local disk was refused: its resolved path leaves the table
    root's (a symbolic link to another table or folder) and the storage option
    ``"lakehouse.allow_symlinks"`` is not set, or a deletion would go through a symbolic link or
    remove something that is not a regular file. ``.path`` names the path."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

"""lakehouse: a versioned table on any fsspec filesystem, in pure Python.

An append-only transaction log, snapshot isolation and hive-partitioned Parquet files; write Arrow
data, read any past version back.

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> t = lh.write_table("memory://doc-init", pa.table({"id": [1, 2, 3]}))
    >>> t.delete([("id", "=", 2)])
    1
    >>> t.to_arrow(version=0).num_rows, t.to_arrow().num_rows
    (3, 2)
"""

from ._version import __version__
from .alter import Alter
from .commit import CommitOutcome
from .errors import (
    ArgumentTypeError,
    ColumnNotFoundError,
    CommitConflictError,
    CommitError,
    CommitStateUnknownError,
    CommitTooLargeError,
    ConstraintViolationError,
    CorruptLogError,
    DuplicateMatchError,
    InvalidArgumentError,
    InvalidDataError,
    InvalidDataFileError,
    InvalidFilterError,
    InvalidTableError,
    LakehouseError,
    RetentionError,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
    UnsafePathError,
    UnsafeStorageError,
    UnsupportedFormatError,
    VersionNotFoundError,
)
from .inspect import Inspect
from .merge import MergeResult, TableMerger
from .probe import StorageReport, check_storage
from .properties import PropertyWarning
from .snapshot import Snapshot
from .table import Commit, Table
from .tasks import DataFile, FileTask, read_task
from .transaction import Transaction
from .write import write_files
from .writer import write_table

__all__ = [
    "Alter",
    "ArgumentTypeError",
    "ColumnNotFoundError",
    "Commit",
    "CommitConflictError",
    "CommitError",
    "CommitOutcome",
    "CommitStateUnknownError",
    "CommitTooLargeError",
    "ConstraintViolationError",
    "CorruptLogError",
    "DataFile",
    "DuplicateMatchError",
    "FileTask",
    "Inspect",
    "InvalidArgumentError",
    "InvalidDataError",
    "InvalidDataFileError",
    "InvalidFilterError",
    "InvalidTableError",
    "LakehouseError",
    "MergeResult",
    "PropertyWarning",
    "RetentionError",
    "SchemaMismatchError",
    "Snapshot",
    "StorageReport",
    "Table",
    "TableExistsError",
    "TableMerger",
    "TableNotFoundError",
    "Transaction",
    "UnsafePathError",
    "UnsafeStorageError",
    "UnsupportedFormatError",
    "VersionNotFoundError",
    "__version__",
    "check_storage",
    "read_task",
    "write_files",
    "write_table",
]

"""Creating a table: the first metadata of a new table, and the check that its folder holds nothing
the table does not own (format §3, §5.1, §16).

Example:
    >>> import pyarrow as pa
    >>> new_metadata(pa.schema([("a", pa.int64()), ("p", pa.int32())]), ["p"], None).partition_by
    ('p',)
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from . import maintenance
from .arguments import check_names
from .clock import now_ms
from .errors import InvalidTableError
from .evolution import check_partition_name, new_metadata_schema
from .log import Metadata
from .properties import check_properties
from .schema import check_partition_columns
from .storage import Storage

__all__ = ["check_empty", "new_metadata"]


def new_metadata(schema: pa.Schema, partition_by: Sequence[str] | None,
                 properties: Mapping[str, Any] | None) -> Metadata:
    """The metadata of a new table: schema and partitioning checked, properties validated with their
    defaults (constraints only through ``Table.alter.add_constraint``), field ids and physical names
    given (format §5.7).

    Args:
        schema: the table schema.
        partition_by: the partition columns (None: none).
        properties: table properties (format §16).

    Returns:
        The metadata, with a new table id.

    Raises:
        InvalidTableError: no columns, a bad partition column or property.

    Example:
        >>> import pyarrow as pa
        >>> new_metadata(pa.schema([("a", pa.int64())]), None, {"owner": "ops"}).properties["owner"]
        'ops'
    """
    if not isinstance(schema, pa.Schema):
        raise InvalidTableError(f"schema must be a pyarrow.Schema, got {type(schema).__name__}")
    if len(schema) == 0:
        raise InvalidTableError("a table needs at least one column")
    parts = check_partition_columns(schema, check_names(partition_by, "partition_by") or ())
    for name in parts:
        check_partition_name(name)  # its folder names must fit the filesystem (format §5.1)
    meta = Metadata(table_id=str(uuid.uuid4()), schema=schema, partition_by=parts,
                    properties=check_properties(properties, defaults=True),
                    created_time=now_ms())
    return new_metadata_schema(meta)  # every field gets a field id and a physical name (format §5.7)


def check_empty(storage: Storage, allow_non_empty: bool) -> None:
    """Refuse to create a table where files the format does not name as its own already are (§3).

    Args:
        storage: the table's storage.
        allow_non_empty: skip the check (vacuum never deletes such files anyway).

    Raises:
        InvalidTableError: the folder holds a file the table would not own.

    Example:
        >>> check_empty(Storage.from_uri("memory://doc-check-empty"), False)
    """
    if allow_non_empty:
        return
    foreign = maintenance.foreign_files(storage)
    if foreign:
        raise InvalidTableError(
            f"{storage.display_uri!r} already holds files that are not part of a lakehouse table "
            f"(e.g. {foreign[0]!r}); "
            f"create the table in an empty folder, or pass allow_non_empty=True (vacuum never deletes them)")

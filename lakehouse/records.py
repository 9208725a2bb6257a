"""The ``DataFile`` records ``Table.commit_files`` is given, checked before anything is written or
deleted (format §3, §5.3, §7).

Example:
    >>> data_files([])
    []
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .datafile import DataFile
from .errors import ArgumentTypeError, InvalidDataFileError
from .log import AddFile
from .state import TableState, check_adds

__all__ = ["checked_adds", "data_files", "live_paths"]


def checked_adds(files: Sequence[Any], base: TableState) -> list[AddFile]:
    """The add actions of ``files`` for ``base``, checked before anything is written (format §3, §5.3, §7).

    Args:
        files: the records given to ``Table.commit_files``.
        base: the state they are committed onto (its metadata types their values).

    Returns:
        One add action per record.

    Raises:
        InvalidDataFileError: a record is not a :class:`DataFile` or is invalid; it names the record and field.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-records-adds", pa.table({"a": [1]}))
        >>> files = lh.write_files(t.uri, pa.table({"a": [2, 3]}))
        >>> [a.num_rows for a in checked_adds(files, t.snapshot().state)]
        [2]
    """
    adds = []
    for f in files:
        if not isinstance(f, DataFile):
            raise InvalidDataFileError(f"commit_files takes DataFile records, got {type(f).__name__}")
        if isinstance(f.version, bool) or not isinstance(f.version, int) or f.version < 0:
            raise InvalidDataFileError(f"data file {f.path!r}: version must be a version number, got {f.version!r}",
                                       path=f.path)
        if not isinstance(f.partition_values, Mapping) or not isinstance(f.stats, Mapping):
            raise InvalidDataFileError(f"data file {f.path!r}: partition_values and stats must be mappings",
                                       path=f.path)
        try:
            adds.append(f.to_add(base.metadata))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidDataFileError(str(exc), path=f.path) from None
    fault = check_adds(adds, base.metadata)
    if fault is not None:
        raise InvalidDataFileError(f"data file {fault[0]!r}: {fault[1]}", path=fault[0])
    return adds


def live_paths(files: Sequence[Any], base: TableState) -> list[str]:
    """Paths of ``files`` that are live at ``base``.

    Adding one again would write an entry every reader refuses (format §10.2), and deleting it after a
    refusal would lose rows.

    Args:
        files: the records given to ``Table.commit_files``.
        base: the state they are committed onto.

    Returns:
        The live paths among them, sorted.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> t = lh.write_table("memory://doc-records-live", pa.table({"a": [1]}))
        >>> files = lh.write_files(t.uri, pa.table({"a": [2]}))
        >>> live_paths(files, t.snapshot().state)
        []
    """
    given = [f.path for f in files if isinstance(f, DataFile) and isinstance(f.path, str)]
    if not given:
        return []
    live = base.files.column("path")
    return sorted(set(live.filter(pc.is_in(live, pa.array(given, pa.string()))).to_pylist()))


def data_files(files: Any) -> list[DataFile]:
    """``files`` as a list of :class:`DataFile` records.

    Args:
        files: the ``files`` argument of ``Table.commit_files``: an iterable of records.

    Returns:
        The records, as a new list.

    Raises:
        ArgumentTypeError: ``files`` is not an iterable of :class:`DataFile` records.

    Example:
        >>> data_files([])
        []
        >>> data_files("a.parquet")
        Traceback (most recent call last):
        ...
        lakehouse.errors.ArgumentTypeError: files must be a list of DataFile records, got str
    """
    if isinstance(files, str | bytes | Mapping | DataFile) or not hasattr(files, "__iter__"):
        raise ArgumentTypeError(f"files must be a list of DataFile records, got {type(files).__name__}",
                                argument="files")
    out = list(files)
    for f in out:
        if not isinstance(f, DataFile):
            raise ArgumentTypeError(f"files must hold DataFile records (from lakehouse.write_files), got "
                                    f"{type(f).__name__}", argument="files")
    return out

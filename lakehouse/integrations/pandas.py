"""pandas: a snapshot's rows as a ``pandas.DataFrame`` (the ``pandas`` extra).

Example:
    >>> import lakehouse as lh, pyarrow as pa
    >>> from lakehouse.integrations.pandas import to_pandas
    >>> s = lh.write_table("memory://doc-int-pandas", pa.table({"a": [1, 2]})).snapshot()
    >>> to_pandas(s, filter=[("a", ">", 1)])["a"].tolist()  # doctest: +SKIP
    [2]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import ArrowSource, require

__all__ = ["to_pandas"]


def to_pandas(snapshot: ArrowSource, *, columns: Sequence[str] | None = None, filter: Any = None) -> Any:
    """Read ``snapshot`` into a pandas DataFrame: rows where ``filter`` is true, ``columns`` only.

    Args:
        snapshot: the pinned version to read.
        columns: the columns to return (None: all), as :meth:`lakehouse.Snapshot.to_arrow`.
        filter: DNF tuples, SQL-like text or a ``pyarrow.compute.Expression`` (None: every row).

    Returns:
        A ``pandas.DataFrame`` (pyarrow's default conversion of :meth:`lakehouse.Snapshot.to_arrow`).

    Raises:
        ImportError: pandas is not installed.
        ColumnNotFoundError: a column or a filter names an unknown column.
        InvalidFilterError: the filter is malformed.

    Example:
        >>> import lakehouse as lh, pyarrow as pa
        >>> s = lh.write_table("memory://doc-int-pandas2", pa.table({"a": [1, 2]})).snapshot()
        >>> to_pandas(s, columns=["a"]).shape  # doctest: +SKIP
        (2, 1)
    """
    require("pandas")
    return snapshot.to_arrow(columns=columns, filter=filter).to_pandas()

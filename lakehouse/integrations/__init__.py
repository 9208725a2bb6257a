"""Engine adapters: pandas, Polars, DuckDB and Dask (layer 9, imported lazily).

Each adapter turns what :class:`lakehouse.Snapshot` gives (Arrow tables, record batches, a
``pyarrow.dataset.Dataset``, picklable file tasks) into an engine's objects, using only public
names of ``lakehouse``. Nothing below layer 9 imports them at module level: ``Snapshot.to_pandas``,
``to_polars`` and ``to_duckdb`` import their adapter when called, so the engines stay optional.

Example:
    >>> require("pyarrow").__name__
    'pyarrow'
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.dataset as ds

__all__ = ["ArrowSource", "require"]


class ArrowSource(Protocol):
    """What an adapter reads from: a pinned version (``lakehouse.Snapshot`` is one).

    The adapters name this protocol instead of importing ``Snapshot``, so they depend on nothing
    of the layers that call them (``Snapshot.to_pandas`` imports its adapter when called).
    """

    @property
    def schema(self) -> pa.Schema:
        """The table schema of the version."""
        ...

    def to_arrow(self, *, columns: Any = None, filter: Any = None) -> pa.Table:
        """The rows of the version where ``filter`` is true, ``columns`` only.

        Args:
            columns: the columns to return (None: all).
            filter: DNF tuples, SQL-like text or a ``pyarrow.compute.Expression`` (None: every row).

        Returns:
            The rows, as a ``pyarrow.Table``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> source: ArrowSource = lh.write_table("memory://doc-source-arrow", pa.table({"a": [1]})).snapshot()
            >>> source.to_arrow(columns=["a"]).num_rows
            1
        """
        ...

    def to_pyarrow_dataset(self, *, filter: Any = None) -> ds.Dataset:
        """A lazy dataset of the version's files (pruned by ``filter`` if given).

        Args:
            filter: DNF tuples, SQL-like text or a ``pyarrow.compute.Expression`` (None: every file).

        Returns:
            A ``pyarrow.dataset.Dataset``.

        Example:
            >>> import lakehouse as lh, pyarrow as pa
            >>> source: ArrowSource = lh.write_table("memory://doc-source-ds", pa.table({"a": [1]})).snapshot()
            >>> source.to_pyarrow_dataset().count_rows()
            1
        """
        ...


def require(module: str, extra: str | None = None) -> Any:
    """Import an optional dependency, or raise ``ImportError`` naming the extra that installs it.

    Args:
        module: the module to import (``"pandas"``, ``"polars"``, ``"duckdb"``).
        extra: the ``lakehouse-format`` extra that installs it (default: ``module``).

    Returns:
        The imported module.

    Raises:
        ImportError: the module is not installed.

    Example:
        >>> require("pyarrow").__name__
        'pyarrow'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"this needs {module}: pip install 'lakehouse-format[{extra or module}]'") from exc

"""Column mapping and scan plans: how a read over the table's columns becomes a read of the data files.

:class:`ColumnMapping` (format.md §5.7: data files and the files table use physical names, users see
current names) and :func:`scan_plan` / :class:`ScanPlan` (what a Parquet scan may push down and what
is evaluated on the rows read: terms on floating-point columns, which Parquet statistics get wrong
around NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..expr.bridge import referenced_columns, rename_fields
from ..expr.prune import conjuncts
from ..schema import is_identity, logical_schema, physical_name, physical_path, read_schema, relabel

__all__ = ["ColumnMapping", "ScanPlan", "scan_plan"]


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """What reading needs to know about a schema's column mapping (format.md §5.7).

    Attributes:
        schema: the table schema, with its mapping metadata.
        mapped: some physical name differs from its field's name.
        read_schema: the schema under physical names, for scanning the data files.
        by_physical: top-level physical name -> the field as users see it.
        metadata: the schema-level metadata.

    Example:
        >>> ColumnMapping.of(pa.schema([("a", pa.int64())])).mapped
        False
    """

    schema: pa.Schema
    """The table schema, with its mapping metadata."""
    mapped: bool
    """Some physical name differs from its field's name."""
    read_schema: pa.Schema
    """The schema under physical names, for scanning the data files."""
    by_physical: dict[str, pa.Field]
    """Top-level physical name -> the field as users see it."""
    metadata: dict[bytes, bytes] | None
    """The schema-level metadata."""

    @classmethod
    def of(cls, schema: pa.Schema) -> ColumnMapping:
        """The mapping of a table schema.

        Args:
            schema: the table schema, with its column-mapping metadata.

        Returns:
            Its :class:`ColumnMapping`.

        Example:
            >>> ColumnMapping.of(pa.schema([("a", pa.int64())])).read_schema.names
            ['a']
        """
        logical = logical_schema(schema)
        return cls(schema=schema, mapped=not is_identity(schema), read_schema=read_schema(schema),
                   by_physical={physical_name(f): logical.field(i) for i, f in enumerate(schema)},
                   metadata=logical.metadata)

    def physical(self, expr: pc.Expression | None) -> pc.Expression | None:
        """A filter over the table's columns as a filter over the data files' (physical) columns.

        Args:
            expr: a filter over the table's columns, or None.

        Returns:
            The same filter over the physical columns (``expr`` itself when nothing is renamed).

        Example:
            >>> ColumnMapping.of(pa.schema([("a", pa.int64())])).physical(pc.field("a") > 1)
            <pyarrow.compute.Expression (a > 1)>
        """
        if expr is None or not self.mapped:
            return expr
        return rename_fields(expr, lambda path: physical_path(self.schema, path))

    def physical_columns(self, columns: list[str] | None) -> list[str] | None:
        """Column names as the data files name them.

        Args:
            columns: names of the table's columns, or None (all).

        Returns:
            Their physical names (``columns`` itself when nothing is renamed).

        Example:
            >>> ColumnMapping.of(pa.schema([("a", pa.int64())])).physical_columns(["a"])
            ['a']
        """
        if columns is None or not self.mapped:
            return columns
        return [physical_name(self.schema.field(c)) for c in columns]

    def logical(self, data: Any) -> Any:
        """A table or batch read under physical names, under the table's names (nested ones too).

        Args:
            data: a ``pyarrow.Table`` or ``RecordBatch`` read from data files.

        Returns:
            The same data, relabelled with the table's names and field metadata.

        Example:
            >>> ColumnMapping.of(pa.schema([("a", pa.int64())])).logical(pa.table({"a": [1]})).column_names
            ['a']
        """
        if not self.mapped:
            return data
        return relabel(data, pa.schema([self.by_physical[n] for n in data.schema.names], metadata=self.metadata))


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """What to push into a Parquet scan and what to filter after reading (see :func:`scan_plan`).

    Attributes:
        read: columns to read (the wanted ones plus those the residual filter needs).
        pushed: filter pushed into the scan.
        residual: filter applied to the rows after reading.
        columns: columns to return.

    Example:
        >>> plan = ScanPlan(["a", "f"], None, pc.field("f") > 1, ["a"])
        >>> plan.finish(pa.table({"a": [1, 2], "f": [0.5, 1.5]})).to_pylist()
        [{'a': 2}]
    """

    read: list[str] | None
    """Columns to read (the wanted ones plus those the residual filter needs)."""
    pushed: pc.Expression | None
    """Filter pushed into the scan."""
    residual: pc.Expression | None
    """Filter applied to the rows after reading."""
    columns: list[str] | None
    """Columns to return."""

    def finish(self, table: pa.Table) -> pa.Table:
        """Apply the residual filter and the projection to the rows read.

        Args:
            table: the rows read with :attr:`read` and :attr:`pushed`.

        Returns:
            The rows the residual filter keeps, :attr:`columns` only.

        Example:
            >>> ScanPlan(None, None, pc.field("f") > 1, None).finish(pa.table({"f": [0.5, 2.0]})).num_rows
            1
        """
        if self.residual is not None:
            table = table.filter(self.residual)
        if self.columns is not None and table.column_names != self.columns:
            table = table.select(self.columns)
        return table


def _no_floats(expr: pc.Expression, floats: set[str]) -> bool:
    try:
        return not (referenced_columns(expr) & floats)
    except Exception:
        return False


def scan_plan(schema: pa.Schema, columns: list[str] | None, expr: pc.Expression | None) -> ScanPlan:
    """Split ``expr`` (over ``schema``, the logical schema) into what a scan may push down and the rest.

    pyarrow's scan skips row groups by Parquet statistics, which ignore NaN: a row group whose
    min == max == 1.5 is dropped for ``f != 1.5`` although its NaN rows match. Terms on
    floating-point columns are therefore evaluated after reading, on the rows themselves.

    Args:
        schema: the table's (logical) schema.
        columns: the columns to return (None: all).
        expr: the bound filter (None: every row).

    Returns:
        The :class:`ScanPlan`: columns to read, filter to push, residual filter, columns to return.

    Example:
        >>> p = scan_plan(pa.schema([("f", pa.float64()), ("i", pa.int64())]), ["i"], pc.field("f") > 1)
        >>> p.read, p.pushed, p.residual is not None
        (['i', 'f'], None, True)
    """
    if expr is None:
        return ScanPlan(columns, None, None, columns)
    floats = {f.name for f in schema if pa.types.is_floating(f.type)}
    if _no_floats(expr, floats):
        return ScanPlan(columns, expr, None, columns)
    pushed: pc.Expression | None = None
    for term in conjuncts(expr):
        if _no_floats(term, floats):
            pushed = term if pushed is None else pushed & term
    read = None if columns is None else columns + sorted(referenced_columns(expr) - set(columns))
    return ScanPlan(read, pushed, expr, columns)


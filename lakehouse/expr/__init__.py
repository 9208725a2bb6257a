"""Filters and expressions: from what a caller writes to what a scan, a prune or a CHECK needs.

The modules, most basic first (each imports only those before it; sqlglot is imported lazily):

- :mod:`~lakehouse.expr.literals`: a filter value to a scalar of its column's type (DNF and SQL).
- :mod:`~lakehouse.expr.bridge`: pyarrow expression internals — an expression read as a tree of
  :class:`~lakehouse.expr.bridge.Field` / ``Literal`` / ``Call`` nodes and built back, column
  renaming, referenced columns, exact integer literals, and the one ``evaluate``.
- :mod:`~lakehouse.expr.sql`: SQL-like filter text (``"day = 7 and id < 100"``) via sqlglot.
- :mod:`~lakehouse.expr.dnf`: any filter (expression, DNF tuples, SQL text) to an expression
  bound to a schema and checked (``to_expression``).
- :mod:`~lakehouse.expr.prune`: which data files may hold matching rows (min/max/null counts and
  partition values).
- :mod:`~lakehouse.expr.codec`: the canonical text of an expression (format §16.2), for CHECK
  constraints and a ``FileTask``'s filter.

Import from the submodules; this package re-exports nothing.
"""

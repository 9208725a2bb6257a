"""Plain helpers shared by the test modules (no lakehouse internals: public API + pyarrow only)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import fsspec
import pyarrow as pa

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("part", pa.int32()),
        ("value", pa.float64()),
        ("name", pa.string()),
    ]
)
LOG_DIR = "_lakehouse_log"


def make_data(
    ids: Iterable[int],
    part: int | Sequence[int | None] | None = 0,
    *,
    schema: pa.Schema = SCHEMA,
) -> pa.Table:
    """Rows with the given ids; ``part`` is one value for all rows or one per row.

    value = id / 2 (null when id % 7 == 3), name = f"n{id}" (null when id % 5 == 4).
    """
    ids = list(ids)
    parts = list(part) if isinstance(part, (list, tuple)) else [part] * len(ids)
    assert len(parts) == len(ids)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "part": pa.array(parts, pa.int32()),
            "value": pa.array([None if i % 7 == 3 else i / 2 for i in ids], pa.float64()),
            "name": pa.array([None if i % 5 == 4 else f"n{i}" for i in ids], pa.string()),
        },
        schema=schema,
    )


NAN = "<NaN>"  # NaN != NaN; rows() puts this marker in its place so equal multisets compare equal


def _key(value: Any) -> tuple:
    if value is None:
        return (2, "")
    if value is NAN:
        return (1, "")
    return (0, value)


def rows(table: pa.Table | pa.RecordBatch) -> list[tuple]:
    """The rows of ``table`` as tuples in schema order, sorted (a canonical multiset)."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    cols = [c.to_pylist() for c in table.columns]
    cols = [[NAN if isinstance(v, float) and math.isnan(v) else v for v in c] for c in cols]
    out = list(zip(*cols, strict=True)) if cols else [()] * table.num_rows
    return sorted(out, key=lambda r: tuple(_key(v) for v in r))


def assert_same_rows(actual: pa.Table, expected: pa.Table, *, check_schema: bool = True) -> None:
    """Same rows as a multiset; same schema (field names, types; metadata ignored)."""
    if check_schema:
        assert actual.schema.equals(expected.schema), f"\n{actual.schema}\n!=\n{expected.schema}"
    else:
        assert actual.column_names == expected.column_names
    assert actual.num_rows == expected.num_rows, (actual.num_rows, expected.num_rows)
    assert rows(actual) == rows(expected)


def fs_and_root(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(uri)
    return fs, root.rstrip("/")


def log_files(uri: str) -> list[str]:
    """Base names in ``<root>/_lakehouse_log`` (sorted)."""
    fs, root = fs_and_root(uri)
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(f"{root}/{LOG_DIR}", detail=False))


def log_entry_path(uri: str, version: int) -> str:
    _, root = fs_and_root(uri)
    return f"{root}/{LOG_DIR}/{version:020d}.msgpack"


def checkpoint_versions(uri: str) -> set[int]:
    """Versions that have a checkpoint file in the log directory."""
    return {int(name[:20]) for name in log_files(uri) if "checkpoint" in name and name[:20].isdigit()}


def parquet_files(uri: str) -> list[str]:
    """Every data file (``*.parquet``) under the table root, relative to it."""
    fs, root = fs_and_root(uri)
    found = fs.find(root)
    out = []
    for p in found:
        rel = p[len(root) :].lstrip("/") if p.startswith(root) else p
        if rel.endswith(".parquet") and not rel.startswith(LOG_DIR):
            out.append(rel)
    return sorted(out)


class ScratchTable:
    """A context manager handing out ``self.table`` (set by a subclass's ``__init__``, at ``self.uri``)
    and removing the table's folder on exit: for property tests that build a table per example."""

    uri: str
    table: Any

    def __enter__(self) -> Any:
        return self.table

    def __exit__(self, *exc: object) -> None:
        fs, root = fsspec.core.url_to_fs(self.uri)
        if fs.exists(root):
            fs.rm(root, recursive=True)

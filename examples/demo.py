"""A tour of lakehouse: create, append, delete, overwrite part of a table, time travel, history.

Run it from the repository root with ``make demo`` (or ``.venv/bin/python examples/demo.py``).
It writes a table into ``./demo-table``, removing any previous one first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import lakehouse as lh

TABLE_DIR = Path("demo-table")

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("day", pa.int32()),
        ("name", pa.string()),
        ("value", pa.float64()),
    ]
)


def rows(ids: range, day: int, *, scale: float = 1.0) -> pa.Table:
    """Some rows for one day: ids, a name per id and a value derived from the id."""
    return pa.table(
        {
            "id": list(ids),
            "day": [day] * len(ids),
            "name": [f"item-{i}" for i in ids],
            "value": [i * scale for i in ids],
        },
        schema=SCHEMA,
    )


def show(title: str, table: pa.Table) -> None:
    """Print a small table sorted by (day, id), one row per line."""
    table = table.sort_by([("day", "ascending"), ("id", "ascending")])
    print(f"\n{title} ({table.num_rows} rows)")
    for row in table.to_pylist():
        print(f"  day={row['day']:<3} id={row['id']:<4} name={row['name']:<10} value={row['value']}")


def main() -> None:
    if TABLE_DIR.exists():
        shutil.rmtree(TABLE_DIR)
    uri = str(TABLE_DIR.resolve())

    # Version 0: an empty table with a schema, partitioned by day.
    t = lh.Table.create(uri, SCHEMA, partition_by=["day"])
    print(f"created {t.uri} at version {t.version}, partitioned by {t.partition_by}")

    # Appends: each returns the new version.
    v_first = t.append(pa.concat_tables([rows(range(0, 4), day=1), rows(range(4, 8), day=2)]))
    v_second = t.append(rows(range(8, 12), day=3))
    print(f"appended -> versions {v_first} and {v_second}")

    # Delete with a DNF filter (typed values): rows where the filter is true are removed.
    v_delete = t.delete([("value", "<", 2.0)])
    print(f"deleted value < 2.0 -> version {v_delete}")

    # Replace only day 2 with new rows; every new row must satisfy the filter.
    day_two = pc.field("day") == 2
    v_overwrite = t.overwrite(rows(range(100, 103), day=2, scale=0.5), filter=day_two)
    print(f"overwrote day 2 -> version {v_overwrite}")

    show(f"current table, version {t.version}", t.to_arrow())
    show("current table, day 2 only", t.to_arrow(filter=[("day", "=", 2)]))

    # Time travel: a snapshot is pinned to its version, whatever happens to the table later.
    old = t.snapshot(version=v_first)
    show(f"time travel to version {old.version} (committed {old.timestamp})", old.to_arrow())
    assert old.to_arrow().num_rows == 8
    assert t.to_arrow(version=v_second).num_rows == 12

    # ... or by point in time: the latest version committed at or before the given instant.
    # (Commit.timestamp is an aware UTC datetime; naive datetimes are refused.)
    history = t.history()
    delete_time = next(c.timestamp for c in history if c.version == v_delete)
    as_of = t.snapshot(as_of=delete_time)
    print(f"\nas of {delete_time.isoformat()} (the delete) the table was at version {as_of.version}")
    assert as_of.version == v_delete

    # One row per live data file, with partition values and column statistics.
    files = t.snapshot().files()
    print(f"\nlive data files at version {t.version}: {files.num_rows}")
    for f in files.select(["path", "num_rows"]).to_pylist():
        print(f"  {f['path']}  ({f['num_rows']} rows)")

    print("\nhistory (newest first)")
    for commit in history:
        print(f"  version {commit.version:<3} {commit.timestamp.isoformat()}  {commit.operation}")


if __name__ == "__main__":
    main()

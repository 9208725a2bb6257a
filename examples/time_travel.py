"""Time travel: read the table as it was yesterday and diff it with today's, row by row.

    python examples/time_travel.py                       # a demo table in a temporary folder
    python examples/time_travel.py URI [--as-of TIME] [--key id]

With a URI of an existing table, "yesterday" is 24 hours ago (or ``--as-of``, ISO 8601 with a time
zone) and rows are matched on ``--key``. Without one, the script builds a small table in a
temporary folder: yesterday's load, then today's changes (new orders, a cancelled one, a corrected
amount). Commits cannot be back-dated, so "yesterday" is simulated by an instant between
yesterday's last commit and today's first one. The diff is computed with Arrow joins on the key:
rows added, rows removed, and rows whose other columns changed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import lakehouse as lh

SCHEMA = pa.schema([("id", pa.int64()), ("customer", pa.string()), ("amount", pa.float64())])


def orders(ids: list[int], amounts: list[float]) -> pa.Table:
    return pa.table({"id": ids, "customer": [f"c{i % 3}" for i in ids], "amount": amounts}, schema=SCHEMA)


def build_demo(uri: str) -> tuple[lh.Table, dt.datetime]:
    """Yesterday's commits, an instant standing in for "yesterday", then today's commits."""
    t = lh.write_table(uri, orders([1, 2, 3], [10.0, 20.0, 30.0]))            # version 0
    t.append(orders([4, 5], [40.0, 50.0]))                                    # version 1
    yesterday = t.history(1)[0].timestamp + dt.timedelta(milliseconds=1)
    time.sleep(0.01)  # today's first commit lands clearly after that instant
    t.append(orders([6, 7], [60.0, 70.0]))                                    # today: two new orders
    t.delete([("id", "=", 2)])                                                # order 2 cancelled
    t.overwrite(orders([5], [55.0]), filter=[("id", "=", 5)])                 # order 5 corrected
    return t, yesterday


def diff(old: pa.Table, new: pa.Table, key: str) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(added, removed, changed): rows by key only in ``new``, only in ``old``, and in both but different."""
    added = new.join(old.select([key]), keys=key, join_type="left anti")
    removed = old.join(new.select([key]), keys=key, join_type="left anti")
    others = [c for c in new.column_names if c != key and c in old.column_names]
    both = new.join(old.rename_columns({c: f"{c}__old" for c in old.column_names if c != key}),
                    keys=key, join_type="inner")
    mask = None
    for c in others:
        differs = pc.fill_null(pc.not_equal(both[c], both[f"{c}__old"]), True)
        # two nulls are equal; one null and one value are not
        differs = pc.and_(differs, pc.invert(pc.and_(pc.is_null(both[c]), pc.is_null(both[f"{c}__old"]))))
        mask = differs if mask is None else pc.or_(mask, differs)
    changed = both.filter(mask) if mask is not None else both.slice(0, 0)
    return added.sort_by(key), removed.sort_by(key), changed.sort_by(key)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("uri", nargs="?", help="an existing table (default: a demo table in a temporary folder)")
    parser.add_argument("--as-of", help="yesterday's instant, ISO 8601 with a time zone (default: 24 hours ago)")
    parser.add_argument("--key", default="id", help="the column that identifies a row (default: id)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.uri is None:
            t, yesterday = build_demo(str(Path(tmp) / "orders"))
        else:
            t = lh.Table.open(args.uri)
            yesterday = (dt.datetime.fromisoformat(args.as_of) if args.as_of
                         else dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1))
        old = t.snapshot(as_of=yesterday)
        new = t.snapshot()
        added, removed, changed = diff(old.to_arrow(), new.to_arrow(), args.key)

        print(f"table: {t.uri}")
        print(f"yesterday: version {old.version} (as of {yesterday.isoformat()}), {old.to_arrow().num_rows} rows")
        print(f"today: version {new.version}, {new.to_arrow().num_rows} rows")
        print(f"rows added: {added.num_rows}  {added[args.key].to_pylist()}")
        print(f"rows removed: {removed.num_rows}  {removed[args.key].to_pylist()}")
        print(f"rows changed: {changed.num_rows}  {changed[args.key].to_pylist()}")
        for row in changed.to_pylist():
            before = {c[: -len("__old")]: v for c, v in row.items() if c.endswith("__old")}
            after = {c: row[c] for c in before}
            print(f"  {args.key}={row[args.key]}: {before} -> {after}")
        print("commits since yesterday:")
        for c in t.history():
            if c.version > old.version:
                print(f"  version {c.version} {c.operation}")


if __name__ == "__main__":
    main()

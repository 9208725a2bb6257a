"""Maintenance: compact small files, see what vacuum would delete, restore an old version.

    python examples/maintenance.py        # works on a table in a temporary folder

Many small appends make many small files; ``optimize`` compacts them (rows do not change, so it
never conflicts with concurrent appends). ``vacuum`` is a dry run by default: it lists the files no
version within the retention can read. ``restore`` commits a new version equal to an old one.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pyarrow as pa

import lakehouse as lh


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        uri = str(Path(tmp) / "events")
        t = lh.write_table(uri, pa.table({"id": [0], "day": [1]}), partition_by=["day"])
        for i in range(1, 12):
            t.append(pa.table({"id": [i], "day": [1 + i % 2]}))
        print(f"after 12 small commits: version {t.version}, {len(t.files())} files, {t.to_arrow().num_rows} rows")

        v = t.optimize(sort_by=["id"])
        print(f"optimize -> version {v}: {len(t.files())} files, {t.to_arrow().num_rows} rows")
        print(f"optimize again -> {t.optimize()} (nothing to do)")

        kept = t.vacuum()  # dry run, default retention of 7 days: the replaced files are too young
        print(f"vacuum dry run, 7-day retention: {len(kept)} files would be deleted")
        would = t.vacuum(retention=dt.timedelta(0), enforce_retention=False)  # still a dry run
        print(f"vacuum dry run, zero retention: {len(would)} files would be deleted")
        print(f"files still on storage: {sum(1 for _ in Path(uri).rglob('*.parquet'))}")

        t.delete([("day", "=", 1)])
        print(f"delete day=1 -> version {t.version}: {t.to_arrow().num_rows} rows")
        v = t.restore(version=v)
        print(f"restore the optimized version -> version {v}: {t.to_arrow().num_rows} rows, "
              f"operation {t.history(1)[0].operation!r}")
        print("history:", ", ".join(f"{c.version}:{c.operation}" for c in t.history(4)))


if __name__ == "__main__":
    main()

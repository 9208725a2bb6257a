"""Apply a change feed (CDC batches of inserts, updates and deletes) to a table with one atomic
merge per batch; a retried batch is applied exactly once, and every batch is a version to go back to.

    python examples/cdc_upsert.py
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pyarrow as pa

import lakehouse as lh


def apply_batch(table: lh.Table, batch: pa.Table, batch_number: int) -> lh.MergeResult:
    """One CDC batch (an ``op`` column: ins / upd / del) in one commit; idempotent per batch number."""
    return (table.merge(batch, on="id", app_transaction=("cdc-demo", batch_number))
                 .when_matched_delete(filter="source.op = 'del'")
                 .when_matched_update({"name": "source.name", "amount": "source.amount"})
                 .when_not_matched_insert({"id": "source.id", "name": "source.name", "amount": "source.amount"},
                                          filter="source.op <> 'del'")
                 .execute())


def main() -> None:
    uri = os.path.join(tempfile.gettempdir(), "cdc-demo-table")
    shutil.rmtree(uri, ignore_errors=True)
    table = lh.write_table(uri, pa.table({"id": pa.array([], pa.int64()), "name": pa.array([], pa.string()),
                                          "amount": pa.array([], pa.float64())}))
    batches = [
        pa.table({"id": [1, 2, 3], "name": ["ann", "bob", "cy"], "amount": [10.0, 20.0, 30.0],
                  "op": ["ins", "ins", "ins"]}),
        pa.table({"id": [2, 3, 4], "name": ["bob", None, "dee"], "amount": [25.0, None, 40.0],
                  "op": ["upd", "del", "ins"]}),
    ]
    for number, batch in enumerate(batches, start=1):
        result = apply_batch(table, batch, number)
        print(f"batch {number}: version {result.version}, +{result.num_inserted} ~{result.num_updated} "
              f"-{result.num_deleted}")
    again = apply_batch(table, batches[1], 2)  # a retry after a crash: already applied, skipped
    print(f"batch 2 again: version {again.version}, skipped={table.last_outcome.skipped}")
    print("now:", table.to_arrow().sort_by("id").to_pylist())
    print("after batch 1:", table.to_arrow(version=1).sort_by("id").column("id").to_pylist())


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Peak memory of writing a stream larger than the budget (issue 3: peak RSS under 1 GB).

Generates ``--gb`` GiB of Arrow data (the benchmark schema, partitioned by day) batch by batch,
never holding more than one batch, and appends it as one commit. Prints rows, Arrow bytes
streamed, files written, seconds and the process's peak RSS.

Usage: python benchmarks/stream_memory.py --gb 3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import numpy as np
import pyarrow as pa
from rss import peak_rss_bytes

import lakehouse as lh

BATCH = 500_000


def batches(total_bytes: int, schema: pa.Schema, sent: list[int]):
    rng = np.random.default_rng(0)
    start = 0
    while sent[0] < total_bytes:
        ids = np.arange(start, start + BATCH, dtype=np.int64)
        batch = pa.record_batch([
            pa.array(ids), pa.array(ids * 1000), pa.array([f"cat{i % 50}" for i in range(BATCH)]),
            pa.array(rng.random(BATCH)), pa.array([f"payload-{i:012d}" for i in ids]),
            pa.array((ids % 30).astype(np.int32)),
        ], schema=schema)
        sent[0] += batch.nbytes
        sent[1] += BATCH
        start += BATCH
        yield batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=3.0)
    args = parser.parse_args()
    schema = pa.schema([("id", pa.int64()), ("ts", pa.int64()), ("category", pa.string()),
                        ("value", pa.float64()), ("payload", pa.string()), ("day", pa.int32())])
    base = tempfile.mkdtemp(prefix="lh-stream-")
    try:
        sent = [0, 0]
        start = time.perf_counter()
        reader = pa.RecordBatchReader.from_batches(schema, batches(int(args.gb * (1 << 30)), schema, sent))
        table = lh.write_table(f"{base}/t", reader, partition_by=["day"])
        seconds = time.perf_counter() - start
        peak = peak_rss_bytes() / (1 << 20)
        print(f"rows={sent[1]:,} arrow_bytes={sent[0] / (1 << 30):.2f} GiB files={table.files().num_rows} "
              f"seconds={seconds:.1f} peak_rss={peak:.0f} MiB")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Open latency after N commits (issue 3: under 150 ms at 100k, never worse than 2x the 1k figure).

Each commit adds one file. The checkpoint sits at the last multiple of 100 at or below N - 99, so
an open replays about 100 entries: the worst case with the default checkpoint interval. Entries
are written straight into the log folder with the library's own encoder (real commits would spend
minutes in fsyncs at 100k); the bytes are the same a commit writes.

Usage: python benchmarks/open_after_commits.py 1000 10000 100000
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

import pyarrow as pa

import lakehouse as lh
from lakehouse.checkpoint import write_checkpoint
from lakehouse.log import AddFile, CommitInfo, LogEntry, encode_entry, entry_name
from lakehouse.storage import Storage


def _entry(v: int, ts: int) -> LogEntry:
    add = AddFile(path=f"day={v % 30}/part-{uuid.uuid4().hex}.parquet", size_bytes=1000, num_rows=10,
                  modification_time=ts, partition=(v % 30,), min={"id": v * 10}, max={"id": v * 10 + 9},
                  null_count={"id": 0})
    info = CommitInfo(id=str(uuid.uuid4()), timestamp=ts + v, operation="append", blind_append=True,
                      read_version=v - 1, lakehouse_version="bench")
    return LogEntry(version=v, commit=info, add=(add,))


def build(uri: str, n: int) -> int:
    """A table at version ``n``; returns the checkpoint version."""
    shutil.rmtree(uri, ignore_errors=True)
    schema = pa.schema([("id", pa.int64()), ("day", pa.int32())])
    table = lh.Table.create(uri, schema, partition_by=["day"])
    storage = Storage.from_uri(uri)
    state = table.snapshot().state
    checkpoint = ((n - 99) // 100) * 100
    pending = []
    for v in range(1, n + 1):
        entry = _entry(v, state.timestamp)
        with open(os.path.join(uri, entry_name(v)), "wb") as f:
            f.write(encode_entry(entry))
        pending.append(entry)
        if v == checkpoint:
            state = state.apply(pending)
            pending = []
            write_checkpoint(storage, state)
    return checkpoint


def main(sizes: list[int]) -> None:
    base = tempfile.mkdtemp(prefix="lh-open-")
    try:
        for n in sizes:
            uri = f"{base}/t{n}"
            checkpoint = build(uri, n)
            times = []
            for _ in range(30):
                start = time.perf_counter()
                table = lh.Table.open(uri)
                times.append(time.perf_counter() - start)
                assert table.version == n
            print(f"commits={n} checkpoint={checkpoint} replayed={n - checkpoint} "
                  f"open_median_ms={statistics.median(times) * 1000:.1f}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main([int(x) for x in sys.argv[1:]] or [1000, 10_000, 100_000])

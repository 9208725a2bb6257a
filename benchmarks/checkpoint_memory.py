#!/usr/bin/env python
"""Open and checkpoint a table of N live files in a fresh process (issue 3: 1M files under 1 GB).

The table is metadata-only: its checkpoint holds N file entries with partition values and
statistics (built in a first subprocess); a second, fresh process opens it and writes a new
checkpoint, and reports times and its peak RSS.

Usage: python benchmarks/checkpoint_memory.py --files 1000000
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
from rss import peak_rss_bytes

import lakehouse as lh
from lakehouse.checkpoint import write_checkpoint
from lakehouse.state import TableState, files_schema
from lakehouse.storage import Storage

SCHEMA = pa.schema([("id", pa.int64()), ("ts", pa.int64()), ("category", pa.string()),
                    ("value", pa.float64()), ("payload", pa.string()), ("day", pa.int32())])


def build(uri: str, n: int) -> None:
    table = lh.Table.create(uri, SCHEMA, partition_by=["day"])
    state = table.snapshot().state
    rng = np.random.default_rng(0)
    columns = []
    for f in files_schema(state.metadata):
        if f.name == "path":
            columns.append(pa.array([f"day={i % 30}/part-{i:032x}.parquet" for i in range(n)]))
        elif f.name == "modification_time":
            columns.append(pa.array(np.full(n, state.timestamp), pa.int64()).cast(f.type))
        elif pa.types.is_string(f.type):
            columns.append(pa.array([f"c{i % 50}" for i in range(n)]))
        elif pa.types.is_floating(f.type):
            columns.append(pa.array(rng.random(n)))
        else:
            columns.append(pa.array(rng.integers(0, 1000, n)).cast(f.type))
    files = pa.Table.from_arrays(columns, schema=files_schema(state.metadata))
    write_checkpoint(Storage.from_uri(uri), TableState(version=0, timestamp=state.timestamp,
                                                        protocol=state.protocol, metadata=state.metadata,
                                                        files_source=files))


def measure(uri: str) -> None:
    start = time.perf_counter()
    table = lh.Table.open(uri)
    opened = time.perf_counter()
    table.checkpoint()
    done = time.perf_counter()
    peak = peak_rss_bytes() / (1 << 20)
    print(f"files={table.files().num_rows:,} open={opened - start:.2f}s checkpoint={done - opened:.2f}s "
          f"peak_rss={peak:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--step", choices=["build", "measure"])
    parser.add_argument("--uri")
    args = parser.parse_args()
    if args.step == "build":
        build(args.uri, args.files)
        return
    if args.step == "measure":
        measure(args.uri)
        return
    base = tempfile.mkdtemp(prefix="lh-ckpt-")
    try:
        uri = f"{base}/t"
        for step in ("build", "measure"):
            subprocess.run([sys.executable, __file__, "--step", step, "--uri", uri, "--files", str(args.files)],
                           check=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

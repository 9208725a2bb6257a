"""Deterministic generated data for the benchmarks.

Every workload in ``benchmarks/`` runs on the same table, built here once per run in memory with a
seeded numpy generator, so the engines being compared see byte-for-byte the same input.

Columns (the schema of issue 2 / issue 3):

========  =======  ===========================================================
id        int64    0 .. N-1, ascending (so an id range is a contiguous slice)
ts        int64    milliseconds since epoch, ascending with small jitter
category  string   one of 50 values ``"category_00"`` .. ``"category_49"``
value     float64  standard normal
payload   string   random lowercase/digit text, 16..24 characters (mean 20)
day       int32    1 .. 30, uniform, independent of ``id`` (the partition column)
========  =======  ===========================================================

Everything is vectorised (no Python loop per row): 10M rows take a few seconds.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["NUM_CATEGORIES", "NUM_DAYS", "SCHEMA", "generate_table", "small_batch"]

NUM_CATEGORIES = 50
NUM_DAYS = 30
_TS_START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("ts", pa.int64()),
        pa.field("category", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("payload", pa.string()),
        pa.field("day", pa.int32()),
    ]
)

_CATEGORIES = pa.array([f"category_{i:02d}" for i in range(NUM_CATEGORIES)], pa.string())


def _payload(rng: np.random.Generator, n: int) -> pa.Array:
    """``n`` random strings of 16..24 characters, built straight from Arrow buffers."""
    lengths = rng.integers(16, 25, size=n, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = _ALPHABET[rng.integers(0, len(_ALPHABET), size=int(offsets[-1]), dtype=np.uint8)]
    if offsets[-1] < 2**31:
        return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])
    # More than 2 GiB of text: build a large_string and let Arrow split it into string chunks.
    big = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return big.cast(pa.string())


def _columns(rng: np.random.Generator, start: int, n: int) -> list[pa.Array]:
    ids = np.arange(start, start + n, dtype=np.int64)
    ts = _TS_START_MS + ids * 1000 + rng.integers(0, 1000, size=n, dtype=np.int64)
    category = _CATEGORIES.take(pa.array(rng.integers(0, NUM_CATEGORIES, size=n, dtype=np.int32)))
    value = rng.standard_normal(n)
    payload = _payload(rng, n)
    day = rng.integers(1, NUM_DAYS + 1, size=n, dtype=np.int32)
    return [pa.array(ids), pa.array(ts), category, pa.array(value), payload, pa.array(day)]


def generate_table(num_rows: int, *, seed: int = 42, chunk_rows: int = 1_000_000) -> pa.Table:
    """The benchmark table with ``num_rows`` rows, as chunks of at most ``chunk_rows`` rows.

    The same ``(num_rows, seed, chunk_rows)`` always gives the same table.
    """
    if num_rows < 0:
        raise ValueError("num_rows must be >= 0")
    rng = np.random.default_rng(seed)
    batches = []
    for start in range(0, num_rows, chunk_rows):
        n = min(chunk_rows, num_rows - start)
        batches.append(pa.RecordBatch.from_arrays(_columns(rng, start, n), schema=SCHEMA))
    return pa.Table.from_batches(batches, schema=SCHEMA)


def small_batch(index: int, num_rows: int = 100, *, seed: int = 7) -> pa.Table:
    """A small table for commit-heavy workloads: rows ``index * num_rows ..``, all in one day.

    One day per batch means one data file per commit on a table partitioned by ``day``.
    """
    rng = np.random.default_rng([seed, index])
    cols = _columns(rng, index * num_rows, num_rows)
    cols[-1] = pa.array(np.full(num_rows, index % NUM_DAYS + 1, dtype=np.int32))
    return pa.Table.from_arrays(cols, schema=SCHEMA)

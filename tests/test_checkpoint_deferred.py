"""Checkpoints are decoded in two steps: the state when a table is opened, the files table when a
reader first needs it. Both steps must give exactly what a full replay of the log gives."""

from __future__ import annotations

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

import lakehouse as lh
from lakehouse.checkpoint import MAGIC, read_pointer
from lakehouse.log import checkpoint_name
from lakehouse.replay import load_state
from lakehouse.storage import Storage


def _table(uri: str) -> lh.Table:
    t = lh.Table.create(uri, pa.schema([("id", pa.int64()), ("p", pa.int32())]), partition_by=["p"])
    for i in range(6):
        t.append(pa.table({"id": [i, i + 100], "p": pa.array([i % 2, 2], pa.int32())}))
    t.delete([("id", "=", 3)])
    t.checkpoint()
    for i in range(6, 9):
        t.append(pa.table({"id": [i], "p": pa.array([i % 2], pa.int32())}))
    return t


def test_deferred_files_equal_a_full_replay_under_concurrent_first_use(table_uri):
    _table(table_uri)
    storage = Storage.from_uri(table_uri)
    assert read_pointer(storage) == 7
    replayed = load_state(storage, 10)  # version 10 is past the checkpoint: entries 8..10 replayed on it
    fresh = lh.Table.open(table_uri)
    snap = fresh.snapshot()
    with ThreadPoolExecutor(8) as pool:  # first use from many threads at once: one build, one answer
        results = list(pool.map(lambda _: snap.files().sort_by("path"), range(8)))
    assert all(r.equals(results[0]) for r in results)
    assert results[0].num_rows == replayed.files.num_rows
    assert sorted(fresh.to_arrow().column("id").to_pylist()) == [0, 1, 2, 4, 5, 6, 7, 8, 100, 101, 102, 103,
                                                                 104, 105]


def test_checkpoint_with_a_valid_checksum_but_broken_batches_is_a_typed_error(local_uri):
    _table(local_uri)
    path = f"{local_uri}/{checkpoint_name(7)}"
    with open(path, "rb") as f:
        data = f.read()
    payload = bytearray(data[12:])
    mid = len(payload) // 3  # inside the record batches, far from the footer and schema
    payload[mid:mid + 64] = b"\xff" * 64
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<I", zlib.crc32(payload)) + payload)
    try:
        t = lh.Table.open(local_uri)
        assert t.version == 10
        got = t.to_arrow()  # may decode (the damage can land in a padding byte) or fail typed
    except lh.CorruptLogError as exc:
        assert checkpoint_name(7) in str(exc)
    else:
        assert got.num_rows == 14

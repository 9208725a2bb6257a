"""Several OS processes committing to one table; pinned snapshots under concurrent writes."""

from __future__ import annotations

import multiprocessing as mp
import threading
import traceback

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import SCHEMA, assert_same_rows, make_data, rows

import lakehouse as lh

N_PROCS = 4
N_APPENDS = 15
ROWS_PER_APPEND = 3


def _ids(writer: int, seq: int) -> list[int]:
    base = writer * 100_000 + seq * 100
    return [base + k for k in range(ROWS_PER_APPEND)]


def _append_worker(uri: str, writer: int, barrier, results) -> None:
    """Runs in a spawned process: append N_APPENDS uniquely identifiable row sets, report the versions."""
    try:
        t = lh.Table.open(uri)
        barrier.wait(timeout=60)
        for seq in range(N_APPENDS):
            v = t.append(make_data(_ids(writer, seq), part=writer))
            results.put(("ok", writer, seq, v))
    except BaseException:
        results.put(("error", writer, -1, traceback.format_exc()))


def _overwrite_delete_worker(uri: str, rounds: int, barrier, results) -> None:
    try:
        t = lh.Table.open(uri)
        barrier.wait(timeout=60)
        for r in range(rounds):
            t.overwrite(make_data(range(10_000 + r * 10, 10_000 + r * 10 + 10), part=[r % 3] * 10))
            t.delete([("part", "=", r % 3), ("id", "<", 10_000 + r * 10 + 5)])
            t.append(make_data(range(20_000 + r, 20_001 + r), part=None))
        results.put(("ok", t.version))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def test_concurrent_appends_from_several_processes(local_uri):
    t = lh.Table.create(local_uri, SCHEMA, partition_by=["part"])
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(N_PROCS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_append_worker, args=(local_uri, w, barrier, results)) for w in range(N_PROCS)
    ]
    for p in procs:
        p.start()
    acks = []
    errors = []
    for _ in range(N_PROCS * N_APPENDS):
        msg = results.get(timeout=240)
        if msg[0] == "error":
            errors.append(msg[3])
            break
        acks.append(msg[1:])
    for p in procs:
        p.join(timeout=60)
    assert not errors, errors[0]
    assert all(p.exitcode == 0 for p in procs)

    total = N_PROCS * N_APPENDS
    assert len(acks) == total
    versions = sorted(v for _, _, v in acks)
    assert versions == list(range(1, total + 1)), "each acknowledged append got its own version"

    t.refresh()
    assert t.version == total
    hist = t.history()
    assert [c.version for c in hist] == list(range(total, -1, -1)), "versions are contiguous 0..N"

    expected = make_data(
        [i for w in range(N_PROCS) for s in range(N_APPENDS) for i in _ids(w, s)],
        part=[w for w in range(N_PROCS) for _ in range(N_APPENDS * ROWS_PER_APPEND)],
    )
    got = lh.Table.open(local_uri).to_arrow()
    assert_same_rows(got, expected)  # every row exactly once, nothing else
    ids = got.column("id").to_pylist()
    assert len(ids) == len(set(ids))

    # each append is visible from the version it was acknowledged with, and not before
    for writer, seq, v in acks[:: max(1, total // 12)]:
        flt = pc.field("id").isin(_ids(writer, seq))
        assert t.to_arrow(version=v, filter=flt).num_rows == ROWS_PER_APPEND
        assert t.to_arrow(version=v - 1, filter=flt).num_rows == 0
        assert t.to_arrow(version=v).num_rows == v * ROWS_PER_APPEND


def _pinned_reads(t: lh.Table, version: int, expected: pa.Table, stop: threading.Event, failures: list):
    s = t.snapshot(version=version)
    reads = 0
    while not stop.is_set() or reads < 3:
        try:
            assert s.version == version
            got = s.to_arrow()
            assert rows(got) == rows(expected)
            assert rows(s.to_arrow(filter=[("part", "=", 1)])) == rows(expected.filter(pc.field("part") == 1))
        except BaseException as e:
            failures.append(e)
            return
        reads += 1


def test_pinned_snapshot_while_another_handle_overwrites_and_deletes(table_uri):
    writer = lh.Table.create(table_uri, SCHEMA, partition_by=["part"])
    base = make_data(range(30), part=[i % 3 for i in range(30)])
    writer.append(base)
    reader = lh.Table.open(table_uri)
    pinned = reader.snapshot()
    assert pinned.version == 1
    pinned_files = pinned.files()

    stop = threading.Event()
    failures: list = []
    th = threading.Thread(target=_pinned_reads, args=(reader, 1, base, stop, failures))
    th.start()
    try:
        for r in range(5):
            writer.overwrite(make_data(range(100 + r, 103 + r), part=r % 3))
            writer.delete([("part", "=", r % 3)])
            writer.overwrite(make_data(range(200, 204), part=1), filter=[("part", "=", 1)])
            with writer.transaction() as tx:
                tx.delete([("id", ">", 200)])
                tx.append(make_data(range(300, 302), part=None))
    finally:
        stop.set()
        th.join(timeout=120)
    assert not failures, failures[0]

    assert writer.version == 21
    assert pinned.version == 1
    assert_same_rows(pinned.to_arrow(), base)
    assert pinned.files().equals(pinned_files)
    assert_same_rows(reader.snapshot(version=1).to_arrow(), base)
    assert reader.version == 1  # the reader handle did not move by itself
    assert reader.refresh() == 21
    assert_same_rows(
        reader.to_arrow(),
        pa.concat_tables([make_data([200], part=1), make_data(range(300, 302), part=None)]),
    )


@pytest.mark.slow
def test_pinned_snapshot_while_another_process_writes(local_uri):
    t = lh.Table.create(local_uri, SCHEMA, partition_by=["part"])
    base = make_data(range(30), part=[i % 3 for i in range(30)])
    t.append(base)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    proc = ctx.Process(target=_overwrite_delete_worker, args=(local_uri, 6, barrier, results))
    proc.start()
    s = t.snapshot()
    barrier.wait(timeout=60)
    stop = threading.Event()
    failures: list = []
    th = threading.Thread(target=_pinned_reads, args=(t, 1, base, stop, failures))
    th.start()
    msg = results.get(timeout=240)
    stop.set()
    th.join(timeout=120)
    proc.join(timeout=60)
    assert msg[0] == "ok", msg[1]
    assert not failures, failures[0]
    assert_same_rows(s.to_arrow(), base)
    assert t.refresh() == 1 + 6 * 3

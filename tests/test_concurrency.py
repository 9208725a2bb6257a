"""Several OS processes committing to one table; pinned snapshots under concurrent writes."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import threading
import time
import traceback
import uuid

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from helpers import SCHEMA, assert_same_rows, make_data, parquet_files, rows

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


def _partition_worker(uri: str, writer: int, rounds: int, barrier, results) -> None:
    """Deletes and overwrites confined to partition ``writer``: they never truly conflict with the others."""
    try:
        t = lh.Table.open(uri)
        barrier.wait(timeout=60)
        for r in range(rounds):
            base = writer * 100_000 + r * 100
            t.append(make_data(range(base, base + 10), part=writer))
            t.delete([("part", "=", writer), ("id", "<", base + 5)])
            t.overwrite(make_data([base + 50], part=writer), filter=[("part", "=", writer), ("id", ">=", base + 8)])
        results.put(("ok", writer))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _expected_partition(writer: int, rounds: int) -> list[int]:
    ids: list[int] = []
    for r in range(rounds):
        base = writer * 100_000 + r * 100
        ids += list(range(base, base + 10))
        ids = [i for i in ids if not i < base + 5]
        ids = [i for i in ids if not i >= base + 8] + [base + 50]
    return sorted(ids)


def test_non_conflicting_deletes_and_overwrites_from_several_processes(local_uri):
    n_procs, rounds = 3, 6
    t = lh.Table.create(local_uri, SCHEMA, partition_by=["part"])
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n_procs)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_partition_worker, args=(local_uri, w, rounds, barrier, results)) for w in range(n_procs)
    ]
    for p in procs:
        p.start()
    msgs = [results.get(timeout=240) for _ in range(n_procs)]
    for p in procs:
        p.join(timeout=60)
    errors = [m[1] for m in msgs if m[0] == "error"]
    assert not errors, errors[0]
    assert t.refresh() == n_procs * rounds * 3
    assert [c.version for c in t.history()] == list(range(n_procs * rounds * 3, -1, -1))
    got = t.to_arrow()
    for w in range(n_procs):
        ids = sorted(got.filter(pc.field("part") == w).column("id").to_pylist())
        assert ids == _expected_partition(w, rounds), w
    assert got.num_rows == sum(len(_expected_partition(w, rounds)) for w in range(n_procs))


def test_concurrent_appends_from_several_processes(local_uri):
    t = lh.Table.create(local_uri, SCHEMA, partition_by=["part"])
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(N_PROCS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_append_worker, args=(local_uri, w, barrier, results)) for w in range(N_PROCS)]
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


# --------------------------------------------------------------------------- optimistic concurrency


def _referenced_files(uri: str) -> set[str]:
    t = lh.Table.open(uri)
    out: set[str] = set()
    for v in range(t.version + 1):
        out |= set(t.snapshot(version=v).files().column("path").to_pylist())
    return out


@pytest.fixture
def three_parts(table_uri):
    t = lh.Table.create(table_uri, SCHEMA, partition_by=["part"])
    base = make_data(range(30), part=[i % 3 for i in range(30)])
    t.append(base)
    return t, lh.Table.open(table_uri), base


def test_concurrent_blind_appends_both_land(three_parts):
    a, b, base = three_parts
    with a.transaction() as tx:
        tx.append(make_data(range(100, 103), part=1))
        assert b.append(make_data(range(200, 203), part=1)) == 2
    assert a.version == 3
    expected = pa.concat_tables([base, make_data(range(100, 103), part=1), make_data(range(200, 203), part=1)])
    assert_same_rows(lh.Table.open(a.uri).to_arrow(), expected)


def test_delete_rebases_over_an_append_outside_its_filter(three_parts):
    a, b, base = three_parts
    with a.transaction() as tx:
        tx.delete([("part", "=", 1)])
        b.append(make_data(range(200, 203), part=0))
    assert a.version == 3
    expected = pa.concat_tables([base.filter(pc.field("part") != 1), make_data(range(200, 203), part=0)])
    assert_same_rows(lh.Table.open(a.uri).to_arrow(), expected)


def test_delete_conflicts_with_an_append_matching_its_filter(three_parts):
    a, b, base = three_parts
    with pytest.raises(lh.CommitConflictError) as info, a.transaction() as tx:
        tx.delete([("part", "=", 1)])
        b.append(make_data(range(200, 203), part=1))
    assert info.value.version == 2
    assert_same_rows(lh.Table.open(a.uri).to_arrow(), pa.concat_tables([base, make_data(range(200, 203), part=1)]))
    assert lh.Table.open(a.uri).version == 2


def test_delete_conflicts_with_a_concurrent_delete_of_the_same_files(three_parts):
    a, b, base = three_parts
    with pytest.raises(lh.CommitConflictError) as info, a.transaction() as tx:
        tx.delete([("part", "=", 0), ("id", "<", 10)])  # rewrites the part=0 file
        b.delete([("part", "=", 0)])  # removes that same file
    assert info.value.version == 2
    assert_same_rows(lh.Table.open(a.uri).to_arrow(), base.filter(pc.field("part") != 0))
    # the file the losing writer rewrote is cleaned up
    assert set(parquet_files(a.uri)) == _referenced_files(a.uri)


def test_overwrite_where_conflicts_with_a_delete_of_files_it_read(three_parts):
    a, b, base = three_parts
    with pytest.raises(lh.CommitConflictError), a.transaction() as tx:
        tx.overwrite(make_data(range(300, 302), part=2), filter=[("part", "=", 2)])
        b.delete([("part", "=", 2), ("id", ">", 20)])
    assert_same_rows(
        lh.Table.open(a.uri).to_arrow(),
        base.filter((pc.field("part") != 2) | (pc.field("id") <= 20)),
    )
    assert set(parquet_files(a.uri)) == _referenced_files(a.uri)


def test_app_transaction_race_applies_once(three_parts):
    """Two writers race with the same (app_id, version): the data lands exactly once."""
    a, b, _ = three_parts
    try:
        with a.transaction(app_transaction=("job", 1)) as tx:
            tx.append(make_data(range(100, 103), part=1))
            assert b.append(make_data(range(100, 103), part=1), app_transaction=("job", 1)) == 2
    except lh.CommitConflictError:
        pass
    t = lh.Table.open(a.uri)
    assert t.app_version("job") == 1
    assert t.to_arrow(filter=pc.field("id") >= 100).num_rows == 3
    assert t.version == 2


# --------------------------------------------------------------------------- storage faults


class FlakyFS(MemoryFileSystem):
    """An in-memory filesystem without atomic create-if-absent, whose log writes can be made to fail."""

    protocol = "lhflaky"
    store: dict = {}  # noqa: RUF012
    pseudo_dirs = [""]  # noqa: RUF012
    fail: str | None = None  # "after": write, then raise; "before": raise without writing

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, str):
            path = path.removeprefix("lhflaky://")
        return super()._strip_protocol(path)

    def pipe_file(self, path, value, mode="overwrite", **kwargs):
        how = FlakyFS.fail
        if how and "_lakehouse_log/" in path and path.endswith(".msgpack"):
            FlakyFS.fail = None
            if how == "after":
                super().pipe_file(path, value, mode=mode, **kwargs)
                raise TimeoutError("injected: the write landed but the reply was lost")
            raise ConnectionError("injected: the connection dropped")
        return super().pipe_file(path, value, mode=mode, **kwargs)


fsspec.register_implementation("lhflaky", FlakyFS, clobber=True)
UNSAFE_OK = {"lakehouse.unsafe_single_writer": True}


@pytest.fixture
def flaky_uri():
    uri = f"lhflaky://t-{uuid.uuid4().hex}"
    FlakyFS.fail = None
    yield uri
    FlakyFS.fail = None
    fs = FlakyFS()
    root = FlakyFS._strip_protocol(uri)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_filesystem_without_atomic_create_is_refused(flaky_uri):
    with pytest.raises(lh.UnsafeStorageError):
        lh.Table.create(flaky_uri, SCHEMA)
    with pytest.raises(lh.UnsafeStorageError):
        lh.write_table(flaky_uri, make_data(range(3)))
    assert not FlakyFS().exists(f"{FlakyFS._strip_protocol(flaky_uri)}/_lakehouse_log/{0:020d}.msgpack")
    # explicit opt-in for a single writer
    t = lh.Table.create(flaky_uri, SCHEMA, storage_options=UNSAFE_OK)
    t.append(make_data(range(3)))
    assert_same_rows(lh.Table.open(flaky_uri, storage_options=UNSAFE_OK).to_arrow(), make_data(range(3)))
    with pytest.raises(lh.UnsafeStorageError):
        lh.Table.open(flaky_uri).append(make_data(range(3, 4)))
    assert lh.Table.open(flaky_uri, storage_options=UNSAFE_OK).version == 1


def test_commit_whose_reply_was_lost_is_recognised(flaky_uri):
    t = lh.Table.create(flaky_uri, SCHEMA, storage_options=UNSAFE_OK)
    t.append(make_data(range(3)))
    FlakyFS.fail = "after"
    v = t.append(make_data(range(3, 6)))
    assert FlakyFS.fail is None, "the fault was not injected"
    assert v == 2
    fresh = lh.Table.open(flaky_uri, storage_options=UNSAFE_OK)
    assert fresh.version == 2, "the commit must not be appended twice"
    assert_same_rows(fresh.to_arrow(), make_data(range(6)))


def test_commit_with_unknown_outcome_raises_and_keeps_data_files(flaky_uri):
    t = lh.Table.create(flaky_uri, SCHEMA, storage_options=UNSAFE_OK)
    t.append(make_data(range(3)))
    n_files = len(parquet_files(flaky_uri))
    FlakyFS.fail = "before"
    with pytest.raises(lh.CommitStateUnknownError) as info:
        t.append(make_data(range(3, 6)))
    assert info.value.commit_id
    assert len(parquet_files(flaky_uri)) == n_files + 1, "data files must be kept when the outcome is unknown"
    fresh = lh.Table.open(flaky_uri, storage_options=UNSAFE_OK)
    assert fresh.version == 1
    assert_same_rows(fresh.to_arrow(), make_data(range(3)))


# --------------------------------------------------------------------------- clock skew


def test_commit_timestamps_stay_monotonic_when_the_clock_goes_back(table_uri, monkeypatch):
    t = lh.Table.create(table_uri, SCHEMA)
    t.append(make_data(range(1)))
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 3600)
    monkeypatch.setattr(time, "time_ns", lambda: int((real_time() - 3600) * 1e9))
    t.append(make_data(range(1, 2)))
    t.append(make_data(range(2, 3)))
    monkeypatch.undo()
    hist = t.history()
    stamps = [c.timestamp for c in reversed(hist)]
    assert all(b > a for a, b in itertools.pairwise(stamps)), stamps
    for c in hist:
        assert t.snapshot(as_of=c.timestamp).version == c.version


def test_blind_append_rebases_over_a_concurrent_overwrite(three_parts):
    a, b, _ = three_parts
    with a.transaction() as tx:
        tx.append(make_data(range(100, 102), part=2))
        b.overwrite(make_data(range(500, 503), part=0))
    assert a.version == 3
    expected = pa.concat_tables([make_data(range(500, 503), part=0), make_data(range(100, 102), part=2)])
    assert_same_rows(lh.Table.open(a.uri).to_arrow(), expected)

"""Vacuum, log clean-up, restore and optimize (issue 5), on local disk, memory and S3.

Time passing is simulated by handing ``now_ms`` to the maintenance functions (the public methods
use the real clock); file ages come from the storage's own modification times.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import time
import uuid

import pyarrow.parquet as pq
import pytest
from helpers import SCHEMA, make_data, rows

import lakehouse as lh
from lakehouse import maintenance
from lakehouse.storage import Storage

DAY_MS = 24 * 3600 * 1000


def _later(days: float) -> int:
    return int(time.time() * 1000 + days * DAY_MS)


def _table(uri: str, **kw) -> lh.Table:
    return lh.Table.create(uri, SCHEMA, partition_by=["part"], **kw)


def _data_files(uri: str) -> set[str]:
    s = Storage.from_uri(uri)
    return {rel for rel, _ in maintenance._listed_files(s)}


# -- vacuum ------------------------------------------------------------------------------------
def test_vacuum_is_a_dry_run_by_default_and_refuses_short_retention(table_uri):
    t = _table(table_uri)
    t.append(make_data(range(5), 1))
    t.overwrite(make_data(range(5, 8), 1))
    before = _data_files(table_uri)
    assert t.vacuum() == []  # nothing is older than 7 days
    with pytest.raises(lh.RetentionError, match="vacuum_min_retention_seconds"):
        t.vacuum(retention=dt.timedelta(hours=1))
    with pytest.raises(lh.RetentionError, match="timedelta"):
        t.vacuum(retention=3600)  # type: ignore[arg-type]
    listed = t.vacuum(retention=dt.timedelta(0), enforce_retention=False)  # dry run
    assert len(listed) == 1 and _data_files(table_uri) == before
    assert rows(t.to_arrow(version=1)) == rows(make_data(range(5), 1))


def test_vacuum_keeps_every_file_a_retained_version_reads(table_uri):
    t = _table(table_uri)
    storage = Storage.from_uri(table_uri)
    t.append(make_data(range(5), 1))           # v1
    t.append(make_data(range(5, 10), 2))       # v2
    t.delete([("part", "=", 1)])               # v3: removes v1's file
    t.overwrite(make_data(range(20, 22), 3))   # v4: removes v2's file
    # 1 day later with a 2-day window every version is retained: nothing goes
    assert maintenance.vacuum(storage, t._state, retention=dt.timedelta(days=2), enforce_retention=False,
                              now_ms=_later(1)) == []
    # 3 days later the window holds only v4: the files of v1 and v2 go, v4's stays
    gone = maintenance.vacuum(storage, t._state, retention=dt.timedelta(days=2), enforce_retention=False,
                              now_ms=_later(3), dry_run=False)
    assert len(gone) == 2
    assert rows(t.to_arrow()) == rows(make_data(range(20, 22), 3))
    assert set(t.files().column("path").to_pylist()) == _data_files(table_uri)


def test_vacuum_keeps_what_as_of_can_reach_within_the_window(table_uri):
    t = _table(table_uri)
    storage = Storage.from_uri(table_uri)
    t.append(make_data(range(3), 1))
    t.overwrite(make_data(range(3, 6), 1))
    # the window starts after both commits: the newest version at its start (v2) is retained, v1 not
    gone = maintenance.vacuum(storage, t._state, retention=dt.timedelta(days=1), enforce_retention=False,
                              now_ms=_later(1.5), dry_run=False)
    assert len(gone) == 1
    assert rows(t.to_arrow()) == rows(make_data(range(3, 6), 1))
    with pytest.raises(lh.VersionNotFoundError, match="vacuum"):
        t.restore(1)


def test_vacuum_deletes_old_orphans_but_not_young_ones_nor_hidden_or_log_files(local_uri):
    t = _table(local_uri)
    t.append(make_data(range(3), 1))
    os.makedirs(f"{local_uri}/part=9", exist_ok=True)
    old, young = f"{local_uri}/part=9/part-{'a' * 32}.parquet", f"{local_uri}/part=9/part-{'b' * 32}.parquet"
    for p in (old, young):
        pq.write_table(make_data(range(2), 9).drop_columns(["part"]), p)
    hidden = f"{local_uri}/_scratch/keep.bin"
    os.makedirs(os.path.dirname(hidden))
    with open(hidden, "wb") as f:
        f.write(b"x")
    long_ago = time.time() - 10 * 24 * 3600
    for p in (old, hidden):
        os.utime(p, (long_ago, long_ago))
    assert t.vacuum() == [f"part=9/part-{'a' * 32}.parquet"]
    assert t.vacuum(dry_run=False) == [f"part=9/part-{'a' * 32}.parquet"]
    assert not os.path.exists(old) and os.path.exists(young) and os.path.exists(hidden)
    assert rows(t.to_arrow()) == rows(make_data(range(3), 1))
    assert t.vacuum(dry_run=False) == []


def test_vacuum_honours_the_table_minimum_property(table_uri):
    t = _table(table_uri, properties={"vacuum_min_retention_seconds": "60"})
    t.append(make_data(range(2), 1))
    assert t.vacuum(retention=dt.timedelta(minutes=2)) == []
    with pytest.raises(lh.RetentionError):
        t.vacuum(retention=dt.timedelta(seconds=59))


# -- log clean-up ------------------------------------------------------------------------------
def test_cleanup_log_removes_covered_entries_and_old_versions_become_unreachable(table_uri):
    t = _table(table_uri)
    storage = Storage.from_uri(table_uri)
    for i in range(5):
        t.append(make_data(range(i * 10, i * 10 + 3), i % 2))   # v1..v5
    t.checkpoint()                                              # at v5
    t.append(make_data(range(100, 102), 1))                     # v6
    expected = {v: rows(t.to_arrow(version=v)) for v in (5, 6)}
    # nothing is older than the window: nothing goes
    assert maintenance.cleanup_log(storage, t._state, retention=dt.timedelta(days=30)) == 0
    removed = maintenance.cleanup_log(storage, t._state, retention=dt.timedelta(days=30), now_ms=_later(31))
    assert removed == 5  # v0..v4; v5 is the checkpoint's own entry and stays
    fresh = lh.Table.open(table_uri)
    assert {v: rows(fresh.to_arrow(version=v)) for v in (5, 6)} == expected
    with pytest.raises(lh.VersionNotFoundError, match="cleaned up"):
        fresh.to_arrow(version=2)
    assert [c.version for c in fresh.history()] == [6, 5]
    assert fresh.append(make_data([7], 0)) == 7
    assert maintenance.cleanup_log(storage, fresh._state, retention=dt.timedelta(days=30), now_ms=_later(31)) == 0


def test_cleanup_log_without_a_checkpoint_removes_nothing(table_uri):
    t = _table(table_uri)
    storage = Storage.from_uri(table_uri)
    t.append(make_data(range(3), 1))
    assert maintenance.cleanup_log(storage, t._state, retention=dt.timedelta(days=1), enforce_retention=False,
                                   now_ms=_later(5)) == 0
    with pytest.raises(lh.RetentionError, match="log_min_retention_seconds"):
        t.cleanup_log(retention=dt.timedelta(days=1))
    assert rows(lh.Table.open(table_uri).to_arrow(version=0)) == []


# -- restore -----------------------------------------------------------------------------------
def test_restore_to_a_version_and_to_a_time(table_uri):
    t = _table(table_uri)
    t.append(make_data(range(5), 1))                          # v1
    between = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.01)
    t.delete([("id", "<", 2)])                                # v2 (rewrites)
    t.append(make_data(range(10, 12), 2))                     # v3
    v1 = rows(t.to_arrow(version=1))
    assert t.restore(1) == 4
    assert rows(t.to_arrow()) == v1
    assert t.history(1)[0].operation == "restore"
    assert rows(t.to_arrow(version=3)) != v1  # history is kept: later versions still read
    assert t.restore(as_of=between) == 5
    assert rows(lh.Table.open(table_uri).to_arrow()) == v1
    assert t.restore(0) == 6 and t.to_arrow().num_rows == 0
    with pytest.raises(ValueError):
        t.restore()
    with pytest.raises(lh.VersionNotFoundError):
        t.restore(99)


# -- optimize ----------------------------------------------------------------------------------
def test_optimize_compacts_small_files_per_partition_and_keeps_rows(table_uri):
    t = _table(table_uri)
    for i in range(6):
        t.append(make_data(range(i * 10, i * 10 + 5), [i % 2] * 5))
    t.append(make_data(range(100, 103), [None] * 3))
    before = rows(t.to_arrow())
    version_before = t.version
    assert len(t.files()) == 7
    v = t.optimize()
    assert v == version_before + 1
    files = t.files()
    assert len(files) == 3  # one per partition (0, 1 and null); the lone null file was not touched
    assert rows(t.to_arrow()) == before
    assert rows(t.to_arrow(version=version_before)) == before  # old files still there
    assert t.optimize() is None
    assert t.history(1)[0].operation == "optimize"
    assert set(_data_files(table_uri)) >= set(files.column("path").to_pylist())


def test_optimize_respects_target_size_filter_and_sort(table_uri):
    t = _table(table_uri)
    for i in range(4):
        t.append(make_data(range(40 - i * 10, 45 - i * 10), [0] * 5))
        t.append(make_data(range(100 + i, 101 + i), [1]))
    before = rows(t.to_arrow())
    assert t.optimize(target_file_size=1) is None  # every file is already "big"
    assert t.optimize(filter=[("part", "=", 1)]) is not None
    per_part = t.files().group_by("partition.part").aggregate([("path", "count")]).to_pylist()
    assert {r["partition.part"]: r["path_count"] for r in per_part} == {0: 4, 1: 1}
    assert t.optimize(sort_by=["id"]) is not None
    assert len(t.files(filter=[("part", "=", 0)])) == 1
    ids = t.to_arrow(filter=[("part", "=", 0)]).column("id").to_pylist()
    assert ids == sorted(ids)
    assert rows(t.to_arrow()) == before
    with pytest.raises(lh.ColumnNotFoundError):
        t.optimize(sort_by=["nope"])
    with pytest.raises(lh.InvalidTableError):
        t.optimize(target_file_size=0)


def test_optimize_rebases_over_appends_and_conflicts_only_with_removal_of_its_inputs(table_uri):
    t = _table(table_uri)
    for i in range(3):
        t.append(make_data(range(i * 10, i * 10 + 3), [0] * 3))
    stale = t._state
    storage = Storage.from_uri(table_uri)
    other = lh.Table.open(table_uri)
    other.append(make_data(range(50, 52), [0] * 2))       # a concurrent append: no conflict
    result = maintenance.optimize(storage, stale, target_file_size=1 << 30)
    assert result is not None and result.version == 5
    assert len(lh.Table.open(table_uri).to_arrow()) == 11
    # now a concurrent delete removes one of optimize's inputs: a real conflict, its files are removed
    for i in range(2):
        t.append(make_data(range(200 + i * 10, 203 + i * 10), [1] * 3))
    t.refresh()
    stale = t._state
    other.refresh()
    other.delete([("id", "=", 200)])
    files_before = _data_files(table_uri)
    with pytest.raises(lh.CommitConflictError, match="removed a file"):
        maintenance.optimize(storage, stale, target_file_size=1 << 30, filter=None)
    assert _data_files(table_uri) == files_before
    assert 200 not in lh.Table.open(table_uri).to_arrow().column("id").to_pylist()


def _appender(uri: str, me: int, n: int, out) -> None:
    t = lh.Table.open(uri)
    acked = []
    for i in range(n):
        acked.append((t.append(make_data([me * 1000 + i], [i % 2])), me * 1000 + i))
    out.put(acked)


def test_optimize_while_other_processes_append_loses_nothing(local_uri):
    t = _table(local_uri)
    t.append(make_data(range(3), [0, 1, 0]))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_appender, args=(local_uri, w, 15, out)) for w in (1, 2)]
    for p in procs:
        p.start()
    optimized, conflicts = 0, 0
    deadline = time.monotonic() + 60
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        try:
            optimized += t.optimize() is not None
        except lh.CommitConflictError:
            conflicts += 1
        time.sleep(0.05)
    acked = [a for _ in procs for a in out.get(timeout=60)]
    for p in procs:
        p.join(60)
    final = lh.Table.open(local_uri)
    ids = sorted(final.to_arrow().column("id").to_pylist())
    assert ids == sorted([0, 1, 2] + [i for _, i in acked]), "an append was lost or duplicated"
    assert conflicts == 0  # appends never remove files, so optimize never really conflicts with them
    print(f"\noptimize during appends: {len(acked)} appends acknowledged, {optimized} optimize commits, "
          f"{conflicts} conflicts, final version {final.version}")


def test_reading_a_vacuumed_version_is_a_typed_error(local_uri):
    t = _table(local_uri)
    storage = Storage.from_uri(local_uri)
    t.append(make_data(range(3), 1))
    t.overwrite(make_data(range(3, 5), 1))
    maintenance.vacuum(storage, t._state, retention=dt.timedelta(0), enforce_retention=False, dry_run=False,
                       now_ms=_later(1))
    with pytest.raises(lh.LakehouseError):
        t.to_arrow(version=1)



def test_cleanup_log_removes_stale_temp_files_of_crashed_writers(local_uri):
    # a writer killed between creating its temp file and publishing it leaves the temp file behind
    # (storage.put_if_absent's ".tmp-<hex>", storage.overwrite's "<name>.<hex>.tmp"): cleanup_log
    # removes those older than the retention; young ones (a writer at work) and other names stay
    t = lh.write_table(local_uri, make_data(range(10)))
    log_dir = os.path.join(local_uri, "_lakehouse_log")
    old = [f".tmp-{uuid.uuid4().hex}", f"_last_checkpoint.{uuid.uuid4().hex}.tmp",
           f"00000000000000000000.checkpoint.{uuid.uuid4().hex}.tmp"]
    young = [f".tmp-{uuid.uuid4().hex}"]
    other = [".tmp-notes", f"{uuid.uuid4().hex}.tmp.bak"]
    month_ago = time.time() - 31 * 86400
    for name in old + young + other:
        with open(os.path.join(log_dir, name), "wb") as f:
            f.write(b"partial")
        if name not in young:
            os.utime(os.path.join(log_dir, name), (month_ago, month_ago))
    assert t.cleanup_log() == 0  # nothing to cover: the one entry is young
    left = set(os.listdir(log_dir))
    assert not left & set(old)
    assert set(young + other) <= left
    assert lh.Table.open(local_uri).to_arrow().num_rows == 10

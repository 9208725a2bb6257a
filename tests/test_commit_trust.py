"""Commits that must never turn into lost, duplicated or misread rows (issue 13 items 2, 4, 5, 7, 22).

- ``Table.commit_files`` checks every ``DataFile`` record before anything is written or deleted
  (format §3, §5.3, §7) and never deletes outside the table root (or a live file).
- An idempotent write that loses the race to a duplicate of itself is skipped, whatever its kind
  (format §12), and ``Table.last_outcome`` tells a skip from a commit.
- ``write_table(mode="append"|"ignore")`` racing to create the table: the losers append / do nothing.
- A table property another writer set to a bad value never fails a landed commit nor a reader
  (format §16); values are validated, ranges included, when they are set.
- ``_last_checkpoint`` carries what §9 says and a newer envelope is refused (§14).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing as mp
import os
import threading
import uuid

import fsspec
import msgpack
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.commit import CommitRequest, commit
from lakehouse.log import CHECKPOINT_POINTER, FORMAT_VERSION, entry_name, unseal
from lakehouse.replay import load_state
from lakehouse.storage import Storage

FUZZ = os.environ.get("LH_FUZZ") == "1"
PROFILE = settings(max_examples=400 if FUZZ else 40, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("p", pa.int32())])


def _data(ids, p=1) -> pa.Table:
    return pa.table({"id": pa.array(list(ids), pa.int64()), "name": [f"n{i}" for i in ids],
                     "p": pa.array([p] * len(list(ids)), pa.int32())}, schema=SCHEMA)


def _ids(t: lh.Table) -> list[int]:
    return sorted(lh.Table.open(t.uri).to_arrow().column("id").to_pylist())


# --------------------------------------------------------------------------- item 2: commit_files
BAD_PATHS = [
    "../outside.parquet", "/etc/passwd", "p=1/../../outside.parquet", "file:///tmp/x.parquet",
    "s3://bucket/part-0.parquet", "memory://sibling/part-0.parquet", "C:\\x\\part-0.parquet",
    "p=1\\..\\..\\x.parquet", "p=1/x\x00.parquet", "", ".", "p=1//part-0.parquet", "./part-0.parquet",
    "p=1/notes.txt", "p=1/part-XYZ.parquet", "_lakehouse_log/00000000000000000001.msgpack",
]


@pytest.fixture
def sibling_and_table():
    """A memory table and a file right next to its root that no clean-up may ever delete."""
    name = f"trust-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"/{name}-sibling/part-{'1' * 32}.parquet", b"precious")
    fs.pipe_file("/outside.parquet", b"precious")
    t = lh.write_table(f"memory://{name}", _data(range(3)), partition_by=["p"])
    yield t, fs, name
    for path in (f"/{name}", f"/{name}-sibling"):
        if fs.exists(path):
            fs.rm(path, recursive=True)


def _record(t: lh.Table, **changes) -> lh.DataFile:
    (good,) = lh.write_files(t.uri, _data([10]))
    return dataclasses.replace(good, **changes)


@st.composite
def hostile_records(draw):
    """One change that makes a DataFile record invalid, with the field it breaks."""
    kind = draw(st.sampled_from(["path", "partition", "stats", "count"]))
    if kind == "path":
        return "path", draw(st.sampled_from(BAD_PATHS) | st.text(min_size=0, max_size=12).map(
            lambda s: s + "/../x.parquet"))
    if kind == "partition":
        return "partition_values", {"p": draw(st.sampled_from(["1", 1.5, b"\x01", True, 2**40, [1], {"a": 1}]))}
    if kind == "stats":
        column = draw(st.sampled_from(["id", "name", "nope"]))
        value = draw(st.sampled_from(["x", 1.5, b"\x00", 2**64, float("nan"), [1], True]))
        stat = draw(st.sampled_from(["min", "max", "null_count"]))
        if column == "name" and stat != "null_count" and value == "x":
            value = 5  # "x" is a valid string statistic
        return "stats", {stat: {column: value}}
    field = draw(st.sampled_from(["num_rows", "size_bytes", "modification_time", "version"]))
    if field == "version":  # a version that does not exist is VersionNotFoundError (when it is loaded)
        return field, draw(st.sampled_from([-1, 1.5, "3", True, None]))
    return field, draw(st.sampled_from([-1, 2**63, 2**64 + 5, 1.5, "3", True, None]))


@PROFILE
@given(change=hostile_records())
def test_commit_files_refuses_every_invalid_record_before_touching_anything(sibling_and_table, change):
    t, fs, name = sibling_and_table
    field, value = change
    version, before = t.version, _ids(t)
    record = _record(t, **{field: value})
    with pytest.raises(lh.InvalidDataFileError) as info:
        t.commit_files([record], read_version=t.version)
    assert isinstance(info.value, ValueError)
    assert fs.cat_file(f"/{name}-sibling/part-{'1' * 32}.parquet") == b"precious"
    assert fs.cat_file("/outside.parquet") == b"precious"
    reopened = lh.Table.open(t.uri)
    assert reopened.version == version and _ids(reopened) == before


def test_a_live_file_given_again_is_refused_and_kept(sibling_and_table):
    t, fs, name = sibling_and_table
    live = t.files().column("path")[0].as_py()
    record = _record(t, path=live)
    with pytest.raises(lh.InvalidDataFileError, match="already live"):
        t.commit_files([record], read_version=t.version)
    assert fs.exists(f"/{name}/{live}")
    assert _ids(t) == [0, 1, 2]


def test_a_retried_commit_files_conflicts_and_keeps_the_files_the_first_try_committed(table_uri):
    t = lh.write_table(table_uri, _data(range(3)))
    stale = lh.Table.open(table_uri)
    files = lh.write_files(table_uri, _data([7, 8]))
    t.commit_files(files, read_version=t.version)
    # the same records again, from a handle that has not seen the first commit (a retry after an
    # unknown outcome): refused, and the files of the landed commit stay
    with pytest.raises(lh.CommitConflictError):
        stale.commit_files(files, read_version=stale.version)
    assert _ids(t) == [0, 1, 2, 7, 8]


def test_valid_records_still_commit(sibling_and_table):
    t, _, _ = sibling_and_table
    assert t.commit_files(lh.write_files(t.uri, _data([5, 6], p=2)), read_version=t.version) == 1
    assert _ids(t) == [0, 1, 2, 5, 6]


# --------------------------------------------------------------------------- item 4: skip first
@pytest.mark.parametrize("op", ["append", "overwrite", "overwrite_filter", "delete"])
def test_an_idempotent_write_losing_to_its_duplicate_is_skipped(table_uri, op):
    lh.write_table(table_uri, _data(range(6)))
    a, b = lh.Table.open(table_uri), lh.Table.open(table_uri)
    txn = ("job", 7)

    def run(h: lh.Table) -> int:
        if op == "append":
            return h.append(_data([100]), app_transaction=txn)
        if op == "overwrite":
            return h.overwrite(_data([100]), app_transaction=txn)
        if op == "overwrite_filter":
            return h.overwrite(_data([3]), filter=[("id", "=", 3)], app_transaction=txn)
        return h.delete([("id", "<", 3)], app_transaction=txn)

    # b's transaction is built on version 0, then a's duplicate lands first
    tx = b.transaction(app_transaction=txn)
    if op == "append":
        tx.append(_data([100]))
    elif op == "overwrite":
        tx.overwrite(_data([100]))
    elif op == "overwrite_filter":
        tx.overwrite(_data([3]), filter=[("id", "=", 3)])
    else:
        tx.delete([("id", "<", 3)])
    assert run(a) == 1 and a.last_outcome == lh.CommitOutcome(version=1, skipped=False)
    assert tx.commit() == 1  # not CommitConflictError: the skip is decided first (format §12)
    assert b.last_outcome == lh.CommitOutcome(version=1, skipped=True)
    final = lh.Table.open(table_uri)
    assert final.version == 1 and final.app_version("job") == 7
    assert _ids(final) == _ids(a)


def test_last_outcome_tells_a_commit_from_a_skip(table_uri):
    t = lh.write_table(table_uri, _data([1]))
    assert t.last_outcome == lh.CommitOutcome(version=0, skipped=False)
    assert t.append(_data([2]), app_transaction=("etl", 1)) == 1
    assert t.last_outcome == lh.CommitOutcome(version=1, skipped=False)
    assert t.append(_data([2]), app_transaction=("etl", 1)) == 1
    assert t.last_outcome == lh.CommitOutcome(version=1, skipped=True)
    assert t.delete([("id", "=", 1)]) == 2 and not t.last_outcome.skipped
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.last_outcome.version = 5  # type: ignore[misc]
    assert lh.Table.open(table_uri).last_outcome is None


# --------------------------------------------------------------------------- item 5: create race
def _create_or_append(uri: str, writer: int, mode: str, barrier) -> None:
    barrier.wait(timeout=60)
    lh.write_table(uri, _data([writer * 10, writer * 10 + 1]), mode=mode)


@pytest.mark.parametrize("mode", ["append", "ignore", "overwrite"])
def test_writers_racing_to_create_with_append_or_ignore(table_uri, mode):
    n = 4
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(w: int) -> None:
        try:
            _create_or_append(table_uri, w, mode, barrier)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if mode == "overwrite":  # losers overwrite the new table; racing overwrites conflict as on any table
        errors = [e for e in errors if not isinstance(e, lh.CommitConflictError)]
    assert not errors, errors
    ids = _ids(lh.Table.open(table_uri))
    if mode == "append":
        assert ids == sorted(i for w in range(n) for i in (w * 10, w * 10 + 1))
    else:  # one writer's rows: the creator's ("ignore") or the last overwrite's
        assert len(ids) == 2 and ids[1] == ids[0] + 1 and ids[0] % 10 == 0



def test_processes_racing_to_create_with_append(tmp_path):
    uri, n = str(tmp_path / "t"), 3
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n)
    procs = [ctx.Process(target=_create_or_append, args=(uri, w, "append", barrier)) for w in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * n
    assert _ids(lh.Table.open(uri)) == sorted(i for w in range(n) for i in (w * 10, w * 10 + 1))


# --------------------------------------------------------------------------- item 7: properties
def _set_raw_properties(uri: str, **props: str) -> None:
    """Commit a metadata action with ``props`` as another (careless) writer would, unvalidated."""
    storage = Storage.from_uri(uri)
    state = load_state(storage)
    meta = dataclasses.replace(state.metadata, properties={**state.metadata.properties, **props})
    commit(storage, state, CommitRequest(operation="set_properties", metadata=meta))


@pytest.mark.parametrize("value", ["0", "abc", "-3", "", "1e3", str(2**64), "9" * 40])
def test_a_bad_checkpoint_interval_never_fails_a_landed_commit(table_uri, value):
    t = lh.write_table(table_uri, _data([1]))
    _set_raw_properties(table_uri, checkpoint_interval=value)
    t.refresh()
    with pytest.warns(lh.PropertyWarning, match="checkpoint_interval"):
        assert t.append(_data([2])) == 2
    assert _ids(t) == [1, 2]
    assert lh.Table.open(table_uri).to_arrow().num_rows == 2  # a reader never minds


@pytest.mark.parametrize("name", ["vacuum_min_retention_seconds", "log_min_retention_seconds"])
def test_out_of_range_retention_is_refused_when_set_and_defaulted_when_read(table_uri, name):
    t = lh.write_table(table_uri, _data([1]))
    for bad in (str(10**20), "99999999999999", "-1", "x"):
        with pytest.raises(lh.InvalidTableError, match=name):
            t.alter.set_properties({name: bad})
        with pytest.raises(lh.InvalidTableError, match=name):
            lh.write_table(f"{table_uri}-{uuid.uuid4().hex[:6]}", _data([1]), properties={name: bad})
    _set_raw_properties(table_uri, **{name: str(10**20)})
    t.refresh()
    with pytest.warns(lh.PropertyWarning, match=name):
        if name.startswith("vacuum"):
            t.vacuum(retention=dt.timedelta(days=8))
        else:
            t.cleanup_log(retention=dt.timedelta(days=8))
    with pytest.warns(lh.PropertyWarning), pytest.raises(lh.RetentionError):  # the default (7 days) holds
        if name.startswith("vacuum"):
            t.vacuum(retention=dt.timedelta(days=1))
        else:
            t.cleanup_log(retention=dt.timedelta(days=1))


def test_a_bad_target_file_size_warns_and_uses_the_default(table_uri):
    t = lh.write_table(table_uri, _data([1]))
    _set_raw_properties(table_uri, target_file_size="lots")
    t.refresh()
    with pytest.warns(lh.PropertyWarning, match="target_file_size"):
        t.append(_data([2]))
    with pytest.warns(lh.PropertyWarning, match="target_file_size"):
        assert t.optimize() == 3
    assert _ids(t) == [1, 2]


# --------------------------------------------------------------------------- item 22: the pointer
def test_the_pointer_carries_what_section_9_says(table_uri):
    t = lh.write_table(table_uri, _data([1]))
    t.append(_data([2]))
    assert t.checkpoint() == 1
    storage = Storage.from_uri(table_uri)
    body = msgpack.unpackb(unseal(storage.read(CHECKPOINT_POINTER), path="p"))
    size = len(storage.read("_lakehouse_log/00000000000000000001.checkpoint.arrow"))
    assert body == {"version": 1, "size_bytes": size, "num_files": 2}


def test_a_pointer_in_a_newer_envelope_is_refused(table_uri):
    t = lh.write_table(table_uri, _data([1]))
    t.checkpoint()
    storage = Storage.from_uri(table_uri)
    env = msgpack.unpackb(storage.read(CHECKPOINT_POINTER))
    env["format"] = FORMAT_VERSION + 1
    storage.overwrite(CHECKPOINT_POINTER, msgpack.packb(env))
    with pytest.raises(lh.UnsupportedFormatError) as info:
        lh.Table.open(table_uri)
    assert "_last_checkpoint" in str(info.value.path)


@pytest.mark.s3
def test_a_log_entry_too_large_for_one_request_is_refused_before_anything_is_written(s3):
    uri = f"s3://lakehouse-test/big-{uuid.uuid4().hex}"
    t = lh.write_table(uri, _data([1]), storage_options=s3.storage_options)
    storage = Storage.from_uri(uri, s3.storage_options)
    request = CommitRequest(operation="append", parameters={"note": "x" * (5 << 20)})
    with pytest.raises(lh.CommitError, match="one conditional write"):
        commit(storage, t._state, request)
    assert not storage.exists(entry_name(1))

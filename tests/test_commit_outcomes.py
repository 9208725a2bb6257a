"""Commit outcomes when the storage misbehaves: lost responses, failures before the write, unsafe stores.

The filesystems here are real fsspec memory filesystems with one method wrapped to fail the way
networks do; lakehouse's own storage layer is the real one.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pyarrow as pa
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from helpers import LOG_DIR, SCHEMA, make_data

import lakehouse as lh


class _FaultyMemory(MemoryFileSystem):
    """Memory filesystem whose next log-entry write fails: ``mode`` says how."""

    protocol = ("faultymem", "memory")
    mode: str | None = None  # "lost-response" | "before" | None

    def pipe_file(self, path, value, **kwargs):  # type: ignore[override]
        mode = type(self).mode
        if mode and f"/{LOG_DIR}/" in path and path.endswith(".msgpack"):
            type(self).mode = None
            if mode == "before":
                raise ConnectionError("connection reset before the request was sent")
            super().pipe_file(path, value, **kwargs)
            raise TimeoutError("the response was lost")
        return super().pipe_file(path, value, **kwargs)


class _NoAtomicCreate(MemoryFileSystem):
    """A filesystem lakehouse knows no atomic create-if-absent for."""

    protocol = ("plainmem",)


fsspec.register_implementation("faultymem", _FaultyMemory, clobber=True)
fsspec.register_implementation("plainmem", _NoAtomicCreate, clobber=True)


@pytest.fixture
def faulty_uri():
    uri = f"faultymem://t-{uuid.uuid4().hex}"
    yield uri
    _FaultyMemory.mode = None


def test_lost_response_is_recognised_as_our_own_commit(faulty_uri):
    t = lh.Table.create(faulty_uri, SCHEMA, partition_by=["part"])
    _FaultyMemory.mode = "lost-response"
    v = t.append(make_data(range(5)))
    assert v == 1, "the commit landed, so it must be acknowledged once, not retried as version 2"
    reopened = lh.Table.open(faulty_uri)
    assert reopened.version == 1
    assert sorted(reopened.to_arrow().column("id").to_pylist()) == [0, 1, 2, 3, 4]
    assert [c.operation for c in reopened.history()] == ["append", "create"]


def test_failure_with_unknown_outcome_raises_and_keeps_data_files(faulty_uri):
    t = lh.Table.create(faulty_uri, SCHEMA)
    _FaultyMemory.mode = "before"
    with pytest.raises(lh.CommitStateUnknownError) as info:
        t.append(make_data(range(3)))
    assert info.value.version == 1 and info.value.commit_id
    assert lh.Table.open(faulty_uri).version == 0, "nothing was committed"
    fs = fsspec.filesystem("faultymem")
    parquet = [p for p in fs.find(faulty_uri) if p.endswith(".parquet")]
    assert len(parquet) == 1, "data files of an unknown commit must stay (vacuum decides later)"
    # and the table still works afterwards
    assert t.append(make_data(range(3, 6))) == 1


def test_a_local_create_that_fails_is_a_definite_failure_and_cleans_up(local_uri, monkeypatch):
    """On local disk nothing can be in flight after an error: the name is free or taken, so the
    commit either landed or certainly did not (``CommitError``, its data files removed)."""
    import lakehouse.storage as storage_mod

    t = lh.Table.create(local_uri, SCHEMA)

    def broken(path: str, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage_mod, "_local_put_if_absent", broken)
    with pytest.raises(lh.CommitError) as info:
        t.append(make_data(range(3)))
    assert not isinstance(info.value, lh.CommitStateUnknownError)
    monkeypatch.undo()
    assert lh.Table.open(local_uri).version == 0
    assert not list(Path(local_uri).rglob("*.parquet")), "the failed commit's data files are removed"
    assert t.append(make_data(range(3))) == 1


def test_store_without_atomic_create_is_refused_unless_single_writer_opt_in():
    uri = f"plainmem://t-{uuid.uuid4().hex}"
    with pytest.raises(lh.UnsafeStorageError, match="single_writer"):
        lh.Table.create(uri, SCHEMA)
    with pytest.raises(lh.UnsafeStorageError):
        lh.write_table(uri, make_data(range(2)))
    opts = {"lakehouse.unsafe_single_writer": True}
    t = lh.Table.create(uri, SCHEMA, storage_options=opts)
    assert t.append(make_data(range(2))) == 1
    assert lh.Table.open(uri, storage_options=opts).to_arrow().num_rows == 2


def test_concurrent_creates_have_one_winner(table_uri):
    lh.Table.create(table_uri, SCHEMA)
    with pytest.raises(lh.TableExistsError):
        lh.Table.create(table_uri, SCHEMA)
    with pytest.raises(lh.TableExistsError):
        lh.write_table(table_uri, make_data(range(2)))


def test_stale_handle_append_rebases_and_delete_sees_new_rows(table_uri):
    a = lh.Table.create(table_uri, SCHEMA, partition_by=["part"])
    b = lh.Table.open(table_uri)
    assert a.append(make_data(range(3), part=1)) == 1
    assert b.append(make_data(range(3, 6), part=2)) == 2, "a blind append rebases over a concurrent one"
    assert b.delete([("part", "=", 1)]) == 3, "a delete on a stale handle reads the latest version"
    assert sorted(lh.Table.open(table_uri).to_arrow().column("id").to_pylist()) == [3, 4, 5]


def test_conflicting_transaction_raises_and_cleans_its_files(local_uri):
    t = lh.Table.create(local_uri, SCHEMA, partition_by=["part"])
    t.append(make_data(range(10), part=1))
    tx = t.transaction()
    tx.delete([("id", "<", 5)])  # rewrites the part=1 file
    other = lh.Table.open(local_uri)
    other.delete([("id", "=", 9)])  # removes the same file first
    before = {p.name for p in Path(local_uri).rglob("*.parquet")}
    with pytest.raises(lh.CommitConflictError) as info:
        tx.commit()
    assert info.value.version == 2
    after = {p.name for p in Path(local_uri).rglob("*.parquet")}
    assert after < before, "the losing transaction's rewritten file is removed"
    assert sorted(lh.Table.open(local_uri).to_arrow().column("id").to_pylist()) == list(range(9))


def test_commit_timestamps_are_strictly_increasing(table_uri):
    t = lh.write_table(table_uri, pa.table({"a": [1]}))
    for i in range(20):
        t.append(pa.table({"a": [i]}))
    stamps = [c.timestamp for c in reversed(t.history())]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))

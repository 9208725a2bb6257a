"""Deletion vectors in the log and the table state (format §4.2, §5.2-§5.8, §8, §9, §12): the
descriptor codec and its validation, protocol 4, the files-table columns, checkpoints, time travel and
conflicts. These tests commit descriptors directly (the bytes are opaque here); the vector bytes and
the transaction plumbing are tested in ``test_dv_store.py``."""

from __future__ import annotations

import dataclasses
import os
import uuid

import msgpack
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
import lakehouse.checkpoint as checkpoint_mod
import lakehouse.log as log_mod
from lakehouse.checkpoint import decode_checkpoint, encode_checkpoint
from lakehouse.commit import CommitRequest, commit
from lakehouse.log import (
    AddFile,
    CommitInfo,
    DeletionVectorDescriptor,
    LogEntry,
    Protocol,
    RemoveFile,
    decode_entry,
    encode_entry,
    unseal,
)
from lakehouse.state import files_to_adds

FUZZ = os.environ.get("LH_FUZZ") == "1"
_PROFILE = settings(max_examples=300 if FUZZ else 40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
HEX = "0123456789abcdef"


def _vec_path() -> str:
    return f"_deletion_vectors/dv-{uuid.uuid4().hex}.bin"


def _table(uri: str, n: int = 10) -> lh.Table:
    return lh.write_table(uri, pa.table({"a": list(range(n))}))


def _set_vector(t: lh.Table, desc: DeletionVectorDescriptor | None, *, path: str | None = None) -> int:
    """Commit a remove + re-add of one live file of ``t`` with ``desc`` (what the plumbing writes)."""
    state = t.snapshot().state
    adds = files_to_adds(state.files, state.metadata)
    a = adds[0] if path is None else next(x for x in adds if x.path == path)
    remove = RemoveFile(path=a.path, deletion_time=1, size_bytes=a.size_bytes, num_rows=a.num_rows,
                        num_deleted_rows=a.num_deleted_rows)
    result = commit(t._storage, state, CommitRequest(operation="delete_rows", add=(dataclasses.replace(
        a, deletion_vector=desc),), remove=(remove,), read_files=frozenset({a.path})))
    t.refresh()
    return result.version


# -- the codec ---------------------------------------------------------------------------------------
descriptors = st.one_of(
    st.builds(lambda c, b: DeletionVectorDescriptor(cardinality=c, inline=b), st.integers(1, 100),
              st.binary(min_size=1, max_size=64)),
    st.builds(lambda c, h, o, s: DeletionVectorDescriptor(cardinality=c, path=f"_deletion_vectors/dv-{h}.bin",
                                                           offset=o, size=s),
              st.integers(1, 100), st.text(HEX, min_size=32, max_size=32), st.integers(1, 2**62),
              st.integers(1, 1 << 28)),
)


@_PROFILE
@given(vector=st.none() | descriptors, carried=st.none() | st.integers(0, 100),
       dropped=st.none() | descriptors, deleted=st.integers(0, 100), change=st.booleans())
def test_actions_round_trip(vector, carried, dropped, deleted, change):
    add = AddFile(path="part-0.parquet", size_bytes=5, num_rows=100, modification_time=3, deletion_vector=vector,
                  carried_rows=carried)
    remove = RemoveFile(path="part-1.parquet", deletion_time=2, size_bytes=5, num_rows=100,
                        num_deleted_rows=deleted, dropped_rows=dropped)
    entry = LogEntry(version=4, commit=CommitInfo(id="c", timestamp=1, operation="x", data_change=change),
                     add=(add,), remove=(remove,))
    assert decode_entry(encode_entry(entry), path="e", version=4) == entry


def test_ordinary_actions_encode_as_before():
    """No new key for an action without a vector, lineage or data_change=false: older readers see the
    same maps."""
    entry = LogEntry(version=1, commit=CommitInfo(id="c", timestamp=1, operation="x"),
                     add=(AddFile(path="p.parquet", size_bytes=1, num_rows=1, modification_time=1),),
                     remove=(RemoveFile(path="q.parquet", deletion_time=1),))
    body = msgpack.unpackb(unseal(encode_entry(entry), path="e"))
    assert set(body["add"][0]) == {"path", "size_bytes", "num_rows", "modification_time", "partition", "min",
                                   "max", "null_count"}
    assert set(body["remove"][0]) == {"path", "deletion_time", "size_bytes", "num_rows"}
    assert "data_change" not in body["commit"]


def _entry_with(edit) -> bytes:
    add = AddFile(path="part-0.parquet", size_bytes=5, num_rows=10, modification_time=3,
                  deletion_vector=DeletionVectorDescriptor(cardinality=2, path=_vec_path(), offset=1, size=20))
    remove = RemoveFile(path="part-1.parquet", deletion_time=2, size_bytes=5, num_rows=10)
    entry = LogEntry(version=1, commit=CommitInfo(id="c", timestamp=1, operation="x"), add=(add,), remove=(remove,))
    body = msgpack.unpackb(unseal(encode_entry(entry), path="e"))
    edit(body)
    return log_mod.seal(msgpack.packb(body, use_bin_type=True))


def _dv(body):
    return body["add"][0]["deletion_vector"]


BAD = {
    "cardinality 0": lambda b: _dv(b).update(cardinality=0),
    "cardinality above num_rows": lambda b: _dv(b).update(cardinality=11),
    "cardinality not an int": lambda b: _dv(b).update(cardinality="2"),
    "both inline and path": lambda b: _dv(b).update(inline=b"x"),
    "neither inline nor path": lambda b: _dv(b).pop("path"),
    "inline too large": lambda b: (_dv(b).pop("path"), _dv(b).update(inline=b"x" * 4097)),
    "inline empty": lambda b: (_dv(b).pop("path"), _dv(b).update(inline=b"")),
    "inline not bytes": lambda b: (_dv(b).pop("path"), _dv(b).update(inline="x")),
    "path escapes": lambda b: _dv(b).update(path="../dv-" + "0" * 32 + ".bin"),
    "path misnamed": lambda b: _dv(b).update(path="_deletion_vectors/part-" + "0" * 32 + ".parquet"),
    "path upper-case hex": lambda b: _dv(b).update(path="_deletion_vectors/dv-" + "A" * 32 + ".bin"),
    "offset 0": lambda b: _dv(b).update(offset=0),
    "offset beyond int64": lambda b: _dv(b).update(offset=2**64 - 1),
    "size 0": lambda b: _dv(b).update(size=0),
    "size too large": lambda b: _dv(b).update(size=(1 << 28) + 1),
    "offset missing": lambda b: _dv(b).pop("offset"),
    "descriptor not a map": lambda b: b["add"][0].update(deletion_vector=[1, 2]),
    "carried_rows above num_rows": lambda b: b["add"][0].update(carried_rows=11),
    "carried_rows negative": lambda b: b["add"][0].update(carried_rows=-1),
    "carried_rows not an int": lambda b: b["add"][0].update(carried_rows=1.5),
    "remove num_deleted_rows above num_rows": lambda b: b["remove"][0].update(num_deleted_rows=11),
    "remove num_deleted_rows negative": lambda b: b["remove"][0].update(num_deleted_rows=-1),
    "dropped_rows above num_rows": lambda b: b["remove"][0].update(dropped_rows={"inline": b"x", "cardinality": 11}),
    "dropped_rows not a map": lambda b: b["remove"][0].update(dropped_rows="x"),
    "data_change not a bool": lambda b: b["commit"].update(data_change=0),
    "re-add of another physical file": lambda b: (b["remove"][0].update(path="part-0.parquet", size_bytes=6)),
    "re-add with other num_rows": lambda b: (b["remove"][0].update(path="part-0.parquet", num_rows=9)),
}


@pytest.mark.parametrize("fault", sorted(BAD))
def test_a_bad_descriptor_or_lineage_field_is_corrupt_naming_the_entry(fault):
    with pytest.raises(lh.CorruptLogError) as info:
        decode_entry(_entry_with(BAD[fault]), path="the/entry", version=1)
    assert info.value.path == "the/entry"


def test_a_path_may_be_removed_and_re_added_as_the_same_physical_file():
    def same(b):
        b["remove"][0].update(path="part-0.parquet")
    entry = decode_entry(_entry_with(same), path="e", version=1)
    assert entry.add[0].path == entry.remove[0].path == "part-0.parquet"


# -- protocol 4 --------------------------------------------------------------------------------------
def test_the_first_vector_raises_the_protocol_to_4_and_old_readers_refuse(table_uri, monkeypatch):
    t = _table(table_uri)
    assert t.snapshot().state.protocol == Protocol()
    _set_vector(t, DeletionVectorDescriptor(cardinality=3, inline=b"abc"))
    assert t.snapshot().state.protocol == Protocol(min_reader_version=4, min_writer_version=4)
    v = _set_vector(t, DeletionVectorDescriptor(cardinality=4, inline=b"abcd"))
    entry = log_mod.decode_entry(t._storage.read(log_mod.entry_name(v)), path="e", version=v)
    assert entry.protocol is None  # raised once
    t.checkpoint()
    # an old reader, which supports protocol 3 only, refuses the table (the log and the checkpoint)
    monkeypatch.setattr(log_mod, "READER_VERSION", 3)
    monkeypatch.setattr(checkpoint_mod, "READER_VERSION", 3)
    with pytest.raises(lh.UnsupportedFormatError):
        lh.Table.open(table_uri)
    with pytest.raises(lh.UnsupportedFormatError):
        lh.Table.open(table_uri, version=1)  # from the log: entry 1 raises the protocol
    assert lh.Table.open(table_uri, version=0).to_arrow().num_rows == 10  # before the vector: readable


def test_an_old_writer_refuses_a_protocol_4_table(table_uri, monkeypatch):
    import lakehouse.commit as commit_mod

    t = _table(table_uri)
    _set_vector(t, DeletionVectorDescriptor(cardinality=3, inline=b"abc"))
    monkeypatch.setattr(commit_mod, "WRITER_VERSION", 3)
    with pytest.raises(lh.UnsupportedFormatError, match="writer version 4"):
        t.append(pa.table({"a": [1]}))


def test_a_vector_below_protocol_4_is_corrupt(local_uri):
    t = _table(local_uri)
    state = t.snapshot().state
    a = files_to_adds(state.files, state.metadata)[0]
    vector = DeletionVectorDescriptor(cardinality=1, inline=b"x")
    entry = LogEntry(version=1, commit=CommitInfo(id="c", timestamp=state.timestamp + 1, operation="x"),
                     add=(dataclasses.replace(a, deletion_vector=vector),),
                     remove=(RemoveFile(path=a.path, deletion_time=1, size_bytes=a.size_bytes, num_rows=a.num_rows),))
    t._storage.put_if_absent(log_mod.entry_name(1), encode_entry(entry))  # protocol not raised: a bad writer
    with pytest.raises(lh.CorruptLogError, match="reader version 1"):
        lh.Table.open(local_uri)


# -- the files table, checkpoints, time travel ---------------------------------------------------------
def test_files_carry_the_descriptor_and_live_row_counts(table_uri):
    t = lh.write_table(table_uri, pa.table({"a": list(range(10)), "p": [i % 2 for i in range(10)]}),
                       partition_by=["p"])
    paths = sorted(t.files().column("path").to_pylist())
    inline = DeletionVectorDescriptor(cardinality=2, inline=b"\x01\x02")
    ref = DeletionVectorDescriptor(cardinality=5, path=_vec_path(), offset=1, size=30)
    v1 = _set_vector(t, inline, path=paths[0])
    v2 = _set_vector(t, ref, path=paths[1])
    files = {r["path"]: r for r in t.files().to_pylist()}
    assert files[paths[0]]["num_deleted_rows"] == 2 and files[paths[0]]["deletion_vector_inline"] == b"\x01\x02"
    assert files[paths[0]]["deletion_vector_path"] is None and files[paths[0]]["num_rows"] == 5
    assert (files[paths[1]]["deletion_vector_path"], files[paths[1]]["deletion_vector_offset"],
            files[paths[1]]["deletion_vector_size"], files[paths[1]]["num_deleted_rows"]) == (ref.path, 1, 30, 5)
    assert t.snapshot(version=0).files().column("num_deleted_rows").to_pylist() == [0, 0]  # time travel
    assert sorted(t.snapshot(version=v1).files().column("num_deleted_rows").to_pylist()) == [0, 2]
    history = {c.version: c.info for c in t.history()}
    assert (history[v1]["rows_added"], history[v1]["rows_removed"]) == (3, 5)  # live rows: 5 - 2 and 5
    assert (history[v2]["rows_added"], history[v2]["rows_removed"]) == (0, 5)
    # the checkpoint keeps every column, and a reader from it sees the same files table
    t.checkpoint()
    again = lh.Table.open(table_uri)
    assert again.snapshot().state.files.sort_by("path").equals(t.snapshot().state.files.sort_by("path"))
    # a replay from the checkpoint onward keeps them too
    _set_vector(again, dataclasses.replace(inline, cardinality=3), path=paths[0])
    reopened = lh.Table.open(table_uri)
    assert sorted(reopened.files().column("num_deleted_rows").to_pylist()) == [3, 5]


def test_checkpoints_below_protocol_4_hold_no_vector_columns(local_uri):
    """A checkpoint of a protocol 1-3 table is what older readers expect (format §9)."""
    t = _table(local_uri)
    t.checkpoint()
    data = t._storage.read(log_mod.checkpoint_name(0), max_bytes=1 << 30)
    reader = pa.ipc.open_file(pa.py_buffer(data[12:]))
    assert "num_deleted_rows" not in reader.schema.names
    state = decode_checkpoint(data, path="c")
    assert state.files.column("num_deleted_rows").to_pylist() == [0]
    assert state.files.schema.equals(t.snapshot().state.files.schema)


def _bad_state(t: lh.Table, column: str, value) -> bytes:
    state = t.snapshot().state
    files = state.files
    i = files.schema.get_field_index(column)
    files = files.set_column(i, files.schema.field(i), pa.array([value] * files.num_rows, files.schema.field(i).type))
    return encode_checkpoint(state.with_files(files))


@pytest.mark.parametrize("column, value", [
    ("num_deleted_rows", -1), ("num_deleted_rows", 11), ("num_deleted_rows", 0),
    ("deletion_vector_offset", 0), ("deletion_vector_size", None), ("deletion_vector_size", (1 << 28) + 1),
    ("deletion_vector_inline", b"x"), ("deletion_vector_path", "../../etc/dv.bin"),
])
def test_invalid_vector_columns_of_a_checkpoint_are_corrupt(local_uri, column, value):
    t = _table(local_uri)
    _set_vector(t, DeletionVectorDescriptor(cardinality=2, path=_vec_path(), offset=1, size=10))
    data = _bad_state(t, column, value)
    with pytest.raises(lh.CorruptLogError) as info:
        decode_checkpoint(data, path="the/checkpoint").files  # noqa: B018
    assert info.value.path == "the/checkpoint"


def test_a_checkpoint_without_vector_columns_at_protocol_4_is_corrupt(local_uri):
    t = _table(local_uri)
    _set_vector(t, DeletionVectorDescriptor(cardinality=2, inline=b"ab"))
    state = t.snapshot().state
    old = dataclasses.replace(state, protocol=Protocol(min_reader_version=3, min_writer_version=3))
    data = encode_checkpoint(old)  # written as below protocol 4: without the columns
    forged = dataclasses.replace(state, files_source=decode_checkpoint(data, path="c").files)
    assert forged.files.column("num_deleted_rows").to_pylist() == [0]  # filled in below 4
    # the same payload claiming protocol 4 does not match the files schema
    body = bytearray(data)
    reader = pa.ipc.open_file(pa.py_buffer(bytes(body[12:])))
    info = msgpack.unpackb(reader.schema.metadata[b"lakehouse.state"])
    info["protocol"] = {"min_reader_version": 4, "min_writer_version": 4}
    table = reader.read_all().replace_schema_metadata({b"lakehouse.state": msgpack.packb(info, use_bin_type=True)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    import struct
    import zlib
    payload = sink.getvalue().to_pybytes()
    forged_bytes = checkpoint_mod.MAGIC + struct.pack("<I", zlib.crc32(payload)) + payload
    with pytest.raises(lh.CorruptLogError, match="does not match"):
        decode_checkpoint(forged_bytes, path="c")


# -- conflicts (format §12) -------------------------------------------------------------------------
def test_replacing_a_vector_conflicts_like_a_remove(local_uri):
    t = _table(local_uri)
    _set_vector(t, DeletionVectorDescriptor(cardinality=1, inline=b"a"))  # protocol 4 from here on
    path = t.files().column("path")[0].as_py()
    stale = lh.Table.open(local_uri)
    _set_vector(t, DeletionVectorDescriptor(cardinality=2, inline=b"ab"))
    # a concurrent vector on a file this commit read whole (read_files, §12.1 3.), a rewrite that read
    # it: conflicts (row-level rebases are tested in test_row_concurrency.py)
    with pytest.raises(lh.CommitConflictError):
        _set_vector(stale, DeletionVectorDescriptor(cardinality=3, inline=b"abc"))
    state = stale.snapshot().state
    a = files_to_adds(state.files, state.metadata)[0]
    remove = RemoveFile(path=a.path, deletion_time=1, size_bytes=a.size_bytes, num_rows=a.num_rows)
    with pytest.raises(lh.CommitConflictError):
        commit(t._storage, state, CommitRequest(operation="delete", remove=(remove,), read_files=frozenset({a.path})))
    # a blind append does not conflict with it
    commit(t._storage, state, CommitRequest(operation="append", add=(dataclasses.replace(
        a, path=f"part-{uuid.uuid4().hex}.parquet", deletion_vector=None),)))
    t.refresh()
    assert sorted(t.files().column("num_deleted_rows").to_pylist()) == [0, 2]
    assert os.path.exists(os.path.join(local_uri, path))


def test_the_raise_to_protocol_4_and_a_concurrent_append_rebase_over_each_other(local_uri):
    """Format §12 rule 2: our own raise to 4 for a vector decides nothing on the version read, so it
    rebases over a concurrent append; and a blind append rebases over a winner whose only protocol
    change is that supported raise (it used to conflict: the first vector failed every writer)."""
    t = _table(local_uri)
    stale = lh.Table.open(local_uri)
    t.append(pa.table({"a": [1]}))
    v = _set_vector(stale, DeletionVectorDescriptor(cardinality=1, inline=b"a"))
    assert v == 2 and stale.snapshot().state.protocol == Protocol(min_reader_version=4, min_writer_version=4)
    assert sorted(stale.files().column("num_deleted_rows").to_pylist()) == [0, 1]
    state = t.snapshot(version=1).state
    a = files_to_adds(state.files, state.metadata)[0]
    landed = commit(t._storage, state, CommitRequest(operation="append", add=(dataclasses.replace(
        a, path=f"part-{uuid.uuid4().hex}.parquet"),)))
    assert landed.version == 3 and landed.state.protocol == Protocol(min_reader_version=4, min_writer_version=4)


def test_a_vector_conflicts_with_a_concurrent_remove(local_uri):
    t = _table(local_uri)
    stale = lh.Table.open(local_uri)
    t.delete([("a", "<", 100)])
    with pytest.raises(lh.CommitConflictError):
        _set_vector(stale, DeletionVectorDescriptor(cardinality=2, inline=b"ab"))

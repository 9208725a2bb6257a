"""The error tree, and that bad input raises the documented error and leaves the table unchanged."""

from __future__ import annotations

import datetime as dt
import os
import zlib

import msgpack
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import SCHEMA, assert_same_rows, log_entry_path, make_data, parquet_files

import lakehouse as lh

TREE = {
    "LakehouseError": (Exception,),
    "TableNotFoundError": ("LakehouseError", FileNotFoundError),
    "TableExistsError": ("LakehouseError", FileExistsError),
    "VersionNotFoundError": ("LakehouseError", LookupError),
    "SchemaMismatchError": ("LakehouseError", ValueError),
    "ColumnNotFoundError": ("LakehouseError", KeyError),
    "InvalidFilterError": ("LakehouseError", ValueError),
    "ConstraintViolationError": ("LakehouseError", ValueError),
    "InvalidTableError": ("LakehouseError", ValueError),
    "InvalidDataError": ("LakehouseError", TypeError),
    "CommitError": ("LakehouseError",),
    "CommitConflictError": ("CommitError", "LakehouseError"),
    "CommitStateUnknownError": ("CommitError", "LakehouseError"),
    "CorruptLogError": ("LakehouseError",),
    "UnsupportedFormatError": ("CorruptLogError", "LakehouseError"),
    "UnsafeStorageError": ("LakehouseError",),
    "InvalidArgumentError": ("LakehouseError", ValueError),
    "ArgumentTypeError": ("InvalidArgumentError", "LakehouseError", TypeError, ValueError),
    "CommitTooLargeError": ("CommitError", "LakehouseError", ValueError),
}


@pytest.mark.parametrize("name", sorted(TREE))
def test_error_tree(name):
    cls = getattr(lh, name)
    assert isinstance(cls, type) and issubclass(cls, Exception)
    assert name in lh.__all__
    for parent in TREE[name]:
        parent_cls = getattr(lh, parent) if isinstance(parent, str) else parent
        assert issubclass(cls, parent_cls), (name, parent)
    if name != "LakehouseError":
        assert issubclass(cls, lh.LakehouseError)


def test_not_every_error_is_a_commit_error():
    assert not issubclass(lh.CorruptLogError, lh.CommitError)
    assert not issubclass(lh.TableNotFoundError, lh.CommitError)
    assert not issubclass(lh.CommitConflictError, lh.CorruptLogError)


def test_error_attributes():
    e = lh.CommitConflictError("lost", version=7)
    assert e.version == 7
    e2 = lh.CommitStateUnknownError("?", version=3, commit_id="abc")
    assert (e2.version, e2.commit_id) == (3, "abc")
    e3 = lh.CorruptLogError("bad crc", path="x/_lakehouse_log/00000000000000000001.msgpack")
    assert "00000000000000000001.msgpack" in str(e3)
    assert e3.path.endswith("00000000000000000001.msgpack")
    e4 = lh.ColumnNotFoundError("nope")
    assert e4.column == "nope" and "nope" in str(e4)


# --------------------------------------------------------------------------- not found / exists


def test_open_missing_table(table_uri):
    with pytest.raises(lh.TableNotFoundError) as info:
        lh.Table.open(table_uri)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        lh.Table.open(table_uri)


def test_open_a_plain_folder_is_not_a_table(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "data.parquet").write_bytes(b"x")
    with pytest.raises(lh.TableNotFoundError):
        lh.Table.open(str(tmp_path / "plain"))


def test_create_existing_table(table_uri):
    lh.Table.create(table_uri, SCHEMA)
    with pytest.raises(lh.TableExistsError) as info:
        lh.Table.create(table_uri, SCHEMA)
    assert isinstance(info.value, FileExistsError)
    assert lh.Table.open(table_uri).version == 0


def test_write_table_error_mode(table_uri):
    lh.write_table(table_uri, make_data(range(2)))
    with pytest.raises(FileExistsError):
        lh.write_table(table_uri, make_data(range(2)), mode="error")


# --------------------------------------------------------------------------- versions


@pytest.fixture
def three_versions(table_uri) -> lh.Table:
    t = lh.Table.create(table_uri, SCHEMA)
    t.append(make_data(range(3)))
    t.append(make_data(range(3, 6)))
    return t


@pytest.mark.parametrize("version", [3, 4, 10**6, -1, -100])
def test_version_not_found(three_versions, version):
    t = three_versions
    with pytest.raises(lh.VersionNotFoundError):
        t.snapshot(version=version)
    with pytest.raises(lh.VersionNotFoundError):
        t.to_arrow(version=version)
    assert isinstance(lh.VersionNotFoundError("x"), LookupError)


def test_as_of_before_first_commit(three_versions):
    t = three_versions
    first = t.history()[-1].timestamp
    with pytest.raises(lh.VersionNotFoundError):
        t.snapshot(as_of=first - dt.timedelta(milliseconds=1))
    with pytest.raises(lh.VersionNotFoundError):
        t.to_arrow(as_of=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    assert t.snapshot(as_of=first).version == 0


# --------------------------------------------------------------------------- schema mismatch


def _mismatch_cases() -> dict[str, tuple[pa.Table, str]]:
    good = make_data(range(5))
    return {
        "missing": (good.drop_columns(["value"]), "value"),
        "wrong_type": (good.set_column(3, "name", pa.array([1, 2, 3, 4, 5], pa.int64())), "name"),
        "wrong_type_id": (good.set_column(0, "id", pa.array([str(i) for i in range(5)])), "id"),
        "extra": (good.append_column("surprise", pa.array([1.0] * 5)), "surprise"),
    }


@pytest.mark.parametrize("case", ["missing", "wrong_type", "wrong_type_id", "extra"])
@pytest.mark.parametrize("op", ["append", "overwrite", "overwrite_filter", "write_table", "transaction"])
def test_schema_mismatch_names_the_column_and_changes_nothing(table_uri, case, op):
    t = lh.Table.create(table_uri, SCHEMA, partition_by=["part"])
    t.append(make_data(range(10), part=[i % 2 for i in range(10)]))
    before = t.to_arrow()
    n_files = len(parquet_files(table_uri))
    bad, column = _mismatch_cases()[case]
    with pytest.raises(lh.SchemaMismatchError) as info:
        if op == "append":
            t.append(bad)
        elif op == "overwrite":
            t.overwrite(bad)
        elif op == "overwrite_filter":
            t.overwrite(bad, filter=[("part", "=", 0)])
        elif op == "write_table":
            lh.write_table(table_uri, bad, mode="append")
        else:
            with t.transaction() as tx:
                tx.delete([("part", "=", 1)])
                tx.append(bad)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.column == column
    assert column in str(err)
    assert t.version == 1
    fresh = lh.Table.open(table_uri)
    assert fresh.version == 1
    assert_same_rows(fresh.to_arrow(), before)
    assert len(parquet_files(table_uri)) == n_files


def test_schema_mismatch_in_a_stream_after_the_first_batch(table_uri):
    """A reader whose declared schema is wrong is refused before anything is committed."""
    t = lh.Table.create(table_uri, SCHEMA)
    bad_schema = SCHEMA.set(2, pa.field("value", pa.string()))
    batches = [pa.record_batch([[i], [0], [str(i)], ["x"]], schema=bad_schema) for i in range(3)]
    with pytest.raises(lh.SchemaMismatchError) as info:
        t.append(pa.RecordBatchReader.from_batches(bad_schema, batches))
    assert info.value.column == "value"
    assert lh.Table.open(table_uri).version == 0
    assert lh.Table.open(table_uri).to_arrow().num_rows == 0


def test_non_nullable_column_rejects_nulls(table_uri):
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("x", pa.int64())])
    t = lh.Table.create(table_uri, schema)
    bad = pa.table({"id": pa.array([1, None], pa.int64()), "x": [1, 2]})
    with pytest.raises(lh.LakehouseError):
        t.append(bad)
    assert lh.Table.open(table_uri).to_arrow().num_rows == 0


@pytest.mark.parametrize("bad", [None, 42, "rows", {"id": [1]}, [1, 2, 3]], ids=repr)
def test_data_that_is_not_arrow_shaped(table_uri, bad):
    t = lh.Table.create(table_uri, SCHEMA)
    with pytest.raises(lh.InvalidDataError):
        t.append(bad)
    assert lh.Table.open(table_uri).version == 0


def test_bad_table_definitions(table_uri):
    with pytest.raises(lh.InvalidTableError):
        lh.Table.create(table_uri, SCHEMA, partition_by=["nope"])
    with pytest.raises(lh.TableNotFoundError):
        lh.Table.open(table_uri)


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    "flt",
    [
        [("nope", "=", 1)],
        [("id", "=", 1), ("nope", "<", 3)],
        [[("id", "=", 1)], [("nope", "=", 3)]],
        pc.field("nope") == 1,
        (pc.field("id") > 1) & pc.field("nope").is_null(),
    ],
    ids=["dnf", "dnf-and", "dnf-or", "expr", "expr-and"],
)
def test_filter_on_unknown_column_names_it(three_versions, flt):
    t = three_versions
    calls = [
        lambda: t.to_arrow(filter=flt),
        lambda: t.snapshot().files(filter=flt),
        lambda: t.snapshot().to_batches(filter=flt).read_all(),
        lambda: t.delete(flt),
        lambda: t.overwrite(make_data(range(0)), filter=flt),
    ]
    for call in calls:
        with pytest.raises(lh.ColumnNotFoundError) as info:
            call()
        assert info.value.column == "nope"
        assert "nope" in str(info.value)
        assert isinstance(info.value, KeyError)
    assert lh.Table.open(t.uri).version == 2


def test_projection_of_unknown_column(three_versions):
    with pytest.raises(lh.ColumnNotFoundError) as info:
        three_versions.to_arrow(columns=["id", "ghost"])
    assert info.value.column == "ghost"


@pytest.mark.parametrize(
    "flt",
    [
        [("id", "~~", 1)],
        [("id",)],
        [("id", "=", 1, 2)],
        "id = = 1",  # a string is SQL-like text (lakehouse.expr.sql), but not this one
        42,
    ],
)
def test_malformed_filter(three_versions, flt):
    with pytest.raises(lh.InvalidFilterError):
        three_versions.to_arrow(filter=flt)


# --------------------------------------------------------------------------- corrupt log


@pytest.fixture
def corrupt_target(local_uri):
    """A local table at version 2 (and a handle on it); entry 3 is what the test damages."""
    t = lh.Table.create(local_uri, SCHEMA)
    t.append(make_data(range(3)))
    t.append(make_data(range(3, 6)))
    return t


def _valid_entry_bytes(uri: str) -> bytes:
    """The bytes of a genuine append entry (version 3) written by the library, then removed."""
    other = lh.Table.open(uri)
    other.append(make_data(range(100, 101)))
    path = log_entry_path(uri, 3)
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def _write_entry(uri: str, version: int, data: bytes) -> str:
    path = log_entry_path(uri, version)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _assert_corrupt(t: lh.Table, uri: str, version: int, exc=lh.CorruptLogError) -> None:
    name = f"{version:020d}.msgpack"
    with pytest.raises(exc) as info:
        t.refresh()
    assert isinstance(info.value, lh.CorruptLogError)
    assert name in str(info.value)
    assert info.value.path is not None and info.value.path.endswith(name)
    with pytest.raises(exc) as info:
        lh.Table.open(uri)
    assert name in str(info.value)
    # the earlier versions stay readable from the handle that knew them
    assert_same_rows(t.to_arrow(version=1), make_data(range(3)))
    assert_same_rows(t.snapshot(version=2).to_arrow(), make_data(range(6)))
    # and nobody can commit on top of a damaged entry
    with pytest.raises(lh.LakehouseError):
        t.append(make_data(range(7, 8)))
    assert not os.path.exists(log_entry_path(uri, version + 1))


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00", b"not msgpack at all", b"\xc1\xc1\xc1", msgpack.packb({"hello": "world"})],
    ids=["empty", "nul", "text", "invalid-bytes", "wrong-shape"],
)
def test_garbage_log_entry(corrupt_target, local_uri, garbage):
    _write_entry(local_uri, 3, garbage)
    _assert_corrupt(corrupt_target, local_uri, 3)


def test_truncated_log_entry(corrupt_target, local_uri):
    data = _valid_entry_bytes(local_uri)
    _write_entry(local_uri, 3, data[: len(data) // 2])
    _assert_corrupt(corrupt_target, local_uri, 3)


def test_truncated_by_one_byte(corrupt_target, local_uri):
    data = _valid_entry_bytes(local_uri)
    _write_entry(local_uri, 3, data[:-1])
    _assert_corrupt(corrupt_target, local_uri, 3)


@pytest.mark.parametrize("where", [0.3, 0.5, 0.8, 0.95])
def test_flipped_byte_in_log_entry(corrupt_target, local_uri, where):
    data = bytearray(_valid_entry_bytes(local_uri))
    i = int(len(data) * where)
    data[i] ^= 0x01
    _write_entry(local_uri, 3, bytes(data))
    _assert_corrupt(corrupt_target, local_uri, 3)


def _reenvelope(data: bytes, edit) -> bytes:
    env = msgpack.unpackb(data, raw=False)
    assert env["format"] == 1 and zlib.crc32(env["body"]) == env["crc32"], "envelope differs from design"
    body = msgpack.unpackb(env["body"], raw=False, strict_map_key=False)
    body = edit(body)
    raw = msgpack.packb(body, use_bin_type=True)
    return msgpack.packb({"format": env["format"], "crc32": zlib.crc32(raw), "body": raw}, use_bin_type=True)


def test_valid_reenveloped_entry_is_accepted(corrupt_target, local_uri):
    """Control for the crafted-entry tests: re-encoding an unchanged body is read fine."""
    data = _valid_entry_bytes(local_uri)
    _write_entry(local_uri, 3, _reenvelope(data, lambda body: body))
    assert corrupt_target.refresh() == 3
    assert_same_rows(lh.Table.open(local_uri).to_arrow(), make_data([*range(6), 100]))


def test_future_format_version(corrupt_target, local_uri):
    data = _valid_entry_bytes(local_uri)
    env = msgpack.unpackb(data, raw=False)
    env["format"] = 99
    _write_entry(local_uri, 3, msgpack.packb(env, use_bin_type=True))
    _assert_corrupt(corrupt_target, local_uri, 3, exc=lh.UnsupportedFormatError)


def _set_add_path(path: str):
    def edit(body):
        assert body["add"], "expected an add action in an append entry"
        body["add"][0]["path"] = path
        return body

    return edit


@pytest.mark.parametrize(
    "bad_path",
    ["../outside.parquet", "a/../../outside.parquet", "/etc/passwd", "", "part=1/../../x.parquet"],
)
def test_add_path_escaping_the_root(corrupt_target, local_uri, bad_path):
    data = _valid_entry_bytes(local_uri)
    _write_entry(local_uri, 3, _reenvelope(data, _set_add_path(bad_path)))
    _assert_corrupt(corrupt_target, local_uri, 3)


def test_body_version_must_match_file_name(corrupt_target, local_uri):
    data = _valid_entry_bytes(local_uri)

    def edit(body):
        body["version"] = 7
        return body

    _write_entry(local_uri, 3, _reenvelope(data, edit))
    _assert_corrupt(corrupt_target, local_uri, 3)


def test_corrupt_checkpoint_is_detected_not_misread(local_uri):
    t = lh.Table.create(local_uri, SCHEMA)
    for i in range(3):
        t.append(make_data(range(i * 2, i * 2 + 2)))
    v = t.checkpoint()
    log_dir = os.path.dirname(log_entry_path(local_uri, 0))
    ckpts = [n for n in os.listdir(log_dir) if n.startswith(f"{v:020d}") and "checkpoint" in n]
    assert len(ckpts) == 1
    path = os.path.join(log_dir, ckpts[0])
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))
    # either refuse with CorruptLogError, or fall back to the log entries - never return other data
    try:
        reopened = lh.Table.open(local_uri)
    except lh.CorruptLogError as e:
        assert ckpts[0] in str(e)
    else:
        assert reopened.version == 3
        assert_same_rows(reopened.to_arrow(), make_data(range(6)))


def test_entry_requiring_a_newer_reader_is_refused(corrupt_target, local_uri):
    data = _valid_entry_bytes(local_uri)

    def edit(body):
        body["protocol"] = {"min_reader_version": 99, "min_writer_version": 99}
        return body

    _write_entry(local_uri, 3, _reenvelope(data, edit))
    with pytest.raises(lh.UnsupportedFormatError):
        lh.Table.open(local_uri)
    with pytest.raises(lh.UnsupportedFormatError):
        corrupt_target.refresh()
    assert_same_rows(corrupt_target.to_arrow(version=2), make_data(range(6)))


def _rewrite_checkpoint_format(path: str, fmt: int) -> None:
    import struct

    with open(path, "rb") as f:
        data = f.read()
    magic, payload = data[:8], data[12:]
    table = pa.ipc.open_file(pa.py_buffer(payload)).read_all()
    meta = dict(table.schema.metadata)
    info = msgpack.unpackb(meta[b"lakehouse.state"], raw=False)
    assert info["format"] == 1
    info["format"] = fmt
    meta[b"lakehouse.state"] = msgpack.packb(info, use_bin_type=True)
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    new_payload = sink.getvalue().to_pybytes()
    with open(path, "wb") as f:
        f.write(magic + struct.pack("<I", zlib.crc32(new_payload)) + new_payload)


def test_checkpoint_from_a_newer_format_is_never_misread(local_uri):
    t = lh.Table.create(local_uri, SCHEMA)
    for i in range(3):
        t.append(make_data(range(i * 2, i * 2 + 2)))
    v = t.checkpoint()
    log_dir = os.path.dirname(log_entry_path(local_uri, 0))
    (name,) = [n for n in os.listdir(log_dir) if n.startswith(f"{v:020d}") and "checkpoint" in n]
    _rewrite_checkpoint_format(os.path.join(log_dir, name), 99)
    # with the whole log still there a reader may fall back to the entries; it must not misread
    try:
        reopened = lh.Table.open(local_uri)
    except lh.UnsupportedFormatError as e:
        assert name in str(e)
    else:
        assert reopened.version == 3
        assert_same_rows(reopened.to_arrow(), make_data(range(6)))
    # once the early log is gone, the checkpoint is the only way in: refuse clearly
    for i in range(v + 1):
        os.remove(log_entry_path(local_uri, i))
    with pytest.raises(lh.UnsupportedFormatError) as info:
        lh.Table.open(local_uri)
    assert name in str(info.value)


def test_overwrite_with_a_different_schema_is_a_mismatch(table_uri):
    lh.write_table(table_uri, make_data(range(3)))
    other = pa.table({"id": [1], "other": ["x"]})
    with pytest.raises(lh.SchemaMismatchError):
        lh.write_table(table_uri, other, mode="overwrite")
    assert_same_rows(lh.Table.open(table_uri).to_arrow(), make_data(range(3)))


def test_null_in_a_non_nullable_partition_column(table_uri):
    schema = pa.schema([pa.field("p", pa.int32(), nullable=False), ("n", pa.int64())])
    t = lh.Table.create(table_uri, schema, partition_by=["p"])
    with pytest.raises(lh.LakehouseError):
        t.append(pa.table({"p": pa.array([1, None], pa.int32()), "n": [1, 2]}))
    assert lh.Table.open(table_uri).to_arrow().num_rows == 0

"""Behaviour of Table / Snapshot / write_table through the public API, on local and memory filesystems."""

from __future__ import annotations

import datetime as dt
import itertools

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from helpers import (
    SCHEMA,
    assert_same_rows,
    checkpoint_versions,
    fs_and_root,
    log_entry_path,
    make_data,
    parquet_files,
    rows,
)

import lakehouse as lh

UTC = dt.timezone.utc


def _partitioned(uri: str, **kw) -> lh.Table:
    return lh.Table.create(uri, SCHEMA, partition_by=["part"], **kw)


class _CStream:
    """A foreign object that only speaks the Arrow PyCapsule stream protocol."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


# --------------------------------------------------------------------------- create / open


def test_create_commits_empty_version_zero(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    assert t.version == 0
    out = t.to_arrow()
    assert out.num_rows == 0
    assert out.schema.equals(SCHEMA)
    assert t.schema.equals(SCHEMA)
    assert list(t.partition_by) == []
    s = t.snapshot()
    assert s.version == 0
    assert s.schema.equals(SCHEMA)
    assert s.files().num_rows == 0
    assert [c.version for c in t.history()] == [0]


def test_open_sees_what_create_wrote(table_uri):
    props = {"owner": "tests", "checkpoint_interval": "50"}
    lh.Table.create(table_uri, SCHEMA, partition_by=["part"], properties=props)
    t = lh.Table.open(table_uri)
    assert t.version == 0
    assert t.schema.equals(SCHEMA)
    assert list(t.partition_by) == ["part"]
    for k, v in props.items():
        assert t.properties[k] == v
    assert isinstance(t.uri, str)
    assert t.uri.rstrip("/").endswith(table_uri.rstrip("/").rsplit("/", 1)[-1])


def test_schema_roundtrips_exotic_types(table_uri):
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            ("ts", pa.timestamp("us", tz="Europe/Paris")),
            ("d", pa.decimal128(12, 3)),
            ("l", pa.list_(pa.int16())),
            ("st", pa.struct([("a", pa.int8()), ("b", pa.string())])),
            ("dict", pa.dictionary(pa.int32(), pa.string())),
            ("bin", pa.large_binary()),
        ]
    )
    lh.Table.create(table_uri, schema)
    t = lh.Table.open(table_uri)
    assert t.schema.equals(schema)
    assert t.schema.field("id").nullable is False
    assert t.to_arrow().schema.equals(schema)


# --------------------------------------------------------------------------- write_table modes


def test_write_table_creates_missing_table_with_data_at_version_zero(table_uri):
    data = make_data(range(10), part=[i % 3 for i in range(10)])
    t = lh.write_table(table_uri, data, partition_by=["part"])
    assert isinstance(t, lh.Table)
    assert t.version == 0
    assert [c.version for c in t.history()] == [0]
    assert list(t.partition_by) == ["part"]
    assert_same_rows(t.to_arrow(), data)
    reopened = lh.Table.open(table_uri)
    assert reopened.version == 0
    assert_same_rows(reopened.to_arrow(version=0), data)


def test_write_table_mode_error_refuses_existing(table_uri):
    lh.write_table(table_uri, make_data(range(3)))
    with pytest.raises(lh.TableExistsError):
        lh.write_table(table_uri, make_data(range(3, 6)))
    with pytest.raises(lh.TableExistsError):
        lh.write_table(table_uri, make_data(range(3, 6)), mode="error")
    t = lh.Table.open(table_uri)
    assert t.version == 0
    assert_same_rows(t.to_arrow(), make_data(range(3)))


def test_write_table_mode_append(table_uri):
    lh.write_table(table_uri, make_data(range(3)))
    t = lh.write_table(table_uri, make_data(range(3, 6)), mode="append")
    assert t.version == 1
    assert_same_rows(t.to_arrow(), make_data(range(6)))


def test_write_table_mode_overwrite(table_uri):
    lh.write_table(table_uri, make_data(range(3)))
    t = lh.write_table(table_uri, make_data(range(100, 102)), mode="overwrite")
    assert t.version == 1
    assert_same_rows(t.to_arrow(), make_data(range(100, 102)))
    assert_same_rows(t.to_arrow(version=0), make_data(range(3)))


def test_write_table_mode_ignore(table_uri):
    lh.write_table(table_uri, make_data(range(3)))
    t = lh.write_table(table_uri, make_data(range(100, 102)), mode="ignore")
    assert isinstance(t, lh.Table)
    assert t.version == 0
    assert_same_rows(t.to_arrow(), make_data(range(3)))


def test_write_table_modes_on_missing_table_create_it(table_uri):
    t = lh.write_table(table_uri, make_data(range(4)), mode="append")
    assert t.version == 0
    assert_same_rows(t.to_arrow(), make_data(range(4)))


def test_write_table_bad_mode(table_uri):
    with pytest.raises(ValueError):
        lh.write_table(table_uri, make_data(range(3)), mode="upsert")


# --------------------------------------------------------------------------- data shapes


@pytest.mark.parametrize("shape", ["table", "batch", "reader", "c_stream"])
def test_append_accepts_arrow_shaped_data(table_uri, shape):
    data = make_data(range(20), part=[i % 2 for i in range(20)])
    if shape == "table":
        arg = data
    elif shape == "batch":
        arg = data.combine_chunks().to_batches()[0]
    elif shape == "reader":
        arg = pa.RecordBatchReader.from_batches(SCHEMA, data.to_batches(max_chunksize=3))
    else:
        arg = _CStream(data)
    t = _partitioned(table_uri)
    assert t.append(arg) == 1
    assert_same_rows(t.to_arrow(), data)


@pytest.mark.parametrize("shape", ["table", "reader", "c_stream"])
def test_write_table_accepts_arrow_shaped_data(table_uri, shape):
    data = make_data(range(7))
    arg = {
        "table": data,
        "reader": pa.RecordBatchReader.from_batches(SCHEMA, data.to_batches(max_chunksize=2)),
        "c_stream": _CStream(data),
    }[shape]
    t = lh.write_table(table_uri, arg)
    assert_same_rows(t.to_arrow(), data)


def test_append_reorders_columns_by_name(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    data = make_data(range(5))
    t.append(data.select(["name", "value", "part", "id"]))
    assert_same_rows(t.to_arrow(), data)


def test_append_empty_data(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    t.append(make_data(range(3)))
    v = t.append(SCHEMA.empty_table())
    assert v in (1, 2)
    assert_same_rows(t.to_arrow(), make_data(range(3)))


# --------------------------------------------------------------------------- append / overwrite / delete


def test_append_returns_consecutive_versions(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    versions = [t.append(make_data(range(i * 10, i * 10 + 10))) for i in range(4)]
    assert versions == [1, 2, 3, 4]
    assert t.version == 4
    assert_same_rows(t.to_arrow(), make_data(range(40)))
    for v in range(5):
        assert_same_rows(t.to_arrow(version=v), make_data(range(v * 10)))


def test_overwrite_whole_table(table_uri):
    t = _partitioned(table_uri)
    t.append(make_data(range(10), part=[i % 3 for i in range(10)]))
    v = t.overwrite(make_data(range(50, 55), part=9))
    assert v == 2
    assert_same_rows(t.to_arrow(), make_data(range(50, 55), part=9))
    files = t.snapshot().files()
    assert files.column("partition.part").to_pylist() == [9] * files.num_rows
    assert_same_rows(t.to_arrow(version=1), make_data(range(10), part=[i % 3 for i in range(10)]))


@pytest.mark.parametrize(
    "flt",
    [[("part", "=", 1)], pc.field("part") == 1],
    ids=["dnf", "expression"],
)
def test_overwrite_with_filter_replaces_matching_rows(table_uri, flt):
    t = _partitioned(table_uri)
    base = make_data(range(30), part=[i % 3 for i in range(30)])
    t.append(base)
    new = make_data(range(100, 104), part=1)
    v = t.overwrite(new, filter=flt)
    assert v == 2
    expected = pa.concat_tables([base.filter(pc.field("part") != 1), new])
    assert_same_rows(t.to_arrow(), expected)


def test_overwrite_with_data_filter_on_non_partition_column(table_uri):
    t = _partitioned(table_uri)
    base = make_data(range(20), part=[i % 2 for i in range(20)])
    t.append(base)
    new = make_data([3, 4, 5], part=[0, 1, None])
    t.overwrite(new, filter=[("id", "<", 10)])
    expected = pa.concat_tables([base.filter(pc.field("id") >= 10), new])
    assert_same_rows(t.to_arrow(), expected)


def test_overwrite_with_filter_rejects_rows_outside_filter(table_uri):
    t = _partitioned(table_uri)
    base = make_data(range(9), part=[i % 3 for i in range(9)])
    t.append(base)
    n_files = len(parquet_files(table_uri))
    bad = make_data(range(100, 104), part=[1, 1, 2, 1])
    with pytest.raises(lh.ConstraintViolationError):
        t.overwrite(bad, filter=[("part", "=", 1)])
    # a null partition value does not satisfy part = 1 either
    with pytest.raises(lh.ConstraintViolationError):
        t.overwrite(make_data([200], part=None), filter=[("part", "=", 1)])
    assert t.version == 1
    assert t.refresh() == 1
    assert_same_rows(lh.Table.open(table_uri).to_arrow(), base)
    assert len(parquet_files(table_uri)) == n_files, "rejected overwrite left data files behind"


def test_delete_drops_wholly_matched_files_and_rewrites_partial_ones(table_uri):
    t = _partitioned(table_uri)
    base = make_data(range(30), part=[i % 3 for i in range(30)])
    t.append(base)
    before = t.snapshot().files()
    assert before.num_rows == 3  # one file per partition
    # wholly matched: the part=1 file is dropped, the others untouched
    v = t.delete([("part", "=", 1)])
    assert v == 2
    after = t.snapshot().files()
    assert after.num_rows == 2
    kept = set(after.column("path").to_pylist())
    assert kept <= set(before.column("path").to_pylist())
    assert sorted(after.column("partition.part").to_pylist()) == [0, 2]
    # partly matched: the part=0 file is rewritten, the part=2 file stays as it is
    t.delete((pc.field("id") < 10) & (pc.field("part") == 0))
    last = t.snapshot().files()
    assert last.num_rows == 2
    paths = {r["partition.part"]: r["path"] for r in last.to_pylist()}
    old = {r["partition.part"]: r["path"] for r in after.to_pylist()}
    assert paths[2] == old[2]
    assert paths[0] != old[0]
    expected = base.filter((pc.field("part") == 2) | ((pc.field("part") == 0) & (pc.field("id") >= 10)))
    assert_same_rows(t.to_arrow(), expected)
    assert sum(last.column("num_rows").to_pylist()) == expected.num_rows


def test_delete_everything_in_a_file_by_data_filter_drops_it(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    t.append(make_data(range(10)))
    t.append(make_data(range(10, 20)))
    t.delete([("id", ">=", 10)])
    files = t.snapshot().files()
    assert files.num_rows == 1
    assert files.column("num_rows").to_pylist() == [10]
    assert_same_rows(t.to_arrow(), make_data(range(10)))


def test_delete_keeps_rows_where_filter_is_null(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    data = make_data(range(20))  # value is null for ids 3, 10, 17
    t.append(data)
    t.delete(pc.field("value") < 5)
    expected = data.filter(~(pc.field("value") < 5) | pc.field("value").is_null())
    assert_same_rows(t.to_arrow(), expected)
    assert sorted(i for i in t.to_arrow().column("id").to_pylist() if i in (3, 10, 17)) == [3, 10, 17]


def test_delete_with_or_filter(table_uri):
    t = _partitioned(table_uri)
    data = make_data(range(30), part=[i % 3 for i in range(30)])
    t.append(data)
    t.delete([[("part", "=", 0)], [("id", ">", 25)]])
    expected = data.filter((pc.field("part") != 0) & (pc.field("id") <= 25))
    assert_same_rows(t.to_arrow(), expected)


# --------------------------------------------------------------------------- partitions


def test_null_partition_values(table_uri):
    t = _partitioned(table_uri)
    data = make_data(range(12), part=[None, 1, None, 2] * 3)
    t.append(data)
    assert_same_rows(t.to_arrow(), data)
    files = t.snapshot().files()
    assert sorted(files.column("partition.part").to_pylist(), key=lambda x: (x is None, x)) == [1, 2, None]
    nulls = t.to_arrow(filter=pc.field("part").is_null())
    assert_same_rows(nulls, data.filter(pc.field("part").is_null()))
    only_null_files = t.snapshot().files(filter=pc.field("part").is_null())
    assert only_null_files.column("partition.part").to_pylist() == [None]
    t.delete(pc.field("part").is_null())
    assert_same_rows(t.to_arrow(), data.filter(pc.field("part").is_valid()))
    assert lh.Table.open(table_uri).to_arrow().num_rows == 6


NASTY = [
    "../x",
    "a/b",
    "a\x00b",
    "ünï©ødé ☃ 🦆",
    "=",
    "k=v",
    "%2F",
    "__HIVE_DEFAULT_PARTITION__",
    " ",
    ".",
    "..",
    "",
    "a\\b",
    "x" * 300,
    "x" * 299 + "y",
    None,
]


def test_nasty_string_partition_values_roundtrip(table_uri, tmp_path):
    schema = pa.schema([("key", pa.string()), ("n", pa.int64())])
    t = lh.Table.create(table_uri, schema, partition_by=["key"])
    data = pa.table({"key": NASTY, "n": list(range(len(NASTY)))}, schema=schema)
    t.append(data)
    out = lh.Table.open(table_uri).to_arrow()
    assert_same_rows(out, data)
    files = t.snapshot().files()
    assert files.num_rows == len(NASTY)
    assert sorted(files.column("partition.key").to_pylist(), key=lambda x: (x is None, x)) == sorted(
        NASTY, key=lambda x: (x is None, x)
    )
    for p in files.column("path").to_pylist():
        assert not p.startswith("/")
        assert ".." not in p.split("/")
        assert "\x00" not in p
    # every value can be selected exactly, and the escaped paths do not collide
    for i, value in enumerate(NASTY):
        flt = pc.field("key").is_null() if value is None else pc.field("key") == value
        got = t.to_arrow(filter=flt)
        assert got.column("n").to_pylist() == [i], repr(value)
        assert t.snapshot().files(filter=flt).num_rows == 1, repr(value)
    assert sorted(parquet_files(table_uri)) == sorted(files.column("path").to_pylist())
    if "://" not in table_uri:
        # nothing was written outside the table root
        assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_partition_by_several_columns_and_types(table_uri):
    schema = pa.schema(
        [
            ("day", pa.date32()),
            ("flag", pa.bool_()),
            ("id", pa.int64()),
            ("ts", pa.timestamp("us", tz="UTC")),
        ]
    )
    days = [dt.date(2024, 1, 1), dt.date(2024, 1, 2), None]
    data = pa.table(
        {
            "day": [days[i % 3] for i in range(12)],
            "flag": [i % 2 == 0 for i in range(12)],
            "id": list(range(12)),
            "ts": [dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(hours=i) for i in range(12)],
        },
        schema=schema,
    )
    t = lh.Table.create(table_uri, schema, partition_by=["day", "flag"])
    t.append(data)
    out = lh.Table.open(table_uri).to_arrow()
    assert_same_rows(out, data)
    assert t.snapshot().files().num_rows == 6
    got = t.to_arrow(filter=[("day", "=", dt.date(2024, 1, 2)), ("flag", "=", True)])
    assert_same_rows(
        got,
        data.filter((pc.field("day") == dt.date(2024, 1, 2)) & (pc.field("flag") == True)),  # noqa: E712
    )


# --------------------------------------------------------------------------- handles, refresh, snapshots


def test_refresh_sees_other_handles_commits(table_uri):
    a = lh.Table.create(table_uri, SCHEMA)
    b = lh.Table.open(table_uri)
    assert b.append(make_data(range(5))) == 1
    assert b.append(make_data(range(5, 8))) == 2
    assert a.version == 0
    assert a.refresh() == 2
    assert a.version == 2
    assert_same_rows(a.to_arrow(), make_data(range(8)))
    # a stale handle's write lands after the other commits, not on top of them
    assert b.version == 2
    a.append(make_data(range(8, 9)))
    assert a.version == 3
    assert b.refresh() == 3
    assert_same_rows(b.to_arrow(), make_data(range(9)))


def test_snapshot_is_pinned(table_uri):
    t = _partitioned(table_uri)
    t.append(make_data(range(10), part=[i % 2 for i in range(10)]))
    s = t.snapshot()
    before = s.to_arrow()
    before_files = s.files()
    t.append(make_data(range(10, 20)))
    t.delete([("part", "=", 0)])
    t.overwrite(make_data(range(100, 101)))
    assert s.version == 1
    assert_same_rows(s.to_arrow(), before)
    assert s.files().equals(before_files)
    assert_same_rows(t.to_arrow(), make_data(range(100, 101)))


def test_snapshot_reads(table_uri):
    t = _partitioned(table_uri)
    data = make_data(range(40), part=[i % 4 for i in range(40)])
    t.append(data.slice(0, 20))
    t.append(data.slice(20))
    s = t.snapshot()
    reader = s.to_batches()
    assert isinstance(reader, pa.RecordBatchReader)
    assert reader.schema.equals(SCHEMA)
    assert_same_rows(reader.read_all(), data)
    filtered = s.to_batches(filter=[("part", "in", [1, 3])], columns=["id", "part"])
    assert isinstance(filtered, pa.RecordBatchReader)
    assert_same_rows(
        filtered.read_all(),
        data.filter(pc.field("part").isin([1, 3])).select(["id", "part"]),
    )


def test_columns_projection(table_uri):
    t = _partitioned(table_uri)
    data = make_data(range(10), part=[i % 2 for i in range(10)])
    t.append(data)
    for cols in (["id"], ["name", "id"], ["part"], ["value", "part"], []):
        got = t.to_arrow(columns=cols)
        assert got.column_names == cols
        assert got.num_rows == 10
        assert_same_rows(got, data.select(cols))
    got = t.to_arrow(columns=["id"], filter=[("part", "=", 1), ("value", ">", 1.0)])
    assert got.column_names == ["id"]
    assert sorted(got.column("id").to_pylist()) == [5, 7, 9]


def test_to_pyarrow_dataset(table_uri):
    t = _partitioned(table_uri)
    data = make_data(range(30), part=[i % 3 if i % 10 else None for i in range(30)])
    t.append(data.slice(0, 15))
    t.append(data.slice(15))
    dset = t.snapshot().to_pyarrow_dataset()
    assert isinstance(dset, ds.Dataset)
    assert_same_rows(dset.to_table().select(SCHEMA.names), data)
    flt = (pc.field("part") == 2) & (pc.field("id") > 4)
    assert_same_rows(dset.to_table(filter=flt).select(SCHEMA.names), data.filter(flt))
    assert_same_rows(
        dset.to_table(filter=pc.field("part").is_null()).select(SCHEMA.names),
        data.filter(pc.field("part").is_null()),
    )
    # pinned to the snapshot's version
    t.overwrite(make_data(range(1)))
    assert dset.count_rows() == 30


# --------------------------------------------------------------------------- history / time travel


def test_history_newest_first_with_utc_timestamps_and_operations(table_uri):
    t = _partitioned(table_uri)
    t.append(make_data(range(10), part=[i % 2 for i in range(10)]))
    t.delete([("part", "=", 0)])
    t.overwrite(make_data(range(5), part=1), filter=[("part", "=", 1)])
    t.overwrite(make_data(range(3), part=3))
    hist = t.history()
    assert [c.version for c in hist] == [4, 3, 2, 1, 0]
    for c in hist:
        assert isinstance(c, lh.Commit)
        assert isinstance(c.timestamp, dt.datetime)
        assert c.timestamp.tzinfo is not None
        assert c.timestamp.utcoffset() == dt.timedelta(0)
        assert isinstance(c.operation, str) and c.operation
        assert isinstance(c.info, dict)
    stamps = [c.timestamp for c in hist]
    assert all(a > b for a, b in itertools.pairwise(stamps)), "commit timestamps must strictly increase"
    now = dt.datetime.now(UTC)
    assert now - dt.timedelta(minutes=5) < stamps[-1] <= now + dt.timedelta(seconds=5)
    ops = [c.operation.lower() for c in hist]
    assert "create" in ops[4]
    assert "append" in ops[3] or "write" in ops[3]
    assert "delete" in ops[2]
    assert "overwrite" in ops[1] or "replace" in ops[1]
    assert "overwrite" in ops[0]
    assert [c.version for c in t.history(limit=2)] == [4, 3]
    assert [c.version for c in lh.Table.open(table_uri).history()] == [4, 3, 2, 1, 0]
    # snapshots report the same timestamps as the history
    for c in hist:
        assert t.snapshot(version=c.version).timestamp == c.timestamp


def test_time_travel_by_version_and_timestamp(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    for i in range(4):
        t.append(make_data(range(i * 5, i * 5 + 5)))
    t.delete([("id", "<", 5)])
    expected = {v: make_data(range(v * 5)) for v in range(5)}
    expected[5] = make_data(range(5, 20))
    by_version = {c.version: c for c in t.history()}
    for v, exp in expected.items():
        assert_same_rows(t.to_arrow(version=v), exp)
        s = t.snapshot(version=v)
        assert s.version == v
        assert_same_rows(s.to_arrow(), exp)
        ts = by_version[v].timestamp
        assert t.snapshot(as_of=ts).version == v
        assert_same_rows(t.to_arrow(as_of=ts), exp)
        # a moment after the commit (before the next one) still resolves to it
        assert t.snapshot(as_of=ts + dt.timedelta(microseconds=500)).version == v
        # the same instant in another time zone
        other = ts.astimezone(dt.timezone(dt.timedelta(hours=-7)))
        assert t.snapshot(as_of=other).version == v
    future = dt.datetime.now(UTC) + dt.timedelta(days=365)
    assert t.snapshot(as_of=future).version == 5


def test_as_of_naive_datetime_is_rejected(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    t.append(make_data(range(3)))
    with pytest.raises(ValueError):
        t.snapshot(as_of=dt.datetime.now())
    with pytest.raises(ValueError):
        t.to_arrow(as_of=dt.datetime.now())


def test_version_and_as_of_together_is_rejected(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    with pytest.raises((ValueError, TypeError)):
        t.snapshot(version=0, as_of=dt.datetime.now(UTC))


# --------------------------------------------------------------------------- transactions


def test_transaction_is_one_commit(table_uri):
    t = _partitioned(table_uri)
    base = make_data(range(20), part=[i % 2 for i in range(20)])
    t.append(base)
    with t.transaction() as tx:
        tx.delete([("part", "=", 0)])
        tx.append(make_data(range(100, 105), part=5))
        tx.overwrite(make_data(range(200, 202), part=1), filter=[("part", "=", 1)])
    assert t.version == 2
    assert [c.version for c in t.history()] == [2, 1, 0]
    expected = pa.concat_tables([make_data(range(100, 105), part=5), make_data(range(200, 202), part=1)])
    assert_same_rows(t.to_arrow(), expected)
    assert_same_rows(lh.Table.open(table_uri).to_arrow(), expected)
    assert_same_rows(t.to_arrow(version=1), base)


def test_transaction_operations_see_each_other(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    t.append(make_data(range(5)))
    with t.transaction() as tx:
        tx.append(make_data(range(10, 15)))
        tx.delete([("id", ">=", 12)])  # removes rows appended in the same transaction
        tx.append(make_data(range(20, 21)))
    assert t.version == 2
    assert_same_rows(t.to_arrow(), make_data([0, 1, 2, 3, 4, 10, 11, 20]))


def test_transaction_that_raises_commits_nothing(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    t.append(make_data(range(5)))

    class Boom(Exception):
        pass

    with pytest.raises(Boom), t.transaction() as tx:
        tx.delete([("id", "<", 3)])
        tx.append(make_data(range(50, 60)))
        raise Boom
    assert t.version == 1
    assert t.refresh() == 1
    reopened = lh.Table.open(table_uri)
    assert reopened.version == 1
    assert [c.version for c in reopened.history()] == [1, 0]
    assert_same_rows(reopened.to_arrow(), make_data(range(5)))
    # the table is still writable afterwards
    assert t.append(make_data(range(5, 6))) == 2


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_and_reopen_are_equivalent(table_uri):
    t = _partitioned(table_uri)
    for i in range(6):
        t.append(make_data(range(i * 4, i * 4 + 4), part=[i % 3, None, 1, i]))
    t.delete([("part", "=", 1)])
    t.append(make_data(range(100, 102), part=7), app_transaction=("job", 3))
    expected_latest = t.to_arrow()
    expected_versions = {v: t.to_arrow(version=v) for v in range(t.version + 1)}
    files_before = t.snapshot().files()
    v = t.checkpoint()
    assert v == t.version == 8
    assert v in checkpoint_versions(table_uri)
    reopened = lh.Table.open(table_uri)
    assert reopened.version == 8
    assert reopened.schema.equals(SCHEMA)
    assert list(reopened.partition_by) == ["part"]
    assert_same_rows(reopened.to_arrow(), expected_latest)
    assert reopened.app_version("job") == 3
    files_after = reopened.snapshot().files().sort_by("path")
    assert files_after.select(files_before.column_names).equals(files_before.sort_by("path"))
    for ver, exp in expected_versions.items():
        assert_same_rows(reopened.to_arrow(version=ver), exp)
    # writes continue after the checkpoint
    reopened.append(make_data(range(200, 201), part=0))
    assert lh.Table.open(table_uri).version == 9
    assert lh.Table.open(table_uri).to_arrow().num_rows == expected_latest.num_rows + 1


def test_automatic_checkpoint_every_interval(table_uri):
    t = lh.Table.create(table_uri, SCHEMA, properties={"checkpoint_interval": "5"})
    for i in range(12):
        t.append(make_data(range(i, i + 1)))
    assert t.version == 12
    assert checkpoint_versions(table_uri) == {5, 10}
    reopened = lh.Table.open(table_uri)
    assert reopened.version == 12
    assert_same_rows(reopened.to_arrow(), make_data(range(12)))


def test_open_uses_checkpoint_instead_of_older_entries(local_uri):
    """After a checkpoint at 5, opening must not need entries 0..4 (damage one to prove it)."""
    t = lh.Table.create(local_uri, SCHEMA, properties={"checkpoint_interval": "5"})
    for i in range(7):
        t.append(make_data(range(i, i + 1)))
    assert 5 in checkpoint_versions(local_uri)
    with open(log_entry_path(local_uri, 2), "wb") as f:
        f.write(b"\x00garbage")
    reopened = lh.Table.open(local_uri)
    assert reopened.version == 7
    assert_same_rows(reopened.to_arrow(), make_data(range(7)))
    assert_same_rows(reopened.to_arrow(version=6), make_data(range(6)))


def test_checkpoint_interval_must_be_valid(table_uri):
    with pytest.raises(ValueError):
        lh.Table.create(table_uri, SCHEMA, properties={"checkpoint_interval": "zero"})


# --------------------------------------------------------------------------- app transactions


def test_app_transaction_is_applied_at_most_once(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    assert t.app_version("etl") is None
    v1 = t.append(make_data(range(3)), app_transaction=("etl", 1))
    assert v1 == 1
    assert t.app_version("etl") == 1
    # replay of the same (app, version) and of an older one: skipped, nothing written
    n_files = len(parquet_files(table_uri))
    assert t.append(make_data(range(3)), app_transaction=("etl", 1)) == 1
    assert t.append(make_data(range(3)), app_transaction=("etl", 0)) == 1
    assert t.version == 1
    assert len(parquet_files(table_uri)) == n_files
    assert_same_rows(t.to_arrow(), make_data(range(3)))
    # a newer version goes through, other app ids are independent
    assert t.append(make_data(range(3, 5)), app_transaction=("etl", 2)) == 2
    assert t.append(make_data(range(5, 6)), app_transaction=("other", 1)) == 3
    assert t.app_version("etl") == 2
    assert t.app_version("other") == 1
    assert t.app_version("never") is None
    reopened = lh.Table.open(table_uri)
    assert reopened.app_version("etl") == 2
    # a stale handle also respects it (it must look at the latest state)
    stale = lh.Table.open(table_uri)
    t.append(make_data(range(6, 7)), app_transaction=("etl", 3))
    stale.append(make_data(range(6, 7)), app_transaction=("etl", 3))
    assert_same_rows(lh.Table.open(table_uri).to_arrow(), make_data(range(7)))


def test_app_transaction_on_overwrite_and_delete(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    t.append(make_data(range(10)))
    v = t.delete([("id", "<", 5)], app_transaction=("del", 7))
    assert v == 2
    assert t.delete([("id", "<", 8)], app_transaction=("del", 7)) == 2
    assert_same_rows(t.to_arrow(), make_data(range(5, 10)))
    t.overwrite(make_data(range(1)), app_transaction=("ow", 1))
    t.overwrite(make_data(range(2)), app_transaction=("ow", 1))
    assert_same_rows(t.to_arrow(), make_data(range(1)))
    assert t.app_version("del") == 7
    assert t.app_version("ow") == 1


def test_app_transaction_survives_checkpoint(table_uri):
    t = lh.Table.create(table_uri, SCHEMA, properties={"checkpoint_interval": "2"})
    t.append(make_data(range(1)), app_transaction=("a", 10))
    t.append(make_data(range(1, 2)), app_transaction=("b", 20))
    t.append(make_data(range(2, 3)))
    assert checkpoint_versions(table_uri)
    reopened = lh.Table.open(table_uri)
    assert reopened.app_version("a") == 10
    assert reopened.app_version("b") == 20
    assert reopened.append(make_data(range(9)), app_transaction=("a", 10)) == 3


# --------------------------------------------------------------------------- files()


def test_files_columns_and_stats(table_uri):
    t = _partitioned(table_uri)
    d1 = make_data(range(0, 10), part=1)
    d2 = make_data(range(10, 25), part=2)
    d3 = make_data(range(25, 30), part=None)
    t.append(pa.concat_tables([d1, d2]))
    t.append(d3)
    files = t.snapshot().files()
    assert isinstance(files, pa.Table)
    names = files.column_names
    for col in ("path", "size_bytes", "num_rows", "partition.part"):
        assert col in names
    for c in ("id", "value", "name"):
        for prefix in ("min.", "max.", "null_count."):
            assert prefix + c in names
    assert "min.part" not in names and "max.part" not in names
    assert files.schema.field("min.id").type == pa.int64()
    assert files.schema.field("min.value").type == pa.float64()
    assert files.schema.field("max.name").type in (pa.string(), pa.large_string())
    assert files.schema.field("partition.part").type == pa.int32()
    assert files.num_rows == 3
    by_part = {r["partition.part"]: r for r in files.to_pylist()}
    fs, root = fs_and_root(table_uri)
    for part, d in ((1, d1), (2, d2), (None, d3)):
        r = by_part[part]
        assert r["num_rows"] == d.num_rows
        assert r["min.id"] == pc.min(d["id"]).as_py()
        assert r["max.id"] == pc.max(d["id"]).as_py()
        assert r["null_count.id"] == 0
        assert r["null_count.value"] == d["value"].null_count
        assert r["null_count.name"] == d["name"].null_count
        assert r["min.value"] == pc.min(d["value"]).as_py()
        assert r["max.name"] == pc.max(d["name"]).as_py()
        assert not r["path"].startswith("/")
        assert r["path"].endswith(".parquet")
        assert r["size_bytes"] == fs.size(f"{root}/{r['path']}")
    assert sorted(parquet_files(table_uri)) == sorted(files.column("path").to_pylist())


def test_files_under_partition_filter_lists_only_matching_files(table_uri):
    t = _partitioned(table_uri)
    for p in (0, 1, 2, None, 1):
        t.append(make_data(range(3), part=p))
    s = t.snapshot()
    everything = s.files()
    assert everything.num_rows == 5
    ones = s.files(filter=[("part", "=", 1)])
    assert ones.num_rows == 2
    assert ones.column("partition.part").to_pylist() == [1, 1]
    assert set(ones.column("path").to_pylist()) <= set(everything.column("path").to_pylist())
    gt = s.files(filter=pc.field("part") > 0)
    assert sorted(gt.column("partition.part").to_pylist()) == [1, 1, 2]
    assert s.files(filter=[("part", "=", 42)]).num_rows == 0


def test_files_filter_prunes_by_stats(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    t.append(make_data(range(0, 10)))
    t.append(make_data(range(100, 110)))
    s = t.snapshot()
    hit = s.files(filter=[("id", ">=", 100)])
    assert hit.num_rows == 1
    assert hit.column("min.id").to_pylist() == [100]
    assert s.files(filter=[("id", ">", 1000)]).num_rows == 0


def test_reads_are_exact_after_many_commits(table_uri):
    t = _partitioned(table_uri)
    expected = []
    for i in range(8):
        d = make_data(range(i * 3, i * 3 + 3), part=[i % 2, None, 2])
        t.append(d)
        expected.append(d)
    assert_same_rows(t.to_arrow(), pa.concat_tables(expected))
    assert rows(lh.Table.open(table_uri).to_arrow()) == rows(pa.concat_tables(expected))


# --------------------------------------------------------------------------- more shapes and edges


def test_failing_stream_commits_nothing_and_cleans_up(table_uri):
    t = lh.Table.create(table_uri, SCHEMA, partition_by=["part"])
    t.append(make_data(range(3)))
    n_files = len(parquet_files(table_uri))

    def batches():
        for i in range(5):
            if i == 3:
                raise RuntimeError("source failed")
            yield make_data(range(i * 10, i * 10 + 10), part=i).to_batches()[0]

    with pytest.raises(RuntimeError, match="source failed"):
        t.append(pa.RecordBatchReader.from_batches(SCHEMA, batches()))
    assert t.version == 1
    assert lh.Table.open(table_uri).version == 1
    assert_same_rows(lh.Table.open(table_uri).to_arrow(), make_data(range(3)))
    assert len(parquet_files(table_uri)) == n_files, "files of the failed write were left behind"


def test_large_stream_in_many_batches(table_uri):
    t = lh.Table.create(table_uri, SCHEMA, partition_by=["part"])
    n = 200

    def batches():
        for i in range(n):
            yield make_data(range(i * 50, i * 50 + 50), part=i % 4).to_batches()[0]

    t.append(pa.RecordBatchReader.from_batches(SCHEMA, batches()))
    assert t.version == 1
    out = t.to_arrow()
    assert out.num_rows == n * 50
    assert sorted(out.column("id").to_pylist()) == list(range(n * 50))
    assert sorted(set(t.snapshot().files().column("partition.part").to_pylist())) == [0, 1, 2, 3]


EXOTIC = pa.schema(
    [
        ("id", pa.int64()),
        ("i8", pa.int8()),
        ("u64", pa.uint64()),
        ("f32", pa.float32()),
        ("b", pa.bool_()),
        ("ls", pa.large_string()),
        ("bin", pa.binary()),
        ("d", pa.date32()),
        ("ts", pa.timestamp("ns", tz="America/New_York")),
        ("ts_naive", pa.timestamp("ms")),
        ("t", pa.time64("us")),
        ("dur", pa.duration("s")),
        ("dec", pa.decimal128(10, 2)),
        ("lst", pa.list_(pa.int32())),
        ("st", pa.struct([("a", pa.int8()), ("b", pa.string())])),
        ("dict", pa.dictionary(pa.int32(), pa.string())),
    ]
)


def _exotic_data(n: int, offset: int = 0) -> pa.Table:
    import decimal

    base = dt.datetime(2024, 3, 10, 1, 30, tzinfo=UTC)
    cols = {
        "id": list(range(offset, offset + n)),
        "i8": [(-128 + i) if i % 4 else None for i in range(n)],
        "u64": [2**64 - 1 - i for i in range(n)],
        "f32": [i * 0.5 - 1 for i in range(n)],
        "b": [i % 2 == 0 for i in range(n)],
        "ls": [f"s{i}é" for i in range(n)],
        "bin": [bytes([i % 256, 0, 255]) for i in range(n)],
        "d": [dt.date(1969, 12, 30) + dt.timedelta(days=i) for i in range(n)],
        "ts": [base + dt.timedelta(hours=i) for i in range(n)],
        "ts_naive": [dt.datetime(2000, 1, 1) + dt.timedelta(milliseconds=i) for i in range(n)],
        "t": [dt.time(23, 59, i % 60) for i in range(n)],
        "dur": [dt.timedelta(seconds=i - 2) for i in range(n)],
        "dec": [decimal.Decimal(f"{i - 3}.25") for i in range(n)],
        "lst": [[i, None, -i] for i in range(n)],
        "st": [{"a": i % 100, "b": str(i)} for i in range(n)],
        "dict": [["x", "y", None][i % 3] for i in range(n)],
    }
    return pa.table(cols, schema=EXOTIC)


def test_exotic_types_roundtrip_with_stats_and_checkpoint(table_uri):
    t = lh.Table.create(table_uri, EXOTIC)
    d1, d2 = _exotic_data(7), _exotic_data(5, offset=100)
    t.append(d1)
    t.append(d2)
    expected = pa.concat_tables([d1, d2])
    got = t.to_arrow()
    assert got.schema.equals(EXOTIC)
    assert got.sort_by("id").equals(expected.sort_by("id"))
    files = t.snapshot().files().sort_by("path")
    by_first = {r["min.id"]: r for r in files.to_pylist()}
    for d in (d1, d2):
        r = by_first[pc.min(d["id"]).as_py()]
        for c in ("i8", "u64", "f32", "ls", "bin", "d", "ts", "ts_naive", "t", "dec"):
            if f"min.{c}" in files.column_names:
                assert r[f"min.{c}"] == pc.min(d[c]).as_py(), c
                assert r[f"max.{c}"] == pc.max(d[c]).as_py(), c
                assert files.schema.field(f"min.{c}").type == EXOTIC.field(c).type, c
        assert r["null_count.i8"] == d["i8"].null_count
    for c in ("i8", "u64", "ls", "d", "ts", "dec"):
        assert f"min.{c}" in files.column_names, c
    t.checkpoint()
    reopened = lh.Table.open(table_uri)
    assert reopened.snapshot().files().sort_by("path").equals(files)
    assert reopened.to_arrow().sort_by("id").equals(expected.sort_by("id"))
    # filters on these types, including via the stats
    flt = [("ts", ">=", dt.datetime(2024, 3, 10, 4, 30, tzinfo=UTC)), ("dec", "<", 2)]
    exp = expected.filter(
        (pc.field("ts") >= pa.scalar(dt.datetime(2024, 3, 10, 4, 30, tzinfo=UTC), EXOTIC.field("ts").type))
        & (pc.field("dec") < pa.scalar(2, pa.decimal128(10, 2)))
    )
    assert sorted(reopened.to_arrow(filter=flt).column("id").to_pylist()) == sorted(exp.column("id").to_pylist())


@pytest.mark.parametrize(
    "typ, values",
    [
        (pa.timestamp("us", tz="UTC"), [dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(1960, 5, 5, 5, tzinfo=UTC)]),
        (pa.decimal128(8, 3), ["1.500", "-0.001"]),
        (pa.binary(), [b"\x00\xff/", b".."]),
        (pa.bool_(), [True, False]),
        (pa.date32(), [dt.date(1970, 1, 1), dt.date(2100, 12, 31)]),
        (pa.int64(), [-(2**63), 2**63 - 1]),
        (pa.uint8(), [0, 255]),
    ],
    ids=["timestamp", "decimal", "binary", "bool", "date", "int64", "uint8"],
)
def test_partition_values_are_typed_and_roundtrip(table_uri, typ, values):
    import decimal

    if pa.types.is_decimal(typ):
        values = [decimal.Decimal(v) for v in values]
    values = [*values, None]
    schema = pa.schema([("k", typ), ("n", pa.int64())])
    data = pa.table({"k": pa.array(values, typ), "n": list(range(len(values)))}, schema=schema)
    t = lh.Table.create(table_uri, schema, partition_by=["k"])
    t.append(data)
    t.checkpoint()
    for handle in (t, lh.Table.open(table_uri)):
        got = handle.to_arrow()
        assert got.schema.equals(schema)
        assert got.sort_by("n").equals(data)
        files = handle.snapshot().files()
        assert files.schema.field("partition.k").type == typ
        assert files.num_rows == len(values)
        for i, v in enumerate(values):
            flt = pc.field("k").is_null() if v is None else pc.field("k") == pa.scalar(v, typ)
            assert handle.to_arrow(filter=flt).column("n").to_pylist() == [i], v


def test_float_partition_column_is_refused(table_uri):
    schema = pa.schema([("k", pa.float64()), ("n", pa.int64())])
    with pytest.raises(lh.InvalidTableError):
        lh.Table.create(table_uri, schema, partition_by=["k"])
    with pytest.raises(lh.TableNotFoundError):
        lh.Table.open(table_uri)


def test_column_names_that_look_like_files_columns(table_uri):
    schema = pa.schema([("path", pa.string()), ("num_rows", pa.int64()), ("a.b", pa.int32()), ("p", pa.int8())])
    data = pa.table(
        {"path": ["x", "y", None], "num_rows": [1, 2, 3], "a.b": [1, None, 3], "p": [1, 1, 2]}, schema=schema
    )
    t = lh.Table.create(table_uri, schema, partition_by=["p"])
    t.append(data)
    assert_same_rows(lh.Table.open(table_uri).to_arrow(), data)
    files = t.snapshot().files()
    assert sum(files.column("num_rows").to_pylist()) == 3
    assert "min.a.b" in files.column_names and "min.path" in files.column_names
    assert_same_rows(t.to_arrow(filter=[("a.b", "=", 3)]), data.filter(pc.field("a.b") == 3))
    assert_same_rows(t.to_arrow(filter=[("path", "=", "x")]), data.slice(0, 1))


def test_checkpoint_of_an_empty_table(table_uri):
    t = lh.Table.create(table_uri, SCHEMA, partition_by=["part"])
    assert t.checkpoint() == 0
    reopened = lh.Table.open(table_uri)
    assert reopened.version == 0
    assert reopened.to_arrow().num_rows == 0
    assert list(reopened.partition_by) == ["part"]
    assert reopened.append(make_data(range(2))) == 1


def test_checkpoint_after_everything_was_deleted(table_uri):
    t = lh.Table.create(table_uri, SCHEMA)
    t.append(make_data(range(5)))
    t.delete([("id", ">=", 0)])
    t.checkpoint()
    reopened = lh.Table.open(table_uri)
    assert reopened.version == 2
    assert reopened.to_arrow().num_rows == 0
    assert reopened.snapshot().files().num_rows == 0
    assert_same_rows(reopened.to_arrow(version=1), make_data(range(5)))


@pytest.mark.parametrize("damage", ["missing", "garbage", "stale"])
def test_last_checkpoint_pointer_is_only_a_hint(local_uri, damage):
    import os

    t = lh.Table.create(local_uri, SCHEMA, properties={"checkpoint_interval": "3"})
    for i in range(7):
        t.append(make_data(range(i, i + 1)))
    assert checkpoint_versions(local_uri) == {3, 6}
    log_dir = os.path.dirname(log_entry_path(local_uri, 0))
    pointer = os.path.join(log_dir, "_last_checkpoint")
    assert os.path.exists(pointer)
    if damage == "missing":
        os.remove(pointer)
    elif damage == "garbage":
        with open(pointer, "wb") as f:
            f.write(b"\x93garbage")
    else:
        # a pointer left behind by an older checkpoint: readers must still see the newest entries
        t.append(make_data(range(7, 8)))
        t.append(make_data(range(8, 9)))
    reopened = lh.Table.open(local_uri)
    n = 9 if damage == "stale" else 7
    assert reopened.version == n
    assert_same_rows(reopened.to_arrow(), make_data(range(n)))


def test_uri_forms(tmp_path):
    path = tmp_path / "t"
    lh.write_table(str(path), make_data(range(3)))
    for uri in (str(path) + "/", f"file://{path}", path):
        t = lh.Table.open(uri)
        assert t.version == 0
        assert_same_rows(t.to_arrow(), make_data(range(3)))


def test_snapshot_pickles(local_uri):
    import pickle

    t = lh.Table.create(local_uri, SCHEMA)
    t.append(make_data(range(4)))
    s = t.snapshot()
    t.append(make_data(range(4, 8)))
    s2 = pickle.loads(pickle.dumps(s))
    assert s2.version == 1
    assert_same_rows(s2.to_arrow(), make_data(range(4)))


def test_concurrent_creates_one_wins(table_uri):
    import threading

    outcomes: list = []
    barrier = threading.Barrier(6)

    def create():
        barrier.wait()
        try:
            lh.Table.create(table_uri, SCHEMA)
            outcomes.append("created")
        except lh.TableExistsError:
            outcomes.append("exists")
        except BaseException as e:
            outcomes.append(e)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(map(str, outcomes)) == ["created"] + ["exists"] * 5, outcomes
    assert lh.Table.open(table_uri).version == 0


def test_concurrent_appends_from_threads(table_uri):
    import threading

    t0 = lh.Table.create(table_uri, SCHEMA, partition_by=["part"])
    acks: list = []
    errors: list = []
    barrier = threading.Barrier(6)

    def work(w: int) -> None:
        try:
            t = lh.Table.open(table_uri)
            barrier.wait()
            for s in range(8):
                acks.append(t.append(make_data([w * 1000 + s], part=w % 3)))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert sorted(acks) == list(range(1, 49))
    assert t0.refresh() == 48
    assert sorted(t0.to_arrow().column("id").to_pylist()) == sorted(w * 1000 + s for w in range(6) for s in range(8))


def test_schema_metadata_and_nullability_are_tolerated_on_write(table_uri):
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("s", pa.string())], metadata={b"owner": b"me"})
    t = lh.Table.create(table_uri, schema)
    assert lh.Table.open(table_uri).schema.metadata == {b"owner": b"me"}
    # schema-level metadata (pandas adds some) and a nullable field without nulls are fine
    t.append(pa.table({"id": [1, 2], "s": ["a", None]}).replace_schema_metadata({b"pandas": b"{}"}))
    strict = pa.schema(
        [pa.field("id", pa.int64(), nullable=False, metadata={b"k": b"v"}), pa.field("s", pa.string(), nullable=False)]
    )
    t.append(pa.table({"id": [3], "s": ["c"]}, schema=strict))
    got = lh.Table.open(table_uri).to_arrow()
    assert got.schema.field("id").nullable is False
    assert sorted(got.column("id").to_pylist()) == [1, 2, 3]

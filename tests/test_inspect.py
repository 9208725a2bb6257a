"""``Table.inspect``: the files, partitions and history tables have stable schemas and true values."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lakehouse as lh
from lakehouse.inspect import DIFF_FIELDS, FILES_FIELDS, HISTORY_SCHEMA, PARTITIONS_FIELDS

TS = pa.timestamp("ms", tz="UTC")
SCHEMA = pa.schema([("id", pa.int64()), ("day", pa.int32()), ("v", pa.float64()), ("s", pa.string()),
                    ("tags", pa.list_(pa.string()))])


def _data(ids: list[int], days: list[int | None]) -> pa.Table:
    return pa.table({
        "id": pa.array(ids, pa.int64()), "day": pa.array(days, pa.int32()),
        "v": pa.array([i / 2 for i in ids], pa.float64()), "s": pa.array([f"s{i}" for i in ids]),
        "tags": pa.array([[str(i)] for i in ids], pa.list_(pa.string())),
    }, schema=SCHEMA)


@pytest.fixture(params=["local", "memory"])
def uri(request: pytest.FixtureRequest, tmp_path):
    if request.param == "local":
        yield str(tmp_path / "t")
        return
    name = f"inspect-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@pytest.fixture
def table(uri) -> lh.Table:
    """Version 0: days 1, 1, 2; version 1: day 3 and a null day; version 2: id 1 deleted."""
    t = lh.write_table(uri, _data([1, 2, 3], [1, 1, 2]), partition_by=["day"])
    t.append(_data([4, 5], [3, None]))
    t.delete([("id", "=", 1)])
    return t


STATS_TYPE = pa.struct([
    pa.field(c, pa.struct([pa.field("min", t), pa.field("max", t), pa.field("null_count", pa.int64())]))
    for c, t in (("id", pa.int64()), ("v", pa.float64()), ("s", pa.string()))
])


def test_files_schema_is_stable(table):
    expected = pa.schema([*FILES_FIELDS, pa.field("partition", pa.struct([pa.field("day", pa.int32())]),
                                                  nullable=False),
                          pa.field("stats", STATS_TYPE, nullable=False)])
    assert table.inspect.files().schema == expected
    assert [f.name for f in FILES_FIELDS] == ["path", "size_bytes", "num_rows", "num_deleted_rows", "modification_time"]
    assert table.inspect.files().schema.field("modification_time").type == TS
    # an empty filter result keeps the schema
    assert table.inspect.files(filter=[("day", "=", 99)]).schema == expected


def test_files_values_match_the_snapshot(table):
    files = table.inspect.files().sort_by("path")
    raw = table.files().sort_by("path")
    assert files.column("path").to_pylist() == raw.column("path").to_pylist()
    assert files.column("num_rows").to_pylist() == raw.column("num_rows").to_pylist()
    assert files.column("size_bytes").to_pylist() == raw.column("size_bytes").to_pylist()
    assert [p["day"] for p in files.column("partition").to_pylist()] == raw.column("partition.day").to_pylist()
    stats = files.column("stats").to_pylist()
    assert [s["id"]["min"] for s in stats] == raw.column("min.id").to_pylist()
    assert [s["s"]["max"] for s in stats] == raw.column("max.s").to_pylist()
    assert [s["v"]["null_count"] for s in stats] == raw.column("null_count.v").to_pylist()
    assert "tags" not in STATS_TYPE.names  # lists have no statistics
    assert sum(files.column("num_rows").to_pylist()) == table.to_arrow().num_rows
    for path in files.column("path").to_pylist():
        assert not path.startswith("/") and path.endswith(".parquet")


def test_files_filter_version_and_as_of(table):
    kept = table.inspect.files(filter=[("day", "=", 3)])
    assert kept.column("partition").to_pylist() == [{"day": 3}]
    assert table.inspect.files(filter=[("id", ">", 100)]).num_rows == 0  # pruned by max.id
    assert table.inspect.files(version=0).num_rows == 2
    v1_time = table.history()[1].timestamp
    assert table.inspect.files(as_of=v1_time).num_rows == table.inspect.files(version=1).num_rows == 4


def test_unpartitioned_table_has_an_empty_partition_struct(uri):
    t = lh.write_table(uri, pa.table({"a": [1, 2]}))
    t.append(pa.table({"a": [3]}))
    files = t.inspect.files()
    assert files.schema.field("partition").type == pa.struct([])
    assert files.column("partition").to_pylist() == [{}, {}]
    parts = t.inspect.partitions()
    assert parts.to_pylist()[0]["partition"] == {} and parts.num_rows == 1
    assert parts.column("row_count").to_pylist() == [3] and parts.column("file_count").to_pylist() == [2]


def test_partitions_schema_and_values(table):
    parts = table.inspect.partitions()
    assert parts.schema == pa.schema([pa.field("partition", pa.struct([pa.field("day", pa.int32())]), nullable=False),
                                      *PARTITIONS_FIELDS])
    assert [f.name for f in PARTITIONS_FIELDS] == ["file_count", "row_count", "size_bytes", "last_modified"]
    days = [p["day"] for p in parts.column("partition").to_pylist()]
    assert days == [1, 2, 3, None]  # sorted, null last
    rows = Counter(table.to_arrow().column("day").to_pylist())
    assert dict(zip(days, parts.column("row_count").to_pylist())) == rows
    files = table.inspect.files()
    assert sum(parts.column("size_bytes").to_pylist()) == pc.sum(files.column("size_bytes")).as_py()
    assert sum(parts.column("file_count").to_pylist()) == files.num_rows
    newest = {p["day"]: m for p, m in zip(files.column("partition").to_pylist(),
                                          files.column("modification_time").to_pylist())}
    assert dict(zip(days, parts.column("last_modified").to_pylist()))[3] == newest[3]


def test_partitions_of_an_empty_table_and_with_filter(uri):
    t = lh.Table.create(uri, SCHEMA, partition_by=["day"])
    parts = t.inspect.partitions()
    assert parts.num_rows == 0 and parts.schema.names == ["partition", "file_count", "row_count", "size_bytes",
                                                          "last_modified"]
    t.append(_data([1, 2], [1, 2]))
    t.append(_data([3], [2]))
    assert t.inspect.partitions(filter=[("day", "=", 2)]).to_pylist()[0]["file_count"] == 2
    assert t.inspect.partitions(version=1).column("row_count").to_pylist() == [1, 1]


def test_history_schema_and_values(table):
    hist = table.inspect.history()
    assert hist.schema == HISTORY_SCHEMA
    commits = table.history()
    assert hist.column("version").to_pylist() == [c.version for c in commits] == [2, 1, 0]
    assert hist.column("operation").to_pylist() == [c.operation for c in commits]
    assert hist.column("timestamp").to_pylist() == [c.timestamp for c in commits]
    assert hist.column("commit_id").to_pylist() == [c.info["commit_id"] for c in commits]
    assert hist.column("read_version").to_pylist() == [1, 0, None]
    assert hist.column("blind_append").to_pylist() == [False, True, False]
    assert hist.column("rows_added").to_pylist() == [c.info["rows_added"] for c in commits]
    assert hist.column("files_removed").to_pylist() == [c.info["files_removed"] for c in commits]
    params = [json.loads(p) for p in hist.column("parameters").to_pylist()]
    assert params == [c.info["parameters"] for c in commits]
    assert table.inspect.history(limit=1).column("version").to_pylist() == [2]


def test_diff_lists_added_and_removed_files(table):
    d = table.inspect.diff(1, 2)
    assert d.schema.names == [f.name for f in DIFF_FIELDS] + ["partition"]
    changes = dict(zip(d.column("change").to_pylist(), d.column("num_rows").to_pylist()))
    assert changes == {"added": 1, "removed": 2}  # day 1: the file of ids 1, 2 became one of id 2
    assert d.column("partition").to_pylist() == [{"day": 1}, {"day": 1}]
    assert table.inspect.diff(2).num_rows == 0  # to the latest: nothing changed
    back = table.inspect.diff(2, 0)
    assert Counter(back.column("change").to_pylist()) == {"added": 1, "removed": 3}
    none_added = table.inspect.diff(0, 0)
    assert none_added.num_rows == 0 and none_added.schema == d.schema


def test_log_entry_is_the_stored_body(table, uri):
    e = table.inspect.log_entry(0)
    assert e["version"] == 0 and e["commit"]["operation"] == "write"
    assert e["metadata"]["partition_by"] == ["day"]
    assert "day: int32" in e["metadata"]["schema"]["$arrow_schema"]
    assert sorted(a["path"] for a in e["add"]) == sorted(table.inspect.files(version=0).column("path").to_pylist())
    json.dumps(e)  # JSON-ready
    removed = table.inspect.log_entry(2)["remove"]
    assert [r["num_rows"] for r in removed] == [2]
    with pytest.raises(lh.VersionNotFoundError) as info:
        table.inspect.log_entry(9)
    assert info.value.version == 9


def test_log_entry_of_a_damaged_file_is_a_corrupt_log_error(tmp_path):
    t = lh.write_table(str(tmp_path / "t"), pa.table({"a": [1]}))
    t.append(pa.table({"a": [2]}))
    entry = tmp_path / "t" / "_lakehouse_log" / f"{1:020d}.msgpack"
    entry.write_bytes(entry.read_bytes()[:-3] + b"xyz")
    with pytest.raises(lh.CorruptLogError):
        t.inspect.log_entry(1)


def test_inspect_is_read_only_and_bound_to_the_table(table):
    before = table.version
    assert repr(table.inspect).startswith("Inspect(Table(")
    table.inspect.files(); table.inspect.partitions(); table.inspect.history()  # noqa: E702
    assert table.refresh() == before


def test_as_of_before_the_first_commit(table):
    with pytest.raises(lh.VersionNotFoundError):
        table.inspect.files(as_of=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))


def test_diff_shows_a_file_whose_deletion_vector_changed(tmp_path):
    """A merge-on-read delete removes and re-adds the file with a vector (format §4.2): the diff shows
    it on both sides, with its old and new ``num_deleted_rows`` (it used to show nothing)."""
    import numpy as np

    t = lh.write_table(str(tmp_path / "t"), pa.table({"id": np.arange(20_000)}))
    t.delete("id = 5")
    rows = t.inspect.diff(0, 1).select(["change", "num_rows", "num_deleted_rows"]).to_pylist()
    assert rows == [{"change": "added", "num_rows": 20_000, "num_deleted_rows": 1},
                    {"change": "removed", "num_rows": 20_000, "num_deleted_rows": 0}]
    assert t.inspect.diff(1, 1).num_rows == 0


def test_diff_shows_a_vector_replaced_by_another_deleting_as_many_rows(tmp_path):
    """Row 5 deleted, restored, then row 6 deleted: the file's vector changed though it still deletes
    one row; the diff compares where the vector is, not only how many rows it deletes."""
    import numpy as np

    t = lh.write_table(str(tmp_path / "t"), pa.table({"id": np.arange(20_000)}))
    t.delete("id = 5")
    t.restore(0)
    t.delete("id = 6")
    rows = t.inspect.diff(1, 3).select(["change", "num_deleted_rows"]).to_pylist()
    assert rows == [{"change": "added", "num_deleted_rows": 1}, {"change": "removed", "num_deleted_rows": 1}]

"""Table.update and the row-level seam (lakehouse.rowlevel): examples and errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lakehouse as lh
from lakehouse.rowlevel import RemovedRows, RowChanges, commit_row_changes


def _table(uri: str, partition_by: list[str] | None = None) -> lh.Table:
    data = pa.table({"id": pa.array([1, 2, 3, 4], pa.int64()), "v": pa.array([10, 20, 30, 40], pa.int32()),
                     "name": ["a", "b", None, "d"], "p": pa.array([1, 1, 2, 2], pa.int32())})
    return lh.write_table(uri, data, partition_by=partition_by)


def _rows(t: lh.Table, **kw) -> list[dict]:
    return sorted(t.to_arrow(**kw).to_pylist(), key=lambda r: r["id"])


@pytest.mark.parametrize("parts", [None, ["p"]])
def test_update_forms_of_values(tmp_path, parts):
    t = _table(str(tmp_path / "t"), parts)
    assert t.update({"v": pc.field("v") * 10, "name": pa.scalar("z")}, filter=[("id", ">=", 3)]) == 1
    assert t.update({"v": "v + 1", "name": "'x' || coalesce(name, '?')"}, filter="id = 2") == 2
    assert t.update({"v": 7}, filter=pc.field("id") == 1) == 3
    assert [(r["v"], r["name"]) for r in _rows(t)] == [(7, "a"), (21, "xb"), (300, "z"), (400, "z")]
    assert t.schema.field("v").type == pa.int32()
    assert [(r["v"], r["name"]) for r in _rows(t, version=0)] == [(10, "a"), (20, "b"), (30, None), (40, "d")]
    assert t.history(1)[0].operation == "update"


def test_update_moves_rows_between_partitions(tmp_path):
    t = _table(str(tmp_path / "t"), ["p"])
    t.update({"p": "p + 10"}, filter="id >= 2")
    assert [r["p"] for r in _rows(t)] == [1, 11, 12, 12]
    assert sorted(t.files().column("partition.p").to_pylist()) == [1, 11, 12]
    assert [r["p"] for r in _rows(t, filter=[("p", "=", 12)])] == [12, 12]


def test_update_without_filter_and_case(tmp_path):
    t = _table(str(tmp_path / "t"))
    t.update({"name": "CASE WHEN v > 20 THEN 'big' ELSE 'small' END"})
    assert [r["name"] for r in _rows(t)] == ["small", "small", "big", "big"]


def test_update_matching_nothing_commits_nothing(tmp_path):
    t = _table(str(tmp_path / "t"))
    assert t.update({"v": 1}, filter="id = 99") == 0
    assert len(t.history()) == 1


def test_update_enforces_not_null_and_constraints(tmp_path):
    t = _table(str(tmp_path / "t"))
    t.alter.add_constraint("v_small", pc.field("v") < 100)
    with pytest.raises(lh.ConstraintViolationError):
        t.update({"v": "v * 10"}, filter="id = 4")
    with pytest.raises(lh.SchemaMismatchError):  # does not fit int32
        t.update({"v": 2**40})
    assert t.version == 1 and len(t.files()) == 1
    assert [r["v"] for r in _rows(t)] == [10, 20, 30, 40]


def test_update_errors_are_typed(tmp_path):
    t = _table(str(tmp_path / "t"))
    with pytest.raises(lh.ColumnNotFoundError):
        t.update({"nope": 1})
    with pytest.raises(lh.ColumnNotFoundError):
        t.update({"v": "nope + 1"})
    with pytest.raises(lh.ArgumentTypeError):
        t.update([("v", 1)])
    with pytest.raises(lh.InvalidFilterError):
        t.update({"v": "v +"})
    with pytest.raises(lh.InvalidFilterError):
        t.update({"v": "upper(name)"})
    with pytest.raises(lh.InvalidArgumentError):
        t.update({"v": 1}, schema_mode="overwrite")
    assert t.version == 0


def test_update_schema_merge_adds_a_column(tmp_path):
    t = _table(str(tmp_path / "t"))
    t.update({"flag": "v > 20"}, filter="id >= 2", schema_mode="merge")
    assert t.schema.field("flag").type == pa.bool_()
    assert [r["flag"] for r in _rows(t)] == [None, False, True, True]


def test_update_app_transaction_applies_once(tmp_path):
    t = _table(str(tmp_path / "t"))
    assert t.update({"v": "v + 1"}, app_transaction=("etl", 1)) == 1
    assert t.update({"v": "v + 1"}, app_transaction=("etl", 1)) == 1
    assert t.last_outcome.skipped
    assert [r["v"] for r in _rows(t)] == [11, 21, 31, 41]


def test_update_progress(tmp_path):
    t = _table(str(tmp_path / "t"))
    events = []
    t.update({"v": 0}, progress=events.append)
    assert ("update", "scan") in {(e.operation, e.stage) for e in events}
    assert ("update", "files") in {(e.operation, e.stage) for e in events}


def test_update_conflicts_with_concurrent_append_it_may_match(tmp_path):
    t = _table(str(tmp_path / "t"), ["p"])
    other = lh.Table.open(t.uri, version=0)
    t.append(pa.table({"id": [5], "v": pa.array([50], pa.int32()), "name": ["e"], "p": pa.array([2], pa.int32())}))
    with pytest.raises(lh.CommitConflictError):
        other.update({"v": 0}, filter="p = 2")
    other = lh.Table.open(t.uri, version=1)
    t.append(pa.table({"id": [6], "v": pa.array([60], pa.int32()), "name": ["f"], "p": pa.array([3], pa.int32())}))
    assert other.update({"v": 0}, filter="p = 1") == 3  # the append cannot match: no conflict
    t.refresh()
    assert [r["v"] for r in _rows(t)] == [0, 0, 30, 40, 50, 60]


def test_update_conflicts_with_concurrent_delete_of_its_file(tmp_path):
    t = _table(str(tmp_path / "t"))
    other = lh.Table.open(t.uri, version=0)
    t.delete("id = 1")
    with pytest.raises(lh.CommitConflictError):
        other.update({"v": 0}, filter="id = 2")


def test_commit_row_changes_keeps_order_and_one_commit(tmp_path):
    t = lh.write_table(str(tmp_path / "t"), pa.table({"a": list(range(10))}))
    [task] = t.plan_files()
    changes = RowChanges(schema=t.schema, removed=(RemovedRows(task=task, positions=np.array([0, 3, 9], np.uint64)),),
                         added=lambda: [pa.table({"a": [100, 101]})], num_added=2)
    with t.transaction() as tx:
        commit_row_changes(tx, changes, operation="merge")
    assert t.to_arrow().column("a").to_pylist() == [1, 2, 4, 5, 6, 7, 8, 100, 101]
    assert t.version == 1 and t.history(1)[0].operation == "merge"

"""Table.merge / Table.upsert: one example per clause and per error (the model test is test_rowlevel_model.py)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lakehouse as lh


def _target(uri: str, partition_by: list[str] | None = None) -> lh.Table:
    data = pa.table({"id": pa.array([1, 2, 3, 4], pa.int64()), "v": pa.array([10, 20, 30, 40], pa.int64()),
                     "name": ["a", "b", "c", "d"], "p": pa.array([1, 1, 2, 2], pa.int32())})
    return lh.write_table(uri, data, partition_by=partition_by)


def _rows(t: lh.Table, **kw) -> list[tuple]:
    rows = [tuple(r.values()) for r in t.to_arrow(**kw).select(["id", "v", "name", "p"]).to_pylist()]
    return sorted(rows, key=lambda row: [(x is not None, x) for x in row])


SOURCE = pa.table({"id": pa.array([2, 3, 5, None], pa.int64()), "v": pa.array([200, 300, 500, 900], pa.int64()),
                   "name": ["B", "C", "E", "N"], "p": pa.array([1, 2, 3, 3], pa.int32()),
                   "op": ["upd", "del", "ins", "ins"]})


@pytest.mark.parametrize("parts", [None, ["p"]])
def test_issue_example(tmp_path, parts):
    t = _target(str(tmp_path / "t"), parts)
    r = (t.merge(SOURCE, on="id")
         .when_matched_update({"v": "source.v"}, filter="source.op = 'upd'")
         .when_matched_delete(filter="source.op = 'del'")
         .when_not_matched_insert(filter="source.op = 'ins'")
         .when_not_matched_by_source_update({"name": "'stale'"}, filter="target.id = 1")
         .when_not_matched_by_source_delete(filter="target.id = 4")
         .execute())
    assert isinstance(r, lh.MergeResult)
    assert (r.version, r.num_inserted, r.num_updated, r.num_deleted, r.num_deletion_vectors) == (1, 2, 2, 2, 0)
    assert _rows(t) == [(None, 900, "N", 3), (1, 10, "stale", 1), (2, 200, "b", 1), (5, 500, "E", 3)]
    assert _rows(t, version=0) == [(1, 10, "a", 1), (2, 20, "b", 1), (3, 30, "c", 2), (4, 40, "d", 2)]
    assert set(r.timings) >= {"prepare", "scan", "apply", "write"}
    assert t.history(1)[0].operation == "merge"
    with pytest.raises(AttributeError):
        r.version = 3  # frozen


def test_set_none_takes_same_named_source_columns_and_first_clause_wins(tmp_path):
    t = _target(str(tmp_path / "t"))
    r = (t.merge(SOURCE, on="id").when_matched_update(filter="source.op = 'upd'")
         .when_matched_update({"v": "target.v + 1"}).when_matched_delete().execute())
    assert (r.num_updated, r.num_deleted, r.num_inserted) == (2, 0, 0)
    assert _rows(t) == [(1, 10, "a", 1), (2, 200, "B", 1), (3, 31, "c", 2), (4, 40, "d", 2)]


def test_unqualified_names_mean_target_in_matched_and_source_in_not_matched(tmp_path):
    t = _target(str(tmp_path / "t"))
    (t.merge(SOURCE, on="id").when_matched_update({"v": "v + source.v"}, filter="v > 20")
     .when_not_matched_insert({"id": "id", "v": "v * 2", "name": "name || '!'"}, filter=[("op", "=", "ins")])
     .execute())
    assert _rows(t) == [(None, 1800, "N!", None), (1, 10, "a", 1), (2, 20, "b", 1), (3, 330, "c", 2),
                        (4, 40, "d", 2), (5, 1000, "E!", None)]


def test_predicate_and_aliases(tmp_path):
    t = _target(str(tmp_path / "t"))
    src = pa.table({"key": pa.array([1, 2, 3], pa.int64()), "bump": pa.array([1, 1, 1], pa.int64())})
    r = (t.merge(src, predicate="t.id = s.key AND s.key >= 2", source_alias="s", target_alias="t")
         .when_matched_update({"v": "t.v + s.bump"}).execute())
    assert r.num_updated == 2
    assert [x[1] for x in _rows(t)] == [10, 21, 31, 40]
    # a non-equality predicate (cross join of the candidates)
    r = t.merge(pa.table({"lo": [35]}), predicate="target.v > source.lo").when_matched_delete().execute()
    assert r.num_deleted == 1 and [x[0] for x in _rows(t)] == [1, 2, 3]


def test_null_keys_never_match(tmp_path):
    t = lh.write_table(str(tmp_path / "t"), pa.table({"id": pa.array([1, None], pa.int64()), "v": [1, 2]}))
    r = t.upsert(pa.table({"id": pa.array([None, 1], pa.int64()), "v": [3, 4]}), on="id")
    assert (r.num_updated, r.num_inserted) == (1, 1)
    assert sorted(t.to_arrow().to_pylist(), key=lambda x: (x["id"] is None, x["id"] or 0, x["v"])) == [
        {"id": 1, "v": 4}, {"id": None, "v": 2}, {"id": None, "v": 3}]


def test_duplicate_match_is_typed_and_writes_nothing(tmp_path):
    t = _target(str(tmp_path / "t"))
    src = pa.table({"id": pa.array([2, 2], pa.int64()), "v": pa.array([1, 2], pa.int64())})
    with pytest.raises(lh.DuplicateMatchError) as info:
        t.merge(src, on="id").when_matched_update().execute()
    assert info.value.key == {"id": 2} and info.value.matches == 2
    assert t.version == 0 and len(t.history()) == 1
    with pytest.raises(lh.DuplicateMatchError):
        t.upsert(src, on="id")
    # duplicates that no matched clause acts on are harmless
    assert t.merge(src, on="id").when_not_matched_insert().execute().version == 0


def test_upsert_skips_unchanged_rows(tmp_path):
    t = _target(str(tmp_path / "t"), ["p"])
    same = t.to_arrow().filter(pc.field("id") <= 2)
    r = t.upsert(same, on="id")
    assert r.version == 0 and (r.num_updated, r.num_inserted, r.num_files_added) == (0, 0, 0)
    changed = pa.table({"id": pa.array([1, 2, 7], pa.int64()), "v": pa.array([10, 99, 70], pa.int64()),
                        "name": ["a", "b", "g"], "p": pa.array([1, 1, 2], pa.int32())})
    r = t.upsert(changed, on="id")
    assert (r.version, r.num_updated, r.num_inserted, r.num_files_removed) == (1, 1, 1, 1)
    assert _rows(t) == [(1, 10, "a", 1), (2, 99, "b", 1), (3, 30, "c", 2), (4, 40, "d", 2), (7, 70, "g", 2)]


def test_upsert_moves_partition_and_unaffected_files_stay(tmp_path):
    t = _target(str(tmp_path / "t"), ["p"])
    t.append(pa.table({"id": pa.array([100], pa.int64()), "v": pa.array([1], pa.int64()), "name": ["x"],
                       "p": pa.array([9], pa.int32())}))
    before = set(t.files().column("path").to_pylist())
    r = t.upsert(pa.table({"id": pa.array([1], pa.int64()), "v": pa.array([10], pa.int64()), "name": ["a"],
                           "p": pa.array([2], pa.int32())}), on="id")
    after = set(t.files().column("path").to_pylist())
    assert r.num_files_removed == 1 and len(before - after) == 1
    assert _rows(t, filter=[("p", "=", 2)]) == [(1, 10, "a", 2), (3, 30, "c", 2), (4, 40, "d", 2)]


def test_schema_merge_adds_source_columns(tmp_path):
    t = _target(str(tmp_path / "t"))
    src = pa.table({"id": pa.array([1, 9], pa.int64()), "extra": ["x", "y"]})
    t.merge(src, on="id").when_matched_update().when_not_matched_insert().execute()  # strict: extra ignored
    assert "extra" not in t.schema.names
    t.merge(src, on="id", schema_mode="merge").when_matched_update().when_not_matched_insert().execute()
    got = {r["id"]: r["extra"] for r in t.to_arrow().to_pylist()}
    assert got == {1: "x", 2: None, 3: None, 4: None, 9: "y"}


@pytest.mark.parametrize("kind", ["pandas", "polars", "reader"])
def test_sources_of_any_arrow_shape(tmp_path, kind):
    t = _target(str(tmp_path / "t"))
    src = pa.table({"id": pa.array([1, 6], pa.int64()), "v": pa.array([0, 6], pa.int64())})
    if kind == "pandas":
        data = src.to_pandas()
    elif kind == "polars":
        pl = pytest.importorskip("polars")
        data = pl.from_arrow(src)
    else:
        data = src.to_reader()
    r = t.upsert(data, on="id")
    assert (r.num_updated, r.num_inserted) == (1, 1)


def test_constraints_enforced_and_nothing_written(tmp_path):
    t = _target(str(tmp_path / "t"))
    t.alter.add_constraint("v_small", pc.field("v") < 1000)
    with pytest.raises(lh.ConstraintViolationError):
        t.upsert(pa.table({"id": pa.array([1], pa.int64()), "v": pa.array([5000], pa.int64())}), on="id")
    assert t.version == 1 and _rows(t)[0] == (1, 10, "a", 1)


def test_errors_are_typed(tmp_path):
    t = _target(str(tmp_path / "t"))
    with pytest.raises(lh.InvalidArgumentError):
        t.merge(SOURCE)
    with pytest.raises(lh.InvalidArgumentError):
        t.merge(SOURCE, on="id", predicate="target.id = source.id")
    with pytest.raises(lh.ColumnNotFoundError):
        t.merge(SOURCE, on="nope")
    with pytest.raises(lh.ColumnNotFoundError):
        t.merge(SOURCE, on="id").when_matched_update({"v": "source.nope"})
    with pytest.raises(lh.ColumnNotFoundError):
        t.merge(SOURCE, on="id").when_matched_update({"nope": 1})
    with pytest.raises(lh.InvalidArgumentError):
        t.merge(SOURCE, on="id").when_not_matched_by_source_delete(filter="source.op = 'x'")
    with pytest.raises(lh.InvalidArgumentError):
        t.merge(SOURCE, on="id").when_not_matched_insert({"v": "target.v"})
    with pytest.raises(lh.InvalidArgumentError):
        t.merge(SOURCE, on="id").execute()  # no clause
    with pytest.raises(lh.InvalidDataError):
        t.merge(object(), on="id")
    with pytest.raises(lh.SchemaMismatchError):
        t.merge(pa.table({"id": ["x"]}), on="id").when_matched_delete().execute()
    assert t.version == 0


def test_app_transaction_and_progress(tmp_path):
    t = _target(str(tmp_path / "t"))
    events = []
    src = pa.table({"id": pa.array([1], pa.int64()), "v": pa.array([11], pa.int64())})
    r = t.merge(src, on="id", app_transaction=("cdc", 7), progress=events.append).when_matched_update().execute()
    assert r.version == 1 and r.num_updated == 1
    assert {"scan", "apply"} <= {e.stage for e in events}
    src2 = pa.table({"id": pa.array([1], pa.int64()), "v": pa.array([12], pa.int64())})
    r = t.upsert(src2, on="id", app_transaction=("cdc", 7))
    assert r.version == 1 and r.num_updated == 0 and t.last_outcome.skipped
    assert _rows(t)[0][1] == 11


def test_merge_conflicts(tmp_path):
    t = _target(str(tmp_path / "t"), ["p"])
    stale = lh.Table.open(t.uri, version=0)
    t.append(pa.table({"id": pa.array([2], pa.int64()), "v": pa.array([0], pa.int64()), "name": ["z"],
                       "p": pa.array([5], pa.int32())}))  # a key the source has: could have matched
    with pytest.raises(lh.CommitConflictError):
        stale.upsert(pa.table({"id": pa.array([2], pa.int64()), "v": pa.array([1], pa.int64())}), on="id")
    stale = lh.Table.open(t.uri, version=1)
    t.append(pa.table({"id": pa.array([50], pa.int64()), "v": pa.array([0], pa.int64()), "name": ["z"],
                       "p": pa.array([5], pa.int32())}))  # a key outside the source's range: no conflict
    r = stale.upsert(pa.table({"id": pa.array([3], pa.int64()), "v": pa.array([1], pa.int64())}), on="id")
    assert r.version == 3
    stale = lh.Table.open(t.uri, version=3)
    t.delete("id = 3")  # removes a file the merge rewrites
    with pytest.raises(lh.CommitConflictError):
        stale.upsert(pa.table({"id": pa.array([4], pa.int64()), "v": pa.array([1], pa.int64())}), on="id")

"""Table.merge / Table.upsert: one example per clause and per error (the model test is test_rowlevel_model.py)."""

from __future__ import annotations

import uuid

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
def test_issue_example(table_uri, parts):
    t = _target(table_uri, parts)
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


@pytest.mark.parametrize("kind", ["pandas", "polars", "reader", "duckdb"])
def test_sources_of_any_arrow_shape(tmp_path, kind):
    t = _target(str(tmp_path / "t"))
    src = pa.table({"id": pa.array([1, 6], pa.int64()), "v": pa.array([0, 6], pa.int64())})
    if kind == "pandas":
        data = src.to_pandas()
    elif kind == "polars":
        pl = pytest.importorskip("polars")
        data = pl.from_arrow(src)
    elif kind == "duckdb":
        duckdb = pytest.importorskip("duckdb")
        data = duckdb.sql("select * from src")
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
    t.delete("id = 4")  # removes the file the merge rewrites (id 3 and 4 live in separate files since v3)
    with pytest.raises(lh.CommitConflictError):
        stale.upsert(pa.table({"id": pa.array([4], pa.int64()), "v": pa.array([1], pa.int64())}), on="id")


def test_float_keys_use_sql_equality(tmp_path):
    t = lh.write_table(str(tmp_path / "t"), pa.table({"k": [-0.0, float("nan"), 1.5], "v": [1, 2, 3]}))
    r = t.upsert(pa.table({"k": [0.0, float("nan")], "v": [10, 20]}), on="k")
    assert (r.num_updated, r.num_inserted) == (1, 1)  # -0.0 = 0.0; NaN never equals NaN
    assert sorted(t.to_arrow().column("v").to_pylist()) == [2, 3, 10, 20]


def test_merge_on_partition_and_key_columns_reads_only_matching_files(tmp_path):
    t = _target(str(tmp_path / "t"), ["p"])
    for p in range(3, 8):
        t.append(pa.table({"id": pa.array([p * 10], pa.int64()), "v": pa.array([0], pa.int64()), "name": ["x"],
                           "p": pa.array([p], pa.int32())}))
    src = pa.table({"id": pa.array([3, 60], pa.int64()), "p": pa.array([2, 6], pa.int32()),
                    "v": pa.array([-3, -60], pa.int64())})
    r = t.merge(src, on=["p", "id"]).when_matched_update({"v": "source.v"}).execute()
    assert (r.num_updated, r.num_files_removed) == (2, 2)
    got = {row["id"]: row["v"] for row in t.to_arrow().to_pylist()}
    assert got[3] == -3 and got[60] == -60 and got[4] == 40 and got[70] == 0


def test_a_schema_change_after_the_merge_was_built_is_a_conflict(tmp_path):
    t = _target(str(tmp_path / "t"))
    merger = t.merge(SOURCE, on="id").when_matched_delete()
    lh.Table.open(t.uri).append(pa.table({"id": pa.array([9], pa.int64()), "extra": ["x"]}), schema_mode="merge")
    with pytest.raises(lh.CommitConflictError):
        merger.execute()
    assert t.merge(SOURCE, on="id").when_matched_delete().execute().num_deleted == 2


def test_by_source_clauses_alone_spare_matched_rows(tmp_path):
    t = lh.write_table(str(tmp_path / "t"), pa.table({"id": [1, 2, 3], "v": [10, 20, 30]}))
    r = t.merge(pa.table({"id": [1]}), on="id").when_not_matched_by_source_delete().execute()
    assert r.num_deleted == 2 and t.to_arrow().to_pylist() == [{"id": 1, "v": 10}]


def test_zoned_and_naive_timestamp_keys_are_refused(tmp_path):
    import datetime as dt

    ts = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    t = lh.write_table(str(tmp_path / "t"), pa.table({"k": pa.array([ts], pa.timestamp("us", "UTC")), "v": [1]}))
    with pytest.raises(lh.SchemaMismatchError):
        t.upsert(pa.table({"k": pa.array([ts.replace(tzinfo=None)], pa.timestamp("us")), "v": [2]}), on="k")
    r = t.upsert(pa.table({"k": pa.array([ts], pa.timestamp("ms", "Europe/Paris")), "v": [2]}), on="k")
    assert r.num_updated == 1 and t.to_arrow().column("v").to_pylist() == [2]


def test_updated_rows_beyond_the_budget_are_computed_again_while_written(tmp_path):
    t = _target(str(tmp_path / "t"), ["p"])
    src = pa.table({"id": pa.array([1, 2, 3, 4, 8], pa.int64()), "v": pa.array([5, 6, 7, 8, 9], pa.int64())})
    merger = (t.merge(src, on="id").when_matched_update({"v": "source.v + target.v"})
              .when_not_matched_insert().when_not_matched_by_source_delete())
    merger._budget = 0  # every file's rows recomputed at write time
    r = merger.execute()
    assert (r.num_updated, r.num_inserted) == (4, 1)
    assert [x[:2] for x in _rows(t)] == [(1, 15), (2, 26), (3, 37), (4, 48), (8, 9)]


@pytest.mark.parametrize("text", ["99999999999999999999", "v + 99999999999999999999 > 1",
                                  "name = TIMESTAMP 'garbage'", "CAST(name AS DATE) > DATE '2024-01-01'"])
def test_bad_sql_in_clauses_is_a_typed_error(tmp_path, text):
    t = _target(str(tmp_path / "t"))
    for build in (lambda m: m.when_matched_update({"v": text}), lambda m: m.when_matched_delete(filter=text),
                  lambda m: m.when_not_matched_insert(filter=text),
                  lambda m: m.when_not_matched_by_source_delete(filter=text)):
        with pytest.raises(lh.LakehouseError):
            build(t.merge(SOURCE, on="id")).execute()
    with pytest.raises(lh.LakehouseError):
        t.merge(SOURCE, predicate=f"target.id = source.id AND {text}").when_matched_delete().execute()
    assert t.version == 0


def test_deeply_nested_filters_and_values_are_typed_errors(tmp_path):
    t = _target(str(tmp_path / "t"))
    deep = pc.field("v") > 1
    for _ in range(3000):
        deep = ~deep
    for value in (deep,):
        with pytest.raises(lh.InvalidFilterError):
            t.merge(SOURCE, on="id").when_matched_delete(filter=value)
        with pytest.raises(lh.InvalidFilterError):
            t.merge(SOURCE, on="id").when_not_matched_insert(filter=value)
    with pytest.raises(lh.InvalidFilterError):
        t.merge(SOURCE, on="id").when_matched_update({"v": " + ".join(["v"] * 3000)})
    # a long flat chain of ORs is accepted everywhere (files are then not pruned by it)
    r = t.merge(SOURCE, on="id").when_not_matched_by_source_delete(filter=" or ".join(["id = 1"] * 1200)).execute()
    assert r.num_deleted == 1
    assert t.update({"v": 0}, filter=" or ".join(["id = 4"] * 1200)) == 2


def test_upsert_writes_a_float_whose_sign_of_zero_changes():
    """``upsert`` skips rows that would not change; -0.0 -> 0.0 is a change (``pc.equal`` calls them
    equal), while NaN -> NaN, null -> null and 1.5 -> 1.5 are not."""
    import math

    t = lh.write_table(f"memory://merge-zero-{uuid.uuid4().hex}",
                       pa.table({"id": [1, 2, 3, 4], "v": [-0.0, float("nan"), None, 1.5]}))
    r = t.upsert(pa.table({"id": [1, 2, 3, 4], "v": [0.0, float("nan"), None, 1.5]}), on="id")
    assert r.num_updated == 1
    first = t.to_arrow().sort_by("id").column("v")[0].as_py()
    assert first == 0.0 and math.copysign(1.0, first) == 1.0

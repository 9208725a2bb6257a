"""The ``delete_mode`` table property: merge-on-read (deletion vectors, the default) or copy-on-write,
the rewrite thresholds of merge-on-read (format §5.8), ``MergeResult`` counts and the lineage every
row-level commit records (format §5.4). The random model test (test_rowlevel_model.py) runs every
operation under both modes; these are the worked examples."""

from __future__ import annotations

import dataclasses
import datetime as dt
import warnings

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from test_rowlevel_model import commit_lineage

import lakehouse as lh
from lakehouse.commit import CommitRequest, commit
from lakehouse.replay import load_state, read_entry
from lakehouse.rowremoval import REWRITE_BELOW_ROWS, removal_kind
from lakehouse.storage import Storage

BIG = 2 * REWRITE_BELOW_ROWS  # rows of a file above the small-file threshold


def _table(uri: str, rows: int, files: int = 1, **kw) -> lh.Table:
    """``files`` files of ``rows`` rows each: id 0.., v = id * 10."""
    t = lh.write_table(uri, pa.table({"id": pa.array(range(rows), pa.int64()),
                                      "v": pa.array(range(0, 10 * rows, 10), pa.int64())}), **kw)
    for f in range(1, files):
        t.append(pa.table({"id": pa.array(range(f * rows, (f + 1) * rows), pa.int64()),
                           "v": pa.array(range(10 * f * rows, 10 * (f + 1) * rows, 10), pa.int64())}))
    return t


def _entry(t: lh.Table, version: int | None = None):
    return read_entry(Storage.from_uri(t.uri), t.version if version is None else version)


def _ids(t: lh.Table, **kw) -> list[int]:
    return sorted(t.to_arrow(**kw).column("id").to_pylist())


# -- the property ------------------------------------------------------------------------------------
def test_delete_mode_defaults_to_merge_on_read_and_is_validated(tmp_path):
    t = _table(str(tmp_path / "t"), 10)
    assert "delete_mode" not in t.properties  # not written: old tables are merge-on-read too
    assert lh.properties.delete_mode(t.properties) == "merge-on-read"
    t.alter.set_properties({"delete_mode": "copy-on-write"})
    assert t.properties["delete_mode"] == "copy-on-write"
    for bad in ("Copy-On-Write", "mor", "", "copy-on-write "):
        with pytest.raises(lh.InvalidTableError, match="delete_mode"):
            t.alter.set_properties({"delete_mode": bad})
    with pytest.raises(lh.InvalidTableError, match="delete_mode"):
        lh.write_table(str(tmp_path / "u"), pa.table({"a": [1]}), properties={"delete_mode": "nope"})
    t.alter.unset_properties(["delete_mode"])
    assert lh.properties.delete_mode(t.properties) == "merge-on-read"


def test_a_bad_delete_mode_another_writer_set_means_merge_on_read_with_a_warning(tmp_path):
    t = _table(str(tmp_path / "t"), BIG)
    storage = Storage.from_uri(t.uri)
    state = load_state(storage)
    meta = dataclasses.replace(state.metadata, properties={**state.metadata.properties, "delete_mode": "fast"})
    commit(storage, state, CommitRequest(operation="set_properties", metadata=meta))  # a careless writer
    t.refresh()
    with pytest.warns(lh.PropertyWarning, match="delete_mode.*merge-on-read"):
        t.delete("id = 5")
    assert t.files().column("num_deleted_rows").to_pylist() == [1]


# -- thresholds --------------------------------------------------------------------------------------
def test_removal_kind_thresholds():
    mor = "merge-on-read"
    assert removal_kind(num_rows=BIG, num_deleted=0, removing=1, mode=mor) == "vector"
    assert removal_kind(num_rows=REWRITE_BELOW_ROWS - 1, num_deleted=0, removing=1, mode=mor) == "rewrite"
    assert removal_kind(num_rows=REWRITE_BELOW_ROWS, num_deleted=0, removing=1, mode=mor) == "vector"
    assert removal_kind(num_rows=BIG, num_deleted=0, removing=BIG // 2, mode=mor) == "vector"  # half: not most
    assert removal_kind(num_rows=BIG, num_deleted=0, removing=BIG // 2 + 1, mode=mor) == "rewrite"
    assert removal_kind(num_rows=BIG, num_deleted=BIG // 2, removing=1, mode=mor) == "rewrite"  # with its vector
    assert removal_kind(num_rows=BIG, num_deleted=5, removing=BIG - 5, mode=mor) == "drop"
    assert removal_kind(num_rows=BIG, num_deleted=0, removing=1, mode="copy-on-write") == "rewrite"
    assert removal_kind(num_rows=BIG, num_deleted=0, removing=1, mode=mor, written=True) == "rewrite"


def test_small_file_rewritten_big_file_vectored_most_rows_gone_rewritten(tmp_path):
    small = _table(str(tmp_path / "small"), REWRITE_BELOW_ROWS - 1)
    small.delete("id = 3")
    assert small.files().column("num_deleted_rows").to_pylist() == [0]
    entry = _entry(small)
    assert len(entry.remove) == 1 and entry.remove[0].dropped_rows is not None
    assert [a.carried_rows for a in entry.add] == [REWRITE_BELOW_ROWS - 2]

    big = _table(str(tmp_path / "big"), BIG)
    before = big.files().column("path").to_pylist()
    big.delete("id = 3")
    files = big.files()
    assert files.column("path").to_pylist() == before and files.column("num_deleted_rows").to_pylist() == [1]
    assert load_state(Storage.from_uri(big.uri)).protocol.min_reader_version >= 4
    entry = _entry(big)
    assert [a.path for a in entry.add] == before and entry.add[0].deletion_vector.cardinality == 1  # no data written
    assert 3 not in _ids(big) and len(_ids(big)) == BIG - 1

    big.update({"v": "v + 1"}, filter="id < 10")  # 10 more rows deleted from the file, 10 written anew
    assert sorted(big.files().column("num_deleted_rows").to_pylist()) == [0, 10]  # 9 new rows in a new file
    assert big.to_arrow(filter="id < 10").sort_by("id").column("v").to_pylist() == [1, 11, 21, 41, 51, 61, 71, 81,
                                                                                    91]
    big.delete(f"id < {BIG // 2 + 100}")  # most rows of the big file go: rewritten
    assert all(n == 0 for n in big.files().column("num_deleted_rows").to_pylist())
    assert _ids(big) == list(range(BIG // 2 + 100, BIG))
    big.delete("id >= 0")
    assert big.to_arrow().num_rows == 0 and len(big.files()) == 0


def test_merge_result_counts_vectors_and_removals(tmp_path):
    t = _table(str(tmp_path / "t"), BIG, files=2)
    src = pa.table({"id": pa.array([1, BIG + 1, 3 * BIG], pa.int64()), "v": pa.array([-1, -2, -3], pa.int64())})
    r = t.upsert(src, on="id")
    assert (r.num_updated, r.num_inserted) == (2, 1)
    assert (r.num_deletion_vectors, r.num_files_removed, r.num_files_added) == (2, 0, 1)
    assert t.files().column("num_deleted_rows").to_pylist().count(1) == 2
    t.alter.set_properties({"delete_mode": "copy-on-write"})
    r = t.merge(pa.table({"id": pa.array([2], pa.int64())}), on="id").when_matched_delete().execute()
    assert (r.num_deleted, r.num_deletion_vectors, r.num_files_removed, r.num_files_added) == (1, 0, 1, 1)
    assert all(n == 0 or n == 1 for n in t.files().column("num_deleted_rows").to_pylist())
    assert t.to_arrow().num_rows == 2 * BIG  # 2 * BIG, one inserted, one deleted


# -- switching modes, optimize, lineage --------------------------------------------------------------
def test_switching_delete_mode_mid_history_and_optimize_afterwards(tmp_path):
    t = _table(str(tmp_path / "t"), BIG, files=2)
    ids = list(range(2 * BIG))
    expected = {t.version: ids}
    t.delete(pc.field("id").isin(list(range(0, 5000, 7))))  # merge-on-read: vectors
    ids = [i for i in ids if not (i % 7 == 0 and i < 5000)]
    expected[t.version] = ids
    assert sum(t.files().column("num_deleted_rows").to_pylist()) == len(range(0, 5000, 7))
    t.alter.set_properties({"delete_mode": "copy-on-write"})
    t.delete(pc.field("id").isin(list(range(0, 5000, 5))))  # copy-on-write over a file with a vector: rewritten
    ids = [i for i in ids if not (i % 5 == 0 and i < 5000)]
    expected[t.version] = ids
    assert all(n == 0 for n in t.files().column("num_deleted_rows").to_pylist())
    dropped, carried, new = commit_lineage(t, t.version)
    assert sorted(r["id"] for r in dropped) == [i for i in range(0, 5000, 5) if i % 7]  # not the vector's rows
    assert not new and len(carried) == BIG - len(range(0, 5000, 7)) - len(dropped)
    t.alter.unset_properties(["delete_mode"])  # back to merge-on-read
    t.update({"v": "-v"}, filter=f"id = {BIG + 3}")
    expected[t.version] = ids
    assert t.files().column("num_deleted_rows").to_pylist().count(1) == 1
    assert t.optimize() is not None  # folds the vector
    assert all(n == 0 for n in t.files().column("num_deleted_rows").to_pylist())
    assert t.history(1)[0].info["data_change"] is False
    assert _ids(t) == ids
    assert t.to_arrow(filter=f"id = {BIG + 3}").column("v").to_pylist() == [-10 * (BIG + 3)]
    for version, want in expected.items():
        assert _ids(t, version=version) == want


def test_lineage_of_overwrite_with_a_filter_and_partition_moves(tmp_path):
    data = pa.table({"id": pa.array(range(40), pa.int64()), "p": pa.array([i % 2 for i in range(40)], pa.int32())})
    t = lh.write_table(str(tmp_path / "t"), data, partition_by=["p"], properties={"delete_mode": "copy-on-write"})
    t.overwrite(pa.table({"id": pa.array([5], pa.int64()), "p": pa.array([0], pa.int32())}),
                filter="p = 0 and id < 10")
    dropped, carried, new = commit_lineage(t, t.version)
    assert sorted(r["id"] for r in dropped) == [0, 2, 4, 6, 8] and [r["id"] for r in new] == [5]
    assert sorted(r["id"] for r in carried) == list(range(10, 40, 2))
    t.update({"p": "1 - p"}, filter="id = 20")  # moves a row to the other partition
    dropped, carried, new = commit_lineage(t, t.version)
    assert [(r["id"], r["p"]) for r in dropped] == [(20, 0)] and [(r["id"], r["p"]) for r in new] == [(20, 1)]
    t.overwrite(pa.table({"id": pa.array([7], pa.int64()), "p": pa.array([1], pa.int32())}))  # everything
    dropped, carried, new = commit_lineage(t, t.version)
    assert len(dropped) == 40 - 5 + 1 and not carried and [r["id"] for r in new] == [7]


def test_a_transaction_touching_its_own_carried_rows_records_no_lineage(tmp_path):
    t = _table(str(tmp_path / "t"), 100, properties={"delete_mode": "copy-on-write"})
    with t.transaction() as tx:
        tx.delete("id < 10")
        tx.delete("id >= 90")  # rewrites the file the first delete wrote (rows carried from version 0)
    assert _ids(t) == list(range(10, 90))
    entry = _entry(t)
    assert all(a.carried_rows is None for a in entry.add) and all(r.dropped_rows is None for r in entry.remove)
    with t.transaction() as tx:  # new rows of the transaction rewritten: lineage still exact
        tx.append(pa.table({"id": pa.array([1000, 1001], pa.int64()), "v": pa.array([0, 0], pa.int64())}))
        tx.delete("id = 1000 or id = 50")
    dropped, _, new = commit_lineage(t, t.version)
    assert [r["id"] for r in dropped] == [50] and [r["id"] for r in new] == [1001]


def test_vector_then_rewrite_in_one_transaction_records_both_drops(tmp_path):
    t = _table(str(tmp_path / "t"), BIG)
    with t.transaction() as tx:
        tx.delete("id = 1")  # a vector
        tx.delete(f"id >= {BIG // 2}")  # now most rows go: the file is rewritten
    assert _ids(t) == [i for i in range(BIG // 2) if i != 1]
    dropped, _, new = commit_lineage(t, t.version)
    assert len(dropped) == BIG // 2 + 1 and not new


def test_no_warning_for_a_good_table(tmp_path):
    t = _table(str(tmp_path / "t"), 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.delete("id = 1")
        t.update({"v": "0"}, filter="id = 2")


def test_update_and_delete_without_filter_after_a_vector(tmp_path):
    """Every live row of a file with a vector: positions count live rows, not physical ones."""
    for mode in ("merge-on-read", "copy-on-write"):
        t = _table(str(tmp_path / mode), BIG, properties={"delete_mode": mode})
        t.alter.set_properties({"delete_mode": "merge-on-read"})
        t.delete("id < 3")
        t.alter.set_properties({"delete_mode": mode})
        t.update({"v": "0"})
        assert t.to_arrow().num_rows == BIG - 3 and set(t.to_arrow().column("v").to_pylist()) == {0}
        dropped, carried, new = commit_lineage(t, t.version)
        assert len(dropped) == len(new) == BIG - 3 and not carried
        t.upsert(pa.table({"id": pa.array([5], pa.int64()), "v": pa.array([1], pa.int64())}), on="id")
        t.delete()
        assert t.to_arrow().num_rows == 0


def test_lineage_vector_in_its_own_file_is_vacuumed_with_the_version_before_it(tmp_path):
    """A large ``dropped_rows`` vector goes into a vector file; vacuum keeps it while the version
    before its commit is retained (a change feed can read both sides), and deletes it with the
    removed data file once not (format §17.1)."""
    t = _table(str(tmp_path / "t"), BIG, properties={"delete_mode": "copy-on-write"})
    t.delete(pc.field("id").isin(list(range(0, BIG, 3))))  # a third, spread out: an array container
    entry = _entry(t)
    dropped = entry.remove[0].dropped_rows
    assert dropped is not None and dropped.path is not None and dropped.cardinality == len(range(0, BIG, 3))
    t.vacuum(retention=dt.timedelta(days=1), dry_run=False, enforce_retention=False)
    assert (tmp_path / "t" / dropped.path).exists()
    dropped_rows, carried, new = commit_lineage(t, t.version)
    assert len(dropped_rows) == dropped.cardinality and len(carried) == BIG - dropped.cardinality and not new
    gone = t.vacuum(retention=dt.timedelta(0), dry_run=False, enforce_retention=False)
    assert set(gone) == {dropped.path, entry.remove[0].path}
    assert _ids(t) == [i for i in range(BIG) if i % 3]


def test_remove_rows_counts_a_repeated_position_once(tmp_path):
    """``Transaction.remove_rows`` with a position given twice removes that row once: the file is not
    taken for wholly removed (two positions listed for a 2-row file, one of them repeated)."""
    t = lh.write_table(str(tmp_path / "t"), pa.table({"id": [1, 2]}))
    path = t.files().column("path")[0].as_py()
    with t.transaction() as tx:
        tx.remove_rows({path: [0, 0]})
    assert t.to_arrow().column("id").to_pylist() == [2]

"""Distributed primitives (plan_files / read_task / write_files / commit_files) and the Dask integration."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh

PRIMITIVES = (str, int, float, bool, type(None), bytes)


def _primitive(value: object) -> bool:
    if isinstance(value, PRIMITIVES):
        return True
    if isinstance(value, tuple):
        return all(_primitive(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _primitive(v) for k, v in value.items())
    return False


def _fields(obj: object) -> dict:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}  # type: ignore[attr-defined]


def _table(n: int = 30, *, start: int = 0) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({"id": ids, "p": pa.array([i % 3 for i in ids], pa.int32()),
                     "v": [None if i % 7 == 0 else i * 0.5 for i in ids]})


# -- primitives ------------------------------------------------------------------------------------
def test_tasks_and_files_are_picklable_primitives(local_uri):
    t = lh.write_table(local_uri, _table(), partition_by=["p"])
    tasks = t.snapshot().plan_files(filter=[("id", ">", 3)], columns=["v", "id"])
    files = lh.write_files(local_uri, _table(5, start=100))
    assert tasks and files
    for obj in [*tasks, *files]:
        assert all(_primitive(v) for v in _fields(obj).values()), obj
        assert pickle.loads(pickle.dumps(obj)) == obj
    with pytest.raises(AttributeError):
        tasks[0].uri = "elsewhere"  # type: ignore[misc]
    # both pickle as (uri, version, storage options): a Snapshot stays pinned to its version, a Table
    # knows the version it was pickled at until refresh() moves it on
    snap = pickle.loads(pickle.dumps(t.snapshot(version=0)))
    assert (snap.uri, snap.version) == (t.uri, 0)
    pickled = pickle.dumps(t)
    lh.Table.open(local_uri).append(_table(2, start=500))
    copy = pickle.loads(pickled)
    assert copy.version == t.version
    assert copy.refresh() == t.version + 1


def test_plan_files_prunes_by_partition_and_stats(local_uri):
    t = lh.write_table(local_uri, _table(), partition_by=["p"])
    t.append(_table(30, start=1000))
    snap = t.snapshot()
    assert len(snap.plan_files()) == 6
    assert len(snap.plan_files(filter=[("p", "=", 1)])) == 2
    assert len(snap.plan_files(filter=[("id", ">=", 1000)])) == 3  # min/max statistics
    assert snap.plan_files(filter=[("id", ">", 10_000)]) == []
    [task] = snap.plan_files(filter=[("p", "=", 2), ("id", "<", 100)])
    assert task.partition_values == {"p": 2} and task.stats["max"]["id"] == 29
    with pytest.raises(lh.ColumnNotFoundError):
        snap.plan_files(columns=["nope"])


def _check_equal(snap: lh.Snapshot, *, filter, columns) -> None:
    expected = snap.to_arrow(filter=filter, columns=columns)
    tasks = snap.plan_files(filter=filter, columns=columns)
    tasks = pickle.loads(pickle.dumps(tasks))
    if not tasks:
        assert expected.num_rows == 0
        return
    got = pa.concat_tables([lh.read_task(task) for task in tasks])
    assert got.schema.equals(expected.schema), (got.schema, expected.schema)
    assert _rows_of(got) == _rows_of(expected)


def _rows_of(table: pa.Table) -> list[dict]:
    """Rows in order, NaN made comparable."""
    return [{k: "NaN" if isinstance(v, float) and v != v else v for k, v in row.items()} for row in table.to_pylist()]


ROWS = st.lists(st.tuples(st.one_of(st.none(), st.integers(-50, 50)), st.integers(0, 2),
                          st.one_of(st.none(), st.just(float("nan")), st.floats(-10, 10)),
                          st.one_of(st.none(), st.text("abc", max_size=3))), min_size=1, max_size=40)
FILTERS = st.sampled_from([None, [("i", ">", 0)], [("p", "=", 1)], [("f", "<", 1.5)], [("s", "=", "a")],
                           [[("i", "<", -10)], [("f", "!=", 2.0)]], [("i", "in", [1, 2, 3]), ("p", "!=", 0)]])
COLUMNS = st.one_of(st.none(), st.lists(st.sampled_from(["i", "p", "f", "s"]), min_size=1, max_size=4, unique=True))


def _rows(rows: list[tuple]) -> pa.Table:
    i, p, f, s = zip(*rows)
    return pa.table({"i": pa.array(i, pa.int64()), "p": pa.array(p, pa.int16()), "f": pa.array(f, pa.float64()),
                     "s": pa.array(s, pa.string())})


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=ROWS, second=ROWS, filter=FILTERS, columns=COLUMNS, rename=st.booleans())
def test_read_tasks_equal_to_arrow(tmp_path_factory, first, second, filter, columns, rename):
    uri = str(tmp_path_factory.mktemp("prop") / "t")
    t = lh.write_table(uri, _rows(first), partition_by=["p"])
    if rename:  # column mapping: the data files keep "i" under its physical name (format.md §5.7)
        t.alter.rename_column("i", "x")
        t.alter.add_column(pa.field("i", pa.int64()))  # a new column named like the old physical name
        data = _rows(second).rename_columns(["x", "p", "f", "s"])
        data = data.append_column("i", pa.array([7] * len(second), pa.int64()))
        t.append(data)
    else:
        t.append(_rows(second))
    _check_equal(t.snapshot(), filter=filter, columns=columns)


def test_read_task_in_a_spawned_process(local_uri):
    t = lh.write_table(local_uri, _table(), partition_by=["p"])
    tasks = t.snapshot().plan_files(filter=[("v", ">", 3.0)], columns=["id"])
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        parts = pool.map(lh.read_task, tasks)
    assert pa.concat_tables(parts).equals(t.to_arrow(filter=[("v", ">", 3.0)], columns=["id"]))


def _parquet_files(uri: str) -> set[str]:
    return {str(p.relative_to(uri)) for p in Path(uri).rglob("*.parquet")}


def test_write_files_commit_once_and_atomically(local_uri):
    t = lh.write_table(local_uri, _table(), partition_by=["p"])
    files = lh.write_files(local_uri, _table(9, start=100)) + lh.write_files(local_uri, _table(3, start=200))
    assert {f.path for f in files} <= _parquet_files(local_uri)
    assert lh.Table.open(local_uri).to_arrow().num_rows == 30  # written, not committed
    v = t.commit_files(pickle.loads(pickle.dumps(files)), read_version=0)
    assert v == 1 and t.to_arrow().num_rows == 42
    assert t.history(1)[0].info["files_added"] == len(files)


def test_commit_files_append_rebases_overwrite_conflicts(local_uri):
    t = lh.write_table(local_uri, _table(), partition_by=["p"])
    files = lh.write_files(local_uri, _table(3, start=100))
    lh.Table.open(local_uri).append(_table(3, start=500))  # lands at 1, after our read at 0
    assert t.commit_files(files, read_version=0) == 2  # blind append: rebased
    assert t.to_arrow().num_rows == 36

    stale = lh.write_files(local_uri, _table(2, start=900))
    lh.Table.open(local_uri).append(_table(1, start=600))  # 3
    with pytest.raises(lh.CommitConflictError):
        t.commit_files(stale, read_version=2, operation="overwrite")
    assert not ({f.path for f in stale} & _parquet_files(local_uri)), "conflicting files must be deleted"
    assert lh.Table.open(local_uri).version == 3


def test_commit_files_overwrite_filter_and_removed(local_uri):
    t = lh.write_table(local_uri, _table(), partition_by=["p"])
    files = lh.write_files(local_uri, pa.table({"id": [7], "p": pa.array([1], pa.int32()), "v": [1.0]}))
    t.commit_files(files, read_version=0, operation="overwrite", filter=[("p", "=", 1)])
    assert t.to_arrow(filter=[("p", "=", 1)]).column("id").to_pylist() == [7]
    assert t.to_arrow().num_rows == 21

    bad = lh.write_files(local_uri, pa.table({"id": [8], "p": pa.array([2], pa.int32()), "v": [1.0]}))
    with pytest.raises(lh.ConstraintViolationError):
        t.commit_files(bad, read_version=1, operation="overwrite", filter=[("p", "=", 1)])
    assert not ({f.path for f in bad} & _parquet_files(local_uri))

    # compaction-like: replace the files of partition 0 by one file of the same rows
    old = [task.path for task in t.snapshot().plan_files(filter=[("p", "=", 0)])]
    new = lh.write_files(local_uri, t.to_arrow(filter=[("p", "=", 0)]))
    t.commit_files(new, read_version=t.version, removed=old)
    assert t.to_arrow().num_rows == 21 and len(t.snapshot().plan_files(filter=[("p", "=", 0)])) == 1
    with pytest.raises(ValueError, match="not live"):
        t.commit_files([], read_version=t.version, removed=old)


def test_commit_files_refuses_files_written_under_another_schema(local_uri):
    t = lh.write_table(local_uri, _table())
    files = lh.write_files(local_uri, _table(2))
    t.alter.rename_column("v", "w")
    with pytest.raises(lh.CommitConflictError, match="schema of version 0"):
        t.commit_files(files, read_version=t.version)
    assert not ({f.path for f in files} & _parquet_files(local_uri))


# -- Dask ------------------------------------------------------------------------------------------
dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

from lakehouse.dask import read_dask, to_lakehouse  # noqa: E402


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the test module
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as c:
        yield c


def _chunk(i: int, size: int) -> pd.DataFrame:
    ids = pa.array(range(i * size, (i + 1) * size), pa.int64())
    return pd.DataFrame({"id": ids.to_numpy(), "g": pc.cast(pc.bit_wise_and(ids, 3), pa.int32()).to_numpy(),
                         "x": pc.multiply(pc.cast(ids, pa.float64()), 0.25).to_numpy()})


def test_round_trip_million_rows(client, tmp_path):
    uri = str(tmp_path / "big")
    n = 1_000_000
    ddf = dd.from_map(_chunk, range(8), size=n // 8)  # built on the workers: no large graph
    assert to_lakehouse(ddf, uri, partition_by=["g"]) == 1  # create = 0, the whole write = 1
    t = lh.Table.open(uri)
    assert len(t.history()) == 2 and t.to_arrow().num_rows == n
    back = read_dask(uri)
    assert back.npartitions == len(t.files()) == 32
    got = pa.Table.from_pandas(back.compute(), preserve_index=False).sort_by("id")
    assert got.schema.equals(t.schema) and got.equals(t.to_arrow().sort_by("id"))
    ids = got.column("id")
    assert ids.to_pylist() == list(range(n))
    assert got.column("g").equals(pc.cast(pc.bit_wise_and(ids, 3), pa.int32()))
    assert got.column("x").equals(pc.multiply(pc.cast(ids, pa.float64()), 0.25))


def test_filtered_read_schedules_only_matching_files(client, tmp_path):
    uri = str(tmp_path / "parts")
    lh.write_table(uri, _table(40), partition_by=["p"])
    t = lh.Table.open(uri)
    t.append(_table(40, start=1000))
    ddf = read_dask(uri, filter=[("p", "=", 1), ("id", ">=", 1000)], columns=["id", "v"])
    assert ddf.npartitions == 1 < len(t.files())
    expected = t.to_arrow(filter=[("p", "=", 1), ("id", ">=", 1000)], columns=["id", "v"])
    got = pa.Table.from_pandas(ddf.compute(), preserve_index=False)
    assert got.equals(expected)
    assert list(read_dask(uri, filter=[("id", ">", 10**6)]).compute().columns) == ["id", "p", "v"]


def test_failing_worker_commits_nothing(client, tmp_path):
    uri = str(tmp_path / "fail")
    t = lh.write_table(uri, _table(), partition_by=["p"])
    t.alter.add_constraint("id_small", pc.field("id") < 5000)
    before_files, before = _parquet_files(uri), t.refresh()
    frame = _table(8000).to_pandas()
    with pytest.raises(lh.ConstraintViolationError):  # the last partitions hold ids >= 5000
        to_lakehouse(dd.from_pandas(frame, npartitions=8), uri)
    t = lh.Table.open(uri)
    assert t.version == before and t.to_arrow().num_rows == 30
    assert _parquet_files(uri) == before_files, "files of the partitions that succeeded are deleted"


def _append_then_rows(i: int, uri: str) -> pd.DataFrame:
    if i == 0:  # a single-machine writer commits while the Dask write is under way
        lh.Table.open(uri).append(_table(5, start=10_000))
    return _table(10, start=100 * (i + 1)).to_pandas()


def test_concurrent_append_during_dask_write_is_kept(client, tmp_path):
    uri = str(tmp_path / "conc")
    lh.write_table(uri, _table(), partition_by=["p"])
    ddf = dd.from_map(_append_then_rows, range(4), uri=uri, meta=_table(0).to_pandas())  # meta: no eager call
    v = to_lakehouse(ddf, uri)
    t = lh.Table.open(uri)
    assert v == 2 and t.version == 2
    assert t.to_arrow().num_rows == 30 + 5 + 40
    assert t.to_arrow(filter=[("id", ">=", 10_000)]).num_rows == 5


def test_overwrite_mode_and_missing_dask_message(client, tmp_path):
    uri = str(tmp_path / "ow")
    lh.write_table(uri, _table())
    to_lakehouse(dd.from_pandas(_table(4, start=50).to_pandas(), npartitions=2), uri, mode="overwrite")
    assert sorted(lh.Table.open(uri).to_arrow().column("id").to_pylist()) == [50, 51, 52, 53]
    with pytest.raises(ValueError, match="mode"):
        to_lakehouse(dd.from_pandas(_table(4).to_pandas(), npartitions=1), uri, mode="error")  # type: ignore[arg-type]
    assert os.path.isdir(uri)

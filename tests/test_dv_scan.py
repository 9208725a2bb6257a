"""Every reader applies deletion vectors (format §5.8), once, in the scan: a model test and the cases
around it (vectors stored in files, pickled tasks, lazy datasets, counts, copy-on-write rewrites and
optimize folding vectors).

The model is plain pyarrow: the rows written, minus the ids a step deleted, per version. Deleted rows
are chosen by *physical position* in a data file, read straight from the Parquet file (not through
lakehouse), then marked with ``Transaction.set_deletion_vectors``; every reader at every version must
return exactly the model's rows.
"""

from __future__ import annotations

import math
import os
import pickle
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.deletion_vector import DeletionVector
from lakehouse.dv_read import kept_batches
from lakehouse.errors import CorruptDeletionVectorError
from lakehouse.write import WriteOptions

FUZZ = os.environ.get("LH_FUZZ") == "1"
SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.float64()), ("s", pa.string()), ("p", pa.int64())])
FLOATS = [0.5, -1.5, 2.0, -0.0, math.nan, None]


# -- helpers -------------------------------------------------------------------------------------------
def _rows(start: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "id": np.arange(start, start + n, dtype=np.int64),
        "v": [FLOATS[i] for i in rng.integers(0, len(FLOATS), n)],
        "s": [["a", "b", None][i] for i in rng.integers(0, 3, n)],
        "p": rng.integers(0, 3, n).astype(np.int64),
    }, schema=SCHEMA)


def _small_row_groups(t: lh.Table) -> lh.Table:
    """A handle on ``t`` writing row groups of 4 rows, so a file is read in several batches."""
    return lh.Table(t._storage, t._state, write_options=WriteOptions(row_group_rows=4))


def _physical_ids(t: lh.Table, path: str) -> list[int]:
    """The ids of a data file in its physical row order, read from the Parquet file itself."""
    (task,) = [x for x in t.snapshot().plan_files(columns=["id"]) if x.path == path]
    with fsspec.open(task.uri, "rb") as f:
        return pq.read_table(f, columns=["id"]).column("id").to_pylist()


def _mark(t: lh.Table, positions: dict[str, list[int]]) -> None:
    with t.transaction() as tx:
        tx.set_deletion_vectors({p: DeletionVector.from_positions(v) for p, v in positions.items()})


def _canon(table: pa.Table) -> list[tuple[Any, ...]]:
    """Rows sorted by id, NaN made comparable."""
    rows = [tuple("NaN" if isinstance(x, float) and math.isnan(x) else x for x in r.values())
            for r in table.to_pylist()]
    return sorted(rows, key=lambda r: r[0])


@dataclass(frozen=True)
class Filter:
    """One filter in every form the readers take."""

    dnf: list[tuple[str, str, Any]] | None
    expr: pc.Expression | None
    sql: str | None
    """The filter in SQL for DuckDB and Polars; None: no filter; "-": not compared there (their NaN
    ordering differs from Arrow's: NaN > 0 is true in DuckDB and Polars)."""

    def model(self, table: pa.Table) -> pa.Table:
        return table if self.expr is None else table.filter(self.expr)


def _filters(deleted: list[int], k: int, j: int) -> list[Filter]:
    some = sorted(deleted)[:5] or [k]
    return [
        Filter(None, None, None),
        Filter([("id", "<", k)], pc.field("id") < k, f"id < {k}"),
        Filter([("id", "in", some)], pc.field("id").isin(some), f"id in ({', '.join(map(str, some))})"),
        Filter([("v", ">", 0.0)], pc.field("v") > 0.0, "-"),
        Filter([("p", "=", j)], pc.field("p") == j, f"p = {j}"),
        Filter([("s", "=", "a")], pc.field("s") == "a", "s = 'a'"),
    ]


def _read_tasks(snap: lh.Snapshot, f: Filter, columns: list[str] | None = None) -> pa.Table:
    tasks = [pickle.loads(pickle.dumps(x)) for x in snap.plan_files(filter=f.dnf, columns=columns)]
    parts = [lh.read_task(x) for x in tasks]
    return pa.concat_tables(parts) if parts else snap.schema.empty_table()


def _dataset_batches(dataset: Any, expr: pc.Expression | None) -> pa.Table:
    return pa.Table.from_batches(list(dataset.to_batches(filter=expr, batch_size=3)), schema=dataset.schema)


ARROW_READERS: dict[str, Callable[[lh.Snapshot, Filter], pa.Table]] = {
    "to_arrow": lambda s, f: s.to_arrow(filter=f.dnf),
    "to_batches": lambda s, f: s.to_batches(filter=f.dnf).read_all(),
    "capsule": lambda s, f: pa.RecordBatchReader.from_stream(s).read_all().filter(
        f.expr if f.expr is not None else pc.scalar(True)),
    "read_task": _read_tasks,
    "dataset.to_table": lambda s, f: s.to_pyarrow_dataset().to_table(filter=f.expr),
    "dataset.to_batches": lambda s, f: _dataset_batches(s.to_pyarrow_dataset(), f.expr),
    "dataset(filter=)": lambda s, f: s.to_pyarrow_dataset(filter=f.dnf).to_table(filter=f.expr),
}


def _ids_pandas(s: lh.Snapshot, f: Filter) -> list[int]:
    return sorted(s.to_pandas(filter=f.dnf)["id"].tolist())


def _ids_polars(s: lh.Snapshot, f: Filter) -> list[int] | None:
    pl = pytest.importorskip("polars")
    if f.sql == "-":
        return None
    lf = s.to_polars()
    if f.sql is not None:
        lf = lf.sql(f"select * from self where {f.sql}")
    return sorted(lf.select(pl.col("id")).collect()["id"].to_list())


def _ids_duckdb(s: lh.Snapshot, f: Filter) -> list[int] | None:
    pytest.importorskip("duckdb")
    if f.sql == "-":
        return None
    con = s.to_duckdb("t")
    where = f" where {f.sql}" if f.sql is not None else ""
    ids = sorted(r[0] for r in con.sql(f"select id from t{where}").fetchall())
    ((count,),) = con.sql(f"select count(*) from t{where}").fetchall()
    assert count == len(ids)
    return ids


ID_READERS: dict[str, Callable[[lh.Snapshot, Filter], list[int] | None]] = {
    "to_arrow(columns=)": lambda s, f: sorted(s.to_arrow(columns=["id"], filter=f.dnf).column("id").to_pylist()),
    "to_batches(columns=)": lambda s, f: sorted(
        s.to_batches(columns=["id"], filter=f.dnf).read_all().column("id").to_pylist()),
    "read_task(columns=)": lambda s, f: sorted(_read_tasks(s, f, ["id"]).column("id").to_pylist()),
    "dataset(columns=)": lambda s, f: sorted(
        s.to_pyarrow_dataset().to_table(columns=["id"], filter=f.expr).column("id").to_pylist()),
    "to_pandas": _ids_pandas,
    "to_polars": _ids_polars,
    "to_duckdb": _ids_duckdb,
}


def _check_version(snap: lh.Snapshot, model: pa.Table, filters: list[Filter]) -> None:
    """Every reader of ``snap`` returns exactly the model's rows, for every filter."""
    dataset = snap.to_pyarrow_dataset()
    assert dataset.count_rows() == model.num_rows, snap.version
    assert sum(snap.files().column("num_rows").to_pylist()) - sum(
        snap.files().column("num_deleted_rows").to_pylist()) == model.num_rows
    for f in filters:
        expected = f.model(model)
        want = _canon(expected)
        ids = [r[0] for r in want]
        for name, read in ARROW_READERS.items():
            assert _canon(read(snap, f)) == want, (name, f.dnf, snap.version)
        for name, read_ids in ID_READERS.items():
            got = read_ids(snap, f)
            assert got is None or got == ids, (name, f.dnf, snap.version)
        if f.expr is not None:
            assert dataset.count_rows(filter=f.expr) == len(ids), (f.dnf, snap.version)
            assert dataset.filter(f.expr).count_rows() == len(ids), (f.dnf, snap.version)


# -- the model test ------------------------------------------------------------------------------------
steps = st.lists(st.one_of(
    st.tuples(st.just("mark"), st.lists(st.tuples(st.integers(0, 20), st.sets(st.integers(0, 200), min_size=1,
                                                                                  max_size=12)),
                                           min_size=1, max_size=2)),
    st.tuples(st.just("append"), st.integers(1, 15)),
    st.tuples(st.just("delete"), st.sets(st.integers(0, 80), min_size=1, max_size=10)),
    st.tuples(st.just("optimize")),
), min_size=1, max_size=8 if FUZZ else 4)


@pytest.mark.parametrize("backend", ["memory", "local"])
@settings(max_examples=150 if FUZZ else 3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                    HealthCheck.too_slow])
@given(n=st.integers(1, 40), steps=steps, seed=st.integers(0, 2**16), k=st.integers(0, 60), j=st.integers(0, 2))
def test_dv_every_reader_at_every_version_returns_the_models_rows(backend, tmp_path_factory, n, steps, seed, k, j):
    uri = (f"memory://dv-scan-{uuid.uuid4().hex}" if backend == "memory"
           else str(tmp_path_factory.mktemp("dvscan") / "t"))
    data = _rows(0, n, seed)
    first = data.slice(0, max(1, n // 2))
    t = _small_row_groups(lh.write_table(uri, first, partition_by=["p"]))
    versions = [set(first.column("id").to_pylist())]  # per version: the ids of the live rows
    if n > first.num_rows:
        t.append(data.slice(first.num_rows))
        versions.append(set(data.column("id").to_pylist()))
    by_id = {r["id"]: r for r in data.to_pylist()}
    live = set(by_id)
    deleted: list[int] = []
    next_id = n
    for step in steps:
        before = t.version
        if step[0] == "mark":
            paths = sorted(t.files().column("path").to_pylist())
            if not paths:
                continue
            positions: dict[str, list[int]] = {}
            for pick, chosen in step[1]:
                path = paths[pick % len(paths)]
                ids = _physical_ids(t, path)
                positions.setdefault(path, []).extend(x % len(ids) for x in chosen)
                for x in chosen:
                    live.discard(ids[x % len(ids)])
                    deleted.append(ids[x % len(ids)])
            _mark(t, positions)
        elif step[0] == "append":
            more = _rows(next_id, step[1], seed + next_id)
            next_id += step[1]
            by_id.update((r["id"], r) for r in more.to_pylist())
            live.update(more.column("id").to_pylist())
            t.append(more)
        elif step[0] == "delete":  # copy-on-write, filter on ids some of which vectors already deleted
            gone = sorted(step[1])
            t.delete([("id", "in", gone)])
            live.difference_update(gone)
        else:
            t.optimize()
        if t.version != before:
            versions.append(live.copy())
        assert t.version == len(versions) - 1, step
    filters = _filters(deleted, k, j)
    for version, ids in enumerate(versions):
        model = pa.Table.from_pylist([by_id[i] for i in sorted(ids)], schema=SCHEMA)
        _check_version(t.snapshot(version=version), model, filters)


# -- vectors stored in files, every backend (S3 too) ----------------------------------------------------
N = 6000


def test_dv_file_stored_vectors_every_reader(table_uri):
    """Vectors too large to inline (they live in a ``_deletion_vectors`` file): every reader, including
    a task unpickled elsewhere (it finds the vector file from its own URI)."""
    data = pa.table({"id": np.arange(2 * N), "v": np.arange(2 * N) * 0.5, "s": ["x"] * (2 * N),
                     "p": np.arange(2 * N) // N}, schema=SCHEMA)
    t = lh.write_table(table_uri, data, partition_by=["p"])
    a, b = (t.files(filter=[("p", "=", i)]).column("path")[0].as_py() for i in (0, 1))
    _mark(t, {a: list(range(0, N, 2))})
    tasks = [pickle.loads(pickle.dumps(x)) for x in t.snapshot().plan_files()]
    marked = [x for x in tasks if x.path == a]
    assert marked[0].deletion_vector is not None and marked[0].deletion_vector.path is not None
    assert (marked[0].num_rows, marked[0].num_deleted_rows) == (N, N // 2)
    want = [i for i in range(2 * N) if not (i < N and i % 2 == 0)]
    assert sorted(pa.concat_tables(lh.read_task(x) for x in tasks).column("id").to_pylist()) == want
    assert sorted(t.to_arrow().column("id").to_pylist()) == want
    assert sorted(pa.table(t.snapshot()).column("id").to_pylist()) == want
    assert t.to_pyarrow_dataset().count_rows() == len(want)
    assert t.to_arrow(filter=[("id", "<", 10)]).column("id").to_pylist() == [1, 3, 5, 7, 9]
    assert t.to_pyarrow_dataset().count_rows(filter=pc.field("v") < 5.0) == 5
    dataset = t.to_pyarrow_dataset()
    assert dataset.to_table(columns={"twice": pc.field("id") * 2}, filter=pc.field("id") < 6).column(
        "twice").to_pylist() == [2, 6, 10]
    in_order = dataset.to_table(columns=["id"]).column("id").to_pylist()  # files in the files table's order
    assert dataset.to_table(columns=[]).num_rows == dataset.scanner(columns=[]).count_rows() == len(want)
    assert dataset.head(3, columns=["id"]).column("id").to_pylist() == in_order[:3]
    assert dataset.take([0, N // 2, N + 1]).column("id").to_pylist() == [in_order[i] for i in (0, N // 2, N + 1)]
    assert sorted(pickle.loads(pickle.dumps(dataset)).to_table().column("id").to_pylist()) == want
    view = t.inspect.files()
    assert dict(zip(view.column("path").to_pylist(), view.column("num_deleted_rows").to_pylist())) == {a: N // 2, b: 0}
    assert sum(t.inspect.partitions().column("row_count").to_pylist()) == len(want)


def test_dv_read_task_refuses_a_task_whose_vector_is_not_a_descriptor(local_uri):
    import dataclasses

    t = lh.write_table(local_uri, pa.table({"a": [1, 2, 3]}))
    (task,) = t.snapshot().plan_files()
    with pytest.raises(lh.ArgumentTypeError, match="deletion_vector"):
        lh.read_task(dataclasses.replace(task, deletion_vector="x"))


def test_dv_kept_batches_refuses_a_file_whose_rows_differ_from_the_files_table():
    keeps = {"x": DeletionVector.from_positions([0]).mask(4, arrow=True)}
    batch = pa.record_batch({"a": [1, 2, 3]})
    with pytest.raises(CorruptDeletionVectorError, match="holds 3 rows"):
        list(kept_batches(iter([("x", batch)]), keeps))
    with pytest.raises(CorruptDeletionVectorError, match="more than the 4 rows"):
        list(kept_batches(iter([("x", batch), ("x", batch)]), keeps))
    assert [b.num_rows for b in kept_batches(iter([("x", batch), ("x", batch.slice(0, 1))]), keeps)] == [2, 1]


def test_dv_tables_without_vectors_keep_the_plain_scan(local_uri):
    """No vector: the dataset carries none and the scanner is pyarrow's (pushdown, no extra pass)."""
    t = lh.write_table(local_uri, pa.table({"a": [1, 2, 3]}))
    assert t.to_pyarrow_dataset()._lh_vectors is None
    assert [x.deletion_vector for x in t.snapshot().plan_files()] == [None]


# -- writes over vectors ---------------------------------------------------------------------------------
def test_dv_optimize_folds_vectors(local_uri):
    data = _rows(0, 300, 1)
    t = lh.write_table(local_uri, data, partition_by=["p"])
    t.append(_rows(300, 30, 2))
    paths = sorted(t.files().column("path").to_pylist())
    big = max(paths, key=lambda p: t.files().filter(pc.field("path") == p).column("num_rows")[0].as_py())
    ids = _physical_ids(t, big)
    _mark(t, {big: [0, 2, 5]})
    before = _canon(t.to_arrow())
    assert len(before) == 327 and not {ids[0], ids[2], ids[5]} & {r[0] for r in before}
    version = t.optimize(target_file_size=1)  # every file is "big": only the one with a vector is rewritten
    assert version == t.version
    assert _canon(t.to_arrow()) == before
    files = t.files()
    assert sum(files.column("num_deleted_rows").to_pylist()) == 0 and big not in files.column("path").to_pylist()
    assert len(files) == len(paths)  # nothing else was compacted
    assert t.history(1)[0].info["data_change"] is False
    assert t.inspect.history(limit=1).column("data_change").to_pylist() == [False]
    assert t.inspect.log_entry(t.version)["remove"][0]["num_deleted_rows"] == 3
    assert t.optimize(target_file_size=1) is None  # nothing left to fold
    assert _canon(t.to_arrow(version=version - 1)) == before  # time travel still reads through the vector


def test_dv_optimize_compacts_and_folds_in_one_bin(table_uri):
    t = lh.write_table(table_uri, _rows(0, 20, 3))
    for i in range(3):
        t.append(_rows(20 + 10 * i, 10, 4 + i))
    (first,) = [p for p in t.files().column("path").to_pylist() if _physical_ids(t, p)[0] == 0]
    _mark(t, {first: list(range(0, 20, 2))})
    before = _canon(t.to_arrow())
    t.optimize()
    assert t.files().num_rows == 1 and t.files().column("num_deleted_rows").to_pylist() == [0]
    assert _canon(t.to_arrow()) == before and len(before) == 40


def test_dv_delete_with_a_filter_on_a_table_with_vectors(table_uri):
    t = lh.write_table(table_uri, _rows(0, 40, 5), partition_by=["p"])
    marks: dict[str, list[int]] = {}
    gone: set[int] = set()
    for path in t.files().column("path").to_pylist():
        ids = _physical_ids(t, path)
        marks[path] = list(range(0, len(ids), 3))
        gone.update(ids[i] for i in marks[path])
    _mark(t, marks)
    t.delete([("id", ">=", 30)])
    t.overwrite(_rows(100, 3, 6).filter(pc.field("p") == 0), filter=[("p", "=", 0)])
    remaining = {i for i in range(30) if i not in gone}
    model = _rows(0, 40, 5).filter(pc.field("id").isin(sorted(remaining)) & (pc.field("p") != 0))
    model = pa.concat_tables([model, _rows(100, 3, 6).filter(pc.field("p") == 0)])
    assert _canon(t.to_arrow()) == _canon(model)
    assert t.to_pyarrow_dataset().count_rows() == model.num_rows


def test_dv_lazy_dataset_skips_files_with_vectors_its_filter_rules_out(monkeypatch):
    """A file with a vector is read whole, so a guarded ``TableDataset`` first drops those whose
    partition values and statistics contradict the pushed filter (as pyarrow does for the other
    files); ``to_pyarrow_dataset`` reads the files with vectors its filter keeps once, when made."""
    from lakehouse.scan import Scan
    from lakehouse.scan import dataset as scan  # where TableDataset calls kept_batches
    from lakehouse.storage import Storage

    t = lh.write_table(f"memory://dv-skip-{uuid.uuid4().hex}", pa.table({"a": np.arange(30), "p": np.arange(30) // 10}),
                       partition_by=["p"])
    _mark(t, {p: [1] for p in t.files().column("path").to_pylist()})
    read: list[int] = []
    original = scan.kept_batches

    def recorded(batches, keeps):
        read.append(len(keeps))
        return original(batches, keeps)

    monkeypatch.setattr(scan, "kept_batches", recorded)
    state = t.snapshot().state
    dataset = Scan(Storage.from_uri(t.uri), state).dataset(state.files, guards=True)
    assert dataset.to_table(filter=pc.field("p") == 1).column("a").to_pylist() == [10, *range(12, 20)]
    assert dataset.count_rows(filter=pc.field("a") < 5) == 4  # statistics rule out two of the files
    assert read == [1, 1]
    lazy = t.to_pyarrow_dataset(filter=[("p", "=", 1)])  # pruned to one file, read now
    assert read[2:] == [1]
    assert lazy.to_table(filter=pc.field("p") == 1).column("a").to_pylist() == [10, *range(12, 20)]
    assert lazy.count_rows(filter=pc.field("a") < 15) == 4
    assert read[3:] == []  # held in memory: not read again
    pytest.importorskip("duckdb")
    assert t.to_duckdb("t").sql("select count(*) from t where p = 2").fetchall() == [(9,)]


def test_dv_dask_reads_through_vectors_at_every_version(local_uri):
    dask = pytest.importorskip("dask")
    from lakehouse.dask import read_dask

    t = lh.write_table(local_uri, pa.table({"id": np.arange(3 * N), "p": np.arange(3 * N) // N}), partition_by=["p"])
    paths = sorted(t.files().column("path").to_pylist())
    _mark(t, {paths[0]: list(range(0, N, 2))})          # in a vector file
    _mark(t, {paths[0]: [1], paths[1]: [0, 7]})          # unions, inline
    models = [set(range(3 * N))]
    at_one = _physical_ids_at(t, 1, paths[0])
    models.append(models[0] - {at_one[i] for i in range(0, N, 2)})
    first, second = _physical_ids_at(t, 2, paths[0]), _physical_ids_at(t, 2, paths[1])
    models.append(models[1] - {first[1], second[0], second[7]})
    with dask.config.set(scheduler="synchronous"):
        for version, ids in enumerate(models):
            frame = read_dask(local_uri, version=version, filter=[("id", ">=", 1)], columns=["id"]).compute()
            assert sorted(frame["id"].tolist()) == sorted(i for i in ids if i >= 1), version


def _physical_ids_at(t: lh.Table, version: int, path: str) -> list[int]:
    (task,) = [x for x in t.snapshot(version=version).plan_files(columns=["id"]) if x.path == path]
    with fsspec.open(task.uri, "rb") as f:
        return pq.read_table(f, columns=["id"]).column("id").to_pylist()


def test_dv_vectors_apply_under_column_mapping(table_uri):
    """After a rename the data files keep the physical name: the vector scan works on those names."""
    t = lh.write_table(table_uri, pa.table({"id": np.arange(20), "v": np.arange(20) * 1.5}))
    (path,) = t.files().column("path").to_pylist()
    _mark(t, {path: [0, 5, 6]})
    t.alter.rename_column("id", "key")
    want = [i for i in range(20) if i not in (0, 5, 6)]
    assert t.to_arrow(columns=["key"]).column("key").to_pylist() == want
    assert t.to_arrow(columns=["v"], filter=[("key", "<", 8)]).column("v").to_pylist() == [1.5, 3.0, 4.5, 6.0, 10.5]
    assert t.to_batches(filter=[("v", ">", 20.0)]).read_all().column("key").to_pylist() == [i for i in want if i > 13]
    (task,) = t.snapshot().plan_files(filter=[("key", ">=", 4)])
    assert lh.read_task(pickle.loads(pickle.dumps(task))).column("key").to_pylist() == [i for i in want if i >= 4]

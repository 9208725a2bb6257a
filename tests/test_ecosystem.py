"""The ecosystem: writes take any ``__arrow_c_stream__`` object (pandas, polars, duckdb), tables and
snapshots are Arrow C streams, ``to_pandas``/``to_polars``/``to_duckdb``, and ``to_pyarrow_dataset``
fragments carry per-file min/max guarantees so engines skip files themselves."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import make_data, rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recordfs import RECORDER
from strategies import arrow_tables, row_filters

import lakehouse as lh
from lakehouse.errors import SchemaMismatchError

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
duckdb = pytest.importorskip("duckdb")


def _rows_sorted(table: pa.Table) -> list[tuple]:
    return rows(table.select(sorted(table.column_names)))


# -- writes accept any Arrow C stream --------------------------------------------------------------
def test_append_accepts_pandas_polars_and_duckdb(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": pa.array([1], pa.int64()), "name": ["a"]}))
    assert t.append(pd.DataFrame({"id": [2, 3], "name": ["b", None]})) == 1
    assert t.append(pl.DataFrame({"id": [4], "name": ["c"]})) == 2  # strings arrive as string_view
    assert t.append(duckdb.sql("select 5::BIGINT as id, 'd' as name")) == 3
    got = t.to_arrow()
    assert got.schema == pa.schema([("id", pa.int64()), ("name", pa.string())])
    assert sorted(got.column("id").to_pylist()) == [1, 2, 3, 4, 5]
    assert sorted(got.filter(pc.field("id") == 3).column("name").to_pylist(), key=str) == [None]


def test_write_table_creates_from_a_polars_frame(table_uri):
    t = lh.write_table(table_uri, pl.DataFrame({"id": [1, 2], "day": [1, 2]}), partition_by=["day"])
    assert t.to_arrow(filter=[("day", "=", 2)]).column("id").to_pylist() == [2]


def test_pandas_index_is_a_column_and_refused_by_a_strict_append(local_uri):
    t = lh.write_table(local_uri, pa.table({"id": pa.array([1], pa.int64())}))
    with pytest.raises(SchemaMismatchError, match="__index_level_0__"):
        t.append(pd.DataFrame({"id": [2]}, index=[7]))
    assert t.append(pd.DataFrame({"id": [2]}, index=[7]).reset_index(drop=True)) == 1


# -- tables and snapshots are Arrow C streams -------------------------------------------------------
def test_table_and_snapshot_are_fresh_streams_each_call(table_uri):
    t = lh.write_table(table_uri, make_data(range(10)))
    s = t.snapshot()
    t.append(make_data(range(10, 15)))
    for _ in range(2):  # a fresh stream per call: reading twice reads everything twice
        assert pa.table(t).num_rows == 15
        assert pa.table(s).num_rows == 10  # the snapshot stays pinned
    assert pl.DataFrame(t).height == 15
    assert pl.DataFrame(s).height == 10
    assert duckdb.sql("select count(*) from t where id >= 12").fetchall() == [(3,)]
    assert duckdb.sql("select count(*) from s").fetchall() == [(10,)]


def test_stream_honours_a_requested_schema(memory_uri):
    t = lh.write_table(memory_uri, pa.table({"a": pa.array([1, 2], pa.int32())}))
    reader = pa.RecordBatchReader.from_stream(t, schema=pa.schema([("a", pa.int64())]))
    assert reader.read_all().column("a").type == pa.int64()


def test_renamed_columns_stream_under_their_new_names(memory_uri):
    t = lh.write_table(memory_uri, pa.table({"a": [1, 2], "b": ["x", "y"]}))
    t.alter.rename_column("a", "renamed")
    assert pl.DataFrame(t).columns == ["renamed", "b"]


# -- to_pandas / to_polars / to_duckdb ------------------------------------------------------------
def test_to_pandas_on_table_and_snapshot(table_uri):
    t = lh.write_table(table_uri, make_data(range(6)))
    df = t.to_pandas(columns=["id"], filter=[("id", ">=", 4)])
    assert sorted(df["id"].tolist()) == [4, 5]
    assert len(t.snapshot().to_pandas()) == 6


def test_to_polars_is_lazy_and_filters(table_uri):
    t = lh.write_table(table_uri, make_data(range(20)), partition_by=["part"])
    lf = t.to_polars()
    assert isinstance(lf, pl.LazyFrame)
    out = lf.filter(pl.col("id") > 15).select("id").collect()
    assert sorted(out["id"].to_list()) == [16, 17, 18, 19]
    assert t.snapshot(version=0).to_polars().collect().height == 20


def test_to_duckdb_registers_a_view_and_returns_the_connection(table_uri):
    t = lh.write_table(table_uri, make_data(range(8)))
    con = t.to_duckdb("events")
    assert con.sql("select count(*), max(id) from events").fetchall() == [(8, 7)]
    other = duckdb.connect()
    assert t.snapshot().to_duckdb("ev", other) is other
    t.append(make_data(range(8, 10)))  # the view is pinned to the version it was made from
    assert other.sql("select count(*) from ev").fetchall() == [(8,)]


def test_to_duckdb_is_lazy(recordfs_uri):
    t = lh.write_table(recordfs_uri, make_data(range(8)))
    with RECORDER.recording() as rec:
        con = t.to_duckdb("events")
    assert not [p for p in rec.paths if p.endswith(".parquet")], "registering read data files"
    with RECORDER.recording() as rec:
        assert con.sql("select count(*) from events").fetchall() == [(8,)]
    assert [p for p in rec.paths if p.endswith(".parquet")]


@pytest.mark.parametrize("module", ["pandas", "polars", "duckdb"])
def test_missing_optional_dependency_names_the_extra(memory_uri, monkeypatch, module):
    t = lh.write_table(memory_uri, pa.table({"a": [1]}))
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    call = {"pandas": t.to_pandas, "polars": t.to_polars, "duckdb": lambda: t.to_duckdb("x")}[module]
    with pytest.raises(ImportError, match=rf"lakehouse-format\[{module}\]"):
        call()


# -- to_pyarrow_dataset: statistics guarantees on the fragments -----------------------------------
def _many_files(uri: str, n: int = 20) -> lh.Table:
    t = lh.write_table(uri, make_data(range(10)))
    for k in range(1, n):
        t.append(make_data(range(10 * k, 10 * k + 10)))
    return t


def _parquet_opened(paths: list[str]) -> set[str]:
    return {p for p in paths if p.endswith(".parquet")}


def test_duckdb_with_a_selective_filter_opens_only_the_matching_files(recordfs_uri):
    t = _many_files(recordfs_uri, 20)
    con = t.to_duckdb("t")
    with RECORDER.recording() as rec:
        assert con.sql("select count(*) from t where id >= 50 and id < 60").fetchall() == [(10,)]
    assert len(_parquet_opened(rec.paths)) == 1
    with RECORDER.recording() as rec:
        assert con.sql("select count(*) from t where id between 55 and 64").fetchall() == [(10,)]
    assert len(_parquet_opened(rec.paths)) == 2
    with RECORDER.recording() as rec:
        assert con.sql("select count(*) from t").fetchall() == [(200,)]
    assert len(_parquet_opened(rec.paths)) == 20


def test_polars_with_a_selective_filter_opens_only_the_matching_files(recordfs_uri):
    t = _many_files(recordfs_uri, 10)
    with RECORDER.recording() as rec:
        out = t.to_polars().filter((pl.col("id") >= 30) & (pl.col("id") < 40)).collect()
    assert out.height == 10
    assert len(_parquet_opened(rec.paths)) == 1


def test_fragments_carry_null_aware_bounds(memory_uri):
    t = lh.write_table(memory_uri, pa.table({"i": pa.array([1, 5], pa.int64()), "f": [0.5, 1.0]}))
    t.append(pa.table({"i": pa.array([7, None], pa.int64()), "f": [2.0, None]}))
    t.append(pa.table({"i": pa.array([None, None], pa.int64()), "f": [3.0, None]}))
    dataset = t.to_pyarrow_dataset()
    exprs = [str(f.partition_expression) for f in dataset.get_fragments()]
    assert "((i >= 1) and (i <= 5))" in exprs[0] and "is_null" not in exprs[0]
    assert "is_null(i" in exprs[1] and "(i >= 7)" in exprs[1]
    assert exprs[2].startswith("is_null(i") and "(i >=" not in exprs[2]
    assert all("f" not in e.replace("false", "") for e in exprs)  # no guards on floating point
    i = pc.field("i")
    assert len(list(dataset.get_fragments(filter=i == 3))) == 1
    assert len(list(dataset.get_fragments(filter=i.is_null()))) == 2
    assert len(list(dataset.get_fragments(filter=i > 6))) == 1
    assert dataset.to_table(filter=i.is_null()).num_rows == 3


def test_guards_hold_after_a_widening(memory_uri):
    t = lh.write_table(memory_uri, pa.table({"i": pa.array([1, 2], pa.int32()), "s": ["a", "b"]}))
    t.alter.widen_column("i", pa.int64())
    t.append(pa.table({"i": pa.array([2**40], pa.int64()), "s": ["c"]}))
    dataset = t.to_pyarrow_dataset()
    assert dataset.to_table(filter=pc.field("i") > 1).column("s").to_pylist() == ["b", "c"]
    assert len(list(dataset.get_fragments(filter=pc.field("i") > 2))) == 1
    assert len(list(dataset.get_fragments(filter=pc.field("s") == "a"))) == 1


SCHEMA = pa.schema([
    ("i", pa.int64()), ("s", pa.string()), ("d", pa.date32()), ("b", pa.bool_()), ("f", pa.float64()),
    ("ts", pa.timestamp("us", tz="UTC")), ("dec", pa.decimal128(9, 2)), ("p", pa.int32()),
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(arrow_tables(SCHEMA, max_rows=8), min_size=1, max_size=4),
       partitioned=st.booleans(), data=st.data())
def test_dataset_filter_equals_a_filter_of_all_rows(chunks, partitioned, data):
    """``to_pyarrow_dataset().to_table(filter=f) == to_arrow().filter(f)`` on random data with nulls.

    NaN is left out: pyarrow's own row-group pruning by Parquet statistics ignores NaN (see
    ``Scan.plan``), which no fragment guarantee can undo.
    """
    uri = f"memory://eco-{uuid.uuid4().hex}"
    try:
        t = lh.write_table(uri, chunks[0], partition_by=["p"] if partitioned else None)
        for chunk in chunks[1:]:
            t.append(chunk)
        dataset = t.to_pyarrow_dataset()
        everything = t.to_arrow()
        for _ in range(3):
            f = data.draw(row_filters(SCHEMA))
            assert _rows_sorted(dataset.to_table(filter=f)) == _rows_sorted(everything.filter(f)), str(f)
    finally:
        fs = fsspec.filesystem("memory")
        if fs.exists(uri[len("memory:/"):]):
            fs.rm(uri[len("memory:/"):], recursive=True)


def test_dataset_is_refused_after_a_rename(memory_uri):
    t = lh.write_table(memory_uri, pa.table({"a": [1], "b": [2]}))
    t.alter.rename_column("a", "c")
    with pytest.raises(SchemaMismatchError):
        t.to_pyarrow_dataset()
    with pytest.raises(SchemaMismatchError):
        t.to_polars()


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture
def memory_uri() -> Iterator[str]:
    name = f"eco-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@pytest.fixture
def recordfs_uri() -> Iterator[str]:
    """A table URI on ``recordfs://`` (fsspec memory that records every path it is given)."""
    name = f"eco-{uuid.uuid4().hex}"
    yield f"recordfs://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)



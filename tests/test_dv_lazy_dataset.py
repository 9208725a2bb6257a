"""``to_pyarrow_dataset()`` never shows a deleted row, whoever scans it (issue 16).

pyarrow's C++ scans a dataset without calling its Python methods: ``Scanner.from_dataset``, a union
``ds.dataset([d])``, Acero declarations and joins, and fragments read one by one. A fragment cannot
express a deletion vector, so when some files carry one the dataset is a union of the plain files
(a ``TableDataset``: pushdown and file skipping unchanged) and an in-memory dataset of the live rows
of the files with vectors, read through the scan when the dataset is made. Every consumer below must
return exactly the live rows; a table without vectors keeps the plain ``TableDataset``.
"""

from __future__ import annotations

import math
import pickle
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.acero as acero
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.deletion_vector import DeletionVector
from lakehouse.scan import TableDataset

N = 12  # rows per partition, 3 partitions: one file each


def _table(uri: str, marked: dict[int, list[int]]) -> tuple[lh.Table, pa.Table]:
    """A table of 3 files (partitions p=0,1,2; ids p*N..p*N+N-1; v has NaN and nulls), the files of
    the partitions in ``marked`` given vectors deleting those positions; and the live rows."""
    ids = np.arange(3 * N, dtype=np.int64)
    data = pa.table({"id": ids, "v": [[0.5, math.nan, None, 2.0][i % 4] for i in ids], "p": ids // N})
    t = lh.write_table(uri, data, partition_by=["p"])
    by_partition = {task.partition_values["p"]: task for task in t.snapshot().plan_files()}
    deleted: set[int] = set()
    vectors = {}
    for p, positions in marked.items():
        physical = lh.read_task(by_partition[p]).column("id").to_pylist()  # one row group: file order
        deleted |= {physical[i] for i in positions}
        vectors[by_partition[p].path] = DeletionVector.from_positions(positions)
    if vectors:
        with t.transaction() as tx:
            tx.set_deletion_vectors(vectors)
    return t, data.filter(pc.invert(pc.is_in(data.column("id"), pa.array(sorted(deleted), pa.int64()))))


def _ids(table: Any) -> list[int]:
    if not isinstance(table, pa.Table):
        table = pa.table(table)
    return sorted(table.column("id").to_pylist())


def _acero_scan(d: ds.Dataset) -> pa.Table:
    return acero.Declaration("scan", acero.ScanNodeOptions(d)).to_table()


def _fragments(d: ds.Dataset) -> pa.Table:
    return pa.concat_tables([f.to_table(schema=d.schema) for f in d.get_fragments()])


def _polars(d: ds.Dataset) -> Any:
    pl = pytest.importorskip("polars")
    return pl.scan_pyarrow_dataset(d).collect().to_arrow()


def _duckdb(d: ds.Dataset) -> Any:
    duckdb = pytest.importorskip("duckdb")
    return duckdb.from_arrow(d).arrow()


CONSUMERS: dict[str, Callable[[ds.Dataset], Any]] = {
    "Scanner.from_dataset": lambda d: ds.Scanner.from_dataset(d).to_table(),
    "ds.dataset([d])": lambda d: ds.dataset([d]).to_table(),
    "acero scan node": _acero_scan,
    "get_fragments": _fragments,
    "to_table": lambda d: d.to_table(),
    "to_batches": lambda d: pa.Table.from_batches(list(d.to_batches()), schema=d.schema),
    "head": lambda d: d.head(1000),
    "pickle": lambda d: pickle.loads(pickle.dumps(d)).to_table(),
    "polars": _polars,
    "duckdb": _duckdb,
    "replace_schema": lambda d: d.replace_schema(d.schema).to_table(),
}


@pytest.mark.parametrize("consumer", list(CONSUMERS))
def test_lazy_dataset_shows_only_live_rows_to_every_consumer(consumer: str, tmp_path) -> None:
    t, live = _table(str(tmp_path / "t"), {0: [0, 3, 5], 2: [11]})
    d = t.to_pyarrow_dataset()
    assert _ids(CONSUMERS[consumer](d)) == _ids(live)
    assert d.count_rows() == live.num_rows


def test_lazy_dataset_join_and_union_with_another_dataset(tmp_path) -> None:
    t, live = _table(str(tmp_path / "t"), {1: [0, 1, 2]})
    d = t.to_pyarrow_dataset()
    other = ds.dataset(pa.table({"id": pa.array(range(3 * N), pa.int64()), "w": list(range(3 * N))}))
    assert _ids(d.join(other, keys="id").to_table()) == _ids(live)
    assert _ids(ds.dataset([d, ds.dataset(pa.table({"id": pa.array([100], pa.int64()), "v": [1.0],
                                                    "p": pa.array([9], pa.int64())}))]).to_table()) == \
        [*_ids(live), 100]


def test_lazy_dataset_fragments_are_plain_files_then_the_live_rows_in_memory(tmp_path) -> None:
    """``get_fragments()`` yields the Parquet fragments of the files without a vector (each with its
    path and partition guarantee), then in-memory fragments holding the live rows of the others."""
    t, live = _table(str(tmp_path / "t"), {0: [1]})
    fragments = list(t.to_pyarrow_dataset().get_fragments())
    files = [f for f in fragments if isinstance(f, ds.FileFragment)]
    assert len(files) == 2 and all(f.path.endswith(".parquet") for f in files)
    memory = [f for f in fragments if not isinstance(f, ds.FileFragment)]
    assert sum(f.count_rows() for f in memory) == N - 1
    assert sum(f.count_rows() for f in fragments) == live.num_rows


@given(marked=st.dictionaries(st.integers(0, 2), st.lists(st.integers(0, N - 1), min_size=1, max_size=N),
                              max_size=3),
       op=st.sampled_from(["<", ">=", "!=", "is_nan"]), value=st.sampled_from([0.5, 2.0, math.nan]),
       low=st.integers(0, 3 * N))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_lazy_dataset_filters_match_to_arrow(marked, op, value, low) -> None:
    """Filters through the dataset's own methods, C++ scanners and engines agree with ``to_arrow``
    (NaN-safe for the plain files, exact on the live rows), with or without vectors."""
    t, live = _table(f"memory://dv-lazy-{uuid.uuid4().hex}", marked)
    v = pc.field("v")
    expr = {"<": v < value, ">=": v >= value, "!=": v != value, "is_nan": pc.is_nan(v)}[op] & (pc.field("id") >= low)
    want = _ids(t.to_arrow(filter=expr))
    assert want == _ids(live.filter(expr))
    d = t.to_pyarrow_dataset()
    assert _ids(d.to_table(filter=expr)) == want
    assert d.count_rows(filter=expr) == len(want)
    assert _ids(d.filter(expr).to_table()) == want
    assert _ids(pickle.loads(pickle.dumps(d.filter(expr))).to_table()) == want
    assert _ids(d.scanner(columns=["id"], filter=expr).to_table()) == want
    assert _ids(ds.Scanner.from_dataset(d).to_table().filter(expr)) == want
    # pyarrow's C++ scans a filtered dataset without its Python methods: the filter must hold there too
    assert _ids(ds.Scanner.from_dataset(d.filter(expr)).to_table()) == want
    assert _ids(ds.Scanner.from_dataset(d.filter(pc.field("id") >= low)).to_table()) == _ids(
        t.to_arrow(filter=pc.field("id") >= low))
    if not marked:
        assert isinstance(d, TableDataset)


def test_lazy_dataset_of_a_table_without_vectors_is_the_plain_table_dataset(tmp_path) -> None:
    t, _ = _table(str(tmp_path / "t"), {})
    d = t.to_pyarrow_dataset()
    assert type(d) is TableDataset
    assert sorted(f.path for f in d.get_fragments()) == sorted(
        t.snapshot().plan_files()[i].uri for i in range(3))


def test_lazy_dataset_pruned_by_its_filter_reads_only_the_vector_files_it_keeps(tmp_path) -> None:
    """``to_pyarrow_dataset(filter=)`` prunes first: a file with a vector that cannot match is not read."""
    t, live = _table(str(tmp_path / "t"), {0: [0], 2: [0]})
    d = t.to_pyarrow_dataset(filter=[("p", "=", 1)])
    assert type(d) is TableDataset  # the one file left has no vector
    assert _ids(ds.Scanner.from_dataset(t.to_pyarrow_dataset(filter=[("p", "=", 2)])).to_table()) == \
        _ids(live.filter(pc.field("p") == 2))

"""How writes lay out data files: rolling at the target size, one folder per partition, streams."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import SCHEMA, make_data
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import arrow_tables

import lakehouse as lh


def _stream(batches: int, rows: int, seen: list[int]) -> pa.RecordBatchReader:
    def gen():
        for b in range(batches):
            seen.append(b)
            yield make_data(range(b * rows, (b + 1) * rows), part=b % 2).to_batches()[0]

    return pa.RecordBatchReader.from_batches(SCHEMA, gen())


def test_stream_rolls_files_at_target_size(table_uri):
    t = lh.Table.create(table_uri, SCHEMA, partition_by=["part"], properties={"target_file_size": 32 * 1024})
    seen: list[int] = []
    t.append(_stream(40, 1000, seen))
    files = t.files()
    assert seen == list(range(40)), "the stream is consumed once, in order"
    assert files.num_rows > 4, "small targets roll over into several files per partition"
    assert sum(files.column("num_rows").to_pylist()) == 40_000
    for row in files.to_pylist():
        assert row["path"].startswith(f"part={row['partition.part']}/")
    assert sorted(t.to_arrow().column("id").to_pylist()) == list(range(40_000))


def test_data_files_hold_no_partition_columns_and_use_zstd(local_uri):
    t = lh.write_table(local_uri, make_data(range(100), part=3), partition_by=["part"])
    (path,) = t.files().column("path").to_pylist()
    meta = pq.ParquetFile(f"{local_uri}/{path}").metadata
    assert "part" not in meta.schema.names
    assert meta.row_group(0).column(0).compression == "ZSTD"


@pytest.mark.parametrize("bad", ["0", "-5", "lots"])
def test_bad_target_file_size_is_refused(table_uri, bad):
    with pytest.raises(lh.InvalidTableError, match="target_file_size"):
        lh.Table.create(table_uri, SCHEMA, properties={"target_file_size": bad})


def test_only_repetitive_columns_are_dictionary_encoded(local_uri):
    # unique ids and measurements are written plain; a 3-value category, a struct and a renamed
    # repetitive column (physical name differs) keep their dictionary
    n = 5000
    data = pa.table({
        "id": pa.array(range(n), pa.int64()),
        "value": pa.array([i * 0.37 for i in range(n)]),
        "kind": pa.array(["ab", "cd", None][i % 3] for i in range(n)),
        "s": pa.array([{"x": i % 2} for i in range(n)]),
    })
    t = lh.write_table(local_uri, data)
    t.alter.rename_column("kind", "category")
    t.append(data.rename_columns(["id", "value", "category", "s"]))
    for path in t.files().column("path").to_pylist():
        meta = pq.ParquetFile(f"{local_uri}/{path}").metadata
        dictionary = {meta.schema.column(i).path for i in range(meta.num_columns)
                      if meta.row_group(0).column(i).dictionary_page_offset is not None}
        assert dictionary == {"kind", "s.x"}, path
    assert t.to_arrow().num_rows == 2 * n
    assert t.to_arrow(filter=[("category", "=", "cd")]).num_rows == 2 * (n // 3 + (n % 3 > 1))


def test_large_batches_are_split_with_rows_in_order(local_uri):
    # a batch this long is reordered by partition one column per thread (write._column_take);
    # every partition's file holds exactly its rows, in the order they arrived, nulls included
    from lakehouse.write import _PARALLEL_TAKE_ROWS

    n = _PARALLEL_TAKE_ROWS + 4321
    ids = [(i * 7919) % n for i in range(n)]  # a permutation: arrival order differs from id order
    parts = [None if i % 11 == 0 else (i * 31) % 5 for i in ids]
    data = make_data(ids, part=parts)
    # a repetitive string column takes the dictionary route (with nulls and empty strings)
    data = data.append_column("kind", pa.array([("x", "yy", None, "")[i % 4] for i in ids], pa.string()))
    assert len(data.to_batches()) == 1 and data.num_rows >= _PARALLEL_TAKE_ROWS
    t = lh.write_table(local_uri, data, partition_by=["part"])
    files = t.files()
    assert files.num_rows == 6  # five values and null, one file each
    for row in files.to_pylist():
        got = pq.read_table(f"{local_uri}/{row['path']}")
        want = data.filter(pc.is_null(data["part"]) if row["partition.part"] is None
                           else pc.equal(data["part"], row["partition.part"]))
        assert got.column("id").to_pylist() == want.column("id").to_pylist(), row["path"]
        assert got.column("name").to_pylist() == want.column("name").to_pylist()
        assert got.column("kind").to_pylist() == want.column("kind").to_pylist()
    assert t.to_arrow().sort_by("id").equals(data.sort_by("id"))


def test_stepping_integer_columns_are_delta_encoded(local_uri):
    # ids and timestamps step by far less than they span: DELTA_BINARY_PACKED; integers that jump
    # around (and uint64 beyond int64, or extremes whose steps overflow) stay plain
    n = 5000
    data = pa.table({
        "id": pa.array(range(n), pa.int64()),
        "ts": pa.array([1_700_000_000_000_000 + i * 1000 + i % 7 for i in range(n)], pa.timestamp("us", "UTC")),
        "noise": pa.array([(i * 2_654_435_761) % 1_000_003 - 500_000 for i in range(n)], pa.int64()),
        "big": pa.array([2**64 - 1 - i * 3 for i in range(n)], pa.uint64()),
        "extreme": pa.array([(-(2**63), 2**63 - 1)[i % 2] if i % 3 else None for i in range(n)], pa.int64()),
        "small": pa.array([i % 3 + (i // 3) * 1000 for i in range(n)], pa.int32()),
        "day": pa.array([19_000 + i for i in range(n)], pa.int32()).cast(pa.date32()),
        "t32": pa.array(range(n), pa.int32()).cast(pa.time32("s")),
        "at": pa.array([i * 1_000_000 for i in range(n)], pa.int64()).cast(pa.time64("us")),
    })
    t = lh.write_table(local_uri, data)
    (path,) = t.files().column("path").to_pylist()
    meta = pq.ParquetFile(f"{local_uri}/{path}").metadata
    delta = {meta.schema.column(i).path for i in range(meta.num_columns)
             if "DELTA_BINARY_PACKED" in meta.row_group(0).column(i).encodings}
    assert delta == {"id", "ts", "small", "day", "t32", "at"}
    assert t.to_arrow().equals(data)
    assert t.to_arrow(filter=[("id", ">=", 4990)]).column("ts").to_pylist() == data.column("ts").to_pylist()[4990:]


_PART_TYPES = (pa.int64(), pa.int32(), pa.string(), pa.date32(), pa.bool_())


@settings(max_examples=60, deadline=None)
@given(table=arrow_tables(schema=None, min_rows=1, max_rows=40), data=st.data())
def test_parallel_reorder_splits_exactly_as_a_plain_take(table, data):
    # the writer's column-parallel reorder (with the dictionary route for repetitive strings and
    # binaries) must give the same partitions, with the same rows in the same order, as Table.take
    from unittest import mock

    from lakehouse import partitioning, write

    candidates = [f.name for f in table.schema if f.type in _PART_TYPES]
    columns = data.draw(st.lists(st.sampled_from(candidates), unique=True, min_size=1, max_size=2)) \
        if candidates else []
    sample_rows = data.draw(st.integers(1, 40))
    with ThreadPoolExecutor(2) as pool, mock.patch.object(write, "_PARALLEL_TAKE_ROWS", 0):
        got = list(partitioning.split_by_partition(table, columns, take=write._column_take(pool, sample_rows)))
    want = list(partitioning.split_by_partition(table, columns))
    assert [(enc, vals) for enc, vals, _ in got] == [(enc, vals) for enc, vals, _ in want]
    for (_, _, g), (_, _, w) in zip(got, want, strict=True):
        assert g.schema == w.schema
        assert g.to_pylist() == w.to_pylist()


@pytest.mark.parametrize(("values", "expected"), [
    ([i % 3 for i in range(5000)], True),  # repetitive from the first rows
    ([None] * 2000 + [i % 3 for i in range(3000)], True),  # the first rows are all null: the sample decides
    (list(range(5000)), False),  # unique: decided by the first rows
    ([i % 700 for i in range(5000)], True),  # repeats inside the first rows, repetitive overall
    ([i % 1500 for i in range(1000)] + [i % 1500 for i in range(4000)], True),
    ([None] * 5000, False),
])
def test_repetition_test_decides_from_the_first_rows_only_when_clear(values, expected):
    from lakehouse.write import _is_repetitive

    assert _is_repetitive(pa.chunked_array([pa.array(values, pa.int64())]), 4096) is expected

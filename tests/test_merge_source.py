"""``MergeSource``: a merge's source read once, numbered, in memory or spilled in key-range chunks.

Checked on real data (hypothesis: int, string, float with NaN and -0.0, timestamp, decimal and
dictionary keys, nulls and duplicates, any batch size, budgets small enough to spill and large
enough not to):

- no row is lost, duplicated or changed: the chunks, put back in row-number order, are the source
  with row numbers 0..n-1 (floats compared bit for bit);
- chunks partition the key range: each chunk's valid keys lie within its ``chunk_bounds``, the
  bounds of consecutive chunks are strictly increasing (so equal keys, -0.0 and 0.0 included, share
  a chunk), and null and NaN keys are only in the chunks after them, with bounds ``(None, None)``;
- within a chunk rows are in arrival order; ``rows`` returns any row numbers in the order asked;
- the temporary folder is gone after ``close``, after garbage collection and after a source that
  raises mid-stream, and a source that fits the budget writes nothing and is not copied;
- memory (in a subprocess): ~300 MB streamed through a 16 MiB budget grows pyarrow's pool by far
  less than the source.

CI profile: few examples; ``LH_FUZZ=1`` runs many more.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import gc
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lakehouse.errors import ColumnNotFoundError, InvalidArgumentError, InvalidDataError
from lakehouse.merge_source import MergeSource

FUZZ = os.environ.get("LH_FUZZ") == "1"
PROFILE = settings(max_examples=400 if FUZZ else 40, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROW = "__row__"


# -- strategies -----------------------------------------------------------------------------------------
def _pool(kind: str) -> tuple[pa.DataType, st.SearchStrategy]:
    """A key type and a small pool of its values (so keys repeat), edge values included."""
    if kind == "int":
        return pa.int64(), st.sampled_from([-(2 ** 63), -5, -1, 0, 1, 2, 3, 7, 100, 2 ** 63 - 1])
    if kind == "int8":
        return pa.int8(), st.integers(-128, 127)
    if kind == "string":
        return pa.string(), st.sampled_from(["", "a", "a\x00", "ab", "b", "é", "z" * 20, "\U0001f600"])
    if kind == "float":
        return pa.float64(), st.sampled_from([float("nan"), -0.0, 0.0, 1.5, -2.25, float("inf"), -float("inf"),
                                              5e-324, 1e300])
    if kind == "timestamp":
        base = dt.datetime(2024, 3, 10, tzinfo=dt.timezone.utc)
        return pa.timestamp("us", tz="UTC"), st.integers(-3, 40).map(lambda h: base + dt.timedelta(hours=h))
    if kind == "decimal":
        return pa.decimal128(10, 2), st.sampled_from([decimal.Decimal(x) for x in ("-1.50", "0.00", "0.01", "3.14",
                                                                                    "99999999.99")])
    if kind == "duration":  # no min_max kernel in pyarrow
        return pa.duration("us"), st.integers(-3, 40).map(lambda s: dt.timedelta(seconds=s))
    if kind == "dict":
        return pa.dictionary(pa.int32(), pa.string()), st.sampled_from(["x", "y", "zz", "a"])
    raise AssertionError(kind)


KINDS = ["int", "int8", "string", "float", "timestamp", "duration", "decimal", "dict"]


@st.composite
def sources(draw: st.DrawFn) -> tuple[pa.Table, int]:
    """A table with a key column ``k`` (nulls, duplicates) and a payload, and a batch size."""
    kind = draw(st.sampled_from(KINDS))
    typ, values = _pool(kind)
    size = draw(st.integers(0, 400 if FUZZ else 150))
    keys = draw(st.lists(st.one_of(st.none(), values), min_size=size, max_size=size))
    key = pa.array(keys, pa.string()).dictionary_encode() if kind == "dict" else pa.array(keys, typ)
    payload = pa.array([f"p{i}" if i % 5 else None for i in range(len(keys))], pa.string())
    table = pa.table({"v": payload, "k": key, "f": pa.array(np.arange(len(keys), dtype=np.float64) - 0.5)})
    return table, draw(st.integers(1, 60))


def _reader(table: pa.Table, batch_size: int) -> pa.RecordBatchReader:
    """A generator-backed reader: the producer never holds the whole table as one object to hand over."""
    batches = table.to_batches(max_chunksize=batch_size)
    return pa.RecordBatchReader.from_batches(table.schema, (b for b in batches))


# -- helpers ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A fresh ``tempfile.tempdir`` for the block: what MergeSource leaves there can be seen."""
    old = tempfile.tempdir
    folder = Path(tempfile.mkdtemp(prefix="lh-ms-test-"))
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = old
        for p in sorted(folder.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        folder.rmdir()


def _bits(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Floats as their bits (NaN equal to NaN, -0.0 unequal to 0.0); dictionaries decoded."""
    col = pa.chunked_array([c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in col.chunks],
                           type=col.type.value_type if pa.types.is_dictionary(col.type) else col.type)
    if pa.types.is_float64(col.type):
        return pa.chunked_array([c.view(pa.int64()) for c in col.chunks], type=pa.int64())
    return col


def assert_same_rows(got: pa.Table, expected: pa.Table) -> None:
    assert got.schema.names == expected.schema.names
    assert got.num_rows == expected.num_rows
    for name in expected.schema.names:
        assert _bits(got.column(name)).combine_chunks().equals(_bits(expected.column(name)).combine_chunks()), name


def numbered(table: pa.Table) -> pa.Table:
    return table.append_column(pa.field(ROW, pa.int64(), nullable=False),
                               pa.array(np.arange(table.num_rows, dtype=np.int64)))


def _valid(keys: pa.Array) -> np.ndarray:
    if pa.types.is_dictionary(keys.type):
        keys = keys.dictionary_decode()
    mask = pc.is_valid(keys)
    if pa.types.is_floating(keys.type):
        mask = pc.and_(mask, pc.invert(pc.is_nan(keys)))
    return mask.to_numpy(zero_copy_only=False)


def _decoded(col: pa.ChunkedArray) -> pa.Array:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return col.dictionary_decode() if pa.types.is_dictionary(col.type) else col


def _min_max(keys: pa.Array) -> tuple[pa.Scalar, pa.Scalar]:
    """The model's min and max (pyarrow has no min_max for durations: through int64)."""
    if pa.types.is_duration(keys.type):
        mm = pc.min_max(keys.cast(pa.int64()))
        return mm["min"].cast(keys.type), mm["max"].cast(keys.type)
    mm = pc.min_max(keys)
    return mm["min"], mm["max"]


def check_source(src: MergeSource, table: pa.Table, budget: int, key: str | None, rng: np.random.Generator) -> None:
    """Every property of the module doc, for one source built from ``table``."""
    expected = numbered(table)
    assert src.schema == expected.schema
    assert src.num_rows == table.num_rows
    chunks = [src.chunk(i) for i in range(src.num_chunks)]
    assert src.num_chunks >= 1
    if not src.spilled:
        assert src.num_chunks == 1
    for c in chunks:
        assert c.schema == expected.schema
        rows = c.column(ROW).to_numpy()
        assert (np.diff(rows) > 0).all(), "rows within a chunk are in arrival order"
    everything = pa.concat_tables(chunks)
    everything = everything.take(pc.sort_indices(everything.column(ROW)))
    assert_same_rows(everything, expected)
    assert_same_rows(pa.concat_tables(src.chunks()), pa.concat_tables(chunks))
    # the chunks partition the key range
    if key is not None and src.spilled:
        seen_null_chunk = False
        previous_high = None
        for i, c in enumerate(chunks):
            low, high = src.chunk_bounds(i)
            keys = _decoded(c.column(key))
            valid = _valid(keys)
            if low is None:
                assert high is None and not valid.any(), "a chunk with bounds (None, None) holds only null/NaN keys"
                seen_null_chunk = True
                continue
            assert not seen_null_chunk, "null/NaN chunks come after every key range"
            assert valid.all(), "null and NaN keys are in chunks of their own"
            lo, hi = _min_max(keys.filter(pa.array(valid)))
            assert pc.equal(lo, low).as_py() and pc.equal(hi, high).as_py()
            if previous_high is not None:
                assert pc.less(previous_high, low).as_py(), f"chunk {i - 1}'s keys are all below chunk {i}'s"
            previous_high = high
    elif key is not None:
        low, high = src.chunk_bounds(0)
        keys = _decoded(chunks[0].column(key))
        valid = _valid(keys)
        if valid.any():
            lo, hi = _min_max(keys.filter(pa.array(valid)))
            assert pc.equal(lo, low).as_py() and pc.equal(hi, high).as_py()
        else:
            assert (low, high) == (None, None)
    else:
        assert all(src.chunk_bounds(i) == (None, None) for i in range(src.num_chunks))
    # rows(): any row numbers, repeats, any order
    if table.num_rows:
        wanted = rng.integers(0, table.num_rows, size=int(rng.integers(0, 2 * table.num_rows)))
        assert_same_rows(src.rows(wanted), expected.take(pa.array(wanted, pa.int64())))
    assert src.rows(np.array([], dtype=np.int64)).num_rows == 0


# -- properties -------------------------------------------------------------------------------------------
@PROFILE
@given(data=sources(), budget=st.sampled_from([1, 64, 256, 700, 3000, 1 << 30]), as_table=st.booleans(),
       keyed=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_chunks_hold_every_row_once_partitioned_by_key(data, budget, as_table, keyed, seed) -> None:
    table, batch_size = data
    key = "k" if keyed else None
    with scratch() as folder:
        source = table if as_table else _reader(table, batch_size)
        with MergeSource.of(source, key, budget=budget) as src:
            event(f"spilled={src.spilled} chunks={min(src.num_chunks, 3)}")
            check_source(src, table, budget, key, np.random.default_rng(seed))
            if budget >= 1 << 30:
                assert not src.spilled
            if not src.spilled:
                assert not any(folder.iterdir()), "an unspilled source writes nothing"
        assert not any(folder.iterdir()), "close removes the temporary files"


def test_a_table_that_fits_is_not_copied() -> None:
    table = pa.table({"k": pa.array(np.arange(1000)), "s": pa.array([str(i) for i in range(1000)])})
    with MergeSource.of(table, "k", budget=table.nbytes) as src:
        with pytest.raises(AttributeError):
            src.num_rows = 3  # immutable
        got = src.chunk(0)
        for name in ("k", "s"):
            before = [b.address for c in table.column(name).chunks for b in c.buffers() if b is not None]
            after = [b.address for c in got.column(name).chunks for b in c.buffers() if b is not None]
            assert before == after
        assert not src.spilled and src.num_chunks == 1


def test_skewed_keys_make_a_large_chunk_that_is_still_correct() -> None:
    table = pa.table({"k": pa.array([7] * 3000 + [1, 9] * 50 + [None] * 20, pa.int64()),
                      "v": pa.array(np.arange(3120))})
    with scratch(), MergeSource.of(_reader(table, 100), "k", budget=2000) as src:
        assert src.spilled
        check_source(src, table, 2000, "k", np.random.default_rng(0))
        sevens = [i for i in range(src.num_chunks) if src.chunk_bounds(i) == (pa.scalar(7), pa.scalar(7))]
        assert len(sevens) == 1 and src.chunk(sevens[0]).num_rows == 3000


def test_chunks_are_about_the_budget_and_re_readable() -> None:
    rng = np.random.default_rng(1)
    table = pa.table({"k": pa.array(rng.integers(0, 10 ** 9, 200_000)), "v": pa.array(rng.random(200_000))})
    budget = 256 << 10
    with scratch(), MergeSource.of(_reader(table, 4096), "k", budget=budget) as src:
        assert src.spilled and src.num_chunks >= table.nbytes // budget
        sizes = [src.chunk(i).nbytes for i in range(src.num_chunks)]
        assert max(sizes) <= budget, sizes
        again = src.chunk(src.num_chunks // 2)
        assert again.equals(src.chunk(src.num_chunks // 2))
        check_source(src, table, budget, "k", rng)


@pytest.mark.parametrize("kind", ["pandas", "polars", "duckdb", "capsule", "batch", "pandas-categorical",
                                  "polars-categorical"])
def test_any_arrow_shaped_source(kind: str) -> None:
    table = pa.table({"k": pa.array([5, None, 3, 3, 1, 9] * 50, pa.int64()), "s": ["a", "b", None, "d", "e", "f"] * 50})
    if kind == "pandas":
        source = table.to_pandas()
        expected = pa.Table.from_pandas(source, preserve_index=False)
    elif kind == "polars":
        pl = pytest.importorskip("polars")
        source = pl.from_arrow(table)
        expected = pa.table(source)  # strings as string_view, held as large_string (pyarrow cannot take views)
        assert pa.types.is_string_view(expected.schema.field("s").type)
        expected = expected.cast(pa.schema([("k", pa.int64()), ("s", pa.large_string())]))
    elif kind == "duckdb":
        duckdb = pytest.importorskip("duckdb")
        con = duckdb.connect()
        con.register("t", table)
        source = con.sql("select * from t")
        expected = source.to_arrow_table() if hasattr(source, "to_arrow_table") else source.arrow()
        source = con.sql("select * from t")
    elif kind == "capsule":
        class Capsule:
            def __arrow_c_stream__(self, requested_schema=None):
                return table.__arrow_c_stream__(requested_schema)
        source, expected = Capsule(), table
    elif kind == "batch":
        source, expected = table.to_batches()[0], table
    else:  # the key a dictionary: pandas (large_string values) or Polars (string_view values)
        import pandas as pd
        values = ["b", "a", None, "c", "a", "a"] * 50
        key = pd.Categorical(values)
        source = pd.DataFrame({"k": key, "v": np.arange(300)})
        if kind == "polars-categorical":
            pl = pytest.importorskip("polars")
            source = pl.from_pandas(source)
            assert pa.types.is_string_view(pa.table(source).schema.field("k").type.value_type)
        expected = pa.table({"k": pa.array(values).dictionary_encode(), "v": np.arange(300)})
    with scratch() as folder, MergeSource.of(source, "k", budget=500) as src:
        assert src.spilled and any(folder.iterdir())
        if kind.endswith("categorical"):
            assert pa.types.is_dictionary(src.schema.field("k").type)
            expected = expected.cast(pa.schema([pa.field("k", src.schema.field("k").type), ("v", pa.int64())]))
            assert src.chunk_bounds(0)[0].as_py() == "a"
        check_source(src, expected, 500, "k", np.random.default_rng(2))


def test_the_temporary_folder_goes_with_the_object() -> None:
    table = pa.table({"k": pa.array(np.arange(5000))})
    with scratch() as folder:
        src = MergeSource.of(table, "k", budget=1000)
        assert src.spilled and any(folder.iterdir())
        del src
        gc.collect()
        assert not any(folder.iterdir())
        src = MergeSource.of(table, "k", budget=1000)
        src.close()
        src.close()
        assert not any(folder.iterdir())
        with pytest.raises(InvalidArgumentError, match="closed"):
            src.chunk(0)


@pytest.mark.parametrize("fail_after", [0, 1, 5, 40])
@pytest.mark.parametrize("key", ["k", None])
def test_a_source_failing_mid_stream_leaves_nothing(fail_after: int, key: str | None) -> None:
    schema = pa.schema([("k", pa.int64()), ("s", pa.string())])

    def batches() -> Iterator[pa.RecordBatch]:
        for i in range(fail_after):
            yield pa.record_batch({"k": pa.array(np.arange(i * 100, i * 100 + 100)), "s": ["x"] * 100}, schema=schema)
        raise RuntimeError("the producer broke")

    with scratch() as folder:
        with pytest.raises(RuntimeError, match="producer broke"):
            MergeSource.of(pa.RecordBatchReader.from_batches(schema, batches()), key, budget=2000)
        gc.collect()
        assert not any(folder.iterdir())


def test_typed_errors() -> None:
    table = pa.table({"k": [1, 2]})
    with pytest.raises(InvalidDataError):
        MergeSource.of({"k": [1]}, "k", budget=10)
    with pytest.raises(InvalidDataError):
        MergeSource.of([1, 2], "k", budget=10)
    with pytest.raises(ColumnNotFoundError, match="'nope'") as info:
        MergeSource.of(table, "nope", budget=10)
    assert info.value.column == "nope"
    with pytest.raises(InvalidArgumentError, match="row_column"):
        MergeSource.of(table, "k", budget=10, row_column="k")
    with pytest.raises(InvalidArgumentError, match="budget"):
        MergeSource.of(table, "k", budget=0)
    with pytest.raises(InvalidArgumentError, match="cannot be sorted"):
        MergeSource.of(pa.table({"k": pa.array([[1]])}), "k", budget=10)
    src = MergeSource.of(table, "k", budget=1)
    with pytest.raises(InvalidArgumentError, match="out of range"):
        src.rows([2])
    with pytest.raises(InvalidArgumentError, match="at most"):
        src.chunk(src.num_chunks)
    src.close()


def test_empty_sources() -> None:
    table = pa.table({"k": pa.array([], pa.int64())})
    for source in (table, _reader(table, 1)):
        with MergeSource.of(source, "k", budget=1) as src:
            assert (src.num_rows, src.num_chunks, src.spilled) == (0, 1, False)
            assert src.chunk(0).num_rows == 0 and src.chunk_bounds(0) == (None, None)


MEMORY_SCRIPT = textwrap.dedent("""
    import time, numpy as np, pyarrow as pa, pyarrow.compute as pc
    from lakehouse.merge_source import MergeSource
    ROWS, BATCHES = 65536, 160                 # 4 int64/float64 columns: 2 MiB a batch, ~335 MB in all
    schema = pa.schema([("k", pa.int64()), ("a", pa.int64()), ("b", pa.float64()), ("c", pa.int64())])
    def produce():
        rng = np.random.default_rng(0)
        for i in range(BATCHES):                # each batch made here, in pyarrow's pool, then let go
            base = pa.array(rng.integers(0, 1 << 40, ROWS))
            yield pa.record_batch([pc.add(base, 0), pc.add(base, i), pc.cast(base, pa.float64()),
                                   pc.multiply(base, 3)], schema=schema)
    pool = pa.default_memory_pool()
    start_bytes, start = pool.bytes_allocated(), time.perf_counter()
    with MergeSource.of(pa.RecordBatchReader.from_batches(schema, produce()), "k", budget=16 << 20) as src:
        spilled, rows = src.spilled, 0
        for chunk in src.chunks():
            rows += chunk.num_rows
            del chunk
    print(spilled, rows == ROWS * BATCHES, src.num_chunks, pool.max_memory() - start_bytes,
          round(time.perf_counter() - start, 1))
""")


def test_memory_is_bounded_by_the_budget_not_the_source() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, env=env,
                         timeout=300, check=True).stdout.split()
    spilled, all_rows, chunks, peak, seconds = out[0] == "True", out[1] == "True", int(out[2]), int(out[3]), out[4]
    assert spilled and all_rows and chunks >= 16
    # measured: ~31 MiB (the 16 MiB sample, the partition buffers, one batch), 32 chunks, ~3 s
    assert peak < 64 << 20, f"pool grew by {peak / 2 ** 20:.0f} MiB for a ~335 MB source ({seconds} s)"

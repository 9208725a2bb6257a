"""Integer columns compared with integer literals of any width and signedness, in range or not.

Arrow compares an integer column with an integer literal of another type in a common type (int64
for ``uint64`` against a signed literal), which fails on the rows (``Integer value ... not in
range``) or refuses the filter. Lakehouse compares them exactly, as mathematics does, with SQL's
null rules (a comparison with a null row is null), in every front end (expressions, DNF, SQL) and
in the dataset that Polars and DuckDB scan. Checked here against a Python-int model.
"""

from __future__ import annotations

import operator
import os
import uuid

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh

PROFILE = settings(max_examples=400 if os.environ.get("LH_FUZZ") else 20, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]
OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
       ">=": operator.ge}
EXPR_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge}


def integer_bounds(typ: pa.DataType) -> tuple[int, int]:
    """The range of an integer type (the model's own, not the library's)."""
    bits = typ.bit_width
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if pa.types.is_signed_integer(typ) else (0, (1 << bits) - 1)


MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
NEGATION = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
EDGES = sorted({v for t in INT_TYPES for b in integer_bounds(t) for v in (b - 1, b, b + 1)} | {-1, 0, 1, 5})


def _holding(value: int) -> list[pa.DataType]:
    """The integer types that hold ``value``."""
    return [t for t in INT_TYPES if integer_bounds(t)[0] <= value <= integer_bounds(t)[1]]


def _values(typ: pa.DataType) -> st.SearchStrategy[int | None]:
    low, high = integer_bounds(typ)
    return st.one_of(st.none(), st.sampled_from([v for v in EDGES if low <= v <= high]),
                     st.integers(low, high))


@st.composite
def literals(draw: st.DrawFn) -> pa.Scalar:
    """An integer scalar of any type that holds the value (edges of every type, ± 1)."""
    value = draw(st.one_of(st.sampled_from([v for v in EDGES if _holding(v)]), st.integers(-(2 ** 63), 2 ** 64 - 1)))
    return pa.scalar(value, draw(st.sampled_from(_holding(value))))


@st.composite
def tables(draw: st.DrawFn) -> tuple[pa.DataType, list[list[int | None]]]:
    typ = draw(st.sampled_from(INT_TYPES))
    files = draw(st.lists(st.lists(_values(typ), min_size=1, max_size=4), min_size=1, max_size=2))
    return typ, files


def _write(typ: pa.DataType, files: list[list[int | None]], partitioned: bool) -> lh.Table:
    uri = f"memory://intlit-{uuid.uuid4().hex}"
    table = None
    k = 0
    for values in files:
        data = pa.table({"c": pa.array(values, typ), "k": pa.array(range(k, k + len(values)), pa.int64())})
        k += len(values)
        if table is None:
            table = lh.write_table(uri, data, partition_by=["c"] if partitioned else None)
        else:
            table.append(data)
    assert table is not None
    return table


def _model(values: list[int | None], op: str, literal: int) -> list[int]:
    """Row ids where ``c <op> literal`` is TRUE (a null row gives null: not kept)."""
    return [k for k, v in enumerate(values) if v is not None and OPS[op](v, literal)]


def _model_in(values: list[int | None], items: list[int | None]) -> list[int]:
    """Row ids where ``c is_in items`` is TRUE (null matches a null in ``items``, as pyarrow's default)."""
    return [k for k, v in enumerate(values) if v in items]


def _ids(table: pa.Table) -> list[int]:
    return sorted(table.column("k").to_pylist())


@PROFILE
@given(case=tables(), lits=st.lists(literals(), min_size=1, max_size=2), partitioned=st.booleans(),
       with_null=st.booleans())
def test_integer_comparisons_match_exact_math(case: tuple[pa.DataType, list[list[int | None]]],
                                              lits: list[pa.Scalar], partitioned: bool, with_null: bool) -> None:
    typ, files = case
    values = [v for f in files for v in f]
    t = _write(typ, files, partitioned)
    dataset = t.to_pyarrow_dataset()
    for literal in lits:
        for op, fn in EXPR_OPS.items():
            expected = _model(values, op, literal.as_py())
            swapped = EXPR_OPS[MIRROR[op]](pc.scalar(literal), pc.field("c"))  # literal on the left
            for flt in (fn(pc.field("c"), literal), swapped):
                assert _ids(t.to_arrow(filter=flt)) == expected, (typ, values, op, literal)
                assert _ids(dataset.to_table(filter=flt)) == expected, (typ, values, op, literal)
                assert _ids(t.to_arrow(filter=~flt)) == _model(values, NEGATION[op], literal.as_py())
            assert _ids(t.to_arrow(filter=[("c", op, literal.as_py())])) == expected
            assert _ids(t.to_arrow(filter=f"c {op} {literal.as_py()}")) == expected
    # is_in with every literal (in the widest type that holds them all, if one does)
    items = [s.as_py() for s in lits] + ([None] if with_null else [])
    common = [ty for ty in INT_TYPES if all(ty in _holding(v) for v in items if v is not None)]
    if common:
        flt = pc.field("c").isin(pa.array(items, common[-1]))
        assert _ids(t.to_arrow(filter=flt)) == _model_in(values, items)
        assert _ids(dataset.to_table(filter=flt)) == _model_in(values, items)


@pytest.mark.parametrize("typ", [pa.uint64(), pa.uint8(), pa.int64(), pa.int8()])
def test_polars_pushdown_of_integer_literals_matches_polars_eager(typ: pa.DataType) -> None:
    low, high = integer_bounds(typ)
    t = _write(typ, [[low, 0, None, high], [1, high - 1]], partitioned=False)
    frame = t.to_polars().collect()
    for literal in (-1, 5, 0, -(2 ** 63), 2 ** 63 - 1, high, low):
        for op in OPS.values():
            lazy = t.to_polars().filter(op(pl.col("c"), literal)).collect()
            eager = frame.filter(op(pl.col("c"), literal))
            assert sorted(lazy["k"].to_list()) == sorted(eager["k"].to_list()), (typ, op, literal)


def test_the_issue_examples() -> None:
    t = lh.write_table(f"memory://intlit-{uuid.uuid4().hex}",
                       pa.table({"f": pa.array([1, 2 ** 64 - 1], pa.uint64()), "i": pa.array([1, 2], pa.int64())}))
    assert t.to_arrow(filter=pc.field("f") != -1).column("i").to_pylist() == [1, 2]
    assert t.to_polars().filter(pl.col("f") < 5).collect()["i"].to_list() == [1]
    assert t.to_arrow(filter=pc.field("i") > pa.scalar(2 ** 63, pa.uint64())).num_rows == 0
    assert t.to_arrow(filter=pc.field("i") < pa.scalar(2 ** 63, pa.uint64())).num_rows == 2
    con = t.to_duckdb("v")
    for where, ids in [("f < 5", [1]), ("f != -1", [1, 2]), ("f > -1", [1, 2]), ("f in (1, -1)", [1])]:
        assert sorted(r[0] for r in con.sql(f"select i from v where {where}").fetchall()) == ids, where
    t.delete(pc.field("f") == -1)
    assert t.to_arrow().num_rows == 2
    t.delete(pc.field("f") > -1)
    assert t.to_arrow().num_rows == 0


@pytest.mark.parametrize("flt", [pc.field("f") == pc.field("i"), pc.add_checked(pc.field("b"), 100) > 0],
                         ids=["uint64-vs-int64-column", "checked-overflow"])
def test_a_filter_failing_on_the_rows_is_an_invalid_filter_error(flt: pc.Expression) -> None:
    t = lh.write_table(f"memory://intlit-{uuid.uuid4().hex}", pa.table(
        {"f": pa.array([1, 2 ** 64 - 1], pa.uint64()), "i": pa.array([1, 2], pa.int64()),
         "b": pa.array([1, 120], pa.int8())}))
    with pytest.raises(lh.InvalidFilterError, match="cannot be evaluated on the rows"):
        t.to_arrow(filter=flt)
    with pytest.raises(lh.InvalidFilterError, match="cannot be evaluated on the rows"):
        t.to_batches(filter=flt).read_all()


def test_a_damaged_data_file_is_not_blamed_on_the_filter(tmp_path) -> None:
    t = lh.write_table(str(tmp_path / "t"), pa.table({"a": [1, 2]}))
    path = t.snapshot().files().column("path")[0].as_py()
    (tmp_path / "t" / path).write_bytes(b"not parquet at all")
    with pytest.raises(Exception) as info:
        t.to_arrow(filter=pc.field("a") > 0)
    assert not isinstance(info.value, lh.InvalidFilterError)


@PROFILE
@given(case=tables(), values=st.lists(st.one_of(st.sampled_from(EDGES), st.integers(-(10 ** 30), 10 ** 30)),
                                      min_size=1, max_size=3))
def test_dnf_and_sql_integers_beyond_every_arrow_type_compare_exactly(
        case: tuple[pa.DataType, list[list[int | None]]], values: list[int]) -> None:
    typ, files = case
    rows = [v for f in files for v in f]
    t = _write(typ, files, partitioned=False)
    for value in values:
        for op in OPS:
            expected = _model(rows, op, value)
            assert _ids(t.to_arrow(filter=[("c", op, value)])) == expected, (typ, rows, op, value)
            assert _ids(t.to_arrow(filter=f"c {op} {value}")) == expected, (typ, rows, op, value)
    assert _ids(t.to_arrow(filter=[("c", "in", values)])) == _model_in(rows, values)
    assert _ids(t.to_arrow(filter=f"c in ({', '.join(map(str, values))})")) == _model_in(rows, values)
    not_in = [k for k, v in enumerate(rows) if v is not None and v not in values]
    assert _ids(t.to_arrow(filter=[("c", "not in", values)])) == not_in

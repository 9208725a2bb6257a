"""Every lazy reader returns the rows ``to_arrow`` does, on the same random filters.

A lazy reader hands the filter to another library (pyarrow's dataset scanner, Polars' pyarrow
pushdown, DuckDB's Arrow scan); each such hand-over had a way to lose rows: pyarrow folds NaN
comparisons against Parquet statistics wrongly, Polars pushes a comparison on a column zoned
other than UTC wrongly. So each engine is compared with *itself* on the rows of ``to_arrow()``:
the same query over the lazy reader and over the materialised table must agree, whatever the
engine's own semantics for NaN or nulls.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import ScratchTable, rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh

pl = pytest.importorskip("polars")
duckdb = pytest.importorskip("duckdb")

ZONE = "America/New_York"
SCHEMA = pa.schema([
    ("i", pa.int64()), ("f", pa.float64()), ("g", pa.float32()), ("s", pa.string()), ("d", pa.date32()),
    ("ts", pa.timestamp("us", tz=ZONE)), ("b", pa.bool_()), ("p", pa.int32()),
])
_UTC = dt.timezone.utc
_DST = dt.datetime(2024, 3, 10, 6, 0, tzinfo=_UTC)  # 01:00 in New York, an hour before the change
DOMAINS = {
    "i": st.integers(-2, 2), "f": st.sampled_from([-0.0, 0.0, 1.5, -1.0, float("nan"), float("inf")]),
    "g": st.sampled_from([-0.0, 0.0, 2.5, float("nan")]), "s": st.sampled_from(["", "a", "b", "ab"]),
    "d": st.sampled_from([dt.date(2024, 3, 9), dt.date(2024, 3, 10), dt.date(2024, 3, 11)]),
    "ts": st.integers(-4, 8).map(lambda k: _DST + dt.timedelta(minutes=30 * k)),
    "b": st.booleans(), "p": st.integers(0, 2),
}
PROFILE = settings(max_examples=300 if os.environ.get("LH_FUZZ") else 25, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
OPS = ["=", "!=", "<", "<=", ">", ">="]


@st.composite
def chunks(draw):
    out = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 6))
        cols = {c: draw(st.lists(st.one_of(st.none(), DOMAINS[c]), min_size=n, max_size=n)) for c in SCHEMA.names}
        out.append(pa.table(cols, schema=SCHEMA))
    return out


# a filter as a small tree, rendered for each engine
LEAVES = st.one_of(
    st.tuples(st.just("cmp"), st.sampled_from(SCHEMA.names), st.sampled_from(OPS)).flatmap(
        lambda t: DOMAINS[t[1]].map(lambda v: (*t, v))),
    st.tuples(st.just("null"), st.sampled_from(SCHEMA.names)),
)
TREES = st.recursive(LEAVES, lambda sub: st.one_of(
    st.tuples(st.just("and"), sub, sub), st.tuples(st.just("or"), sub, sub), st.tuples(st.just("not"), sub),
), max_leaves=3)


def to_arrow_expr(tree) -> pc.Expression:
    kind = tree[0]
    if kind == "cmp":
        _, col, op, value = tree
        lit = pc.scalar(pa.scalar(value, SCHEMA.field(col).type))
        return pc.Expression._call({"=": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal",
                                    ">": "greater", ">=": "greater_equal"}[op], [pc.field(col), lit])
    if kind == "null":
        return pc.field(tree[1]).is_null()
    if kind == "not":
        return ~to_arrow_expr(tree[1])
    a, b = to_arrow_expr(tree[1]), to_arrow_expr(tree[2])
    return a & b if kind == "and" else a | b


def to_polars_expr(tree):
    kind = tree[0]
    if kind == "cmp":
        _, col, op, value = tree
        if col == "ts":
            lit = pl.lit(value.astimezone(dt.timezone.utc)).dt.convert_time_zone(ZONE)
        elif col == "g":
            lit = pl.lit(value, dtype=pl.Float32)
        elif col == "p":
            lit = pl.lit(value, dtype=pl.Int32)
        else:
            lit = pl.lit(value)
        c = pl.col(col)
        return {"=": c == lit, "!=": c != lit, "<": c < lit, "<=": c <= lit, ">": c > lit, ">=": c >= lit}[op]
    if kind == "null":
        return pl.col(tree[1]).is_null()
    if kind == "not":
        return ~to_polars_expr(tree[1])
    a, b = to_polars_expr(tree[1]), to_polars_expr(tree[2])
    return (a & b) if kind == "and" else (a | b)


def _sql_literal(col: str, value) -> str:
    if col in ("f", "g"):
        kind = "DOUBLE" if col == "f" else "FLOAT"
        return f"'{value}'::{kind}" if value != value or value in (float("inf"), float("-inf")) else \
            f"({value!r})::{kind}"
    if col == "s":
        return f"'{value}'"
    if col == "d":
        return f"DATE '{value.isoformat()}'"
    if col == "ts":
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    if col == "b":
        return "TRUE" if value else "FALSE"
    return str(value)


def to_sql(tree) -> str:
    kind = tree[0]
    if kind == "cmp":
        _, col, op, value = tree
        return f"({col} {op} {_sql_literal(col, value)})"
    if kind == "null":
        return f"({tree[1]} IS NULL)"
    if kind == "not":
        return f"(NOT {to_sql(tree[1])})"
    return f"({to_sql(tree[1])} {kind.upper()} {to_sql(tree[2])})"


class _Table(ScratchTable):
    def __init__(self, parts, partition_by):
        self.uri = f"memory://lazy-{uuid.uuid4().hex}"
        self.table = lh.write_table(self.uri, parts[0], partition_by=partition_by)
        for part in parts[1:]:
            self.table.append(part)


def _polars_rows(frame) -> list[tuple]:
    return rows(frame.to_arrow().cast(SCHEMA))


@PROFILE
@given(parts=chunks(), partitioned=st.booleans(), trees=st.lists(TREES, min_size=1, max_size=3))
def test_every_lazy_reader_agrees_with_to_arrow(parts, partitioned, trees):
    with _Table(parts, ["p"] if partitioned else None) as t:
        everything = t.to_arrow()
        dataset = t.to_pyarrow_dataset()
        lazy = t.to_polars()
        eager = pl.from_arrow(everything)
        con = t.to_duckdb("lazy")
        con.register("eager", everything)
        for tree in trees:
            expr = to_arrow_expr(tree)
            expected = everything.filter(expr)
            assert rows(dataset.to_table(filter=expr)) == rows(expected), f"dataset: {expr}"
            assert dataset.count_rows(filter=expr) == expected.num_rows, f"dataset count: {expr}"
            assert rows(t.to_arrow(filter=expr)) == rows(expected), f"to_arrow(filter=): {expr}"
            pexpr = to_polars_expr(tree)
            assert _polars_rows(lazy.filter(pexpr).collect()) == _polars_rows(eager.filter(pexpr)), f"polars: {pexpr}"
            sql = to_sql(tree)
            got = con.sql(f"SELECT i, s, d, p FROM lazy WHERE {sql}").fetchall()
            want = con.sql(f"SELECT i, s, d, p FROM eager WHERE {sql}").fetchall()
            assert sorted(got, key=repr) == sorted(want, key=repr), f"duckdb: {sql}"


def test_polars_filter_on_a_zoned_column_around_a_dst_change():
    """The FACTS.md repro: Polars' pushdown lost rows of a New York column around the DST change."""
    ts = [_DST + dt.timedelta(minutes=7 * k) for k in range(300)]
    data = pa.table({"ts": pa.array(ts, pa.timestamp("us", tz=ZONE)), "i": list(range(300))})
    uri = f"memory://lazy-{uuid.uuid4().hex}"
    t = lh.write_table(uri, data)
    cut = pl.lit(dt.datetime(2024, 3, 10, 8, 30, tzinfo=_UTC)).dt.convert_time_zone(ZONE)
    assert t.to_polars().filter(pl.col("ts") >= cut).collect().height == \
        pl.from_arrow(t.to_arrow()).filter(pl.col("ts") >= cut).height


@pytest.mark.parametrize("expr", [
    ~(pc.field("f") < float("nan")), ~(pc.field("f") <= float("nan")), pc.field("f") != 1.0,
    ~(pc.field("f") == 1.0), pc.field("f") > 0.5,
])
def test_dataset_scans_keep_nan_rows_parquet_statistics_would_drop(expr):
    """pyarrow folds NaN comparisons against Parquet min/max wrongly; the dataset evaluates them on rows."""
    uri = f"memory://lazy-{uuid.uuid4().hex}"
    data = pa.table({"f": [1.0, float("nan"), 1.0], "i": [1, 2, 3]})
    t = lh.write_table(uri, data)
    dataset = t.to_pyarrow_dataset()
    expected = data.filter(expr).num_rows
    assert dataset.to_table(filter=expr).num_rows == expected
    assert dataset.count_rows(filter=expr) == expected
    assert dataset.filter(expr).to_table().num_rows == expected
    assert dataset.scanner(filter=expr, columns=["i"]).to_table().num_rows == expected
    assert sum(b.num_rows for b in dataset.to_batches(filter=expr)) == expected

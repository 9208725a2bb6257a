"""delete / overwrite(filter=) remove exactly the rows where the filter is TRUE, whatever the filter.

A data file may be dropped whole only where the filter is *proven* TRUE for all its rows; pruning
is conservative (it keeps files it cannot decide), so a write that trusted it dropped every kept
file for filters on partition columns that pruning cannot evaluate (SQL LIKE, string and temporal
functions, out-of-range literals on unsigned columns). The model here is independent of lakehouse:
pyarrow evaluates expressions on the rows in memory, DuckDB evaluates the SQL text.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import uuid

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import ScratchTable, rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.errors import InvalidFilterError

SCHEMA = pa.schema([
    ("id", pa.int64()), ("name", pa.string()), ("u", pa.uint8()), ("d", pa.date32()),
    ("x", pa.int64()), ("s", pa.string()),
])
PARTITIONS = ["name", "u", "d"]
NAMES = ["", "a", "ab", "b", "ba", "A_b", "é"]
DAYS = [dt.date(2020, 1, 1), dt.date(2020, 2, 29), dt.date(2021, 12, 31), dt.date(1969, 12, 31)]
DOMAINS = {
    "name": st.sampled_from(NAMES), "u": st.sampled_from([0, 1, 2, 254, 255]), "d": st.sampled_from(DAYS),
    "x": st.integers(-2, 2), "s": st.sampled_from(["", "a", "ab", "b"]),
}
PROFILE = settings(
    max_examples=400 if os.environ.get("LH_FUZZ") else 40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def tables(draw):
    n = draw(st.integers(0, 16))
    cols = {"id": list(range(n))}
    for name in SCHEMA.names[1:]:
        cols[name] = draw(st.lists(st.one_of(st.none(), DOMAINS[name]), min_size=n, max_size=n))
    table = pa.table(cols, schema=SCHEMA)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=2)))
    chunks = [table.slice(a, b - a) for a, b in itertools.pairwise([0, *cuts, n]) if b > a]
    partition_by = draw(st.lists(st.sampled_from(PARTITIONS), unique=True, max_size=2))
    return table, chunks or [table], partition_by


# -- filters from the whole language ---------------------------------------------------------------
def _field(name: str) -> pc.Expression:
    return pc.field(name)


_PATTERNS = st.sampled_from(["a%", "%b", "_", "a_%", "%", "", "A%", "é"])
EXPRESSION_LEAVES = st.one_of(
    st.sampled_from(NAMES).map(lambda p: pc.starts_with(_field("name"), p)),
    st.sampled_from(NAMES).map(lambda p: pc.ends_with(_field("name"), p)),
    _PATTERNS.map(lambda p: pc.match_like(_field("name"), p)),
    _PATTERNS.map(lambda p: pc.match_like(_field("s"), p)),
    st.sampled_from(NAMES).map(lambda p: pc.match_substring(_field("name"), p, ignore_case=True)),
    st.integers(0, 2).map(lambda k: pc.utf8_length(_field("name")) > k),
    st.sampled_from([1969, 2020, 2021]).map(lambda y: pc.year(_field("d")) == y),
    st.integers(1, 12).map(lambda m: pc.month(_field("d")) <= m),
    st.integers(0, 6).map(lambda w: pc.day_of_week(_field("d")) == w),
    st.sampled_from([-1, 0, 2, 255, 256, 1000]).map(lambda v: _field("u") < v),
    st.sampled_from([-1, 255, 300]).map(lambda v: _field("u") != v),
    st.sampled_from([-1, 255, 300]).map(lambda v: _field("u") >= v),
    st.sampled_from([*PARTITIONS, "x", "s"]).map(lambda c: _field(c).is_null()),
    st.sampled_from(DAYS).map(lambda v: _field("d") >= pa.scalar(v)),
    st.lists(st.sampled_from(NAMES), max_size=3).map(lambda vs: _field("name").isin(vs)),
    st.integers(-2, 2).map(lambda v: _field("x") > v),
    st.sampled_from(NAMES).map(lambda v: _field("name") == v),
)
EXPRESSIONS = st.recursive(EXPRESSION_LEAVES, lambda sub: st.one_of(
    st.tuples(sub, sub).map(lambda ab: ab[0] & ab[1]),
    st.tuples(sub, sub).map(lambda ab: ab[0] | ab[1]),
    sub.map(lambda a: ~a),
), max_leaves=4)

_SQL_LEAVES = st.one_of(
    _PATTERNS.map(lambda p: f"name LIKE '{p}'"),
    _PATTERNS.map(lambda p: f"name NOT LIKE '{p}'"),
    _PATTERNS.map(lambda p: f"s LIKE '{p}'"),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(
        lambda vs: "name IN (" + ", ".join(f"'{v}'" for v in vs) + ")"),
    st.lists(st.sampled_from([*NAMES, "NULL"]), min_size=1, max_size=3).map(
        lambda vs: "name NOT IN (" + ", ".join(v if v == "NULL" else f"'{v}'" for v in vs) + ")"),
    st.tuples(st.integers(-1, 256), st.integers(-1, 256)).map(lambda ab: f"u BETWEEN {ab[0]} AND {ab[1]}"),
    st.sampled_from([-1, 0, 254, 256]).map(lambda v: f"u > {v}"),
    st.sampled_from(DAYS).map(lambda v: f"d >= DATE '{v.isoformat()}'"),
    st.sampled_from(DAYS).map(lambda v: f"d = '{v.isoformat()}'"),
    st.sampled_from([*PARTITIONS, "x", "s"]).map(lambda c: f"{c} IS NULL"),
    st.sampled_from([*PARTITIONS, "x", "s"]).map(lambda c: f"{c} IS NOT NULL"),
    st.integers(-2, 2).map(lambda v: f"x <= {v}"),
)
SQL = st.recursive(_SQL_LEAVES, lambda sub: st.one_of(
    st.tuples(sub, sub).map(lambda ab: f"({ab[0]}) AND ({ab[1]})"),
    st.tuples(sub, sub).map(lambda ab: f"({ab[0]}) OR ({ab[1]})"),
    sub.map(lambda a: f"NOT ({a})"),
), max_leaves=4)

_DNF_ATOMS = st.one_of(
    st.sampled_from(NAMES).map(lambda v: ("name", "=", v)),
    st.sampled_from(NAMES).map(lambda v: ("name", ">=", v)),
    st.sampled_from([-1, 0, 255, 300]).map(lambda v: ("u", "<", v)),
    st.lists(st.sampled_from([0, 2, 255, 300, -1]), min_size=1, max_size=3).map(lambda vs: ("u", "in", vs)),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(lambda vs: ("name", "not in", vs)),
    st.sampled_from(DAYS).map(lambda v: ("d", "<=", v)),
    st.sampled_from(DAYS).map(lambda v: ("d", "=", v.isoformat())),  # ISO strings, as deltalake users pass
    st.sampled_from([*PARTITIONS, "x"]).map(lambda c: (c, "is null", None)),
    st.integers(-2, 2).map(lambda v: ("x", "!=", v)),
)
DNF = st.one_of(st.lists(_DNF_ATOMS, min_size=1, max_size=3),
                st.lists(st.lists(_DNF_ATOMS, min_size=1, max_size=2), min_size=1, max_size=2))


def _dnf_model(flt) -> pc.Expression:
    """The reference meaning of DNF tuples (``not in`` is not TRUE for a null row)."""
    conjunctions = [flt] if isinstance(flt[0], tuple) else flt
    out = None
    for conj in conjunctions:
        term = None
        for col, op, value in conj:
            field = pc.field(col)
            if op == "is null":
                e = field.is_null()
            elif op in ("in", "not in"):
                found = pc.scalar(False)
                for v in value:
                    found = found | (field == pa.scalar(v))
                e = found if op == "in" else ~found & field.is_valid()
            else:
                v = dt.date.fromisoformat(value) if isinstance(value, str) and col == "d" else value
                e = {"=": field == v, "<": field < v, "<=": field <= v, ">=": field >= v, "!=": field != v}[op]
            term = e if term is None else term & e
        out = term if out is None else out | term
    return out


def _matching(data: pa.Table, flt) -> pa.Table:
    """The rows where ``flt`` is TRUE, computed without lakehouse."""
    if isinstance(flt, str):
        import duckdb

        con = duckdb.connect()
        con.register("data", data)
        out = con.sql(f"SELECT * FROM data WHERE ({flt}) IS TRUE").arrow()
        return out.read_all() if isinstance(out, pa.RecordBatchReader) else out
    expr = flt if isinstance(flt, pc.Expression) else _dnf_model(flt)
    return data.filter(pc.fill_null(_evaluate(data, expr), False))


def _evaluate(data: pa.Table, expr: pc.Expression) -> pa.ChunkedArray:
    import pyarrow.acero as acero

    plan = acero.Declaration.from_sequence([
        acero.Declaration("table_source", acero.TableSourceNodeOptions(data)),
        acero.Declaration("project", acero.ProjectNodeOptions([expr], ["m"])),
    ])
    return plan.to_table().column(0)


def _model_or_refusal(data: pa.Table, flt) -> pa.Table | None:
    """The matching rows, or None where the filter cannot be evaluated (lakehouse must refuse it)."""
    try:
        return _matching(data, flt)
    except pa.ArrowException:
        return None


def _not(data: pa.Table, subset: pa.Table) -> pa.Table:
    ids = set(subset.column("id").to_pylist())
    return data.filter(pa.array([i not in ids for i in data.column("id").to_pylist()], pa.bool_()))


class _Table(ScratchTable):
    def __init__(self, chunks, partition_by):
        self.uri = f"memory://fw-{uuid.uuid4().hex}"
        self.table = lh.Table.create(self.uri, SCHEMA, partition_by=partition_by)
        for chunk in chunks:
            self.table.append(chunk)


FILTERS = st.one_of(EXPRESSIONS, SQL, DNF)


@PROFILE
@given(case=tables(), flt=FILTERS)
def test_delete_removes_exactly_the_rows_where_the_filter_is_true(case, flt):
    data, chunks, partition_by = case
    matching = _model_or_refusal(data, flt)
    with _Table(chunks, partition_by) as t:
        if matching is None:
            with pytest.raises(InvalidFilterError):
                t.delete(flt)
            return
        t.delete(flt)
        assert rows(t.to_arrow()) == rows(_not(data, matching)), f"filter {flt!r}, partitioned by {partition_by}"


@PROFILE
@given(case=tables(), flt=FILTERS, take=st.integers(0, 3))
def test_overwrite_with_a_filter_replaces_exactly_the_rows_where_it_is_true(case, flt, take):
    data, chunks, partition_by = case
    matching = _model_or_refusal(data, flt)
    if matching is None:
        return
    new = matching.slice(0, take)  # rows that match the filter, written back
    new = new.set_column(0, "id", pa.array([100 + i for i in range(new.num_rows)], pa.int64()))
    with _Table(chunks, partition_by) as t:
        t.overwrite(new, filter=flt)
        expected = pa.concat_tables([_not(data, matching), new])
        assert rows(t.to_arrow()) == rows(expected), f"filter {flt!r}, partitioned by {partition_by}"


@PROFILE
@given(case=tables(), flt=FILTERS)
def test_reads_and_pruning_agree_with_the_model(case, flt):
    data, chunks, partition_by = case
    matching = _model_or_refusal(data, flt)
    with _Table(chunks, partition_by) as t:
        if matching is None:
            with pytest.raises(InvalidFilterError):
                t.to_arrow(filter=flt)
            return
        assert rows(t.to_arrow(filter=flt)) == rows(matching), f"filter {flt!r}"
        kept = {r["path"] for r in t.snapshot().files(filter=flt).to_pylist()}
        for task in t.snapshot().plan_files():
            if task.path not in kept:
                assert lh.read_task(task).filter(pc.field("id").isin(matching.column("id"))).num_rows == 0


@pytest.mark.parametrize("flt", [
    "name LIKE 'a%'", pc.starts_with(pc.field("name"), "a"), pc.match_like(pc.field("name"), "a%"),
    pc.utf8_length(pc.field("name")) == 2,
])
def test_delete_by_a_function_of_the_partition_column_keeps_the_other_partitions(flt):
    data = pa.table({"name": ["ab", "b", "ac", None], "x": [1, 2, 3, 4]})
    t = lh.write_table(f"memory://fw-{uuid.uuid4().hex}", data, partition_by=["name"])
    t.delete(flt)
    assert sorted(t.to_arrow().column("x").to_pylist()) == [2, 4]


def test_delete_on_a_year_of_a_partition_date():
    data = pa.table({"d": [dt.date(2020, 5, 1), dt.date(2021, 5, 1)], "x": [1, 2]})
    t = lh.write_table(f"memory://fw-{uuid.uuid4().hex}", data, partition_by=["d"])
    t.delete(pc.year(pc.field("d")) == 2020)
    assert t.to_arrow().column("x").to_pylist() == [2]


@pytest.mark.parametrize("flt", [
    pc.field("x"), pc.field("x") + 1, pc.field("d") == "abc", pc.field("d") == "2020-01-01", pc.field("name") == 1,
    pc.field("x") == pc.field("name"), pc.scalar(None), pc.Expression._call("cumulative_sum", [pc.field("x")]) > 1,
    "x + 1", "name = d", "x", [("d", "=", "abc")], [("name", "=", 1)],
])
@pytest.mark.parametrize("op", ["delete", "overwrite", "read"])
def test_filters_that_are_not_conditions_on_the_columns_are_refused_before_anything_is_written(flt, op):
    data = pa.table({"name": ["ab", "b"], "d": [dt.date(2020, 1, 1)] * 2, "x": [1, 2]})
    t = lh.write_table(f"memory://fw-{uuid.uuid4().hex}", data, partition_by=["name"])
    files = t.snapshot().files().column("path").to_pylist()
    with pytest.raises(InvalidFilterError):
        if op == "delete":
            t.delete(flt)
        elif op == "overwrite":
            t.overwrite(data.slice(0, 0), filter=flt)
        else:
            t.to_arrow(filter=flt)
    assert t.version == 0 and t.snapshot().files().column("path").to_pylist() == files
    fs, root = fsspec.core.url_to_fs(t.uri)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.find(root) if p.endswith(".parquet")) == \
        sorted(p.rsplit("/", 1)[-1] for p in files)


@pytest.mark.parametrize("flt", ["nm LIKE 'a%'", pc.starts_with(pc.field("nm"), "a"),
                                 pc.utf8_slice_codeunits(pc.field("nm"), 0, 1) == "a"])
def test_delete_by_a_function_of_a_renamed_partition_column(flt):
    """After a rename the filter is mapped to the physical names, options of any function included."""
    t = lh.write_table(f"memory://fw-{uuid.uuid4().hex}", pa.table({"name": ["ab", "b", "ac"], "x": [1, 2, 3]}),
                       partition_by=["name"])
    t.alter.rename_column("name", "nm")
    assert t.to_arrow(filter=flt).column("x").to_pylist() in ([1, 3], [3, 1])
    t.delete(flt)
    assert t.to_arrow().to_pylist() == [{"nm": "b", "x": 2}]

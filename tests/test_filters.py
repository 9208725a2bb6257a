"""Property tests: filtered reads equal the full read filtered; pruning never loses a file."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import uuid

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import ScratchTable, rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("part", pa.int16()),
        ("g", pa.string()),
        ("x", pa.int64()),
        ("f", pa.float64()),
        ("s", pa.string()),
        ("d", pa.date32()),
    ]
)
PARTITION_BY = ["part", "g"]

DOMAINS = {
    "id": st.integers(0, 40),
    "part": st.integers(-1, 2),
    "g": st.sampled_from(["a", "b", "ü"]),
    "x": st.integers(-3, 3),
    "f": st.sampled_from([-1.5, -0.0, 0.0, 1.0, 2.5]),
    "s": st.sampled_from(["", "a", "ab", "b", "é", "Z"]),
    "d": st.sampled_from([dt.date(2020, 1, 1), dt.date(2020, 1, 2), dt.date(1969, 12, 31)]),
}
NULLABLE = [c for c in SCHEMA.names if c != "id"]
# LH_HYPOTHESIS_SCALE=10 runs ten times as many examples (for bug hunting; CI uses 1)
SCALE = int(os.environ.get("LH_HYPOTHESIS_SCALE", "1"))
FILTER_PROFILE = settings(
    max_examples=60 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def datasets(draw, domains=DOMAINS):
    n = draw(st.integers(0, 30))
    cols = {"id": list(range(n))}
    for name in SCHEMA.names[1:]:
        cols[name] = draw(st.lists(st.one_of(st.none(), domains[name]), min_size=n, max_size=n))
    table = pa.table(cols, schema=SCHEMA)
    # split into 1..3 commits so there are several files per partition with different stats
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=2)))
    bounds = [0, *cuts, n]
    return [table.slice(a, b - a) for a, b in itertools.pairwise(bounds) if b > a] or [table]


OPS = ["=", "==", "!=", "<", "<=", ">", ">=", "in", "not in"]


@st.composite
def atoms(draw, domains=DOMAINS):
    col = draw(st.sampled_from(SCHEMA.names))
    op = draw(st.sampled_from(OPS))
    if op in ("in", "not in"):
        value = draw(st.lists(domains[col], min_size=1, max_size=3, unique=True))
    else:
        value = draw(domains[col])
    return (col, op, value)


def dnf_filters(domains=DOMAINS):
    conj = st.lists(atoms(domains), min_size=1, max_size=3)
    return st.one_of(conj, st.lists(conj, min_size=1, max_size=3))


_CMP = {
    "=": lambda f, v: f == v,
    "==": lambda f, v: f == v,
    "!=": lambda f, v: f != v,
    "<": lambda f, v: f < v,
    "<=": lambda f, v: f <= v,
    ">": lambda f, v: f > v,
    ">=": lambda f, v: f >= v,
}


def atom_expr(atom) -> pc.Expression:
    """Reference meaning of one DNF tuple, with SQL null semantics (``not in`` is not TRUE for NULL)."""
    col, op, value = atom
    field = pc.field(col)
    typ = SCHEMA.field(col).type
    if op in ("in", "not in"):  # OR of equalities (so -0.0 matches 0.0, NaN matches NaN); None matches nulls
        found = pc.scalar(False)
        for v in value:
            if v is None:
                found = found | field.is_null()
            elif isinstance(v, float) and v != v:
                found = found | pc.Expression._call("is_nan", [field])
            else:
                found = found | (field == pa.scalar(v, typ))
        return found if op == "in" else ~found & field.is_valid()
    return _CMP[op](field, pa.scalar(value, typ))


def expressions(domains=DOMAINS):
    leaves = st.one_of(
        atoms(domains).map(atom_expr),
        st.sampled_from(NULLABLE).map(lambda c: pc.field(c).is_null()),
        st.sampled_from(NULLABLE).map(lambda c: pc.field(c).is_valid()),
    )
    return st.recursive(
        leaves,
        lambda sub: st.one_of(
            st.tuples(sub, sub).map(lambda ab: ab[0] & ab[1]),
            st.tuples(sub, sub).map(lambda ab: ab[0] | ab[1]),
            sub.map(lambda a: ~a),
        ),
        max_leaves=4,
    )


def as_expression(flt) -> pc.Expression:
    """The reference meaning of a filter (DNF: OR of ANDs of tuples)."""
    if isinstance(flt, pc.Expression):
        return flt
    conjunctions = [flt] if isinstance(flt[0], tuple) else flt
    out = None
    for conj in conjunctions:
        term = None
        for atom in conj:
            e = atom_expr(atom)
            term = e if term is None else term & e
        out = term if out is None else out | term
    return out


class _MemTable(ScratchTable):
    def __init__(self, chunks, partition_by=PARTITION_BY):
        self.uri = f"memory://filters-{uuid.uuid4().hex}"
        self.table = lh.Table.create(self.uri, SCHEMA, partition_by=partition_by)
        for chunk in chunks:
            self.table.append(chunk)
        self.data = pa.concat_tables(chunks) if chunks else SCHEMA.empty_table()


def _check_filtered_read(t: lh.Table, data: pa.Table, flt) -> None:
    expr = as_expression(flt)
    full = t.to_arrow()
    assert rows(full) == rows(data)
    expected = full.filter(expr)
    got = t.to_arrow(filter=flt)
    assert got.schema.equals(SCHEMA)
    assert rows(got) == rows(expected), f"filter {flt!r}"
    # projection that leaves out the filtered columns
    got_ids = t.to_arrow(filter=flt, columns=["id"])
    assert got_ids.column_names == ["id"]
    assert sorted(got_ids.column("id").to_pylist()) == sorted(expected.column("id").to_pylist())
    # the same through a snapshot's batches
    assert rows(t.snapshot().to_batches(filter=flt).read_all()) == rows(expected)


def _file_rows(t: lh.Table, file_row: dict) -> pa.Table:
    """Read one data file directly, adding the partition columns from files() if the file lacks them."""
    fs, root = fsspec.core.url_to_fs(t.uri)
    with fs.open(f"{root.rstrip('/')}/{file_row['path']}", "rb") as f:
        table = pq.read_table(f)
    for c in PARTITION_BY:
        if c not in table.column_names:
            value = file_row[f"partition.{c}"]
            table = table.append_column(c, pa.array([value] * table.num_rows, SCHEMA.field(c).type))
    return table.select(SCHEMA.names).cast(SCHEMA)


def _check_pruning(t: lh.Table, flt) -> None:
    """files(filter) never leaves out a file holding a matching row, and lists only live files."""
    expr = as_expression(flt)
    s = t.snapshot()
    everything = {r["path"]: r for r in s.files().to_pylist()}
    kept = s.files(filter=flt).column("path").to_pylist()
    assert len(kept) == len(set(kept))
    assert set(kept) <= set(everything)
    for path, row in everything.items():
        if path not in set(kept):
            assert _file_rows(t, row).filter(expr).num_rows == 0, f"{path} pruned but matches {flt!r}"


@FILTER_PROFILE
@given(chunks=datasets(), flt=dnf_filters())
def test_dnf_filter_equals_filtering_the_full_read(chunks, flt):
    with _MemTable(chunks) as t:
        _check_filtered_read(t, pa.concat_tables(chunks), flt)
        _check_pruning(t, flt)


@FILTER_PROFILE
@given(chunks=datasets(), flt=expressions())
def test_expression_filter_equals_filtering_the_full_read(chunks, flt):
    with _MemTable(chunks) as t:
        _check_filtered_read(t, pa.concat_tables(chunks), flt)
        _check_pruning(t, flt)


@FILTER_PROFILE
@given(chunks=datasets(), flt=st.one_of(dnf_filters(), expressions()))
def test_delete_removes_exactly_the_matching_rows(chunks, flt):
    _check_delete(chunks, flt)


def _check_delete(chunks, flt) -> None:
    data = pa.concat_tables(chunks)
    expr = as_expression(flt)
    with _MemTable(chunks) as t:
        t.delete(flt)
        # SQL semantics: a row goes only where the filter is TRUE (NULL keeps it)
        keep = data.filter(~expr | expr.is_null()) if data.num_rows else data
        assert rows(t.to_arrow()) == rows(keep)
        assert rows(t.to_arrow(filter=flt)) == []


NAN_DOMAINS = {**DOMAINS, "f": st.sampled_from([1.0, float("nan"), float("inf"), -1.5])}


@FILTER_PROFILE
@given(
    chunks=datasets(NAN_DOMAINS),
    flt=st.one_of(
        st.tuples(st.just("f"), st.sampled_from(OPS[:7]), st.sampled_from([-1.5, 0.0, 1.0, 3.0])).map(lambda a: [a]),
        expressions(NAN_DOMAINS),
    ),
)
def test_filters_on_floats_with_nan_and_infinity(chunks, flt):
    with _MemTable(chunks) as t:
        _check_filtered_read(t, pa.concat_tables(chunks), flt)
        _check_pruning(t, flt)


def _nan_between_ones() -> pa.Table:
    """Three rows whose float column is [1.0, NaN, 1.0]: Parquet stats say min = max = 1.0."""
    return pa.table(
        {
            "id": [0, 1, 2],
            "part": pa.array([0, 0, 0], pa.int16()),
            "g": ["a", "a", "a"],
            "x": [1, 1, 1],
            "f": [1.0, float("nan"), 1.0],
            "s": ["a", "a", "a"],
            "d": [dt.date(2020, 1, 1)] * 3,
        },
        schema=SCHEMA,
    )


def test_nan_rows_are_not_pruned_by_stats():
    """Parquet min/max ignore NaN, so stats must not prune the NaN row for f != 1.0 (NaN != 1.0 is TRUE)."""
    data = _nan_between_ones()
    with _MemTable([data]) as t:
        got = t.to_arrow(filter=pc.field("f") != 1.0)
        assert got.column("id").to_pylist() == [1]
        got = t.to_arrow(filter=[("f", "!=", 1.0)])
        assert got.column("id").to_pylist() == [1]


PARTITION_FILTERS = st.one_of(
    st.integers(-1, 2).map(lambda v: ([("part", "=", v)], lambda r: r["partition.part"] == v)),
    st.lists(st.integers(-1, 2), min_size=1, max_size=2).map(
        lambda vs: ([("part", "in", vs)], lambda r: r["partition.part"] in vs)
    ),
    st.sampled_from(["a", "b", "ü"]).map(lambda v: (pc.field("g") == v, lambda r: r["partition.g"] == v)),
    st.just((pc.field("part").is_null(), lambda r: r["partition.part"] is None)),
    st.tuples(st.integers(-1, 2), st.sampled_from(["a", "b"])).map(
        lambda vg: (
            [("part", ">=", vg[0]), ("g", "!=", vg[1])],
            lambda r: (
                r["partition.part"] is not None
                and r["partition.part"] >= vg[0]
                and r["partition.g"] is not None
                and r["partition.g"] != vg[1]
            ),
        )
    ),
)


@FILTER_PROFILE
@given(chunks=datasets(), case=PARTITION_FILTERS)
def test_files_under_partition_filter_are_exactly_the_matching_partitions(chunks, case):
    flt, predicate = case
    with _MemTable(chunks) as t:
        s = t.snapshot()
        everything = s.files().to_pylist()
        expected = sorted(r["path"] for r in everything if predicate(r))
        got = s.files(filter=flt)
        assert sorted(got.column("path").to_pylist()) == expected, flt
        for r in got.to_pylist():
            assert predicate(r)


@pytest.mark.parametrize(
    "flt, ids",
    [
        ([("x", "=", 1)], [0]),
        ([("x", "!=", 1)], [1]),  # NULL != 1 is not TRUE
        ([("x", "in", [1, 2])], [0, 1]),
        (pc.field("x").is_null(), [2]),
        ([[("x", "=", 1)], [("x", "=", 2)]], [0, 1]),
        ([("x", ">", 0), ("s", "=", "b")], [1]),
        (pc.field("s") == "a", [0]),
        (~(pc.field("s") == "a"), [1]),
    ],
)
def test_small_filter_examples(flt, ids):
    data = pa.table(
        {
            "id": [0, 1, 2],
            "part": pa.array([0, 1, None], pa.int16()),
            "g": ["a", None, "b"],
            "x": [1, 2, None],
            "f": [0.0, 1.0, None],
            "s": ["a", "b", None],
            "d": [None, dt.date(2020, 1, 1), None],
        },
        schema=SCHEMA,
    )
    with _MemTable([data.slice(0, 1), data.slice(1)]) as t:
        assert sorted(t.to_arrow(filter=flt).column("id").to_pylist()) == ids


@pytest.mark.parametrize(
    "flt",
    [pc.field("f") == 1.0, [("f", "=", 1.0)], pc.field("f") < 5.0, [("f", "in", [1.0])]],
    ids=["expr-eq", "dnf-eq", "expr-lt", "dnf-in"],
)
@pytest.mark.parametrize("op", ["delete", "overwrite"])
def test_delete_and_overwrite_keep_nan_rows_the_filter_does_not_match(flt, op):
    """Stats say min = max = 1.0 (NaN is not in Parquet stats), but the NaN row does not match."""
    data = _nan_between_ones()
    with _MemTable([data]) as t:
        if op == "delete":
            t.delete(flt)
            assert t.to_arrow().column("id").to_pylist() == [1]
        else:
            t.overwrite(data.slice(0, 1).set_column(0, "id", pa.array([9], pa.int64())), filter=flt)
            assert sorted(t.to_arrow().column("id").to_pylist()) == [1, 9]


@FILTER_PROFILE
@given(chunks=datasets(NAN_DOMAINS), flt=st.one_of(dnf_filters(NAN_DOMAINS), expressions(NAN_DOMAINS)))
def test_delete_with_nan_and_infinity_removes_exactly_the_matching_rows(chunks, flt):
    _check_delete(chunks, flt)


@pytest.mark.parametrize(
    "flt",
    [[("f", "in", [-0.0])], [("f", "in", [0.0])], pc.field("f").isin(pa.array([-0.0])), [("f", "=", -0.0)]],
    ids=["dnf-in-neg", "dnf-in-pos", "expr-in-neg", "dnf-eq-neg"],
)
@pytest.mark.parametrize("values", [[0.0, 0.0], [-0.0, -0.0], [0.0, -0.0]], ids=["pos", "neg", "mixed"])
def test_delete_removes_what_a_read_with_the_same_filter_returns_signed_zero(flt, values):
    """-0.0 and 0.0: whatever ``in`` means, delete must remove exactly the rows a filtered read returns."""
    n = len(values)
    data = pa.table(
        {
            "id": list(range(n)),
            "part": pa.array([0] * n, pa.int16()),
            "g": ["a"] * n,
            "x": [1] * n,
            "f": values,
            "s": ["a"] * n,
            "d": [dt.date(2020, 1, 1)] * n,
        },
        schema=SCHEMA,
    )
    with _MemTable([data]) as t:
        matched = sorted(t.to_arrow(filter=flt).column("id").to_pylist())
        assert matched == sorted(data.filter(as_expression(flt)).column("id").to_pylist())
        t.delete(flt)
        remaining = sorted(t.to_arrow().column("id").to_pylist())
        assert remaining == sorted(set(range(n)) - set(matched)), (matched, remaining)


@pytest.mark.parametrize("values", [[0.0], [-0.0], [0.0, 7.0], [-0.0, None]])
@pytest.mark.parametrize("spelling", ["tuple", "sql"])
def test_in_treats_signed_zeros_as_equal_like_the_comparison_does(tmp_path, values, spelling):
    # pyarrow's is_in hashes floats by their bits; "f IN (0.0)" must still find -0.0 as "f = 0.0" does
    t = lh.Table.create(tmp_path / "t", pa.schema([("id", pa.int64()), ("f", pa.float64())]))
    t.append(pa.table({"id": [1], "f": pa.array([-0.0])}))  # a file whose min and max are -0.0
    t.append(pa.table({"id": [2, 3, 4], "f": pa.array([0.0, 1.0, None])}))
    if spelling == "tuple":
        flt, negated = [("f", "in", values)], [("f", "not in", values)]
    else:
        items = ", ".join("NULL" if v is None else repr(v) for v in values)
        flt, negated = f"f IN ({items})", f"f NOT IN ({items})"
    # a None in a tuple filter's list matches null rows; SQL's NULL in the list matches nothing
    tuple_null = None in values and spelling == "tuple"
    assert sorted(t.to_arrow(filter=flt)["id"].to_pylist()) == ([1, 2, 4] if tuple_null else [1, 2])
    expected_not = [] if None in values and spelling == "sql" else [3]
    assert sorted(t.to_arrow(filter=negated)["id"].to_pylist()) == expected_not

"""SQL-like filter strings: a table of strings and the rows they keep, equivalence with DNF and
expressions (SQL null semantics), every entry point, and errors naming the unsupported part."""

from __future__ import annotations

import datetime as dt
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.cli import cli
from lakehouse.expr.dnf import to_expression

pytest.importorskip("sqlglot")

D1, D2, D3 = dt.date(2024, 5, 1), dt.date(2024, 5, 2), dt.date(2024, 5, 3)
SMALL = pa.table({
    "id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
    "day": pa.array([7, 7, 8, None, 9, 7], pa.int32()),
    "s": pa.array(["a", "ab", None, "b", "A", "x"]),
    "f": pa.array([1.5, None, -2.0, 0.0, 3.0, 1.5]),
    "d": pa.array([D1, D2, None, D3, D1, D2], pa.date32()),
    "flag": pa.array([True, False, None, True, False, True]),
    "My Col": pa.array([1, 2, 3, None, 5, 6], pa.int64()),
})

CASES = {
    "day = 7": [1, 2, 6],
    "day = 7 and id < 6": [1, 2],
    "day = 7 AND id < 6": [1, 2],
    "day <> 7": [3, 5],
    "day != 7": [3, 5],
    "not day = 7": [3, 5],
    "not (day = 7 or day = 8)": [5],
    "7 = day": [1, 2, 6],
    "10 > day": [1, 2, 3, 5, 6],
    "day = -1": [],
    "day = 7.5": [],
    "day in (7, 9)": [1, 2, 5, 6],
    "day not in (7, 9)": [3],
    "not day in (7, 9)": [3],
    "day in (8, NULL)": [3],
    "day not in (7, NULL)": [],
    "not day in (8, NULL)": [],
    "id in (1, 2.5)": [1],
    "day is null": [4],
    "day is not null": [1, 2, 3, 5, 6],
    "not day is null": [1, 2, 3, 5, 6],
    "day between 7 and 8": [1, 2, 3, 6],
    "day not between 7 and 8": [5],
    "s like 'a%'": [1, 2],
    "s not like 'a%'": [4, 5, 6],
    "s ilike 'a%'": [1, 2, 5],
    "s = 'b' or f > 2": [4, 5],
    "f >= 1.5": [1, 5, 6],
    "f < 0": [3],
    "f = 1.5e0": [1, 6],
    "d = DATE '2024-05-01'": [1, 5],
    "d > '2024-05-01'": [2, 4, 6],
    "d between DATE '2024-05-02' and DATE '2024-05-03'": [2, 4, 6],
    "flag": [1, 4, 6],
    "not flag": [2, 5],
    "flag = TRUE": [1, 4, 6],
    "flag = false or flag is null": [2, 3, 5],
    '"My Col" > 2': [3, 5, 6],
    "day = 7 and (s = 'a' or s = 'x')": [1, 6],
    "id < day": [1, 2, 3, 5, 6],
    "TRUE": [1, 2, 3, 4, 5, 6],
    "FALSE": [],
    "((day = 8))": [3],
}


def _ids(table: pa.Table) -> list[int]:
    return sorted(table.column("id").to_pylist())


@pytest.fixture
def small():
    return lh.write_table(f"memory://sql-{uuid.uuid4().hex}", SMALL, partition_by=["day"])


@pytest.mark.parametrize("text", list(CASES))
def test_sql_filter_keeps_the_expected_rows(small, text):
    assert _ids(small.to_arrow(filter=text)) == CASES[text]
    # pruning never loses a file the filter needs, and an in-memory evaluation agrees
    expr = to_expression(text, small.schema)
    assert _ids(SMALL.filter(expr)) == CASES[text]


ERRORS = {
    "upper(s) = 'A'": (lh.InvalidFilterError, "UPPER"),
    "day + 1 = 8": (lh.InvalidFilterError, "arithmetic"),
    "day in (select 1)": (lh.InvalidFilterError, "subquery"),
    "cast(day as bigint) = 1": (lh.InvalidFilterError, "CAST"),
    "day = ": (lh.InvalidFilterError, "cannot parse"),
    "day = NULL": (lh.InvalidFilterError, "IS NULL"),
    "day = 'abc'": (lh.InvalidFilterError, "day"),
    "d = DATE 'yesterday'": (lh.InvalidFilterError, "DATE"),
    "s like 1": (lh.InvalidFilterError, "LIKE"),
    "day like 'a'": (lh.InvalidFilterError, "LIKE"),
    "t.day = 1": (lh.InvalidFilterError, "qualified"),
    "day": (lh.InvalidFilterError, "not a condition"),
    "1 = 1": (lh.InvalidFilterError, "names no column"),
    "   ": (lh.InvalidFilterError, "non-empty"),
    "nope = 1": (lh.ColumnNotFoundError, "nope"),
    "Day = 1": (lh.ColumnNotFoundError, "Day"),
    "day in (1, nope)": (lh.InvalidFilterError, "nope"),
}


@pytest.mark.parametrize("text", list(ERRORS))
def test_sql_filter_errors_name_the_unsupported_part(small, text):
    error, part = ERRORS[text]
    with pytest.raises(error, match=None) as info:
        small.to_arrow(filter=text)
    assert part in str(info.value)


def test_every_entry_point_takes_sql(small):
    assert small.files(filter="day = 8").num_rows == 1
    assert len(small.snapshot().plan_files(filter="day in (7, 9)")) == 2
    assert small.inspect.files(filter="day = 9").num_rows == 1
    assert _ids(pa.Table.from_batches(list(small.to_batches(filter="id > 4")))) == [5, 6]
    small.delete("day = 7 and s = 'a'")
    assert _ids(small.to_arrow()) == [2, 3, 4, 5, 6]
    small.overwrite(SMALL.filter(pc.field("id") == 3), filter="day = 8")
    assert _ids(small.to_arrow()) == [2, 3, 4, 5, 6]
    with pytest.raises(lh.ConstraintViolationError):
        small.overwrite(SMALL.filter(pc.field("id") == 5), filter="day = 8")
    small.append(SMALL.filter(pc.field("id") == 1))
    assert small.optimize(filter="day = 7") is not None
    assert small.files(filter="day = 7").num_rows == 1


def test_add_constraint_takes_sql(table_uri):
    t = lh.write_table(table_uri, pa.table({"amount": [1.0, None], "kind": ["a", "b"]}))
    t.alter.add_constraint("amount_positive", "amount > 0")
    t.alter.add_constraint("known_kind", "kind in ('a', 'b', 'c')")
    t.append(pa.table({"amount": [None, 3.0], "kind": [None, "c"]}))  # NULL passes, as in SQL
    with pytest.raises(lh.ConstraintViolationError, match="amount_positive"):
        t.append(pa.table({"amount": [-1.0], "kind": ["a"]}))
    with pytest.raises(lh.ConstraintViolationError, match="known_kind"):
        t.append(pa.table({"amount": [1.0], "kind": ["z"]}))
    assert lh.Table.open(table_uri).constraints.keys() == {"amount_positive", "known_kind"}
    with pytest.raises(lh.ConstraintViolationError):
        t.alter.add_constraint("small", "amount < 2")  # 3.0 is there
    with pytest.raises(lh.InvalidFilterError, match="function"):
        t.alter.add_constraint("f", "abs(amount) > 0")


def test_cli_takes_sql_and_json_filters(small):
    run = CliRunner().invoke
    sql = run(cli, ["scan", small.uri, "--filter", "day = 7 and s is not null", "--output", "json"])
    dnf = run(cli, ["scan", small.uri, "--filter", '[["day", "=", 7], ["s", "is not null"]]', "--output", "json"])
    assert sql.exit_code == dnf.exit_code == 0, (sql.output, dnf.output)
    assert sql.stdout == dnf.stdout
    dates = run(cli, ["files", small.uri, "--filter", "d >= DATE '2024-05-02'", "-o", "json"])
    assert dates.exit_code == 0, dates.output
    bad = run(cli, ["scan", small.uri, "--filter", "upper(s) = 'A'"])
    assert bad.exit_code == 1 and "InvalidFilterError" in bad.stderr and "UPPER" in bad.stderr


# -- property: SQL text and the DNF / expression forms keep the same rows ----------------------------
SCHEMA = pa.schema([("id", pa.int64()), ("part", pa.int16()), ("g", pa.string()), ("x", pa.int64()),
                    ("f", pa.float64()), ("s", pa.string()), ("d", pa.date32())])
DOMAINS = {
    "id": st.integers(0, 40),
    "part": st.integers(-1, 2),
    "g": st.sampled_from(["a", "b", "ü"]),
    "x": st.integers(-3, 3),
    "f": st.sampled_from([-1.5, -0.0, 0.0, 1.0, 2.5]),
    "s": st.sampled_from(["", "a", "ab", "b", "é", "it's"]),
    "d": st.sampled_from([dt.date(2020, 1, 1), dt.date(2020, 1, 2), dt.date(1969, 12, 31)]),
}
PROFILE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def datasets(draw):
    n = draw(st.integers(0, 20))
    cols = {"id": list(range(n))}
    for name in SCHEMA.names[1:]:
        cols[name] = draw(st.lists(st.one_of(st.none(), DOMAINS[name]), min_size=n, max_size=n))
    table = pa.table(cols, schema=SCHEMA)
    cut = draw(st.integers(0, n))
    return [c for c in (table.slice(0, cut), table.slice(cut)) if c.num_rows] or [table]


def sql_value(v) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, dt.date):
        return f"DATE '{v.isoformat()}'"
    return repr(v)


SQL_OPS = {"=": "=", "==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
PA_OPS = {"=": "equal", "==": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal", ">": "greater",
          ">=": "greater_equal"}


def _scalar(col, v):
    return pc.scalar(pa.scalar(v, SCHEMA.field(col).type))


@st.composite
def atoms(draw):
    """(DNF tuple, SQL text): comparisons and IN / NOT IN."""
    col = draw(st.sampled_from(SCHEMA.names))
    op = draw(st.sampled_from([*SQL_OPS, "in", "not in"]))
    if op in ("in", "not in"):
        values = draw(st.lists(DOMAINS[col], min_size=1, max_size=3, unique=True))
        return (col, op, values), f"{col} {op.upper()} ({', '.join(sql_value(v) for v in values)})"
    value = draw(DOMAINS[col])
    return (col, op, value), f"{col} {SQL_OPS[op]} {sql_value(value)}"


@st.composite
def trees(draw, depth=3):
    """(SQL text, reference expression with SQL's three-valued semantics, built independently)."""
    kind = draw(st.sampled_from(["cmp", "in", "null", "between", "and", "or", "not"] if depth else
                                ["cmp", "in", "null", "between"]))
    col = draw(st.sampled_from(SCHEMA.names))
    field = pc.field(col)
    if kind == "cmp":
        op, value = draw(st.sampled_from(list(SQL_OPS))), draw(DOMAINS[col])
        return f"{col} {SQL_OPS[op]} {sql_value(value)}", pc.Expression._call(PA_OPS[op], [field, _scalar(col, value)])
    if kind == "in":
        values = draw(st.lists(st.one_of(st.none(), DOMAINS[col]), min_size=1, max_size=3))
        negate = draw(st.booleans())
        items = ", ".join("NULL" if v is None else sql_value(v) for v in values)
        text = f"{col} {'NOT IN' if negate else 'IN'} ({items})"
        # x IN (a, b, NULL) = x = a OR x = b OR NULL, with Kleene logic
        terms = [field == _scalar(col, v) if v is not None else pc.scalar(pa.scalar(None, pa.bool_()))
                 for v in values]
        expr = terms[0]
        for term in terms[1:]:
            expr = expr | term
        return text, ~expr if negate else expr
    if kind == "null":
        negate = draw(st.booleans())
        return f"{col} IS {'NOT ' if negate else ''}NULL", field.is_valid() if negate else field.is_null()
    if kind == "between":
        lo, hi = sorted([draw(DOMAINS[col]), draw(DOMAINS[col])])
        negate = draw(st.booleans())
        expr = (field >= _scalar(col, lo)) & (field <= _scalar(col, hi))
        return f"{col} {'NOT ' if negate else ''}BETWEEN {sql_value(lo)} AND {sql_value(hi)}", ~expr if negate else expr
    if kind == "not":
        text, expr = draw(trees(depth - 1))
        return f"NOT ({text})", ~expr
    (lt, le), (rt, re_) = draw(trees(depth - 1)), draw(trees(depth - 1))
    if kind == "and":
        return f"({lt}) AND ({rt})", le & re_
    return f"({lt}) OR ({rt})", le | re_


def _table(chunks):
    t = lh.Table.create(f"memory://sqlprop-{uuid.uuid4().hex}", SCHEMA, partition_by=["part", "g"])
    for c in chunks:
        t.append(c)
    return t


def _rows(table: pa.Table) -> list[tuple]:
    return sorted((tuple(r.values()) for r in table.select(SCHEMA.names).to_pylist()), key=repr)


@PROFILE
@given(datasets(), trees())
def test_sql_text_equals_the_reference_expression(chunks, tree):
    text, reference = tree
    t = _table(chunks)
    data = pa.concat_tables(chunks)
    assert _rows(t.to_arrow(filter=text)) == _rows(data.filter(reference)), text
    # FALSE rows too (what a CHECK constraint refuses): NOT keeps exactly the rows where it is FALSE
    got = to_expression(text, SCHEMA)
    assert _rows(data.filter(~got)) == _rows(data.filter(~reference)), text


@PROFILE
@given(datasets(), st.lists(st.lists(atoms(), min_size=1, max_size=3), min_size=1, max_size=3))
def test_sql_text_equals_dnf(chunks, disjuncts):
    dnf = [[atom for atom, _ in conj] for conj in disjuncts]
    text = " OR ".join("(" + " AND ".join(sql for _, sql in conj) + ")" for conj in disjuncts)
    t = _table(chunks)
    assert _rows(t.to_arrow(filter=text)) == _rows(t.to_arrow(filter=dnf)), text


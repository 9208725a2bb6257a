"""Typed-error fuzz of the filter front ends: whatever a caller passes as a filter (SQL text, DNF
tuples, pyarrow expressions), reads, planning and writes either work or raise a LakehouseError
subclass naming the problem, never a raw pyarrow / sqlglot / Recursion error. A write that refuses
its filter changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import os
import uuid

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.errors import InvalidFilterError, LakehouseError

SCHEMA = pa.schema([
    ("i", pa.int64()), ("u", pa.uint8()), ("f", pa.float32()), ("s", pa.string()), ("d", pa.date32()),
    ("ts", pa.timestamp("ns", tz="Europe/Paris")), ("naive", pa.timestamp("us")), ("b", pa.bool_()),
    ("dec", pa.decimal128(7, 2)), ("l", pa.list_(pa.int64())), ("st", pa.struct([("a", pa.int32())])),
    ("p", pa.string()),
])
COLUMNS = SCHEMA.names
PROFILE = settings(max_examples=600 if os.environ.get("LH_FUZZ") else 60, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.binary(max_size=3), st.dates(), st.datetimes(),
    st.datetimes(timezones=st.just(dt.timezone.utc)), st.decimals(allow_nan=True, places=3),
    st.lists(st.integers(-3, 3), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.sampled_from(["2024-01-01", "2024-01-01T00:00:00.000000001Z", "2024-13-45", "1.5", "NaN", "-0.0"]),
)
OPS = st.one_of(st.sampled_from(["=", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null",
                                 "IN", "Not  In", "like", "between"]), st.text(max_size=4))
DNF_ATOMS = st.one_of(
    st.tuples(st.sampled_from(COLUMNS), OPS, VALUES),
    st.tuples(st.sampled_from(COLUMNS), OPS, st.lists(VALUES, max_size=3)),
    st.tuples(st.sampled_from(COLUMNS), OPS),
    st.tuples(st.text(max_size=3), OPS, VALUES),
    VALUES,
)
PLAUSIBLE = st.lists(st.tuples(st.sampled_from(COLUMNS), st.sampled_from(["=", "!=", "<", ">=", "in", "not in"]),
                               st.one_of(VALUES, st.lists(VALUES, max_size=2))), min_size=1, max_size=2)
DNF = st.one_of(PLAUSIBLE, st.lists(DNF_ATOMS, max_size=3), st.lists(st.lists(DNF_ATOMS, max_size=2), max_size=2),
                VALUES, st.tuples(DNF_ATOMS))

SQL_TOKENS = st.sampled_from([
    "i", "u", "f", "s", "d", "ts", "naive", "b", "dec", "l", "st", "p", "zz", '"i"', "st.a", "=", "<>", "!=", "<",
    ">=", "AND", "OR", "NOT", "IN", "(", ")", ",", "IS", "NULL", "BETWEEN", "LIKE", "ILIKE", "TRUE", "FALSE", "1",
    "-1", "1.5", "'a%'", "'x'", "''", "DATE '2024-01-01'", "TIMESTAMP '2024-01-01 00:00:00.000000001'",
    "TIMESTAMP '2024-01-01T00:00:00Z'", "DATE 'nope'", "'2024-01-01'", "'NaN'", "CAST(i AS INT)", "upper(s)",
    "i + 1", "(SELECT 1)", "*", "?", ";", "--", "'", "300", "1e400", "9223372036854775808",
])
SQL = st.one_of(
    st.lists(SQL_TOKENS, min_size=1, max_size=8).map(" ".join),
    st.text(max_size=20),
    st.integers(1, 400).map(lambda n: "NOT " * n + "i = 1"),
    st.integers(1, 120).map(lambda n: "(" * n + "i = 1" + ")" * n),
)

LITERALS = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True), st.text(max_size=3), st.booleans(), st.dates(),
    st.datetimes(), st.datetimes(timezones=st.just(dt.timezone.utc)), st.just(decimal.Decimal("1.25")),
    st.none(),
).map(lambda v: pc.scalar(v))
FIELDS = st.one_of(st.sampled_from(COLUMNS).map(pc.field), st.just(pc.field("st", "a")),
                   st.just(pc.field("zz")))
OPERANDS = st.one_of(FIELDS, LITERALS)
FUNCTIONS = [
    ("equal", 2), ("less", 2), ("greater_equal", 2), ("not_equal", 2), ("and_kleene", 2), ("or_kleene", 2),
    ("invert", 1), ("is_null", 1), ("is_valid", 1), ("is_nan", 1), ("add", 2), ("year", 1), ("utf8_length", 1),
    ("starts_with", 1), ("true_unless_null", 1), ("if_else", 3), ("coalesce", 2), ("list_value_length", 1),
    ("cumulative_sum", 1), ("random", 0), ("struct_field", 1),
]


def _call(name: str, args: list[pc.Expression]) -> pc.Expression:
    options = None
    if name == "starts_with":
        options = pc.MatchSubstringOptions("a")
    elif name == "random":
        options = pc.RandomOptions()
    elif name == "struct_field":
        options = pc.StructFieldOptions([0])
    return pc.Expression._call(name, args, options)


EXPRESSIONS = st.recursive(
    OPERANDS,
    lambda sub: st.sampled_from(FUNCTIONS).flatmap(
        lambda fn: st.lists(sub, min_size=fn[1], max_size=fn[1]).map(lambda args: _call(fn[0], args))),
    max_leaves=5,
)
FILTERS = st.one_of(DNF, SQL, EXPRESSIONS, st.integers(), st.binary(max_size=3))


@pytest.fixture(scope="module")
def table():
    uri = f"memory://fuzz-{uuid.uuid4().hex}"
    data = pa.table({
        "i": [1, None, 3], "u": pa.array([0, 255, None], pa.uint8()), "f": pa.array([0.0, float("nan"), None],
                                                                                    pa.float32()),
        "s": ["a", "", None], "d": [dt.date(2024, 1, 1), None, dt.date(1969, 12, 31)],
        "ts": pa.array([0, 1, None], pa.timestamp("ns", tz="Europe/Paris")),
        "naive": pa.array([0, None, 5], pa.timestamp("us")), "b": [True, None, False],
        "dec": pa.array([decimal.Decimal("1.25"), None, decimal.Decimal("-3.00")], pa.decimal128(7, 2)),
        "l": [[1], None, []], "st": [{"a": 1}, None, {"a": None}], "p": ["x", "y", None],
    }, schema=SCHEMA)
    t = lh.write_table(uri, data, partition_by=["p"])
    yield t
    fs, root = fsspec.core.url_to_fs(uri)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _only_typed(call) -> object:
    try:
        return call()
    except LakehouseError:
        return None
    except ImportError:  # sqlglot missing: not this test's business
        pytest.skip("sqlglot is not installed")


@PROFILE
@given(flt=FILTERS)
def test_every_filter_reads_or_raises_a_typed_error(table, flt):
    result = _only_typed(lambda: table.to_arrow(filter=flt))
    if result is not None:  # whatever reads also plans, streams and prunes
        tasks = table.snapshot().plan_files(filter=flt)
        assert sum(lh.read_task(task).num_rows for task in tasks) == result.num_rows
        assert table.snapshot().to_batches(filter=flt).read_all().num_rows == result.num_rows


@PROFILE
@given(flt=FILTERS)
def test_every_filter_deletes_or_raises_a_typed_error_and_changes_nothing(table, flt):
    before = table.version
    snap = table.snapshot()

    def delete():
        with table.transaction() as tx:  # never committed: the table is shared by the examples
            tx.delete(flt)
            raise _Rollback
    with contextlib.suppress(_Rollback):
        _only_typed(delete)
    assert table.version == before and table.snapshot().files().equals(snap.files())


class _Rollback(Exception):
    pass


@pytest.mark.parametrize("flt", [
    "(" * 200 + "i = 1" + ")" * 200, "NOT " * 1000 + "i = 1", "not " * 300 + "i = 1",
    [("l", "=", [1])], [("l", "in", [[1]])], [("st", "=", {"a": 1})], [("l", "<", 1)],
    "i = s", "naive < ts", pc.field("i") == pc.field("s"), pc.field("naive") > pc.field("ts"),
    pc.field("i") == "1", pc.field("d") == "2024-01-01", pc.field("i") + 1, pc.field("s"), pc.scalar(1),
    "l = 1", "st = 1",
])
def test_known_bad_filters_raise_invalid_filter_error(table, flt):
    with pytest.raises(InvalidFilterError):
        table.to_arrow(filter=flt)
    with pytest.raises(InvalidFilterError):
        table.delete(flt)

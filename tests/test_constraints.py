"""Table properties and constraints (issue 5): ``Table.alter``, NOT NULL and CHECK enforcement on every
write, the stored expression encoding (docs/format.md §16), on local disk, memory and S3."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import SCHEMA, checkpoint_versions, make_data, parquet_files, rows
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from strategies import DEFAULT_TYPES, row_filters

import lakehouse as lh
from lakehouse import alter as alter_module
from lakehouse.commit import CommitRequest, commit
from lakehouse.expr.codec import decode_expression, encode_expression
from lakehouse.properties import KNOWN_PROPERTIES
from lakehouse.replay import load_state
from lakehouse.storage import Storage

FORMAT_MD = Path(__file__).resolve().parents[1] / "docs" / "format.md"


def _table(uri: str, **kw: Any) -> lh.Table:
    t = lh.Table.create(uri, SCHEMA, partition_by=["part"], **kw)
    t.append(make_data(range(10), [0, 1] * 5))  # v1: ids 0..9 in partitions 0 and 1
    return t


def _unchanged(uri: str, version: int, files: list[str]) -> None:
    """Nothing was committed and no data file was left behind."""
    assert lh.Table.open(uri).version == version
    assert parquet_files(uri) == files


def _force_constraint(uri: str, name: str, text: str) -> None:
    """Store a constraint without verifying the data (as a writer that predates it would leave a
    table), through the low-level commit."""
    storage = Storage.from_uri(uri)
    state = load_state(storage)
    props = {**state.metadata.properties, f"constraint.{name}": text}
    commit(storage, state, CommitRequest(operation="test", metadata=dataclasses.replace(state.metadata,
                                                                                       properties=props)))


# -- CHECK constraints on writes ---------------------------------------------------------------------
def test_a_check_constraint_refuses_violating_appends_and_overwrites(table_uri):
    t = _table(table_uri)
    assert t.alter.add_constraint("id_nonneg", pc.field("id") >= 0) == 2
    assert t.constraints["id_nonneg"].equals(pc.field("id") >= 0)
    files = parquet_files(table_uri)
    bad = make_data([-3, 4, -1], 0)
    for write in (lambda: t.append(bad), lambda: t.overwrite(bad),
                  lambda: t.overwrite(bad, filter=[("part", "=", 0)]),
                  lambda: lh.write_table(table_uri, bad, mode="append")):
        with pytest.raises(lh.ConstraintViolationError) as info:
            write()
        err = info.value
        assert err.constraint == "id_nonneg" and err.expression == "(id >= 0)"
        assert sorted(r["id"] for r in err.rows) == [-3, -1]
        assert "'id_nonneg'" in str(err) and "(id >= 0)" in str(err) and "-3" in str(err)
        _unchanged(table_uri, 2, files)
    with pytest.raises(lh.ConstraintViolationError), t.transaction() as tx:
        tx.append(make_data([20], 1))
        tx.append(bad)
    _unchanged(table_uri, 2, files)
    assert t.append(make_data([20, 21], 1)) == 3
    assert sorted(t.to_arrow().column("id").to_pylist()) == [*range(10), 20, 21]


def test_null_passes_a_check_constraint_false_does_not(table_uri):
    t = _table(table_uri)
    t.alter.add_constraint("value_small", pc.field("value") < 100)
    t.append(make_data([3, 10], 0))  # id 3 has a null value: NULL passes, as in SQL
    with pytest.raises(lh.ConstraintViolationError) as info:
        t.append(make_data([200, 3], 0))  # value 100.0 is FALSE
    assert info.value.rows == [{"id": 200, "part": 0, "value": 100.0, "name": "n200"}]


def test_the_error_shows_at_most_five_rows(table_uri):
    t = _table(table_uri)
    t.alter.add_constraint("id_small", [("id", "<", 100)])  # DNF filters are accepted too
    with pytest.raises(lh.ConstraintViolationError, match="at least 10 row") as info:
        t.append(make_data(range(100, 110), 0))
    assert len(info.value.rows) == 5


def test_constraints_on_partition_columns_and_several_constraints(table_uri):
    t = _table(table_uri)
    t.alter.add_constraint("part_small", pc.field("part") < 2)
    t.alter.add_constraint("name_short", pc.utf8_length(pc.field("name")) <= 3)
    with pytest.raises(lh.ConstraintViolationError) as info:
        t.append(make_data([1], 7))
    assert info.value.constraint == "part_small"
    with pytest.raises(lh.ConstraintViolationError) as info:
        t.append(make_data([1000], 1))  # name "n1000"
    assert info.value.constraint == "name_short"
    assert t.append(make_data([11], 1)) == 4


# -- NOT NULL ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("partitioned", [False, True])
def test_not_null_is_enforced_and_names_the_column(table_uri, partitioned):
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("p", pa.int32(), nullable=False),
                        ("x", pa.string())])
    t = lh.Table.create(table_uri, schema, partition_by=["p"] if partitioned else None)
    t.append(pa.table({"id": [1], "p": pa.array([1], pa.int32()), "x": ["a"]}))
    files = parquet_files(table_uri)
    loose = pa.table({"id": [2, None, 3], "p": pa.array([1, 1, None], pa.int32()), "x": ["b", "c", None]})
    with pytest.raises(lh.ConstraintViolationError) as info:
        t.append(loose)
    assert (info.value.constraint, info.value.column) == ("NOT NULL", "id")
    assert info.value.rows == [{"id": None, "p": 1, "x": "c"}]
    assert "'id'" in str(info.value) and "NOT NULL" in str(info.value)
    # data that claims non-nullable fields while holding nulls is checked too
    claiming = pa.table({"id": [4], "p": pa.array([None], pa.int32()), "x": ["d"]}, schema=schema)
    with pytest.raises(lh.ConstraintViolationError) as info:
        t.append(claiming)
    assert info.value.column == "p"
    _unchanged(table_uri, 1, files)


# -- adding and dropping ----------------------------------------------------------------------------
def test_adding_a_constraint_the_data_violates_is_refused(table_uri):
    t = _table(table_uri)
    with pytest.raises(lh.ConstraintViolationError) as info:
        t.alter.add_constraint("id_small", pc.field("id") < 8)
    err = info.value
    assert err.constraint == "id_small" and sorted(r["id"] for r in err.rows) == [8, 9]
    assert "2 row(s)" in str(err) and "not added" in str(err)
    assert t.version == 1 and t.constraints == {} and lh.Table.open(table_uri).version == 1
    # the violation sits in one file of one partition: statistics prune the other, not this one
    with pytest.raises(lh.ConstraintViolationError):
        t.alter.add_constraint("not_nine", pc.field("id") != 9)
    with pytest.raises(lh.ConstraintViolationError):
        t.alter.add_constraint("part_zero", pc.field("part") == 0)
    t.alter.add_constraint("id_small", pc.field("id") < 10)
    assert list(t.constraints) == ["id_small"]


@pytest.mark.parametrize("name", ["", "1a", "a b", "a.b", "é", "x" * 129, None, 5])
def test_bad_constraint_names_are_refused(table_uri, name):
    t = _table(table_uri)
    with pytest.raises(lh.InvalidTableError, match="constraint name"):
        t.alter.add_constraint(name, pc.field("id") >= 0)


def test_bad_constraint_expressions_are_refused_naming_the_fault(table_uri):
    t = _table(table_uri)
    with pytest.raises(lh.ColumnNotFoundError) as info:
        t.alter.add_constraint("c", pc.field("nope") > 1)
    assert info.value.column == "nope"
    cases = [
        (pc.field("id") + 1, "not a boolean"),
        (pc.field("name") > 1, "cannot be evaluated"),
        (pc.utf8_slice_codeunits(pc.field("name"), 0, 2) == "ab", "SliceOptions"),
        (pc.field("id").cast(pa.list_(pa.int64())) == pc.scalar(pa.scalar([1], pa.list_(pa.int64()))), "list"),
        (pc.Expression._call("random", []) < 0.5, "random"),
    ]
    for expr, why in cases:
        with pytest.raises(lh.InvalidFilterError, match=why):
            t.alter.add_constraint("c", expr)
    with pytest.raises(lh.InvalidFilterError):
        t.alter.add_constraint("c", None)  # type: ignore[arg-type]
    t.alter.add_constraint("c", pc.field("id") >= 0)
    with pytest.raises(lh.InvalidTableError, match="already has a constraint named 'c'"):
        t.alter.add_constraint("c", pc.field("id") >= -1)
    assert t.version == 2


def test_drop_constraint(table_uri):
    t = _table(table_uri)
    t.alter.add_constraint("id_small", pc.field("id") < 100)
    with pytest.raises(lh.InvalidTableError, match=r"no constraint named 'nope' \(it has \['id_small'\]\)"):
        t.alter.drop_constraint("nope")
    with pytest.raises(lh.ConstraintViolationError):
        t.append(make_data([100], 0))
    assert t.alter.drop_constraint("id_small") == 3
    assert t.constraints == {} and "constraint.id_small" not in t.properties
    assert t.append(make_data([100], 0)) == 4


def test_constraints_survive_reopening_and_checkpoints(table_uri):
    t = _table(table_uri)
    t.alter.add_constraint("id_small", pc.field("id") < 100)
    t.checkpoint()
    reopened = lh.Table.open(table_uri)
    assert reopened.constraints["id_small"].equals(pc.field("id") < 100)
    with pytest.raises(lh.ConstraintViolationError):
        reopened.append(make_data([100], 0))


def test_restore_brings_back_the_constraints_of_the_version(table_uri):
    t = _table(table_uri)
    t.alter.add_constraint("id_small", pc.field("id") < 100)  # v2
    t.restore(1)
    assert t.constraints == {}
    t.restore(2)
    assert list(t.constraints) == ["id_small"]


# -- rewrites: delete and optimize ---------------------------------------------------------------------
def test_delete_and_optimize_rewrites_pass_when_the_data_is_valid(table_uri):
    t = _table(table_uri)
    t.append(make_data(range(10, 14), [0, 1] * 2))
    t.alter.add_constraint("id_small", pc.field("id") < 100)
    t.delete([("id", "=", 4)])  # rewrites part of a file
    assert t.optimize() is not None
    assert sorted(t.to_arrow().column("id").to_pylist()) == [i for i in range(14) if i != 4]
    assert [c.operation for c in t.history(3)] == ["optimize", "delete", "add_constraint"]


def test_delete_rewrite_is_checked(table_uri):
    t = _table(table_uri)
    _force_constraint(table_uri, "id_small", encode_expression(pc.field("id") < 8))  # v2: ids 8, 9 violate
    t.refresh()
    files = parquet_files(table_uri)
    with pytest.raises(lh.ConstraintViolationError) as info:
        t.delete([("id", "=", 0)])  # rewrites the file of partition 0 keeping id 8
    assert info.value.constraint == "id_small" and [r["id"] for r in info.value.rows] == [8]
    _unchanged(table_uri, 2, files)
    assert t.delete([("part", "=", 1)]) == 3  # drops whole files: nothing is rewritten
    assert t.delete([("id", ">=", 8)]) == 4   # the rewrite keeps only valid rows
    assert sorted(t.to_arrow().column("id").to_pylist()) == [0, 2, 4, 6]


def test_optimize_rewrite_is_checked(table_uri):
    t = _table(table_uri)
    t.append(make_data(range(10, 14), [0, 1] * 2))
    _force_constraint(table_uri, "id_small", encode_expression(pc.field("id") < 12))
    t.refresh()
    files = parquet_files(table_uri)
    with pytest.raises(lh.ConstraintViolationError) as info:
        t.optimize()
    assert info.value.constraint == "id_small"
    _unchanged(table_uri, 3, files)


def test_a_constraint_that_cannot_be_decoded_stops_writes_not_reads(table_uri):
    t = _table(table_uri)
    t.append(make_data(range(10, 12), [0, 1]))  # v2: two files per partition, so optimize has work
    _force_constraint(table_uri, "future", '{"expr":{"field":["id"]},"format":99}')  # v3
    t.refresh()
    files = parquet_files(table_uri)
    with pytest.raises(lh.InvalidTableError, match=r"constraint\.future"):
        t.append(make_data([50], 0))
    with pytest.raises(lh.InvalidTableError, match=r"constraint\.future"):
        t.optimize()
    _unchanged(table_uri, 3, files)
    assert t.to_arrow().num_rows == 12  # readers ignore constraints
    with pytest.raises(lh.InvalidTableError, match=r"constraint\.future"):
        t.constraints  # noqa: B018
    assert t.delete([("part", "=", 1)]) == 4  # drops whole files, writes none
    t.alter.drop_constraint("future")
    assert t.append(make_data([50], 0)) == 6


# -- properties --------------------------------------------------------------------------------------
def test_set_and_unset_properties_round_trip(table_uri):
    t = _table(table_uri)
    assert t.alter.set_properties({"owner": "ops", "checkpoint_interval": 4, "note": "é ü"}) == 2
    reopened = lh.Table.open(table_uri)
    assert (reopened.properties["owner"], reopened.properties["checkpoint_interval"]) == ("ops", "4")
    assert reopened.properties["note"] == "é ü"
    assert t.alter.unset_properties(["owner", "note"]) == 3
    assert "owner" not in lh.Table.open(table_uri).properties
    assert t.alter.unset_properties("checkpoint_interval") == 4  # a single name; falls back to the default
    assert "checkpoint_interval" not in t.properties
    history = t.history(3)
    assert [c.operation for c in history] == ["unset_properties", "unset_properties", "set_properties"]
    assert history[2].info["parameters"] == {"properties": {"owner": "ops", "checkpoint_interval": "4",
                                                            "note": "é ü"}}
    assert history[1].info["parameters"] == {"names": ["owner", "note"]}


def test_a_property_set_later_takes_effect(table_uri):
    t = _table(table_uri)
    t.alter.set_properties({"checkpoint_interval": "3"})  # v2
    t.append(make_data([20], 0))                          # v3: divisible by 3
    assert 3 in checkpoint_versions(table_uri)


@pytest.mark.parametrize(("props", "named"), [
    ({"checkpoint_interval": "0"}, "checkpoint_interval"),
    ({"target_file_size": "lots"}, "target_file_size"),
    ({"vacuum_min_retention_seconds": "-1"}, "vacuum_min_retention_seconds"),
    ({"log_min_retention_seconds": "1.5"}, "log_min_retention_seconds"),
    ({"constraint.x": '{"expr":{"field":["id"]},"format":1}'}, "constraint.x"),
    ({"owner": None}, "owner"),
    ({"": "x"}, "''"),
    ({7: "x"}, "7"),
])
def test_invalid_properties_are_refused_naming_them(table_uri, props, named):
    t = _table(table_uri)
    with pytest.raises(lh.InvalidTableError, match=re.escape(named)):
        t.alter.set_properties(props)
    assert t.version == 1 and lh.Table.open(table_uri).version == 1


def test_invalid_property_changes_are_refused(table_uri):
    t = _table(table_uri, properties={"owner": "ops"})
    with pytest.raises(lh.InvalidTableError, match="'colour'"):
        t.alter.unset_properties(["owner", "colour"])
    with pytest.raises(lh.InvalidTableError, match="drop_constraint"):
        t.alter.unset_properties(["constraint.x"])
    with pytest.raises(lh.InvalidTableError):
        t.alter.unset_properties([])
    with pytest.raises(lh.InvalidTableError):
        t.alter.set_properties({})
    with pytest.raises(lh.InvalidTableError, match="add_constraint"):
        lh.Table.create(table_uri + "-2", SCHEMA, properties={"constraint.x": "{}"})
    assert t.version == 1 and t.properties["owner"] == "ops"


def test_every_property_lakehouse_reads_is_documented():
    text = FORMAT_MD.read_text(encoding="utf-8")
    section = text[text.index("## 16. Table properties"):text.index("### 16.1 Constraints")]
    documented = set(re.findall(r"^\| `([a-z_.<>]+)` \|", section, flags=re.M))
    assert documented == set(KNOWN_PROPERTIES) | {"constraint.<name>"}


# -- concurrency -------------------------------------------------------------------------------------
def test_a_write_that_read_before_a_new_constraint_fails_to_commit(table_uri):
    t = _table(table_uri)
    other = lh.Table.open(table_uri)
    files = parquet_files(table_uri)
    tx = t.transaction()  # reads version 1, before the constraint
    tx.append(make_data([100], 0))  # written without the constraint
    other.alter.add_constraint("id_small", pc.field("id") < 100)  # v2
    with pytest.raises(lh.CommitConflictError):
        tx.commit()
    _unchanged(table_uri, 2, files)  # the transaction's files were deleted
    with pytest.raises(lh.CommitConflictError):  # a stale handle's blind append conflicts as well
        t.append(make_data([101], 0))
    _unchanged(table_uri, 2, files)
    t.refresh()
    with pytest.raises(lh.ConstraintViolationError):  # once it has seen the constraint it is checked
        t.append(make_data([101], 0))


@pytest.mark.parametrize("valid", [True, False])
def test_an_append_landing_during_add_constraint_is_verified(table_uri, monkeypatch, valid):
    t = _table(table_uri)
    other = lh.Table.open(table_uri)
    real = alter_module._verify_existing
    calls: list[int] = []

    def racing(storage, state, constraint, checked):
        calls.append(state.version)
        if len(calls) == 1:  # lands after add_constraint read version 1 and before it commits
            other.append(make_data([50 if valid else 500], 0))
        real(storage, state, constraint, checked)

    monkeypatch.setattr(alter_module, "_verify_existing", racing)
    if valid:
        assert t.alter.add_constraint("id_small", pc.field("id") < 100) == 3
        assert [c.operation for c in t.history(2)] == ["add_constraint", "append"]
    else:
        with pytest.raises(lh.ConstraintViolationError) as info:
            t.alter.add_constraint("id_small", pc.field("id") < 100)
        assert [r["id"] for r in info.value.rows] == [500]
        assert t.constraints == {} and t.version == 2
    assert calls == [1, 2]


def test_appends_racing_add_constraint_never_leave_a_violating_row(tmp_path):
    """Threads append while the constraint is added (it is rebuilt on each newer version), then try
    rows that break it: those are refused, or conflict when the handle had not seen the constraint."""
    uri = str(tmp_path / "race")
    _table(uri)
    added = threading.Event()
    outcomes: list[tuple[int, str]] = []

    def appender(k: int) -> None:
        mine = lh.Table.open(uri)
        for i in range(5):
            if i == 3:
                added.wait(60)
            ident = 100 + 10 * k + i if i < 3 else 1000 * k + i  # the last two break id < 1000
            try:
                mine.append(make_data([ident], k % 2))
                outcomes.append((ident, "ok"))
            except lh.CommitConflictError:
                outcomes.append((ident, "conflict"))
            except lh.ConstraintViolationError:
                outcomes.append((ident, "refused"))
            mine.refresh()

    threads = [threading.Thread(target=appender, args=(k,)) for k in range(1, 4)]
    for th in threads:
        th.start()
    try:  # at most 9 appends can win against it: fewer than its attempts
        version = lh.Table.open(uri).alter.add_constraint("id_small", pc.field("id") < 1000)
    finally:
        added.set()
        for th in threads:
            th.join()
    final = lh.Table.open(uri)
    assert "constraint.id_small" in final.properties
    assert all(i < 1000 for i in final.to_arrow().column("id").to_pylist())
    assert {o for i, o in outcomes if i >= 1000} <= {"refused", "conflict"}
    assert final.to_arrow().num_rows == 10 + sum(o == "ok" for _, o in outcomes)
    assert final.history()[::-1][version].operation == "add_constraint"


# -- the stored encoding -----------------------------------------------------------------------------
def test_the_encoding_is_canonical_json():
    expr = (pc.field("a") > 0) & pc.field("s").isin(["x", None]) | pc.field("b").is_null(nan_is_null=True)
    text = encode_expression(expr)
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(text)["format"] == 1
    assert decode_expression(text).equals(expr)
    assert encode_expression(decode_expression(text)) == text


@pytest.mark.parametrize("expr", [
    pc.field("f") != float("nan"),
    pc.field("f") < float("inf"),
    pc.field("b") == b"\x00\xff",
    pc.field("d") > pc.scalar(pa.scalar(1, pa.date32())),
    pc.field("ts") > pc.scalar(pa.scalar(5, pa.timestamp("ns", tz="Europe/Paris"))),
    pc.field("t") > pc.scalar(pa.scalar(5, pa.time64("us"))),
    pc.field("du") > pc.scalar(pa.scalar(5, pa.duration("ms"))),
    pc.field("dec") > pc.scalar(pa.scalar(__import__("decimal").Decimal("-1.50"), pa.decimal256(40, 2))),
    pc.field("fb") == pc.scalar(pa.scalar(b"ab", pa.binary(2))),
    pc.field("u") < pc.scalar(pa.scalar(2**64 - 1, pa.uint64())),
    pc.field("st", "inner") == "é",
    pc.field("a").cast(pa.int8(), safe=False) > 0,
    pc.match_like(pc.field("s"), "%@%", ignore_case=True),
    pc.starts_with(pc.field("s"), "x"),
    pc.field("a").isin(pa.array([], pa.int64())),
    pc.field("n") == pc.scalar(pa.scalar(None, pa.int16())),
    pc.scalar(True),
])
def test_the_encoding_round_trips(expr):
    text = encode_expression(expr)
    assert decode_expression(text).equals(expr), text
    assert encode_expression(decode_expression(text)) == text


@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_random_filters_round_trip(data):
    typ = data.draw(st.sampled_from(DEFAULT_TYPES))
    expr = data.draw(row_filters(pa.schema([("a", typ), ("b", pa.int64()), ("c", pa.string())])))
    text = encode_expression(expr)
    assert decode_expression(text).equals(expr)
    assert encode_expression(decode_expression(text)) == text


@pytest.mark.parametrize("text", [
    "", "not json", "[]", "{}", '{"format":1}', '{"expr":{"field":["a"]},"format":2}',
    '{"expr":{"field":["a"]},"format":true}', '{"expr":{"field":[]},"format":1}',
    '{"expr":{"field":"a"},"format":1}', '{"expr":{"literal":1,"type":"int65"},"format":1}',
    '{"expr":{"literal":"x","type":"int64"},"format":1}', '{"expr":{"literal":1.5,"type":"int64"},"format":1}',
    '{"expr":{"literal":true,"type":"int64"},"format":1}', '{"expr":{"literal":1,"type":"bool"},"format":1}',
    '{"expr":{"literal":"zz","type":"binary"},"format":1}',
    '{"expr":{"literal":1,"type":"decimal128(5, 2)"},"format":1}',
    '{"expr":{"literal":1,"type":"int8","extra":0},"format":1}', '{"expr":{"literal":1000,"type":"int8"},"format":1}',
    '{"expr":{"call":"no_such_function","args":[]},"format":1}', '{"expr":{"call":"random","args":[]},"format":1}',
    '{"expr":{"args":[{"field":["a"]}],"call":"is_null","options":{"kind":"null"}},"format":1}',
    '{"expr":{"args":[{"field":["a"]}],"call":"is_null","options":{"kind":"slice","start":0}},"format":1}',
    '{"expr":{"literal":1,"type":"timestamp[xs]"},"format":1}',
    '{"expr":' + '{"call":"invert","args":[' * 5000 + '{"field":["a"]}' + "]}" * 5000 + ',"format":1}',
])
def test_malformed_encodings_are_refused(text):
    with pytest.raises(lh.InvalidFilterError):
        decode_expression(text)


# -- the property test: random rows against a model of the constraint ------------------------------------
_OPS = {"<": (pc.less, lambda x, y: x < y), ">=": (pc.greater_equal, lambda x, y: x >= y),
        "==": (pc.equal, lambda x, y: x == y), "!=": (pc.not_equal, lambda x, y: x != y)}


def _and(x: bool | None, y: bool | None) -> bool | None:
    if x is False or y is False:
        return False
    return None if x is None or y is None else True


def _or(x: bool | None, y: bool | None) -> bool | None:
    if x is True or y is True:
        return True
    return None if x is None or y is None else False


@st.composite
def _constraints(draw: st.DrawFn, depth: int = 2) -> tuple[pc.Expression, Any]:
    """A boolean expression over columns ``a`` (int64) and ``s`` (string) and a three-valued Python
    model of it (None stands for NULL)."""
    kind = draw(st.sampled_from(["cmp", "cmp", "null", "and", "or", "not"] if depth else ["cmp", "null"]))
    if kind == "cmp":
        column = draw(st.sampled_from(["a", "s"]))
        op = draw(st.sampled_from(sorted(_OPS)))
        value = draw(st.integers(-3, 3) if column == "a" else st.sampled_from(["", "a", "b"]))
        build, compare = _OPS[op]
        return build(pc.field(column), value), lambda r: None if r[column] is None else compare(r[column], value)
    if kind == "null":
        column = draw(st.sampled_from(["a", "s"]))
        return pc.field(column).is_null(), lambda r: r[column] is None
    left, lmodel = draw(_constraints(depth - 1))
    if kind == "not":
        return ~left, lambda r: None if lmodel(r) is None else not lmodel(r)
    right, rmodel = draw(_constraints(depth - 1))
    if kind == "and":
        return left & right, lambda r: _and(lmodel(r), rmodel(r))
    return left | right, lambda r: _or(lmodel(r), rmodel(r))


_ROW = st.fixed_dictionaries({"a": st.one_of(st.none(), st.integers(-4, 4)),
                              "s": st.one_of(st.none(), st.sampled_from(["", "a", "b", "c"]))})
_MODEL_SCHEMA = pa.schema([("a", pa.int64()), ("s", pa.string())])


@given(constraint=_constraints(), existing=st.lists(_ROW, max_size=6), new=st.lists(_ROW, min_size=1, max_size=8))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_rows_pass_or_fail_as_the_model_says(constraint, existing, new):
    expr, model = constraint
    uri = f"memory://constraints-model-{uuid.uuid4().hex}"
    t = lh.Table.create(uri, _MODEL_SCHEMA)
    if existing:
        t.append(pa.Table.from_pylist(existing, schema=_MODEL_SCHEMA))
    before = rows(t.to_arrow())
    if any(model(r) is False for r in existing):
        event("adding the constraint is refused")
        with pytest.raises(lh.ConstraintViolationError):
            t.alter.add_constraint("c", expr)
        assert lh.Table.open(uri).constraints == {}
        return
    version = t.alter.add_constraint("c", expr)
    data = pa.Table.from_pylist(new, schema=_MODEL_SCHEMA)
    violating = [r for r in new if model(r) is False]
    event("the append is refused" if violating else "the append lands")
    if violating:
        with pytest.raises(lh.ConstraintViolationError) as info:
            t.append(data)
        assert all(model(r) is False for r in info.value.rows)
        assert len(info.value.rows) == min(5, len(violating))
        assert lh.Table.open(uri).version == version and rows(lh.Table.open(uri).to_arrow()) == before
    else:
        assert t.append(data) == version + 1
        assert rows(lh.Table.open(uri).to_arrow()) == rows(pa.Table.from_pylist(existing + new,
                                                                               schema=_MODEL_SCHEMA))


def test_not_null_inside_a_struct_is_enforced_where_the_struct_is_present(table_uri):
    st = pa.struct([pa.field("x", pa.int64(), nullable=False), pa.field("y", pa.string())])
    t = lh.Table.create(table_uri, pa.schema([pa.field("id", pa.int64()), pa.field("s", st)]))
    ok = pa.table({"id": [1, 2], "s": pa.array([{"x": 1, "y": "a"}, None], st)})  # a null struct is fine
    assert t.append(ok) == 1
    loose = pa.struct([pa.field("x", pa.int64()), pa.field("y", pa.string())])
    bad = pa.table({"id": [3, 4], "s": pa.array([{"x": None, "y": "b"}, {"x": 2, "y": None}], loose)})
    with pytest.raises(lh.ConstraintViolationError) as info:
        t.append(bad)
    assert info.value.column == "s.x" and info.value.constraint == "NOT NULL"
    assert info.value.rows == [{"id": 3, "s": {"x": None, "y": "b"}}]
    assert t.version == 1 and t.to_arrow().num_rows == 2

"""Schema evolution (issue 5): add / rename / drop / widen columns, schema_mode="merge" writes, and the
column mapping behind them (field ids, physical names), on every backend of the ``table_uri`` fixture."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import uuid

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import fs_and_root, rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.commit import CommitRequest, commit
from lakehouse.log import Metadata, Protocol
from lakehouse.replay import read_entry
from lakehouse.storage import Storage


def _table(uri: str, data: pa.Table, **kwargs) -> lh.Table:
    return lh.write_table(uri, data, **kwargs)


def _file_schemas(t: lh.Table) -> list[pa.Schema]:
    """The Arrow schemas stored in the table's live Parquet files."""
    fs, root = fs_and_root(t.uri)
    out = []
    for path in t.files().column("path").to_pylist():
        with fs.open(f"{root}/{path}", "rb") as f:
            out.append(pq.read_schema(f))
    return out


def _entry(t: lh.Table, version: int):
    return read_entry(t._storage, version)


# -- field ids and physical names -------------------------------------------------------------------
def test_new_tables_give_every_field_an_id_and_write_it_into_parquet(table_uri):
    schema = pa.schema([("a", pa.int64()), ("s", pa.struct([("x", pa.int32()), ("y", pa.string())])),
                        ("p", pa.int32())])
    data = pa.table({"a": [1, 2], "s": [{"x": 1, "y": "u"}, None], "p": pa.array([1, 1], pa.int32())},
                    schema=schema)
    t = _table(table_uri, data, partition_by=["p"])
    assert t.snapshot().field_ids == {"a": 1, "s": 2, "p": 5}
    assert t.schema.equals(schema, check_metadata=True)  # the mapping metadata is not shown
    assert t.to_arrow().schema.equals(schema, check_metadata=True)
    (file_schema,) = _file_schemas(t)
    assert file_schema.names == ["a", "s"]  # physical names == names for a table never renamed
    assert file_schema.field("a").metadata[b"PARQUET:field_id"] == b"1"
    assert file_schema.field("s").type.field("y").metadata[b"PARQUET:field_id"] == b"4"
    assert _entry(t, 0).protocol == Protocol(min_reader_version=1, min_writer_version=1)


def test_user_supplied_mapping_metadata_is_replaced_at_creation(table_uri):
    field = pa.field("a", pa.int64(), metadata={"PARQUET:field_id": "42", "lakehouse:physical": "zz", "k": "v"})
    t = lh.Table.create(table_uri, pa.schema([field]))
    assert t.snapshot().field_ids == {"a": 1}
    assert t.schema.field("a").metadata == {b"k": b"v"}
    t.append(pa.table({"a": [1]}))
    assert _file_schemas(t)[0].names == ["a"]


# -- add ---------------------------------------------------------------------------------------------
def test_add_column_old_files_read_null(table_uri):
    t = _table(table_uri, pa.table({"a": [1, 2]}))
    v = t.alter.add_column(pa.field("b", pa.string()))
    assert v == 1 and t.schema.names == ["a", "b"]
    assert t.history(1)[0].operation == "add_column"
    t.append(pa.table({"a": [3], "b": ["x"]}))
    got = t.to_arrow()
    assert rows(got) == [(1, None), (2, None), (3, "x")]
    assert rows(t.to_arrow(filter=pc.field("b").is_null())) == [(1, None), (2, None)]
    assert rows(t.to_arrow(filter=[("b", "=", "x")])) == [(3, "x")]
    assert t.to_arrow(version=0).column_names == ["a"]
    assert t.snapshot().field_ids == {"a": 1, "b": 2}
    assert _entry(t, 1).protocol is None  # an add needs no newer reader


def test_add_nested_column(table_uri):
    s = pa.struct([("x", pa.int32())])
    t = _table(table_uri, pa.table({"id": [1, 2], "s": pa.array([{"x": 1}, None], s)}))
    t.alter.add_column(pa.field("y", pa.string()), parent="s")
    t.append(pa.table({"id": [3], "s": pa.array([{"x": 3, "y": "new"}], t.schema.field("s").type)}))
    assert sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "s": {"x": 1, "y": None}}, {"id": 2, "s": None}, {"id": 3, "s": {"x": 3, "y": "new"}},
    ]
    assert t.to_arrow(filter=pc.field("s", "y") == "new").column("id").to_pylist() == [3]
    assert t.to_arrow(version=0).schema.field("s").type == s


def test_add_column_refusals(table_uri):
    t = _table(table_uri, pa.table({"a": [1], "s": [{"x": 1}]}))
    with pytest.raises(lh.SchemaMismatchError, match="nullable") as e:
        t.alter.add_column(pa.field("b", pa.int64(), nullable=False))
    assert e.value.column == "b"
    with pytest.raises(lh.SchemaMismatchError, match="exists") as e:
        t.alter.add_column(pa.field("a", pa.int64()))
    assert e.value.column == "a"
    with pytest.raises(lh.SchemaMismatchError, match="type null"):
        t.alter.add_column(pa.field("n", pa.null()))
    with pytest.raises(lh.SchemaMismatchError, match="not a struct"):
        t.alter.add_column(pa.field("q", pa.int8()), parent="a")
    with pytest.raises(lh.ColumnNotFoundError):
        t.alter.add_column(pa.field("q", pa.int8()), parent="nope")
    with pytest.raises(lh.SchemaMismatchError) as e:
        t.alter.add_column(pa.field("x", pa.int8()), parent=["s"])
    assert e.value.column == "s.x"
    assert t.version == 0


# -- rename ------------------------------------------------------------------------------------------
def test_rename_keeps_data_without_rewriting_files(table_uri):
    t = _table(table_uri, pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]}))
    t.append(pa.table({"a": [10, 20], "b": ["u", "v"]}))
    files_before = sorted(t.files().column("path").to_pylist())
    assert t.alter.rename_column("a", "n") == 2
    assert sorted(t.files().column("path").to_pylist()) == files_before
    assert t.schema.names == ["n", "b"]
    assert rows(t.to_arrow()) == rows(pa.table({"n": [1, 2, 3, 10, 20], "b": ["x", "y", "z", "u", "v"]}))
    assert t.to_arrow(version=1).column_names == ["a", "b"]
    assert t.history(1)[0].operation == "rename_column"
    # the rename needs readers that map columns: the protocol goes up in the same commit
    assert _entry(t, 2).protocol == Protocol(min_reader_version=2, min_writer_version=2)
    assert t.snapshot().field_ids == {"n": 1, "b": 2}
    # new files are written under the physical name; reads see one column
    t.append(pa.table({"n": [30], "b": ["w"]}))
    assert rows(t.to_arrow(columns=["n"])) == [(1,), (2,), (3,), (10,), (20,), (30,)]
    assert all(s.names == ["a", "b"] for s in _file_schemas(t))
    assert "min.n" in t.files().column_names  # the files table shows the current name
    reopened = lh.Table.open(table_uri)
    assert rows(reopened.to_arrow(filter=[("n", ">=", 10)])) == [(10, "u"), (20, "v"), (30, "w")]


def test_filters_on_renamed_column_prune_and_match(table_uri):
    t = _table(table_uri, pa.table({"a": [1, 2], "b": ["x", "y"]}))
    t.append(pa.table({"a": [10, 11], "b": ["u", "v"]}))
    t.append(pa.table({"a": [20, None], "b": ["w", None]}))
    t.alter.rename_column("a", "n")
    everything = t.to_arrow()
    for flt, pyfilter in [
        (pc.field("n") >= 10, lambda r: r["n"] is not None and r["n"] >= 10),
        ([("n", "<", 5)], lambda r: r["n"] is not None and r["n"] < 5),
        (pc.field("n").is_null(), lambda r: r["n"] is None),
        ([("n", "in", [2, 20])], lambda r: r["n"] in (2, 20)),
        ((pc.field("n") > 1) & (pc.field("b") != "u"), lambda r: r["n"] is not None and r["n"] > 1
         and r["b"] is not None and r["b"] != "u"),
    ]:
        expected = [r for r in everything.to_pylist() if pyfilter(r)]
        got = t.to_arrow(filter=flt)
        assert sorted(map(str, got.to_pylist())) == sorted(map(str, expected)), flt
        assert sum(b.num_rows for b in t.to_batches(filter=flt)) == len(expected)
    assert len(t.files(filter=pc.field("n") >= 10)) == 2
    assert len(t.files(filter=[("n", "<", 5)])) == 1
    assert len(t.files(filter=pc.field("n").is_null())) == 1


def test_rename_then_reuse_the_old_name(table_uri):
    t = _table(table_uri, pa.table({"a": [1, 2], "b": ["x", "y"]}))
    t.alter.rename_column("a", "c")
    t.alter.add_column(pa.field("a", pa.int64()))  # physical "a" is taken by c
    t.append(pa.table({"c": [3], "b": ["z"], "a": [100]}))
    assert rows(t.to_arrow()) == [(1, "x", None), (2, "y", None), (3, "z", 100)]
    # a filter on the new "a" must not use c's statistics (both were named a)
    assert rows(t.to_arrow(filter=[("a", "=", 1)])) == []
    assert rows(t.to_arrow(filter=[("c", "=", 1)])) == [(1, "x", None)]
    assert rows(t.to_arrow(filter=pc.field("a") == 100)) == [(3, "z", 100)]
    with pytest.raises(lh.SchemaMismatchError):
        t.to_pyarrow_dataset()


def test_rename_nested_child(table_uri):
    s = pa.struct([("x", pa.int32()), ("y", pa.string())])
    t = _table(table_uri, pa.table({"id": [1, 2], "s": pa.array([{"x": 1, "y": "a"}, {"x": 2, "y": None}], s)}))
    t.alter.rename_column(["s", "x"], "z")
    assert t.schema.field("s").type == pa.struct([("z", pa.int32()), ("y", pa.string())])
    assert sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "s": {"z": 1, "y": "a"}}, {"id": 2, "s": {"z": 2, "y": None}}]
    assert t.to_arrow(filter=pc.field("s", "z") == 2).column("id").to_pylist() == [2]
    t.append(pa.table({"id": [3], "s": pa.array([{"z": 3, "y": "c"}], t.schema.field("s").type)}))
    assert sorted(t.to_arrow(columns=["s"]).column("s").to_pylist(), key=str)[-1] == {"z": 3, "y": "c"}
    assert all(sch.field("s").type.names == ["x", "y"] for sch in _file_schemas(t))
    with pytest.raises(lh.SchemaMismatchError) as e:
        t.to_pyarrow_dataset()
    assert e.value.column == "s.z"


def test_rename_refusals(table_uri):
    t = _table(table_uri, pa.table({"a": [1], "b": [2]}))
    with pytest.raises(lh.SchemaMismatchError, match="exists") as e:
        t.alter.rename_column("a", "b")
    assert e.value.column == "a"
    with pytest.raises(lh.ColumnNotFoundError) as nf:
        t.alter.rename_column("nope", "c")
    assert nf.value.column == "nope"
    assert t.alter.rename_column("a", "a") == 0  # nothing to do: no commit
    t.alter.add_constraint("a_pos", pc.field("a") > 0)
    with pytest.raises(lh.SchemaMismatchError, match="constraint") as e:
        t.alter.rename_column("a", "c")
    assert e.value.column == "a"
    assert t.alter.rename_column("b", "c") == 2  # a constraint on another column does not matter


# -- drop --------------------------------------------------------------------------------------------
def test_drop_then_readd_does_not_resurrect_data(table_uri):
    t = _table(table_uri, pa.table({"a": [1, 2], "b": ["x", "y"]}))
    assert t.alter.drop_column("b") == 1
    assert t.to_arrow().column_names == ["a"]
    assert t.to_arrow(version=0).column("b").to_pylist() == ["x", "y"]  # old versions keep it
    t.alter.add_column(pa.field("b", pa.string()))
    t.append(pa.table({"a": [3], "b": ["new"]}))
    assert rows(t.to_arrow()) == [(1, None), (2, None), (3, "new")]
    assert rows(t.to_arrow(filter=[("b", "=", "x")])) == []
    assert _entry(t, 1).protocol == Protocol(min_reader_version=2, min_writer_version=2)
    assert t.snapshot().field_ids == {"a": 1, "b": 3}
    with pytest.raises(lh.ColumnNotFoundError):
        t.to_arrow(version=1, columns=["b"])


def test_drop_nested_child_and_refusals(table_uri):
    s = pa.struct([("x", pa.int32()), ("y", pa.string())])
    data = pa.table({"id": [1], "s": pa.array([{"x": 1, "y": "a"}], s), "p": [7]})
    t = _table(table_uri, data, partition_by=["p"])
    t.alter.drop_column(["s", "y"])
    assert t.to_arrow().to_pylist() == [{"id": 1, "s": {"x": 1}, "p": 7}]
    with pytest.raises(lh.SchemaMismatchError, match="last data column") as e:
        t.alter.drop_column(["s", "x"])
    assert e.value.column == "s.x"
    with pytest.raises(lh.SchemaMismatchError, match="partition") as e:
        t.alter.drop_column("p")
    assert e.value.column == "p"
    t.alter.drop_column("s")
    with pytest.raises(lh.SchemaMismatchError, match="last data column"):
        t.alter.drop_column("id")
    with pytest.raises(lh.ColumnNotFoundError):
        t.alter.drop_column("s")
    assert t.to_arrow().to_pylist() == [{"id": 1, "p": 7}]


# -- widen -------------------------------------------------------------------------------------------
WIDENINGS = [
    (pa.int8(), pa.int16(), [-128, 5, None], [127, 2**14]),
    (pa.int16(), pa.int32(), [-300, 5, None], [2**20]),
    (pa.int32(), pa.int64(), [2**31 - 1, -5, None], [2**40]),
    (pa.int8(), pa.int64(), [1, None], [2**40]),
    (pa.uint8(), pa.uint32(), [255, 0, None], [2**30]),
    (pa.float32(), pa.float64(), [1.5, -2.25, None], [1e300]),
    (pa.date32(), pa.timestamp("us"), [dt.date(2024, 1, 2), dt.date(1969, 12, 31), None],
     [dt.datetime(2024, 1, 2, 12, 30)]),
    (pa.date32(), pa.timestamp("s"), [dt.date(2024, 1, 2), None], [dt.datetime(2030, 5, 1, 1, 2, 3)]),
    (pa.date64(), pa.timestamp("ms"), [dt.date(2024, 1, 2), None], [dt.datetime(2030, 5, 1, 1, 2, 3)]),
    (pa.decimal128(5, 2), pa.decimal128(10, 2), [decimal.Decimal("123.45"), None], [decimal.Decimal("12345678.91")]),
    (pa.decimal128(5, 2), pa.decimal128(12, 4), [decimal.Decimal("-1.25"), None], [decimal.Decimal("0.0001")]),
]


@pytest.mark.parametrize(("old", "new", "old_values", "new_values"), WIDENINGS, ids=lambda v: str(v)[:20])
def test_widen_reads_old_files_as_the_new_type(table_uri, old, new, old_values, new_values):
    t = _table(table_uri, pa.table({"c": pa.array(old_values, old), "k": list(range(len(old_values)))}))
    assert t.alter.widen_column("c", new) == 1
    assert t.schema.field("c").type == new
    # only date -> timestamp changes how statistics are encoded: version 1 readers would misread them
    raised = Protocol(min_reader_version=2, min_writer_version=2) if pa.types.is_date(old) else None
    assert _entry(t, 1).protocol == raised
    n = len(old_values)
    t.append(pa.table({"c": pa.array(new_values, new), "k": list(range(n, n + len(new_values)))}))
    got = t.to_arrow().sort_by("k")
    assert got.schema.field("c").type == new
    expected = pa.array(old_values, old).cast(new).to_pylist() + pa.array(new_values, new).to_pylist()
    assert got.column("c").to_pylist() == expected
    # statistics of the old file were typed by the old schema: filters prune and match correctly
    low = pa.array(old_values[:1], old).cast(new)[0]
    replayed = lh.Table.open(table_uri)  # the log replayed from version 0 (no checkpoint)
    for expr in (pc.field("c") == low, pc.field("c") > low, pc.field("c") <= low, pc.field("c").is_null()):
        want = sorted(map(str, [r for r in got.to_pylist() if _holds(expr, r["c"], low)]))
        assert sorted(map(str, t.to_arrow(filter=expr).to_pylist())) == want, expr
        assert sorted(map(str, replayed.to_arrow(filter=expr).to_pylist())) == want, expr
    assert t.to_arrow(version=0).schema.field("c").type == old
    t.checkpoint()
    assert lh.Table.open(table_uri).to_arrow(filter=pc.field("c") == low).num_rows == 1


def _holds(expr: pc.Expression, value, low) -> bool:
    text = str(expr)
    if "is_null" in text:
        return value is None
    if value is None:
        return False
    low = low.as_py()
    if "==" in text:
        return value == low
    if ">" in text:
        return value > low
    return value <= low


@pytest.mark.parametrize(("old", "new"), [
    (pa.int64(), pa.int32()), (pa.float64(), pa.float32()), (pa.int32(), pa.uint64()), (pa.int64(), pa.string()),
    (pa.int32(), pa.float64()), (pa.date32(), pa.timestamp("us", tz="UTC")), (pa.date32(), pa.timestamp("ns")),
    (pa.decimal128(10, 2), pa.decimal128(10, 3)), (pa.string(), pa.large_string()), (pa.timestamp("ms"), pa.date32()),
])
def test_widen_refuses_everything_else(table_uri, old, new):
    t = lh.Table.create(table_uri, pa.schema([("c", old), ("d", pa.int8())]))
    with pytest.raises(lh.SchemaMismatchError, match="only widening") as e:
        t.alter.widen_column("c", new)
    assert e.value.column == "c"
    assert t.version == 0


def test_widen_same_type_is_a_no_op_and_unknown_column_is_named(table_uri):
    t = lh.Table.create(table_uri, pa.schema([("c", pa.int32())]))
    assert t.alter.widen_column("c", pa.int32()) == 0
    with pytest.raises(lh.ColumnNotFoundError) as e:
        t.alter.widen_column("x", pa.int64())
    assert e.value.column == "x"


def test_widen_nested_child(table_uri):
    s = pa.struct([("x", pa.int32())])
    t = _table(table_uri, pa.table({"s": pa.array([{"x": 1}, {"x": 2}], s)}))
    t.alter.widen_column(["s", "x"], pa.int64())
    t.append(pa.table({"s": pa.array([{"x": 2**40}], pa.struct([("x", pa.int64())]))}))
    assert sorted(v["x"] for v in t.to_arrow().column("s").to_pylist()) == [1, 2, 2**40]
    assert t.to_arrow(filter=pc.field("s", "x") > 1).num_rows == 2


# -- schema_mode="merge" -----------------------------------------------------------------------------
def test_merge_append_adds_columns_and_widens_in_one_commit(table_uri):
    t = _table(table_uri, pa.table({"a": pa.array([1, 2], pa.int32()), "b": ["x", "y"]}))
    with pytest.raises(lh.SchemaMismatchError) as e:  # strict by default
        t.append(pa.table({"a": pa.array([3], pa.int32()), "b": ["z"], "c": [1.5]}))
    assert e.value.column == "c"
    v = t.append(pa.table({"c": [1.5], "a": pa.array([2**40], pa.int64()), "b": ["z"]}), schema_mode="merge")
    assert v == 1
    assert [(f.name, f.type) for f in t.schema] == [("a", pa.int64()), ("b", pa.string()), ("c", pa.float64())]
    entry = _entry(t, 1)
    assert entry.metadata is not None and len(entry.add) == 1 and not entry.commit.blind_append
    assert entry.commit.parameters == {"schema_mode": "merge"}
    assert rows(t.to_arrow()) == [(1, "x", None), (2, "y", None), (2**40, "z", 1.5)]
    # narrower data is cast up; the same schema again changes nothing (a blind append, no metadata)
    t.append(pa.table({"a": pa.array([5], pa.int8()), "b": ["w"], "c": pa.array([0.5], pa.float32())}),
             schema_mode="merge")
    assert _entry(t, 2).metadata is None and _entry(t, 2).commit.blind_append
    assert t.to_arrow(filter=[("a", "=", 5)]).column("c").to_pylist() == [0.5]
    assert t.to_arrow(version=0).schema.field("a").type == pa.int32()


def test_merge_nested_struct_child(table_uri):
    s = pa.struct([("x", pa.int32())])
    t = _table(table_uri, pa.table({"id": [1], "s": pa.array([{"x": 1}], s)}))
    wider = pa.struct([("y", pa.string()), ("x", pa.int64())])  # another order, a new child, a wider child
    t.append(pa.table({"id": [2], "s": pa.array([{"y": "n", "x": 2**33}], wider)}), schema_mode="merge")
    assert t.schema.field("s").type == pa.struct([("x", pa.int64()), ("y", pa.string())])
    assert sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "s": {"x": 1, "y": None}}, {"id": 2, "s": {"x": 2**33, "y": "n"}}]


@pytest.mark.parametrize(("data", "column", "match"), [
    (pa.table({"a": [1], "n": pa.array([1], pa.int8())}).cast(
        pa.schema([("a", pa.int64()), pa.field("n", pa.int8(), nullable=False)])), "n", "nullable"),
    (pa.table({"a": ["text"]}), "a", "only widening"),
    (pa.table({"a": [1.5]}), "a", "only widening"),
    (pa.table({"a": [1], "z": pa.nulls(1)}), "z", "type null"),
    (pa.table({"a": [1], "s": [{"q": 1}]}), "s", "only widening"),
])
def test_merge_refusals_name_the_column(table_uri, data, column, match):
    t = _table(table_uri, pa.table({"a": [1], "s": pa.array([1], pa.int32())}))
    if "s" not in data.column_names:
        data = data.append_column("s", pa.array([1] * data.num_rows, pa.int32()))
    with pytest.raises(lh.SchemaMismatchError, match=match) as e:
        t.append(data, schema_mode="merge")
    assert e.value.column == column
    assert t.version == 0 and t.schema.names == ["a", "s"]


def test_merge_requires_the_not_null_table_columns(table_uri):
    # a nullable column the data lacks is filled with nulls (tests/test_inputs.py); a NOT NULL one is refused
    schema = pa.schema([("a", pa.int64()), pa.field("b", pa.int64(), nullable=False)])
    t = _table(table_uri, pa.table({"a": [1], "b": [2]}, schema=schema))
    with pytest.raises(lh.SchemaMismatchError, match="missing") as e:
        t.append(pa.table({"a": [1], "c": [3]}), schema_mode="merge")
    assert e.value.column == "b"
    with pytest.raises(ValueError, match="schema_mode"):
        t.append(pa.table({"a": [1], "b": [2]}), schema_mode="loose")


def test_merge_on_overwrite_and_write_table(table_uri):
    t = _table(table_uri, pa.table({"a": [1, 2], "p": [1, 2]}), partition_by=["p"])
    t.overwrite(pa.table({"a": [5], "p": [1], "b": ["x"]}), filter=[("p", "=", 1)], schema_mode="merge")
    assert rows(t.to_arrow()) == [(2, 2, None), (5, 1, "x")]
    t2 = lh.write_table(table_uri, pa.table({"a": [6], "p": [2], "b": ["y"], "c": [True]}), mode="append",
                        schema_mode="merge")
    assert t2.schema.names == ["a", "p", "b", "c"]
    assert rows(t2.to_arrow()) == [(2, 2, None, None), (5, 1, "x", None), (6, 2, "y", True)]
    t2.overwrite(pa.table({"a": [7], "p": [3], "b": ["z"], "c": [False], "d": [1]}), schema_mode="merge")
    assert rows(t2.to_arrow()) == [(7, 3, "z", False, 1)]


def test_merge_inside_a_transaction(table_uri):
    t = _table(table_uri, pa.table({"d": pa.array([dt.date(2024, 1, 1)], pa.date32()), "k": [1]}))
    with t.transaction() as tx:
        tx.append(pa.table({"d": pa.array([dt.date(2024, 3, 1)], pa.date32()), "k": [2]}))
        # widening date -> timestamp re-types the statistics of the file already written above
        tx.append(pa.table({"d": pa.array([dt.datetime(2024, 2, 1, 6)], pa.timestamp("us")), "k": [3], "e": ["x"]}),
                  schema_mode="merge")
        assert tx.schema.names == ["d", "k", "e"]
        tx.delete([("k", "=", 1)])
    assert t.version == 1
    assert t.history(1)[0].operation == "transaction"
    assert _entry(t, 1).protocol == Protocol(min_reader_version=2, min_writer_version=2)  # date -> timestamp
    got = t.to_arrow(filter=pc.field("d") > pa.scalar(dt.datetime(2024, 2, 15), pa.timestamp("us")))
    assert got.to_pylist() == [{"d": dt.datetime(2024, 3, 1), "k": 2, "e": None}]
    assert rows(t.to_arrow(columns=["k"])) == [(2,), (3,)]


def test_merge_commit_conflicts_with_a_concurrent_append(table_uri):
    t1 = _table(table_uri, pa.table({"a": [1]}))
    t2 = lh.Table.open(table_uri)
    tx = t1.transaction()
    tx.append(pa.table({"a": [2], "b": ["x"]}), schema_mode="merge")
    t2.append(pa.table({"a": [3]}))
    with pytest.raises(lh.CommitConflictError):
        tx.commit()
    assert lh.Table.open(table_uri).schema.names == ["a"]


def test_alter_retries_on_a_newer_version(table_uri):
    t1 = _table(table_uri, pa.table({"a": [1]}))
    lh.Table.open(table_uri).append(pa.table({"a": [2]}))
    assert t1.alter.rename_column("a", "b") == 2  # rebuilt on the latest version
    assert rows(t1.to_arrow()) == [(1,), (2,)]
    stale = lh.Table.open(table_uri)
    t1.alter.add_column(pa.field("c", pa.int8()))
    with pytest.raises(lh.CommitConflictError):  # a write at a version before a schema change
        stale.append(pa.table({"b": [3]}))


# -- partition columns -------------------------------------------------------------------------------
def test_partition_column_rename_and_widen(table_uri):
    t = _table(table_uri, pa.table({"v": [1, 2, 3], "p": pa.array([1, 2, 2], pa.int8())}), partition_by=["p"])
    t.alter.rename_column("p", "q")
    assert t.partition_by == ["q"]
    t.alter.widen_column("q", pa.int32())
    t.append(pa.table({"v": [4], "q": pa.array([300], pa.int32())}))
    assert rows(t.to_arrow()) == [(1, 1), (2, 2), (3, 2), (4, 300)]
    assert rows(t.to_arrow(filter=[("q", "=", 2)])) == [(2, 2), (3, 2)]
    assert len(t.files(filter=[("q", "=", 2)])) == 1
    assert "partition.q" in t.files().column_names
    t.delete([("q", "=", 2)])
    assert rows(t.to_arrow()) == [(1, 1), (4, 300)]
    assert t.to_arrow(version=0).schema.field("p").type == pa.int8()


def test_date_partition_widened_to_timestamp(table_uri):
    t = _table(table_uri, pa.table({"v": [1, 2], "d": pa.array([dt.date(2024, 1, 2), dt.date(2024, 1, 3)])}),
               partition_by=["d"])
    t.alter.widen_column("d", pa.timestamp("us"))
    t.append(pa.table({"v": [3], "d": pa.array([dt.datetime(2024, 1, 2, 5)], pa.timestamp("us"))}))
    replayed = lh.Table.open(table_uri)
    assert rows(replayed.to_arrow()) == [(1, dt.datetime(2024, 1, 2)), (2, dt.datetime(2024, 1, 3)),
                                         (3, dt.datetime(2024, 1, 2, 5))]
    early = pc.field("d") < pa.scalar(dt.datetime(2024, 1, 2, 1), pa.timestamp("us"))
    assert rows(replayed.to_arrow(filter=early)) == [(1, dt.datetime(2024, 1, 2))]
    assert len(replayed.files(filter=early)) == 1


# -- reading and maintenance across changes ----------------------------------------------------------
def test_time_travel_reads_each_version_with_its_schema(table_uri):
    t = _table(table_uri, pa.table({"a": pa.array([1], pa.int32()), "b": ["x"]}))
    t.alter.add_column(pa.field("c", pa.float64()))                   # 1
    t.append(pa.table({"a": pa.array([2], pa.int32()), "b": ["y"], "c": [0.5]}))  # 2
    t.alter.rename_column("b", "bb")                                  # 3
    t.alter.widen_column("a", pa.int64())                             # 4
    t.alter.drop_column("c")                                          # 5
    t.append(pa.table({"a": [3], "bb": ["z"]}))                       # 6
    expected = {
        0: ({"a": pa.int32(), "b": pa.string()}, [(1, "x")]),
        1: ({"a": pa.int32(), "b": pa.string(), "c": pa.float64()}, [(1, "x", None)]),
        2: ({"a": pa.int32(), "b": pa.string(), "c": pa.float64()}, [(1, "x", None), (2, "y", 0.5)]),
        3: ({"a": pa.int32(), "bb": pa.string(), "c": pa.float64()}, [(1, "x", None), (2, "y", 0.5)]),
        4: ({"a": pa.int64(), "bb": pa.string(), "c": pa.float64()}, [(1, "x", None), (2, "y", 0.5)]),
        5: ({"a": pa.int64(), "bb": pa.string()}, [(1, "x"), (2, "y")]),
        6: ({"a": pa.int64(), "bb": pa.string()}, [(1, "x"), (2, "y"), (3, "z")]),
    }
    ops = [c.operation for c in t.history()][::-1]
    assert ops == ["write", "add_column", "append", "rename_column", "widen_column", "drop_column", "append"]
    for reader in (t, lh.Table.open(table_uri)):
        for v, (types, want) in expected.items():
            got = reader.to_arrow(version=v)
            assert {f.name: f.type for f in got.schema} == types, v
            assert rows(got) == want, v
            snap = reader.snapshot(version=v)
            assert snap.schema.names == list(types)
    t.checkpoint()
    assert rows(lh.Table.open(table_uri).to_arrow()) == expected[6][1]
    assert rows(lh.Table.open(table_uri).to_arrow(version=2)) == expected[2][1]


def test_restore_optimize_and_delete_across_changes(table_uri):
    t = _table(table_uri, pa.table({"a": [1, 2], "b": ["x", "y"]}))
    t.append(pa.table({"a": [3], "b": ["z"]}))
    t.alter.rename_column("a", "n")
    t.alter.add_column(pa.field("a", pa.int64()))
    t.append(pa.table({"n": [4], "b": ["w"], "a": [40]}))
    before = rows(t.to_arrow())
    assert t.optimize() is not None
    assert rows(t.to_arrow()) == before and len(t.files()) == 1
    assert {s.names[0] for s in _file_schemas(t)} == {"a"}  # n keeps its physical name in the new file
    t.delete([("n", "=", 2)])
    assert rows(t.to_arrow()) == [r for r in before if r[0] != 2]
    last_id = t.snapshot().state.metadata.last_field_id
    v = t.restore(1)
    assert t.schema.names == ["a", "b"] and rows(t.to_arrow()) == [(1, "x"), (2, "y"), (3, "z")]
    assert t.snapshot().state.metadata.last_field_id == last_id  # ids are never given twice
    t.alter.add_column(pa.field("c", pa.int8()))
    assert t.snapshot().field_ids["c"] == last_id + 1
    assert v == t.version - 1


def test_to_pyarrow_dataset_without_renames(table_uri):
    t = _table(table_uri, pa.table({"a": pa.array([1], pa.int32())}))
    t.alter.add_column(pa.field("b", pa.string()))
    t.alter.widen_column("a", pa.int64())
    assert t.to_pyarrow_dataset().to_table().to_pylist() == [{"a": 1, "b": None}]


def test_a_table_written_before_field_ids(table_uri):
    storage = Storage.from_uri(table_uri)
    storage.check_atomic_create()
    plain = pa.schema([("a", pa.int64()), ("s", pa.struct([("x", pa.int8())])), ("p", pa.int32())])
    meta = Metadata(table_id=str(uuid.uuid4()), schema=plain, partition_by=("p",),
                    properties={"checkpoint_interval": "100"})
    commit(storage, None, CommitRequest(operation="create", metadata=meta, protocol=Protocol()))
    t = lh.Table.open(table_uri)
    t.append(pa.table({"a": [1], "s": [{"x": 1}], "p": pa.array([1], pa.int32())}, schema=plain))
    assert t.snapshot().field_ids == {}
    assert _file_schemas(t)[0].field("a").metadata is None  # written as before: no ids
    t.alter.rename_column("a", "b")  # ids are given now, in schema order
    assert t.snapshot().field_ids == {"b": 1, "s": 2, "p": 4}
    t.append(pa.table({"b": [2], "s": [{"x": 2}], "p": pa.array([1], pa.int32())}, schema=t.schema))
    assert rows(t.to_arrow()) == [(1, {"x": 1}, 1), (2, {"x": 2}, 1)]
    assert rows(t.to_arrow(version=1)) == [(1, {"x": 1}, 1)]


def test_a_newer_writer_version_is_refused(table_uri):
    t = _table(table_uri, pa.table({"a": [1]}))
    storage = t._storage
    meta = t.snapshot().state.metadata
    commit(storage, t.snapshot().state, CommitRequest(operation="future", metadata=meta,
                                                      protocol=Protocol(min_reader_version=2, min_writer_version=5)))
    t.refresh()
    assert t.to_arrow().num_rows == 1  # readable
    with pytest.raises(lh.UnsupportedFormatError, match="writer version 5"):
        t.append(pa.table({"a": [2]}))


def test_mapping_metadata_is_validated_when_read(table_uri):
    storage = Storage.from_uri(table_uri)
    bad = pa.schema([pa.field("a", pa.int64(), metadata={"lakehouse:physical": "x"}),
                     pa.field("b", pa.int64(), metadata={"lakehouse:physical": "x"})])
    meta = Metadata(table_id=str(uuid.uuid4()), schema=bad)
    commit(storage, None, CommitRequest(operation="create", metadata=meta, protocol=Protocol()))
    with pytest.raises(lh.CorruptLogError, match="physical name"):
        lh.Table.open(table_uri)


# -- a property: random evolutions and appends against a model ---------------------------------------
SCALE = int(os.environ.get("LH_HYPOTHESIS_SCALE", "1"))  # as in test_stateful.py
NAMES = ["a", "b", "c", "d"]
evolution_steps = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(0, 3)),
    st.tuples(st.just("merge"), st.sampled_from(NAMES)),
    st.tuples(st.just("add"), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.integers(0, 9), st.sampled_from(NAMES)),
    st.tuples(st.just("drop"), st.integers(0, 9)),
    st.tuples(st.just("widen"), st.integers(0, 9)),
), min_size=1, max_size=12)


class _Model:
    """Columns are (key, name, type); rows are dicts key -> value; one (columns, rows) per version."""

    def __init__(self) -> None:
        self.columns: list[tuple[int, str, pa.DataType]] = [(0, "id", pa.int64())]
        self.rows: list[dict[int, object]] = []
        self.versions: list[tuple[list, list]] = []
        self.next_key = 1
        self.next_id = 0

    def snapshot(self) -> None:
        self.versions.append((list(self.columns), [dict(r) for r in self.rows]))

    def table(self, columns=None, rows_=None) -> pa.Table:
        columns = self.columns if columns is None else columns
        rows_ = self.rows if rows_ is None else rows_
        return pa.table({name: pa.array([r.get(key) for r in rows_], typ) for key, name, typ in columns})

    def new_rows(self, n: int, columns) -> list[dict[int, object]]:
        out = []
        for _ in range(n):
            rid = self.next_id
            self.next_id += 1
            row: dict[int, object] = {0: rid}
            for key, _name, _typ in columns[1:]:
                row[key] = None if rid % 3 == 0 else rid * 10 + key
            out.append(row)
        return out


def _run_steps(uri: str, steps) -> None:
    model = _Model()
    t = lh.write_table(uri, model.table())
    model.snapshot()
    for step in steps:
        kind = step[0]
        names = [name for _, name, _ in model.columns]
        data_cols = model.columns[1:]
        if kind == "append":
            new = model.new_rows(step[1], model.columns)
            t.append(model.table(rows_=new))
            model.rows += new
        elif kind == "merge":
            if step[1] in names:
                continue
            cols = [*model.columns, (model.next_key, step[1], pa.int32())]
            new = model.new_rows(2, cols)
            t.append(model.table(cols, new), schema_mode="merge")
            model.columns, model.next_key = cols, model.next_key + 1
            model.rows += new
        elif kind == "add":
            if step[1] in names:
                with pytest.raises(lh.SchemaMismatchError):
                    t.alter.add_column(pa.field(step[1], pa.int32()))
                continue
            t.alter.add_column(pa.field(step[1], pa.int32()))
            model.columns.append((model.next_key, step[1], pa.int32()))
            model.next_key += 1
        elif kind == "rename":
            if not data_cols:
                continue
            key, old, typ = data_cols[step[1] % len(data_cols)]
            if step[2] in names and step[2] != old:
                with pytest.raises(lh.SchemaMismatchError):
                    t.alter.rename_column(old, step[2])
                continue
            before = t.version
            v = t.alter.rename_column(old, step[2])
            if step[2] == old:
                assert v == before
                continue
            model.columns = [(k, step[2] if k == key else n, ty) for k, n, ty in model.columns]
        elif kind == "drop":
            if not data_cols:
                continue
            key, name, _ = data_cols[step[1] % len(data_cols)]
            t.alter.drop_column(name)
            model.columns = [c for c in model.columns if c[0] != key]
        elif kind == "widen":
            if not data_cols:
                continue
            key, name, typ = data_cols[step[1] % len(data_cols)]
            if typ == pa.int64():
                assert t.alter.widen_column(name, pa.int64()) == t.version
                continue
            t.alter.widen_column(name, pa.int64())
            model.columns = [(k, n, pa.int64() if k == key else ty) for k, n, ty in model.columns]
        model.snapshot()
        assert t.version == len(model.versions) - 1
        for v in sorted({0, len(model.versions) // 2, len(model.versions) - 1}):
            cols, rows_ = model.versions[v]
            want = model.table(cols, rows_)
            got = t.to_arrow(version=v)
            assert got.schema.equals(want.schema), (v, got.schema, want.schema)
            assert rows(got) == rows(want), v
            if cols[1:]:  # a filter on the last column, through pruning, equals the model's
                key, name, typ = cols[-1]
                flt = pc.field(name) >= pa.scalar(20, typ)
                expected = [r for r in rows_ if r.get(key) is not None and r[key] >= 20]
                assert rows(t.to_arrow(version=v, filter=flt)) == rows(model.table(cols, expected)), (v, name)
    reopened = lh.Table.open(uri)
    for v, (cols, rows_) in enumerate(model.versions):
        assert rows(reopened.to_arrow(version=v)) == rows(model.table(cols, rows_)), v


@settings(max_examples=40 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=evolution_steps)
def test_random_evolutions_match_a_model(steps):
    uri = f"memory://evolve-{uuid.uuid4().hex}"
    try:
        _run_steps(uri, steps)
    finally:
        fs = fsspec.filesystem("memory")
        if fs.exists(uri[len("memory://"):]):
            fs.rm(uri[len("memory://"):], recursive=True)


def test_legacy_table_with_foreign_field_ids_opens_and_evolves(table_uri):
    """A schema taken from a Parquet file may carry ids of another system: they are not ours."""
    storage = Storage.from_uri(table_uri)
    foreign = pa.schema([pa.field("a", pa.int64(), metadata={"PARQUET:field_id": "0"}),
                         pa.field("b", pa.int64(), metadata={"PARQUET:field_id": "zz"}),
                         pa.field("c", pa.int64(), metadata={"PARQUET:field_id": "0"})])
    meta = Metadata(table_id=str(uuid.uuid4()), schema=foreign)
    commit(storage, None, CommitRequest(operation="create", metadata=meta, protocol=Protocol()))
    t = lh.Table.open(table_uri)
    t.append(pa.table({"a": [1], "b": [2], "c": [3]}))
    assert t.snapshot().field_ids == {}
    t.alter.drop_column("b")
    assert t.snapshot().field_ids == {"a": 1, "c": 3}
    assert rows(t.to_arrow()) == [(1, 3)]


def test_nested_names_must_be_unique_at_creation(table_uri):
    with pytest.raises(lh.InvalidTableError, match="unique"):
        lh.Table.create(table_uri, pa.schema([("s", pa.struct([("x", pa.int8()), ("x", pa.int8())]))]))


def test_nested_rename_then_readd_child_name(table_uri):
    s = pa.struct([("x", pa.int32()), ("y", pa.string())])
    t = _table(table_uri, pa.table({"id": [1], "s": pa.array([{"x": 1, "y": "a"}], s)}))
    t.alter.rename_column(["s", "x"], "z")
    t.alter.add_column(pa.field("x", pa.int64()), parent="s")   # physical "x" is z's
    t.alter.drop_column(["s", "y"])
    t.alter.add_column(pa.field("y", pa.string()), parent="s")  # physical "y" is retired
    t.append(pa.table({"id": [2], "s": pa.array([{"z": 2, "x": 20, "y": "b"}], t.schema.field("s").type)}))
    assert sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "s": {"z": 1, "x": None, "y": None}}, {"id": 2, "s": {"z": 2, "x": 20, "y": "b"}}]
    assert t.to_arrow(filter=pc.field("s", "x") == 1).num_rows == 0
    assert t.to_arrow(filter=pc.field("s", "y") == "a").num_rows == 0
    assert t.to_arrow(version=0).to_pylist() == [{"id": 1, "s": {"x": 1, "y": "a"}}]


@pytest.mark.parametrize("how", ["alter", "merge"])
def test_a_widened_column_of_a_pandas_written_table_reads_into_pandas(how):
    """pyarrow stores the first DataFrame's dtypes (``Int8``) in the schema; a widening must not
    leave them behind for ``to_pandas`` to cast the wider values into (issue 13, item 14)."""
    import pandas as pd

    uri = f"memory://pandas-widen-{uuid.uuid4().hex}"
    t = lh.write_table(uri, pd.DataFrame({"x": pd.array([1, None], dtype="Int8"), "y": pd.array([2, 3], "Int16")}))
    wider = pd.DataFrame({"x": pd.array([300, 4], dtype="Int32"), "y": pd.array([5, 6], "Int16")})
    if how == "alter":
        t.alter.widen_column("x", pa.int32())
        t.append(wider)
    else:
        t.append(wider, schema_mode="merge")
    frame = t.to_pandas()
    assert sorted(frame["x"].dropna().astype(int).tolist()) == [1, 4, 300]
    assert str(frame["y"].dtype) == "Int16"  # what did not change keeps the DataFrame's dtype
    t.alter.rename_column("y", "z")
    assert sorted(t.to_pandas()["z"].tolist()) == [2, 3, 5, 6]


@pytest.mark.parametrize("bad", [5, None, 1.5, b"a", {"a"}, [], [5], ("a", None)])
def test_a_column_that_is_not_a_name_or_path_is_a_typed_error(bad):
    t = lh.write_table(f"memory://bad-col-{uuid.uuid4().hex}", pa.table({"a": [1], "b": [2]}))
    for call in (lambda: t.alter.rename_column(bad, "c"), lambda: t.alter.drop_column(bad),
                 lambda: t.alter.widen_column(bad, pa.int64())):
        # not a name at all: ArgumentTypeError; a sequence naming no column: ColumnNotFoundError
        with pytest.raises((lh.ArgumentTypeError, lh.ColumnNotFoundError)):
            call()
    with pytest.raises(lh.LakehouseError):
        t.alter.add_column("c")  # a name, not a pyarrow.Field
    with pytest.raises(lh.LakehouseError):
        t.alter.widen_column("a", "int64")  # a type name, not a pyarrow.DataType

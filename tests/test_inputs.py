"""Inputs from the ecosystem (issue 13, items 16-18).

- Dictionary encoding and view layouts are storage details: pandas and Polars categoricals (any
  index width), Polars enums and Polars/DuckDB strings (``string_view``) all fit a string column, a
  new column from a categorical takes its value type, and tables whose schema already holds a
  dictionary type (written by older versions) accept every flavour (format.md §6).
- ``schema_mode="merge"`` fills the nullable columns (and struct children) the data lacks with
  nulls; a NOT NULL one is refused naming it (format.md §5.7).
- ``write_table`` never ignores an argument: ``partition_by`` other than the table's is refused
  unless ``schema_mode="overwrite"`` replaces schema and partitioning in one commit, ``properties``
  are set (validated) in the same commit.
"""

from __future__ import annotations

import os
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.commit import CommitRequest, commit
from lakehouse.log import AddFile, Metadata, Protocol
from lakehouse.storage import Storage

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
duckdb = pytest.importorskip("duckdb")

# LH_FUZZ=1 (make fuzz) runs the property tests long
FUZZ = os.environ.get("LH_FUZZ") == "1"
settings.register_profile("lakehouse-inputs", max_examples=400 if FUZZ else 25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
INPUT_SETTINGS = settings.get_profile("lakehouse-inputs")


def _memory_uri() -> str:
    return f"memory://inputs-{uuid.uuid4().hex}"


def _by_id(table: pa.Table, column: str = "s") -> list:
    return [v for _, v in sorted(zip(table.column("id").to_pylist(), table.column(column).to_pylist()))]


def _categorical(n: int, *, nulls: bool = True) -> pd.DataFrame:
    values = [f"c{i:05d}" for i in range(n)] + ([None] if nulls else [])
    return pd.DataFrame({"id": range(len(values)), "s": pd.Categorical(values)})


def _legacy_table(uri: str, column_type: pa.DataType, values: list) -> lh.Table:
    """A table as an older lakehouse wrote it: the dictionary type (e.g. int8 indices, as from a pandas
    categorical) in its schema, no column mapping, and ``values`` in one data file holding that type.
    A view-typed dictionary (a Polars categorical) gets no file: older versions failed to write one,
    so such a table only ever came from ``Table.create``; the values are appended by this version."""
    storage = Storage.from_uri(uri)
    schema = pa.schema([("id", pa.int64()), ("s", column_type)])
    view = pa.types.is_string_view(column_type.value_type)
    adds: tuple[AddFile, ...] = ()
    if not view:
        data = pa.table({"id": pa.array(range(len(values)), pa.int64()),
                         "s": pa.array(values, column_type.value_type).dictionary_encode().cast(column_type)})
        rel = f"part-{uuid.uuid4().hex}.parquet"
        with storage.arrow_filesystem().open_output_stream(storage.full_path(rel)) as out:
            pq.write_table(data, out)
            size = out.tell()
        adds = (AddFile(path=rel, size_bytes=size, num_rows=data.num_rows, modification_time=int(time.time() * 1000),
                        min={"id": 0}, max={"id": len(values) - 1}, null_count={"id": 0}),)
    meta = Metadata(table_id=str(uuid.uuid4()), schema=schema, created_time=int(time.time() * 1000))
    commit(storage, None, CommitRequest(operation="create", metadata=meta, protocol=Protocol(), add=adds))
    t = lh.Table.open(uri)
    if view:
        t.append(pa.table({"id": pa.array(range(len(values)), pa.int64()), "s": pa.array(values, pa.string())}))
    return t


# -- item 16: categoricals and string flavours ----------------------------------------------------
def test_pandas_categoricals_of_any_width_append_to_a_table_made_from_one(table_uri):
    first = _categorical(3)  # int8 indices
    t = lh.write_table(table_uri, first)
    assert t.schema.field("s").type == pa.large_string()  # the value type, not dictionary<int8>
    wide = _categorical(300)  # int16 indices
    wide["id"] += 10
    wider = _categorical(40_000)  # int32 indices (beyond int16)
    wider["id"] += 1_000
    assert pa.table(wide).schema.field("s").type.index_type == pa.int16()
    assert pa.table(wider).schema.field("s").type.index_type == pa.int32()
    t.append(wide)
    t.append(wider)
    got = t.to_arrow()
    expected = [*first["s"].tolist(), *wide["s"].tolist(), *wider["s"].tolist()]
    assert got.num_rows == len(expected)
    assert _by_id(got) == [None if v != v else v for v in expected]  # pandas NaN for a missing category
    assert got.column("s").null_count == 3
    frame = t.to_pandas().sort_values("id")
    assert frame["s"].iloc[:2].tolist() == ["c00000", "c00001"] and frame["s"].isna().sum() == 3


def test_polars_categorical_enum_and_duckdb_strings_fit_a_string_table(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": pa.array([0], pa.int64()), "s": ["a"]}))  # a string column
    t.append(pl.DataFrame({"id": [1, 2], "s": ["b", None]}).with_columns(pl.col("s").cast(pl.Categorical)))
    t.append(pl.DataFrame({"id": [3, 4], "s": ["x", None]}).with_columns(pl.col("s").cast(pl.Enum(["x", "y"]))))
    t.append(pl.DataFrame({"id": [5], "s": ["plain"]}))  # string_view
    t.append(duckdb.sql("select 6::BIGINT as id, 'duck' as s"))
    t.append(_categorical(200, nulls=False).assign(id=lambda d: d["id"] + 7))
    got = t.to_arrow()
    assert got.schema.field("s").type == pa.string()
    assert _by_id(got)[:7] == ["a", "b", None, "x", None, "plain", "duck"]
    assert _by_id(got)[7:] == [f"c{i:05d}" for i in range(200)]


def test_a_table_made_from_polars_or_duckdb_strings_stores_large_string(table_uri):
    t = lh.write_table(table_uri, pl.DataFrame({"id": [1, 2], "s": ["a", None]}))  # string_view: crashed before
    assert t.schema.field("s").type == pa.large_string()
    t.append(pl.DataFrame({"id": [3], "s": ["c"]}).with_columns(pl.col("s").cast(pl.Categorical)))
    t.append(duckdb.sql("select 4::BIGINT as id, 'd' as s"))
    assert _by_id(t.to_arrow()) == ["a", None, "c", "d"]


def test_a_table_made_from_a_polars_categorical_stores_its_value_type(table_uri):
    data = pl.DataFrame({"id": [1, 2, 3], "s": ["a", None, "a"]}).with_columns(pl.col("s").cast(pl.Categorical))
    t = lh.write_table(table_uri, data)
    assert t.schema.field("s").type == pa.large_string()
    assert _by_id(t.to_arrow()) == ["a", None, "a"]
    assert t.to_arrow(filter=[("s", "=", "a")]).num_rows == 2  # and it has statistics now
    assert t.files().column("max.s").to_pylist() == ["a"]


@pytest.mark.parametrize("legacy", [pa.dictionary(pa.int8(), pa.large_string()),
                                    pa.dictionary(pa.int8(), pa.string(), ordered=True),
                                    pa.dictionary(pa.uint32(), pa.string_view())])
def test_a_table_with_a_dictionary_column_from_an_older_version_accepts_every_flavour(legacy):
    uri = _memory_uri()
    t = _legacy_table(uri, legacy, ["a", None, "b"])
    v0 = t.to_arrow()
    assert _by_id(v0) == ["a", None, "b"]
    t.append(_categorical(300).assign(id=lambda d: d["id"] + 10))  # int16 indices into int8: refused before
    t.append(pl.DataFrame({"id": [1000, 1001], "s": ["p", None]}).with_columns(pl.col("s").cast(pl.Categorical)))
    t.append(pl.DataFrame({"id": [1002], "s": ["plain"]}))
    t.append(duckdb.sql("select 1003::BIGINT as id, 'duck' as s"))
    t.append(pa.table({"id": pa.array([1004], pa.int64()), "s": pa.array(["ls"], pa.large_string())}))
    got = t.to_arrow()
    assert pa.types.is_dictionary(got.schema.field("s").type)  # still the table's dictionary, any width
    values = _by_id(got)
    assert values[:3] == ["a", None, "b"]
    assert values[3:303] == [f"c{i:05d}" for i in range(300)] and values[303] is None
    assert values[304:] == ["p", None, "plain", "duck", "ls"]
    assert _by_id(t.to_arrow(version=t.version - 5)) == ["a", None, "b"]
    assert t.optimize() is not None and _by_id(t.to_arrow()) == values  # rewriting old and new files together
    assert t.to_arrow(filter=[("s", "=", "duck")]).num_rows == 1
    assert t.to_pandas()["s"].notna().sum() == len([v for v in values if v is not None])


def test_merge_adds_a_categorical_column_as_its_value_type(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": pa.array([1], pa.int64())}))
    t.append(pd.DataFrame({"id": [2, 3], "c": pd.Categorical(["x", None])}), schema_mode="merge")
    assert t.schema.field("c").type == pa.large_string()
    t.append(pl.DataFrame({"id": [4], "c": ["y"]}).with_columns(pl.col("c").cast(pl.Categorical)))
    assert _by_id(t.to_arrow(), "c") == [None, "x", None, "y"]


def test_categoricals_inside_structs_and_lists(table_uri):
    df = pl.DataFrame({"id": [1, 2, 3], "st": [{"a": "x", "b": 1}, None, {"a": None, "b": 2}],
                       "l": [["u", "v"], None, []]})
    df = df.with_columns(pl.col("st").struct.with_fields(pl.field("a").cast(pl.Categorical)),
                         pl.col("l").cast(pl.List(pl.Categorical)))
    t = lh.write_table(table_uri, df)  # the empty-batch check and the cast both failed on these
    assert t.schema.field("st").type == pa.struct([("a", pa.large_string()), ("b", pa.int64())])
    assert t.schema.field("l").type == pa.large_list(pa.large_string())
    assert not (t.schema.field("st").type.field("a").metadata or {})  # no Polars categorical mark left
    t.append(df.slice(1, 2).with_columns(pl.col("id") + 10))  # a slice: offsets start past 0
    got = sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"])
    assert [r["st"] for r in got] == [{"a": "x", "b": 1}, None, {"a": None, "b": 2}, None, {"a": None, "b": 2}]
    assert [r["l"] for r in got] == [["u", "v"], None, [], None, []]


def test_binary_flavours_fit_a_binary_column(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": pa.array([0], pa.int64()), "s": pa.array([b"a"], pa.binary())}))
    t.append(pa.table({"id": pa.array([1], pa.int64()), "s": pa.array([b"b"], pa.large_binary())}))
    t.append(pa.table({"id": pa.array([2], pa.int64()), "s": pa.array([b"c", None][:1], pa.binary_view())}))
    t.append(pa.table({"id": pa.array([3, 4], pa.int64()), "s": pa.array([b"d", None]).dictionary_encode()}))
    assert _by_id(t.to_arrow()) == [b"a", b"b", b"c", b"d", None]


def test_a_string_table_still_refuses_other_types(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": pa.array([0], pa.int64()), "s": ["a"]}))
    with pytest.raises(lh.SchemaMismatchError) as e:
        t.append(pa.table({"id": pa.array([1], pa.int64()), "s": pa.array([1]).dictionary_encode()}))
    assert e.value.column == "s"
    with pytest.raises(lh.SchemaMismatchError):
        t.append(pa.table({"id": pa.array([1], pa.int64()), "s": pa.array([b"x"], pa.binary_view())}))
    assert t.version == 0


# every string flavour x every kind of string column (plain, large, a dictionary from an older version)
_FLAVOURS = {
    "string": lambda v: pa.array(v, pa.string()),
    "large_string": lambda v: pa.array(v, pa.large_string()),
    "string_view": lambda v: pa.array(v, pa.string_view()),
    "dict_int8": lambda v: pa.array(v, pa.string()).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string())),
    "dict_int16_large": lambda v: pa.array(v, pa.large_string()).dictionary_encode().cast(
        pa.dictionary(pa.int16(), pa.large_string())),
    "dict_uint32_view": lambda v: pa.DictionaryArray.from_arrays(
        pa.array(v, pa.string()).dictionary_encode().indices.cast(pa.uint32()),
        pa.array(v, pa.string()).dictionary_encode().dictionary.cast(pa.string_view())),
    "dict_null_values": lambda v: pa.DictionaryArray.from_arrays(
        pa.array([None if x is None else 1 for x in v], pa.int8()), pa.array([None, "only"], pa.string())),
    "dict_int32_large_null_values": lambda v: pa.DictionaryArray.from_arrays(  # the legacy tables' read type
        pa.array([0 if x is None else 1 for x in v], pa.int32()), pa.array([None, "one"], pa.large_string())),
}
_TABLE_TYPES = {
    "string": pa.string(), "large_string": pa.large_string(),
    "legacy_dict_int8": pa.dictionary(pa.int8(), pa.large_string()),
    "legacy_dict_uint32_view": pa.dictionary(pa.uint32(), pa.string_view()),
}
_texts = st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "ü", "long " * 5]), st.text(max_size=4)),
                  min_size=1, max_size=8)


@INPUT_SETTINGS
@given(table_type=st.sampled_from(sorted(_TABLE_TYPES)),
       writes=st.lists(st.tuples(st.sampled_from(sorted(_FLAVOURS)), _texts), min_size=1, max_size=3))
def test_every_string_flavour_fits_every_string_column(table_type, writes):
    uri = _memory_uri()
    typ = _TABLE_TYPES[table_type]
    if pa.types.is_dictionary(typ):
        t = _legacy_table(uri, typ, ["seed"])
    else:
        t = lh.write_table(uri, pa.table({"id": pa.array([0], pa.int64()), "s": pa.array(["seed"], typ)}))
    expected = ["seed"]
    for flavour, texts in writes:
        arr = _FLAVOURS[flavour](texts)
        ids = pa.array(range(len(expected), len(expected) + len(arr)), pa.int64())
        t.append(pa.table({"id": ids, "s": arr}))
        expected += arr.to_pylist() if not pa.types.is_dictionary(arr.type) else \
            [None if i is None else arr.dictionary[i].as_py() for i in arr.indices.to_pylist()]
    got = t.to_arrow()
    assert _by_id(got) == expected
    assert t.schema.field("s").type == got.schema.field("s").type
    for text in {x for x in expected if x is not None}:
        assert t.to_arrow(filter=[("s", "=", text)]).num_rows == expected.count(text)


# -- item 17: merge fills the nullable columns the data lacks -------------------------------------
def test_merge_fills_a_nullable_column_the_data_lacks(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": pa.array([1], pa.int64()), "b": ["x"]}))
    t.append(pa.table({"id": pa.array([2], pa.int64()), "c": [7]}), schema_mode="merge")  # old producer + new column
    t.append(pa.table({"id": pa.array([3], pa.int64())}), schema_mode="merge")
    got = t.to_arrow()
    assert got.schema.names == ["id", "b", "c"]
    assert sorted(got.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "b": "x", "c": None}, {"id": 2, "b": None, "c": 7}, {"id": 3, "b": None, "c": None}]
    with pytest.raises(lh.SchemaMismatchError, match="missing") as e:
        t.append(pa.table({"id": pa.array([4], pa.int64())}))  # strict still refuses
    assert e.value.column == "b"
    lh.write_table(table_uri, pa.table({"id": pa.array([5], pa.int64())}), mode="append", schema_mode="merge")
    t.overwrite(pa.table({"id": pa.array([9], pa.int64()), "b": ["y"]}), schema_mode="merge",
                filter=[("id", ">", 4)])
    assert sorted(t.to_arrow().column("id").to_pylist()) == [1, 2, 3, 9]


def test_merge_refuses_a_missing_not_null_column_naming_it(table_uri):
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("b", pa.string())])
    t = lh.Table.create(table_uri, schema)
    with pytest.raises(lh.SchemaMismatchError, match="NOT NULL") as e:
        t.append(pa.table({"b": ["x"]}), schema_mode="merge")
    assert e.value.column == "id"
    assert t.version == 0 and t.to_arrow().num_rows == 0


def test_merge_fills_a_missing_struct_child_and_refuses_a_not_null_one(table_uri):
    child = pa.struct([("x", pa.int64()), ("y", pa.string())])
    t = lh.write_table(table_uri, pa.table({"id": pa.array([1], pa.int64()),
                                            "st": pa.array([{"x": 1, "y": "a"}], child)}))
    t.append(pa.table({"id": pa.array([2], pa.int64()),
                       "st": pa.array([{"x": 2}], pa.struct([("x", pa.int64())]))}), schema_mode="merge")
    assert _by_id(t.to_arrow(), "st") == [{"x": 1, "y": "a"}, {"x": 2, "y": None}]
    strict = pa.struct([pa.field("x", pa.int64(), nullable=False), ("y", pa.string())])
    u = lh.Table.create(_memory_uri(), pa.schema([("id", pa.int64()), ("st", strict)]))
    with pytest.raises(lh.SchemaMismatchError) as e:
        u.append(pa.table({"id": pa.array([1], pa.int64()),
                           "st": pa.array([{"y": "b"}], pa.struct([("y", pa.string())]))}), schema_mode="merge")
    assert e.value.column == "st.x"


def test_merge_without_a_nullable_partition_column_writes_the_null_partition(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": pa.array([1], pa.int64()), "p": ["a"]}), partition_by=["p"])
    t.append(pa.table({"id": pa.array([2, 3], pa.int64())}), schema_mode="merge")
    assert t.to_arrow(filter="p is null").column("id").to_pylist() == [2, 3]
    assert sorted(t.files().column("partition.p").to_pylist(), key=lambda v: (v is None, v or "")) == ["a", None]
    assert _by_id(t.to_arrow(), "p") == ["a", None, None]
    schema = pa.schema([("id", pa.int64()), pa.field("p", pa.string(), nullable=False)])
    u = lh.Table.create(_memory_uri(), schema, partition_by=["p"])
    with pytest.raises(lh.SchemaMismatchError) as e:
        u.append(pa.table({"id": pa.array([1], pa.int64())}), schema_mode="merge")
    assert e.value.column == "p"


@INPUT_SETTINGS
@given(present=st.lists(st.booleans(), min_size=4, max_size=4), rows=st.integers(1, 4))
def test_merge_with_any_subset_of_columns_keeps_every_row(present, rows):
    names = ["a", "b", "c", "d"]
    uri = _memory_uri()
    first = {"id": pa.array([0], pa.int64()), **{n: pa.array([1], pa.int64()) for n in names}}
    t = lh.write_table(uri, pa.table(first))
    data = {"id": pa.array(range(1, rows + 1), pa.int64())}
    data.update({n: pa.array([i * 10 for i in range(rows)], pa.int64()) for n, keep in zip(names, present) if keep})
    t.append(pa.table(data), schema_mode="merge")
    got = sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"])
    assert got[0] == {"id": 0, **dict.fromkeys(names, 1)}
    for i, row in enumerate(got[1:]):
        assert row == {"id": i + 1, **{n: (i * 10 if keep else None) for n, keep in zip(names, present)}}


# -- item 18: write_table never ignores partition_by or properties --------------------------------
def test_write_table_overwrite_with_schema_overwrite_replaces_schema_and_partitioning(table_uri):
    old = pa.table({"id": pa.array([1, 2], pa.int64()), "p": pa.array([1, 2], pa.int32())})
    t = lh.write_table(table_uri, old, partition_by=["p"])
    new = pa.table({"name": ["x", "y", None], "q": ["u", "v", "u"]})
    t = lh.write_table(table_uri, new, mode="overwrite", schema_mode="overwrite", partition_by=["q"],
                       properties={"owner": "ops"})
    assert t.version == 1
    assert t.schema.names == ["name", "q"] and t.partition_by == ["q"] and t.properties["owner"] == "ops"
    assert sorted(t.files().column("partition.q").to_pylist()) == ["u", "v"]
    assert sorted(t.to_arrow().to_pylist(), key=str) == sorted(new.to_pylist(), key=str)
    assert t.to_arrow(filter=[("q", "=", "u")]).num_rows == 2
    # time travel reads the old partitioning
    back = t.to_arrow(version=0)
    assert back.schema.names == ["id", "p"] and sorted(back.column("p").to_pylist()) == [1, 2]
    assert t.snapshot(version=0).partition_by == ["p"]
    assert t.to_arrow(version=0, filter=[("p", "=", 2)]).column("id").to_pylist() == [2]
    reopened = lh.Table.open(table_uri)
    assert reopened.partition_by == ["q"] and reopened.to_arrow().num_rows == 3
    # and restore brings the old table back whole
    t.restore(0)
    assert t.partition_by == ["p"] and sorted(t.to_arrow().column("id").to_pylist()) == [1, 2]


def test_schema_overwrite_keeps_partitioning_when_not_given_and_ids_keep_growing(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": [1], "p": [1]}), partition_by=["p"])
    before = max(t.snapshot().field_ids.values())
    t = lh.write_table(table_uri, pa.table({"x": ["a"], "p": [5]}), mode="overwrite", schema_mode="overwrite")
    assert t.partition_by == ["p"] and t.schema.names == ["x", "p"]
    assert min(t.snapshot().field_ids.values()) > before
    with pytest.raises(lh.InvalidTableError, match="partition column 'p'"):
        lh.write_table(table_uri, pa.table({"x": ["a"]}), mode="overwrite", schema_mode="overwrite")
    t = lh.write_table(table_uri, pa.table({"x": ["b"]}), mode="overwrite", schema_mode="overwrite", partition_by=[])
    assert t.partition_by == [] and t.to_arrow().column("x").to_pylist() == ["b"]
    assert t.version == 2
    ids = t.snapshot().field_ids
    t = lh.write_table(table_uri, pd.DataFrame({"x": ["c"]}), mode="overwrite", schema_mode="overwrite")
    assert t.version == 3 and t.snapshot().field_ids == ids  # the same schema: no metadata change
    assert t.history(1)[0].info["files_removed"] == 1 and t.to_arrow().column("x").to_pylist() == ["c"]


def test_a_partition_by_other_than_the_tables_is_refused_without_schema_overwrite(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": [1], "p": [1], "q": [1]}), partition_by=["p"])
    for mode in ("append", "overwrite"):
        for parts, column in ((["q"], "q"), ([], "p"), (["p", "q"], "q"), ("q", "q")):
            with pytest.raises(lh.SchemaMismatchError, match="partition") as e:
                lh.write_table(table_uri, pa.table({"id": [2], "p": [2], "q": [2]}), mode=mode, partition_by=parts)
            assert "partition_by" in str(e.value) and e.value.column == column
    assert t.refresh() == 0
    lh.write_table(table_uri, pa.table({"id": [2], "p": [2], "q": [2]}), mode="append", partition_by=["p"])
    lh.write_table(table_uri, pa.table({"id": [3], "p": [3], "q": [3]}), mode="overwrite", partition_by="p")
    assert lh.Table.open(table_uri).to_arrow().column("id").to_pylist() == [3]


def test_write_table_properties_on_an_existing_table_are_set_in_the_same_commit(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": [1]}))
    t = lh.write_table(table_uri, pa.table({"id": [2]}), mode="append", properties={"owner": "ops"})
    assert t.version == 1 and t.properties["owner"] == "ops" and t.to_arrow().num_rows == 2
    t = lh.write_table(table_uri, pa.table({"id": [3]}), mode="overwrite", properties={"checkpoint_interval": 5})
    assert t.version == 2 and t.properties["checkpoint_interval"] == "5"
    assert t.history(1)[0].info["files_removed"] == 2
    t = lh.write_table(table_uri, pa.table({"id": [4]}), mode="append", properties={"owner": "ops"})
    assert t.history(1)[0].info["blind_append"]  # nothing changed: an ordinary append
    for bad in ({"checkpoint_interval": "abc"}, {"constraint.x": "id > 0"}, {"": "x"}):
        with pytest.raises(lh.InvalidTableError):
            lh.write_table(table_uri, pa.table({"id": [5]}), mode="append", properties=bad)
    assert lh.Table.open(table_uri).version == 3


def test_schema_overwrite_only_with_a_whole_table_overwrite(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": [1]}))
    with pytest.raises(lh.InvalidArgumentError, match="schema_mode"):
        lh.write_table(table_uri, pa.table({"x": [1]}), mode="append", schema_mode="overwrite")
    with pytest.raises(lh.InvalidArgumentError, match="schema_mode"):
        t.append(pa.table({"x": [1]}), schema_mode="overwrite")
    with pytest.raises(lh.InvalidArgumentError, match="schema_mode"):
        t.overwrite(pa.table({"id": [1]}), filter=[("id", "=", 1)], schema_mode="overwrite")
    with pytest.raises(lh.InvalidArgumentError, match="schema_mode"):
        t.append(pa.table({"id": [1]}), schema_mode="loose")
    with pytest.raises(lh.InvalidArgumentError, match="schema_mode"):  # even where the table is created
        lh.write_table(_memory_uri(), pa.table({"id": [1]}), schema_mode="loose")
    with pytest.raises(lh.InvalidArgumentError, match="schema_mode"):
        lh.write_table(_memory_uri(), pa.table({"id": [1]}), mode="append", schema_mode="overwrite")
    assert t.refresh() == 0
    assert t.overwrite(pa.table({"y": ["a"]}), schema_mode="overwrite") == 1  # Table.overwrite too
    assert t.schema.names == ["y"]


def test_schema_overwrite_refuses_to_orphan_a_check_constraint(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": [1]}))
    t.alter.add_constraint("positive", "id > 0")
    with pytest.raises(lh.SchemaMismatchError, match="positive") as e:
        lh.write_table(table_uri, pa.table({"x": [1]}), mode="overwrite", schema_mode="overwrite")
    assert e.value.column == "id"
    with pytest.raises(lh.ConstraintViolationError):
        lh.write_table(table_uri, pa.table({"id": [-1], "x": [1]}), mode="overwrite", schema_mode="overwrite")
    t = lh.write_table(table_uri, pa.table({"id": [2], "x": [1]}), mode="overwrite", schema_mode="overwrite")
    assert t.schema.names == ["id", "x"] and t.constraints.keys() == {"positive"}


def test_schema_overwrite_after_a_drop_may_reuse_the_dropped_name(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": [1], "b": ["old"]}))
    t.alter.drop_column("b")
    t = lh.write_table(table_uri, pa.table({"id": [2], "b": [7]}), mode="overwrite", schema_mode="overwrite")
    assert t.to_arrow().to_pylist() == [{"id": 2, "b": 7}]
    assert t.to_arrow(version=0).to_pylist() == [{"id": 1, "b": "old"}]
    t.append(pa.table({"id": [3], "b": [8]}))
    assert sorted(t.to_arrow().column("b").to_pylist()) == [7, 8]
    assert t.optimize() is not None and sorted(t.to_arrow().column("b").to_pylist()) == [7, 8]


def test_schema_overwrite_conflicts_with_a_concurrent_append(table_uri):
    t = lh.write_table(table_uri, pa.table({"id": [1], "p": [1]}), partition_by=["p"])
    other = lh.Table.open(table_uri)
    with pytest.raises(lh.CommitConflictError), t.transaction() as tx:
        tx.overwrite(pa.table({"x": ["a"]}), schema_mode="overwrite", partition_by=[])
        other.append(pa.table({"id": [2], "p": [2]}))
    got = lh.Table.open(table_uri)
    assert got.partition_by == ["p"] and sorted(got.to_arrow().column("id").to_pylist()) == [1, 2]


_REPLACEMENTS = st.lists(st.tuples(
    st.sampled_from([("id", pa.int64()), ("id", pa.string()), ("p", pa.int32()), ("p", pa.string()),
                     ("x", pa.float64()), ("c", pa.dictionary(pa.int8(), pa.string()))]),
    st.sampled_from(["replace", "append", "overwrite"]),
    st.booleans()), min_size=1, max_size=4)


@INPUT_SETTINGS
@given(steps=_REPLACEMENTS, seed=st.integers(0, 3))
def test_every_version_reads_as_it_did_across_schema_replacements(steps, seed):
    """Random schema replacements (with and without partitioning), appends and overwrites: every
    version keeps reading its own rows, schema and partitioning, and restore brings each one back."""
    uri = _memory_uri()
    seen: list[tuple[list, list[str], list[str]]] = []

    def values(typ: pa.DataType, n: int) -> pa.Array:
        base = [None if (i + seed) % 4 == 3 else (i + seed) % 3 for i in range(n)]
        if pa.types.is_dictionary(typ):
            return pa.array([None if v is None else f"k{v}" for v in base]).dictionary_encode().cast(typ)
        if pa.types.is_string(typ):
            return pa.array([None if v is None else f"s{v}" for v in base], typ)
        return pa.array(base, typ)

    t = None
    for (name, typ), action, partitioned in steps:
        data = pa.table({name: values(typ, 5), "v": pa.array(range(5), pa.int64())})
        parts = [name] if partitioned and not pa.types.is_floating(typ) and not pa.types.is_dictionary(typ) else []
        if t is None or action == "replace":
            t = lh.write_table(uri, data, mode="overwrite", schema_mode="overwrite", partition_by=parts)
        else:
            try:
                lh.write_table(uri, data, mode=action)
            except lh.SchemaMismatchError:
                continue
            t.refresh()
        got = t.to_arrow()
        seen.append((sorted(map(str, got.to_pylist())), got.schema.names, t.partition_by))
    for version, (expected, names, parts) in enumerate(seen):
        old = t.snapshot(version=version)
        got = old.to_arrow()
        assert sorted(map(str, got.to_pylist())) == expected and got.schema.names == names
        assert old.partition_by == parts
    t.restore(0)
    assert sorted(map(str, t.to_arrow().to_pylist())) == seen[0][0] and t.partition_by == seen[0][2]

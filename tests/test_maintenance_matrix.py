"""Every schema change x every maintenance operation x every reader, against a plain-pyarrow model
(issue 13, items 3 and 14), and restore across random schema histories (a property).

The table starts as a pandas DataFrame with nullable ``Int8`` columns (so its schema carries the
``pandas`` metadata pyarrow writes), partitioned by ``p``; a schema change follows, then rows that
only the new schema can hold (values above 127 in a widened column), then a maintenance operation.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import uuid
from collections.abc import Callable
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh

FUZZ = os.environ.get("LH_FUZZ") == "1"
ZERO = dt.timedelta(0)


# -- the model ---------------------------------------------------------------------------------
def _first() -> pd.DataFrame:
    return pd.DataFrame({"p": pd.array([1, 2, 2], dtype="Int8"), "x": pd.array([5, None, 7], dtype="Int8"),
                         "y": ["a", "b", None]})


def _second(schema: pa.Schema) -> pa.Table:
    return pa.table({"p": [1, 3], "x": [-8, 9], "y": ["c", "d"]}).cast(pa.schema([(f.name, f.type) for f in schema]))


def _third(schema: pa.Schema) -> pa.Table:
    """Rows under the changed schema; widened columns get values only the wider type holds."""
    data: dict[str, list[Any]] = {}
    for f in schema:
        wide = pa.types.is_integer(f.type) and f.type.bit_width > 8
        if f.name in ("p", "p2"):
            data[f.name] = [300 if wide else 4, 3]
        elif f.name in ("x", "x2"):
            data[f.name] = [1000 if wide else 11, None]
        elif f.name == "n":
            data[f.name] = ["new", None]
        else:
            data[f.name] = ["e", "f"]
    return pa.table(data, schema=pa.schema([(f.name, f.type) for f in schema]))


Change = Callable[[lh.Table], None]
CHANGES: dict[str, tuple[Change, Callable[[pa.Table], pa.Table]]] = {
    "add_data": (lambda t: t.alter.add_column(pa.field("n", pa.string())),
                 lambda m: m.append_column("n", pa.nulls(m.num_rows, pa.string()))),
    "rename_data": (lambda t: t.alter.rename_column("x", "x2"), lambda m: m.rename_columns(["p", "x2", "y"])),
    "rename_part": (lambda t: t.alter.rename_column("p", "p2"), lambda m: m.rename_columns(["p2", "x", "y"])),
    "drop_data": (lambda t: t.alter.drop_column("x"), lambda m: m.drop_columns(["x"])),
    "widen_data": (lambda t: t.alter.widen_column("x", pa.int32()),
                   lambda m: m.set_column(1, "x", m.column("x").cast(pa.int32()))),
    "widen_part": (lambda t: t.alter.widen_column("p", pa.int32()),
                   lambda m: m.set_column(0, "p", m.column("p").cast(pa.int32()))),
}


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return sorted(zip(*cols), key=repr)


def _pandas_rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    return sorted((tuple(_plain(v) for v in row) for row in frame.itertuples(index=False)), key=repr)


# -- the readers -------------------------------------------------------------------------------
def _mapped(t: lh.Table) -> bool:
    """True once a column's physical name differs from its name: lazy readers refuse (format §10.3)."""
    return any((f.metadata or {}).get(b"lakehouse:physical", f.name.encode()) != f.name.encode()
               for f in lh.Table.open(t.uri).snapshot()._state.metadata.schema)


def _read_all(t: lh.Table) -> dict[str, tuple[list[str], list[tuple[Any, ...]]] | str]:
    """Every reader's (column names, sorted rows), or "refused" for a documented refusal."""
    out: dict[str, Any] = {}
    arrow = t.to_arrow()
    out["to_arrow"] = (arrow.column_names, _rows(arrow))
    batches = pa.Table.from_batches(list(t.to_batches()), schema=arrow.schema)
    out["to_batches"] = (batches.column_names, _rows(batches))
    tasks = t.snapshot().plan_files()
    parts = [lh.read_task(task) for task in tasks]
    planned = pa.concat_tables(parts) if parts else arrow.schema.empty_table()
    out["read_task"] = (planned.column_names, _rows(planned))
    frame = t.to_pandas()
    out["to_pandas"] = (list(frame.columns), _pandas_rows(frame))
    try:
        dataset = t.to_pyarrow_dataset().to_table()
    except lh.SchemaMismatchError:
        assert _mapped(t)
        out["to_pyarrow_dataset"] = out["to_polars"] = out["to_duckdb"] = "refused"
        return out
    out["to_pyarrow_dataset"] = (dataset.column_names, _rows(dataset))
    polars = t.to_polars().collect()
    out["to_polars"] = (polars.columns, sorted(polars.rows(), key=repr))
    name = f"t_{uuid.uuid4().hex}"
    duck = t.to_duckdb(name).sql(f"select * from {name}").to_arrow_table()
    out["to_duckdb"] = (duck.column_names, _rows(duck))
    return out


def _check(t: lh.Table, model: pa.Table) -> None:
    expected = (model.column_names, _rows(model))
    assert t.to_arrow().schema.remove_metadata() == _logical(model.schema), t.to_arrow().schema
    for reader, got in _read_all(t).items():
        if got == "refused":
            continue
        assert got == expected, reader


def _logical(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, f.type) for f in schema])


# -- the matrix --------------------------------------------------------------------------------
def _optimize(t: lh.Table, before: pa.Table, after: pa.Table) -> pa.Table:
    assert t.optimize() is not None
    return after


def _vacuum(t: lh.Table, before: pa.Table, after: pa.Table) -> pa.Table:
    t.optimize()
    assert t.vacuum(retention=ZERO, enforce_retention=False, dry_run=False)
    return after


def _restore(t: lh.Table, before: pa.Table, after: pa.Table) -> pa.Table:
    old = t.to_arrow(version=1)
    t.restore(1)  # the version before the schema change
    assert t.to_arrow().equals(old)
    return before


def _checkpoint(t: lh.Table, before: pa.Table, after: pa.Table) -> pa.Table:
    t.checkpoint()
    return after


def _cleanup_log(t: lh.Table, before: pa.Table, after: pa.Table) -> pa.Table:
    t.checkpoint()
    assert t.cleanup_log(retention=ZERO, enforce_retention=False) > 0
    return after


OPERATIONS = {"optimize": _optimize, "vacuum": _vacuum, "restore": _restore, "checkpoint": _checkpoint,
              "cleanup_log": _cleanup_log}


@pytest.fixture
def memory_uri():
    name = f"matrix-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_reader_after_every_schema_change_and_maintenance(memory_uri, change, operation):
    apply, remodel = CHANGES[change]
    t = lh.write_table(memory_uri, _first(), partition_by=["p"])
    t.append(_second(t.schema))
    before = pa.Table.from_pandas(_first(), preserve_index=False).cast(_logical(t.schema))
    before = pa.concat_tables([before, _second(t.schema)])
    apply(t)
    after = pa.concat_tables([remodel(before), _third(t.schema)])
    t.append(_third(t.schema))
    _check(t, after)
    model = OPERATIONS[operation](t, before, after)
    _check(t, model)
    _check(lh.Table.open(memory_uri), model)  # a fresh handle replays (or reads the checkpoint) alike


# -- restore across random schema histories ----------------------------------------------------
_STEPS = st.lists(st.sampled_from(["append", "add", "rename_data", "rename_part", "drop", "drop_readd",
                                   "widen_data", "widen_part", "restore"]), min_size=1, max_size=8 if not FUZZ else 14)


def _step(t: lh.Table, step: str, draw_version: int) -> None:
    schema = t.schema
    part, data = t.partition_by[0], [f for f in schema if f.name not in t.partition_by]
    ints = [f for f in data if pa.types.is_integer(f.type) and f.type.bit_width < 64]
    if step == "append":
        t.append(_rows_for(schema, t.version))
    elif step == "add":
        t.alter.add_column(pa.field(f"c{t.version}", pa.int16()))
    elif step == "rename_data":
        t.alter.rename_column(data[0].name, f"{data[0].name.split('_')[0]}_{t.version}")
    elif step == "rename_part":
        t.alter.rename_column(part, f"{part.split('_')[0]}_{t.version}")
    elif step == "drop" and len(data) > 1:
        t.alter.drop_column(data[-1].name)
    elif step == "drop_readd" and len(data) > 1:  # the name comes back under a new physical name
        t.alter.drop_column(data[-1].name)
        t.alter.add_column(pa.field(data[-1].name, pa.string()))
    elif step == "widen_data" and ints:
        t.alter.widen_column(ints[0].name, pa.int64())
    elif step == "widen_part" and schema.field(part).type.bit_width < 64:
        t.alter.widen_column(part, pa.int64())
    elif step == "restore":
        t.restore(draw_version % (t.version + 1))


def _rows_for(schema: pa.Schema, seed: int) -> pa.Table:
    """Two rows per call; integer columns get values near the top of their type (so a widened
    column holds values its older type could not)."""
    cols = {}
    for i, f in enumerate(schema):
        if pa.types.is_integer(f.type):
            top = 2 ** (f.type.bit_width - 1) - 1
            cols[f.name] = pa.array([top - seed % 3, -(seed + i) % 5], f.type)
        else:
            cols[f.name] = pa.array([f"s{seed}", None], f.type)
    return pa.table(cols)


@settings(max_examples=200 if FUZZ else 12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_STEPS, picks=st.lists(st.integers(0, 50), min_size=14, max_size=14))
def test_restore_reads_back_every_version_exactly(steps, picks):
    uri = f"memory://restore-{uuid.uuid4().hex}"
    try:
        t = lh.write_table(uri, pa.table({"p": pa.array([1, -2], pa.int8()), "x": pa.array([3, None], pa.int8()),
                                          "s": ["a", None]}), partition_by=["p"])
        for step, pick in zip(steps, picks):
            _step(t, step, pick)
        latest = t.version
        seen = {v: t.to_arrow(version=v) for v in range(latest + 1)}
        for v in sorted(seen, key=lambda v: picks[v % len(picks)])[:4]:
            t.restore(v)
            got = t.to_arrow()
            assert got.schema == seen[v].schema, v
            assert _rows(got) == _rows(seen[v]), v
            if v % 2:
                t.checkpoint()  # the files table a checkpoint stores reads back alike
            assert _rows(lh.Table.open(uri).to_arrow()) == _rows(seen[v]), v
            t.optimize()  # compaction after a restore keeps the rows too
            assert _rows(t.to_arrow()) == _rows(seen[v]), v
    finally:
        fs = fsspec.filesystem("memory")
        if fs.exists(uri[len("memory://"):]):
            fs.rm(uri[len("memory://"):], recursive=True)


def test_a_restore_that_narrows_a_partition_column_needs_protocol_3(tmp_path):
    """Older readers would read the narrowed partition values as unknown: the restore raises the
    protocol to 3/3 (format §5.2), and a restore that narrows nothing leaves it alone."""
    from lakehouse.log import Protocol

    t = lh.write_table(str(tmp_path / "t"), pa.table({"p": pa.array([1, 2], pa.int8()), "v": [1, 2]}),
                       partition_by=["p"])
    t.alter.widen_column("p", pa.int32())
    t.append(pa.table({"p": pa.array([3], pa.int32()), "v": [3]}))
    t.restore(2)  # no narrowing: same schema as now
    assert t.snapshot().state.protocol == Protocol()
    t.restore(0)
    assert t.snapshot().state.protocol == Protocol(min_reader_version=3, min_writer_version=3)
    assert sorted(t.to_arrow().column("p").to_pylist()) == [1, 2]
    assert t.schema.field("p").type == pa.int8()
    again = lh.Table.open(t.uri)
    assert sorted(again.to_arrow(filter=[("p", "=", 2)]).column("v").to_pylist()) == [2]

"""Differential harness: random tables x random write sequences, checked against a pyarrow model.

Each example creates a table with random partition columns (every partition type, hostile values,
null and "") and data columns (every Arrow type lakehouse stores), then runs a random sequence of
append / delete(filter) / overwrite(filter) / overwrite / optimize / schema changes / restore /
vacuum / checkpoint-and-reopen. The model is a plain ``pyarrow.Table`` (plus every past version's)
updated with ``pyarrow.compute``: a delete keeps the rows where the filter is not TRUE (false or
null, SQL semantics), an overwrite with a filter replaces the rows where it is TRUE.

After every step the latest version is read through every reader (``to_arrow``, ``to_batches``,
``plan_files`` + ``read_task``, ``to_pyarrow_dataset``, ``to_pandas``, Polars, DuckDB), with and
without a random filter rendered in every front end that can say it (expressions, DNF, SQL text,
Polars expressions, DuckDB SQL), and compared with the model row by row (by the ``rid`` row id).
At the end every older version is read back through ``to_arrow(version=)`` and two other readers.

CI runs a bounded profile; ``LH_FUZZ=1`` (``make fuzz``) a long one. A failure prints the steps
(hypothesis ``note``) and a reproduction blob.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import tempfile
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from diffstrategies import (
    DATA_NAMES,
    DATA_TYPES,
    KNOWN_BUGS,
    Filt,
    Front,
    arrays_for,
    filters,
    table_schemas,
    values_for,
)
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

import lakehouse as lh

FUZZ = os.environ.get("LH_FUZZ") == "1"
settings.register_profile(
    "lakehouse-differential",
    max_examples=400 if FUZZ else 25,
    deadline=None,
    print_blob=True,
    derandomize=not FUZZ,
    # LH_DIFF_NOSHRINK=1: report failures unshrunk (fast triage of many failures)
    phases=[Phase.explicit, Phase.reuse, Phase.generate] if os.environ.get("LH_DIFF_NOSHRINK") else list(Phase),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
MAX_STEPS = 20 if FUZZ else 8
MAX_ROWS = 12 if FUZZ else 8
WRITE_FRONTS = ("expr", "dnf", "sql")

_WIDER = {
    pa.int8(): [pa.int16(), pa.int32(), pa.int64()], pa.int16(): [pa.int32(), pa.int64()],
    pa.int32(): [pa.int64()], pa.uint8(): [pa.uint16(), pa.uint32(), pa.uint64()],
    pa.uint16(): [pa.uint32(), pa.uint64()], pa.uint32(): [pa.uint64()], pa.float32(): [pa.float64()],
    pa.date32(): [pa.timestamp("s"), pa.timestamp("ms"), pa.timestamp("us")],
    pa.decimal128(5, 2): [pa.decimal128(7, 2), pa.decimal128(9, 3)],
}


# ------------------------------------------------------------------------------ comparing rows
def _canon(value: Any) -> Any:
    """A Python value in a form every reader's output agrees on (NaN, -0.0, NaT, arrays, dicts)."""
    if value is None:
        return None
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(value)
    if isinstance(value, dict):
        return tuple(sorted((k, _canon(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_canon(v) for v in value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    try:
        import pandas as pd

        if value is pd.NaT or value is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value


def _canon_column(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    typ = col.type
    if pa.types.is_dictionary(typ):
        col = col.cast(typ.value_type)
        typ = typ.value_type
    if pa.types.is_timestamp(typ):  # instants in ns, whatever unit or zone the reader chose
        col = col.cast(pa.timestamp("ns", typ.tz)).cast(pa.int64())
    elif pa.types.is_date(typ):
        col = col.cast(pa.date32())
    elif pa.types.is_string_view(typ) or pa.types.is_large_string(typ):
        col = col.cast(pa.string())
    elif pa.types.is_binary_view(typ) or pa.types.is_large_binary(typ):
        col = col.cast(pa.binary())
    return [_canon(v) for v in col.to_pylist()]


def by_rid(table: pa.Table) -> dict[Any, tuple]:
    """Rows keyed by the row id, values canonical, in column order."""
    cols = [_canon_column(table.column(i)) for i in range(table.num_columns)]
    rids = table.column("rid").to_pylist()
    assert len(set(rids)) == len(rids), f"duplicated row ids: {sorted(r for r in rids if rids.count(r) > 1)}"
    return {rid: tuple(c[i] for c in cols) for i, rid in enumerate(rids)}


def assert_rows(got: pa.Table, expected: pa.Table, what: str, *, check_schema: bool = True) -> None:
    if check_schema:
        assert got.schema.equals(expected.schema), f"{what}: schema\n{got.schema}\n!=\n{expected.schema}"
    else:
        assert got.column_names == expected.column_names, f"{what}: columns {got.column_names}"
    g, e = by_rid(got), by_rid(expected)
    if g != e:
        missing = sorted(set(e) - set(g))
        extra = sorted(set(g) - set(e))
        changed = [(r, e[r], g[r]) for r in sorted(set(g) & set(e)) if g[r] != e[r]]
        raise AssertionError(f"{what}: {len(missing)} rows missing {[e[r] for r in missing][:5]}, "
                             f"{len(extra)} extra {[g[r] for r in extra][:5]}, "
                             f"{len(changed)} changed (rid, expected, got) {changed[:3]}")


def _pandas_rows(df: Any, schema: pa.Schema) -> dict[Any, tuple]:
    """Rows of a DataFrame keyed by row id. Nested columns are left out: pyarrow's own conversion of
    a struct's children depends on chunking (an int child came out as 1 and as 1.0 for equal tables)."""
    flat = [f.name for f in schema if not pa.types.is_nested(f.type)]
    cols = [[_canon(v) for v in df[name].tolist()] for name in flat]
    return {rid: tuple(c[i] for c in cols) for i, rid in enumerate(df["rid"].tolist())}


def keep(model: pc.Expression) -> pc.Expression:
    """Rows a delete keeps: where the filter is not TRUE."""
    return ~model | model.is_null()


def evaluate(table: pa.Table, model: pc.Expression) -> pa.Table | None:
    """The rows of ``table`` where ``model`` is TRUE, or None if pyarrow cannot evaluate it."""
    try:
        return table.filter(model)
    except (pa.ArrowException, TypeError, ValueError):
        return None


def refusable(f: Filt, call: Any) -> tuple[bool, Any]:
    """Run ``call``; a filter with a literal outside its column's range may be refused (a
    LakehouseError; pyarrow itself cannot compare e.g. uint64 with a negative int64). (ran, result)."""
    if "out-of-range" not in f.tags:
        return True, call()
    try:
        return True, call()
    except lh.LakehouseError:
        return False, None
    except pa.ArrowException:
        if "item21-untyped-filter-errors" in KNOWN_BUGS:
            return False, None
        raise


def assert_refused(call: Any, what: str) -> None:
    """A filter pyarrow cannot evaluate must be refused with a LakehouseError."""
    try:
        call()
    except lh.LakehouseError:
        return
    except Exception as exc:
        if "item21-untyped-filter-errors" in KNOWN_BUGS and isinstance(exc, pa.ArrowException):
            return
        raise AssertionError(f"{what}: pyarrow cannot evaluate the filter and lakehouse raised "
                             f"{type(exc).__name__} (not a LakehouseError): {exc}") from exc
    raise AssertionError(f"{what}: pyarrow cannot evaluate the filter, yet lakehouse accepted it")


# ------------------------------------------------------------------------------ the run
class Run:
    """One example: the table under test, the model, and what the harness knows of its history."""

    def __init__(self, uri: str, schema: pa.Schema, parts: list[str], data: st.DataObject) -> None:
        self.uri = uri
        self.data = data
        self.table = lh.Table.create(uri, schema, partition_by=parts)
        self.next_rid = 0
        # per version: (model table, partition columns, "mapped": renamed/re-added columns)
        self.versions: list[tuple[pa.Table, list[str], bool]] = [(schema.empty_table(), list(parts), False)]
        self.dropped: set[str] = set()
        self.renamed_part = False  # a partition column was renamed (item 14)
        self.widened = False  # some column was widened (item 14)
        self.readable_from = 0  # versions before this lost files to vacuum

    # -- model state
    @property
    def model(self) -> pa.Table:
        return self.versions[-1][0]

    @property
    def parts(self) -> list[str]:
        return self.versions[-1][1]

    @property
    def mapped(self) -> bool:
        return self.versions[-1][2]

    @property
    def schema(self) -> pa.Schema:
        return self.model.schema

    def record(self, version: int | None, model: pa.Table, *, parts: list[str] | None = None,
               mapped: bool | None = None) -> None:
        latest = len(self.versions) - 1
        parts = self.parts if parts is None else parts
        mapped = self.mapped if mapped is None else mapped
        if version is None or version == latest:  # a write that committed nothing
            assert model.schema.equals(self.schema), "a no-op changed the schema"
            assert by_rid(model) == by_rid(self.model), "a write that committed nothing should have changed rows"
            return
        assert version == latest + 1, (version, latest)
        self.versions.append((model, list(parts), mapped))

    def draw(self, strategy: st.SearchStrategy[Any], label: str) -> Any:
        return self.data.draw(strategy, label=label)

    def rows(self, schema: pa.Schema, n: int | None = None) -> pa.Table:
        """New random rows of ``schema`` with fresh row ids."""
        if n is None:
            n = self.draw(st.integers(0, MAX_ROWS), "rows")
        arrays = []
        for f in schema:
            if f.name == "rid":
                arrays.append(pa.array(range(self.next_rid, self.next_rid + n), pa.int64()))
                continue
            values = self.draw(st.lists(st.one_of(st.none(), values_for(f.type)), min_size=n, max_size=n), f.name)
            arrays.append(arrays_for(f.type, values))
        self.next_rid += n
        return pa.Table.from_arrays(arrays, schema=schema)

    def filt(self, *, write: bool = False) -> Filt:
        iso = "item19-dnf-iso-strings" not in KNOWN_BUGS and self.draw(st.booleans(), "iso")
        parts = set(self.parts)

        def accept(f: Filt) -> bool:
            if write and "item1-partition-only-write-filter" in KNOWN_BUGS and f.columns <= parts and not f.simple:
                return False
            if "new-mapped-string-match-filter" in KNOWN_BUGS and self.mapped and "match" in f.tags:
                return False
            return bool(set(f.fronts) & set(WRITE_FRONTS))

        return self.draw(filters(self.schema, iso=iso, accept=accept), "filter")

    def fronts(self, f: Filt) -> dict[str, Front]:
        out = dict(f.fronts)
        if "item11-timestamp-ns-literal" in KNOWN_BUGS and "ts-ns-literal" in f.tags:
            out.pop("sql", None)
        return out

    # -- steps
    def step(self) -> None:
        kinds = ["append", "append", "delete", "delete", "overwrite_filter", "overwrite", "optimize",
                 "add_column", "rename_column", "drop_column", "widen_column", "merge_append", "restore",
                 "vacuum", "reopen"]
        kind = self.draw(st.sampled_from(kinds), "step")
        getattr(self, f"do_{kind}")()

    def do_append(self) -> None:
        new = self.rows(self.schema)
        flavour = self.draw(st.sampled_from(["table", "reader", "large_string", "string_view", "dictionary",
                                             "polars"]), "flavour")
        if "item16-string-flavours" in KNOWN_BUGS and flavour in ("string_view", "dictionary", "polars"):
            flavour = "table"
        if flavour == "polars" and any(_polars_changes(f.type) for f in new.schema):
            flavour = "table"  # Polars has no second-unit timestamps or 32-bit times: it hands over another type
        note(f"append {new.num_rows} rows as {flavour}: {new.to_pylist()}")
        v = self.table.append(_flavoured(new, flavour))
        self.record(v, pa.concat_tables([self.model, new]))

    def _write_front(self, f: Filt) -> tuple[str, Front]:
        fronts = {k: v for k, v in self.fronts(f).items() if k in WRITE_FRONTS}
        name = self.draw(st.sampled_from(sorted(fronts)), "front")
        return name, fronts[name]

    def do_delete(self) -> None:
        f = self.filt(write=True)
        name, front = self._write_front(f)
        note(f"delete {name}: {front.value!r}")
        expected = evaluate(self.model, keep(front.model))
        if expected is None:
            before = self.table.version
            assert_refused(lambda: self.table.delete(front.value), "delete")
            assert self.table.refresh() == before
            return
        ran, v = refusable(f, lambda: self.table.delete(front.value))
        if ran:
            self.record(v, expected)

    def do_overwrite_filter(self) -> None:
        f = self.filt(write=True)
        name, front = self._write_front(f)
        new = evaluate(self.rows(self.schema), front.model)
        kept = evaluate(self.model, keep(front.model))
        if new is None or kept is None:
            before = self.table.version
            assert_refused(lambda: self.table.overwrite(self.model.schema.empty_table(), filter=front.value),
                           "overwrite")
            assert self.table.refresh() == before
            return
        note(f"overwrite {name}: {front.value!r} with {new.to_pylist()}")
        expected = pa.concat_tables([kept, new])
        ran, v = refusable(f, lambda: self.table.overwrite(new, filter=front.value))
        if ran:
            self.record(v, expected)

    def do_overwrite(self) -> None:
        new = self.rows(self.schema)
        note(f"overwrite all with {new.to_pylist()}")
        self.record(self.table.overwrite(new), new)

    def do_optimize(self) -> None:
        if "item14-optimize-after-partition-rename" in KNOWN_BUGS and self.renamed_part:
            return
        note("optimize")
        self.record(self.table.optimize(), self.model)

    def do_add_column(self) -> None:
        free = [n for n in DATA_NAMES if n not in self.schema.names]
        if not free:
            return
        name = self.draw(st.sampled_from(free), "column")
        typ = self.draw(st.sampled_from(DATA_TYPES), "type")
        note(f"add_column {name} {typ}")
        v = self.table.alter.add_column(pa.field(name, typ))
        self.record(v, self.model.append_column(pa.field(name, typ), pa.nulls(self.model.num_rows, typ)),
                    mapped=self.mapped or name in self.dropped)

    def do_merge_append(self) -> None:
        free = [n for n in DATA_NAMES if n not in self.schema.names]
        if not free:
            return
        name = self.draw(st.sampled_from(free), "column")
        typ = self.draw(st.sampled_from(DATA_TYPES), "type")
        old = self.model.append_column(pa.field(name, typ), pa.nulls(self.model.num_rows, typ))
        new = self.rows(old.schema)
        note(f"append with schema_mode='merge', new column {name} {typ}: {new.to_pylist()}")
        v = self.table.append(new, schema_mode="merge")
        self.record(v, pa.concat_tables([old, new]), mapped=self.mapped or name in self.dropped)

    def do_rename_column(self) -> None:
        cols = [n for n in self.schema.names if n != "rid"]
        pool = [n for n in (*DATA_NAMES, "r", "s", "p", "_v", "x y") if n not in self.schema.names]
        old = self.draw(st.sampled_from(cols), "column")
        new = self.draw(st.sampled_from(pool), "new_name")
        note(f"rename_column {old} -> {new}")
        v = self.table.alter.rename_column(old, new)
        names = [new if n == old else n for n in self.schema.names]
        parts = [new if p == old else p for p in self.parts]
        self.renamed_part = self.renamed_part or old in self.parts
        self.record(v, self.model.rename_columns(names), parts=parts, mapped=True)

    def do_drop_column(self) -> None:
        cols = [n for n in self.schema.names if n not in ("rid", *self.parts)]
        if not cols:
            return
        name = self.draw(st.sampled_from(cols), "column")
        note(f"drop_column {name}")
        v = self.table.alter.drop_column(name)
        self.dropped.add(name)
        self.record(v, self.model.drop_columns([name]))

    def do_widen_column(self) -> None:
        cols = [f for f in self.schema if f.name != "rid" and f.type in _WIDER]
        if not cols:
            return
        f = self.draw(st.sampled_from(cols), "column")
        typ = self.draw(st.sampled_from(_WIDER[f.type]), "type")
        note(f"widen_column {f.name} {f.type} -> {typ}")
        v = self.table.alter.widen_column(f.name, typ)
        self.widened = True
        i = self.schema.get_field_index(f.name)
        self.record(v, self.model.set_column(i, pa.field(f.name, typ), self.model.column(i).cast(typ)))

    def do_restore(self) -> None:
        latest = len(self.versions) - 1
        targets = list(range(self.readable_from, latest))
        if "item3-restore-widened-partition" in KNOWN_BUGS:
            now = [self.schema.field(p).type for p in self.parts]
            targets = [v for v in targets if [self.versions[v][0].schema.field(p).type
                                              for p in self.versions[v][1]] == now]
        if not targets:
            return
        target = self.draw(st.sampled_from(targets), "version")
        note(f"restore {target}")
        model, parts, mapped = self.versions[target]
        self.record(self.table.restore(target), model, parts=parts, mapped=mapped)

    def do_vacuum(self) -> None:
        if "item15-vacuum-underscore-partition" in KNOWN_BUGS and any(p[:1] in "_." for p in self.parts):
            return
        note("vacuum retention=0")
        self.table.vacuum(retention=dt.timedelta(0), enforce_retention=False, dry_run=False)
        self.readable_from = len(self.versions) - 1
        fs, root = fsspec.core.url_to_fs(self.uri)
        root = root.rstrip("/")
        on_disk = {p[len(root) + 1:] for p in fs.find(root) if p.endswith(".parquet")
                   and "/_lakehouse_log/" not in p}
        live = set(self.table.files().column("path").to_pylist())
        assert on_disk == live, f"vacuum left {sorted(on_disk - live)}; lost {sorted(live - on_disk)}"

    def do_reopen(self) -> None:
        note("checkpoint and reopen")
        self.table.checkpoint()
        self.table = lh.Table.open(self.uri)
        assert self.table.version == len(self.versions) - 1

    # -- checks
    def check_latest(self) -> None:
        t, model = self.table, self.model
        assert t.version == len(self.versions) - 1
        assert t.partition_by == self.parts
        assert_rows(t.to_arrow(), model, "to_arrow")
        f = self.filt()
        fronts = self.fronts(f)
        note(f"read filter {f!r}: {sorted(fronts)}")
        usable = {}
        for name in ("expr", "dnf", "sql"):
            if name in fronts:
                front = fronts[name]
                expected = evaluate(model, front.model)
                if expected is None:
                    assert_refused(lambda f=front: t.to_arrow(filter=f.value), f"to_arrow({name} {front.value!r})")
                    continue
                ran, got = refusable(f, lambda fr=front: t.to_arrow(filter=fr.value))
                if ran:
                    usable[name] = front
                    assert_rows(got, expected, f"to_arrow({name} {front.value!r})")
        front = usable[sorted(usable)[0]] if usable else Front(None, pc.scalar(True))
        expected = model.filter(front.model)
        assert_rows(t.to_batches(filter=front.value).read_all(), expected, f"to_batches({front.value!r})")
        if not ("item12-float-zero-nan" in KNOWN_BUGS and "nan" in f.tags):  # plan_files refuses NaN in `in`
            tasks = t.snapshot().plan_files(filter=front.value)
            got = pa.concat_tables([lh.read_task(task) for task in tasks]) if tasks else model.schema.empty_table()
            assert_rows(got, expected, f"read_task({front.value!r})", check_schema=bool(tasks))
        self.check_pandas(front, expected)
        # engines evaluate out-of-range literals by their own casting rules: no filter pushed then
        lazy = {} if "out-of-range" in f.tags else fronts
        self.check_lazy(f, {k: v for k, v in lazy.items() if evaluate(model, v.model) is not None})

    def check_pandas(self, front: Front, expected: pa.Table) -> None:
        if "item14-pandas-after-widen" in KNOWN_BUGS and self.widened:
            return
        df = self.table.to_pandas(filter=front.value)
        want = expected.to_pandas()
        assert list(df.columns) == list(want.columns), f"to_pandas columns {list(df.columns)}"
        assert [str(d) for d in df.dtypes] == [str(d) for d in want.dtypes], f"to_pandas dtypes {df.dtypes}"
        assert _pandas_rows(df, expected.schema) == _pandas_rows(want, expected.schema), \
            f"to_pandas({front.value!r})"

    def check_lazy(self, f: Filt, fronts: dict[str, Front]) -> None:
        """to_pyarrow_dataset, Polars and DuckDB; they cannot show renamed columns (documented)."""
        try:
            dataset = self.table.to_pyarrow_dataset(filter=fronts["expr"].value if "expr" in fronts else None)
        except lh.SchemaMismatchError:
            assert self.mapped, "to_pyarrow_dataset refused a table whose columns were never renamed"
            return
        model = self.model
        nan_pushdown = "item12-float-zero-nan" in KNOWN_BUGS and "nan" in f.tags
        if "expr" in fronts and not nan_pushdown:
            front = fronts["expr"]
            got = dataset.to_table(filter=front.value)
            assert_rows(got, model.filter(front.model), f"to_pyarrow_dataset({front.value!r})")
        import polars as pl  # noqa: F401 (the polars front ends need it imported)

        lazy = self.table.to_polars()
        polars_tz = "item13-polars-pushdown" in KNOWN_BUGS and bool({"polars-tz", "polars-u64"} & f.tags)
        if "polars" in fronts and not nan_pushdown and not polars_tz:
            lazy, expected = lazy.filter(fronts["polars"].value), model.filter(fronts["polars"].model)
        else:
            expected = model
        assert_rows(lazy.collect().to_arrow(), expected, "to_polars", check_schema=False)
        con = self.table.to_duckdb("t")
        query, expected = "select * from t", model
        if "duckdb" in fronts and not nan_pushdown:
            query, expected = f"select * from t where {fronts['duckdb'].value}", model.filter(fronts["duckdb"].model)
        assert_rows(con.sql(query).to_arrow_table(), expected, f"duckdb {query}", check_schema=False)
        con.close()

    def check_history(self) -> None:
        latest = len(self.versions) - 1
        for v in range(self.readable_from, latest + 1):
            assert_rows(self.table.to_arrow(version=v), self.versions[v][0], f"to_arrow(version={v})")
        others = self.draw(st.lists(st.integers(self.readable_from, latest), max_size=2, unique=True), "versions")
        for v in others:
            snap = self.table.snapshot(version=v)
            assert_rows(snap.to_batches().read_all(), self.versions[v][0], f"to_batches at version {v}")
            tasks = snap.plan_files()
            if tasks:
                assert_rows(pa.concat_tables([lh.read_task(t) for t in tasks]), self.versions[v][0],
                            f"read_task at version {v}")


def _polars_changes(t: pa.DataType) -> bool:
    """True if a column of type ``t`` comes back from Polars as another type (a second-unit timestamp
    becomes milliseconds, a time32 a time64[ns]): lakehouse refuses that unit change as for any input."""
    if pa.types.is_timestamp(t):
        return t.unit == "s"
    if pa.types.is_time32(t):
        return True
    if pa.types.is_struct(t):
        return any(_polars_changes(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _polars_changes(t.value_type)
    return False


def _flavoured(table: pa.Table, flavour: str) -> Any:
    """The same rows in another input shape: a stream, or string columns as another representation."""
    if flavour == "reader":
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    if flavour == "polars":
        import polars as pl

        return pl.from_arrow(table)
    target = {"large_string": pa.large_string(), "string_view": pa.string_view(),
              "dictionary": pa.dictionary(pa.int8(), pa.string())}.get(flavour)
    if target is None:
        return table
    cols = [c.cast(target) if pa.types.is_string(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(cols, names=table.column_names)


@pytest.mark.parametrize("backend", ["local", "memory"])
@settings(settings.get_profile("lakehouse-differential"))
@given(data=st.data())
def test_differential(backend: str, data: st.DataObject) -> None:
    schema, parts = data.draw(table_schemas(), label="schema")
    note(f"schema {schema} partition_by {parts}")
    tmp = tempfile.mkdtemp(prefix="lh-diff-") if backend == "local" else None
    uri = f"{tmp}/t" if tmp else f"memory://diff-{uuid.uuid4().hex}"
    try:
        run = Run(uri, schema, parts, data)
        run.do_append()
        run.check_latest()
        for _ in range(data.draw(st.integers(1, MAX_STEPS), label="steps")):
            run.step()
            run.check_latest()
        run.check_history()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            fs = fsspec.filesystem("memory")
            if fs.exists(uri[len("memory://"):]):
                fs.rm(uri[len("memory://"):], recursive=True)

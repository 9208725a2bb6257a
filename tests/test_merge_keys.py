"""Merge and upsert matching, key type by key type, against a plain-Python model.

The matching machinery (``lakehouse.merge``, ``merge_match``, ``merge_source``, ``scan.groups``)
takes different paths by key: a single key that numpy orders goes through the sorted-key probe
(``KeyProbe``, row groups skipped by min/max), every other key (strings, decimals, binary, bool,
several columns, a ``predicate=`` with a residual) through ``pa.Table.join``; the source is spilled
in key-range chunks beyond ``_SOURCE_BUDGET``; target files are read by Parquet row group with
positions among live rows (deletion vectors). The differential test drives all of these with small
key pools (collisions, nulls, NaN, -0.0/0.0, extremes, '' and non-ASCII) and compares the table after
(and at the previous version) and the ``MergeResult`` counts with SQL MERGE computed row by row.

Also: an upsert of a ``RecordBatchReader`` far larger than the source budget, in a subprocess, with
the Arrow memory pool's peak measured; and sources from pandas, Polars and DuckDB with string keys.

CI runs a bounded profile; ``LH_FUZZ=1`` a long one.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lakehouse as lh
import lakehouse.merge
import lakehouse.rowremoval
import lakehouse.write

FUZZ = os.environ.get("LH_FUZZ") == "1"
PROFILE = settings(max_examples=300 if FUZZ else 25, deadline=None, derandomize=not FUZZ,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

Row = dict[str, Any]
NAN, INF = float("nan"), float("inf")
UTC = timezone.utc

# key type name -> (key columns and their types, pool of key values: one tuple per row, None for a null)
_T0 = datetime(1970, 1, 1)
KEY_TYPES: dict[str, tuple[list[tuple[str, pa.DataType]], list[Any]]] = {
    "int8": ([("k", pa.int8())], [-128, -1, 0, 1, 127]),
    "int64": ([("k", pa.int64())], [-(2**63), -1, 0, 3, 2**63 - 1]),
    "uint32": ([("k", pa.uint32())], [0, 1, 7, 2**32 - 1]),
    "float64": ([("k", pa.float64())], [NAN, -0.0, 0.0, INF, -INF, 1.5, -2.25]),
    "date32": ([("k", pa.date32())], [date(1970, 1, 1), date(1969, 12, 31), date(2024, 2, 29), date(1900, 1, 1)]),
    "timestamp": ([("k", pa.timestamp("us"))], [_T0, _T0 - timedelta(microseconds=1), datetime(2024, 3, 10, 2, 30),
                                                datetime(1900, 1, 1)]),
    "timestamp_utc": ([("k", pa.timestamp("us", "UTC"))], [_T0.replace(tzinfo=UTC), datetime(2024, 3, 10, 2, 30,
                                                           tzinfo=UTC), datetime(1969, 1, 1, 0, 0, 1, tzinfo=UTC)]),
    "duration": ([("k", pa.duration("us"))], [timedelta(0), timedelta(microseconds=-1), timedelta(days=3),
                                              timedelta(days=-9999)]),
    "time64": ([("k", pa.time64("us"))], [time(0), time(23, 59, 59, 999999), time(12), time(0, 0, 0, 1)]),
    "string": ([("k", pa.string())], ["", "a", "é", "日本", "a\x00b", "\U0001f600", "Z"]),
    "decimal": ([("k", pa.decimal128(12, 2))], [Decimal("0.00"), Decimal("-1.50"), Decimal("9999999999.99"),
                                                Decimal("0.01"), Decimal("-9999999999.99")]),
    "binary": ([("k", pa.binary())], [b"", b"\x00", b"\xff\xfe", b"a", b"\x00\x00"]),
    "bool": ([("k", pa.bool_())], [True, False]),
    "int_string": ([("k", pa.int64()), ("k2", pa.string())], [(a, b) for a in (0, 1, -7) for b in ("", "x", "é")]),
}


@dataclass(frozen=True)
class Case:
    """One key type: its key columns, the target schema, and the pool keys are drawn from."""

    name: str
    keys: list[tuple[str, pa.DataType]]
    pool: list[Any]

    @property
    def names(self) -> list[str]:
        return [k for k, _ in self.keys]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([*self.keys, ("v", pa.int64()), ("p", pa.int8()), ("r", pa.int64())])

    def key_dict(self, value: Any) -> Row:
        """A drawn key value (a pool entry or None) as the key columns of a row."""
        if len(self.keys) == 1:
            return {self.names[0]: value}
        if value is None:
            return dict.fromkeys(self.names)
        return dict(zip(self.names, value))


def _case(name: str) -> Case:
    keys, pool = KEY_TYPES[name]
    return Case(name, keys, pool)


# -- the model: SQL MERGE, row by row over Python values --------------------------------------------
def gt(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a > b


def add(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a + b


def key_equal(a: Any, b: Any) -> bool:
    """SQL equality of one key value: null and NaN equal nothing, -0.0 equals 0.0 (Python's ``==``)."""
    return a is not None and b is not None and a == b


def matches(case: Case, t: Row, s: Row, residual: bool) -> bool:
    if not all(key_equal(t[k], s[k]) for k in case.names):
        return False
    return not residual or gt(s["v"], t["v"]) is True


# Clauses: name -> (action, lakehouse set/values, lakehouse filter, model condition, model values)
MATCHED = {
    "upd_all": ("update", None, None, lambda t, s: True, None),
    "upd_add_if_bigger": ("update", {"v": "target.v + source.v"}, "source.v > target.v",
                          lambda t, s: gt(s["v"], t["v"]), lambda t, s: {"v": add(t["v"], s["v"])}),
    "upd_expr": ("update", {"v": pc.field("v") * 2}, [("v", ">", 0)], lambda t, s: gt(t["v"], 0),
                 lambda t, s: {"v": t["v"] * 2}),
    "del_neg": ("delete", None, "source.v < 0", lambda t, s: gt(0, s["v"]), None),
    "del": ("delete", None, None, lambda t, s: True, None),
}
INSERTS = {
    "all": (None, None, lambda s: True),
    "v>0": (None, "v > 0", lambda s: gt(s["v"], 0)),
    "some": ("some", [("v", "is not null", None)], lambda s: s["v"] is not None),
}
BY_SOURCE = {
    "upd_big": ("update", {"v": "target.v * 10"}, "target.v > 2", lambda t: gt(t["v"], 2),
                lambda t: {"v": t["v"] * 10}),
    "upd_zero": ("update", {"v": "0"}, None, lambda t: True, lambda t: {"v": 0}),
    "del_neg": ("delete", None, [("v", "<", 0)], lambda t: gt(0, t["v"]), None),
    "del_null": ("delete", None, "target.v IS NULL", lambda t: t["v"] is None, None),
}


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


class Duplicate(Exception):
    """The model's DuplicateMatchError."""


def _same_value(a: Any, b: Any) -> bool:
    """Whether an upsert leaves a value unchanged: floats bit for bit (NaN equal to NaN, -0.0 not 0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return canon(a) == canon(b)
    return a == b and type(a) is type(b) if a is not None and b is not None else a is b


def model_merge(case: Case, target: list[Row], source: list[Row], op: dict[str, Any]) -> tuple[list[Row], Counts]:
    """SQL MERGE (or upsert) of ``source`` into ``target``; raises :class:`Duplicate`."""
    names = case.schema.names
    source_cols = [c for c in op["source_columns"] if c in names]
    upsert = op["kind"] == "upsert"
    residual = op["join"] == "residual"
    hits = [[j for j, s in enumerate(source) if matches(case, t, s, residual)] for t in target]
    if (upsert or op["matched"]) and any(len(h) > 1 for h in hits):
        raise Duplicate
    matched_sources = {j for h in hits for j in h}
    out: list[Row] = []
    n = Counts()
    for t, h in zip(target, hits):
        if h:
            s = source[h[0]]
            if upsert:
                new = {**t, **{c: s[c] for c in source_cols}}
                if not all(_same_value(new[c], t[c]) for c in names):
                    n.updated += 1
                out.append(new)
                continue
            for clause in op["matched"]:
                action, _, _, cond, value = MATCHED[clause]
                if cond(t, s):
                    if action == "delete":
                        n.deleted += 1
                    else:
                        n.updated += 1
                        out.append({**t, **(value(t, s) if value else {c: s[c] for c in source_cols})})
                    break
            else:
                out.append(t)
            continue
        for clause in op["by_source"]:
            action, _, _, cond, value = BY_SOURCE[clause]
            if cond(t):
                if action == "delete":
                    n.deleted += 1
                else:
                    n.updated += 1
                    out.append({**t, **value(t)})
                break
        else:
            out.append(t)
    for j, s in enumerate(source):
        if j in matched_sources:
            continue
        clauses = ["all"] if upsert else op["inserts"]
        for clause in clauses:
            values, _, cond = INSERTS[clause]
            if cond(s):
                if values is None:
                    out.append({c: s.get(c) if c in source_cols else None for c in names})
                else:
                    out.append({**dict.fromkeys(names), **{k: s[k] for k in case.names}, "v": s["v"] - 1})
                n.inserted += 1
                break
    return out, n


# -- comparing rows ----------------------------------------------------------------------------------
def canon(x: Any) -> Any:
    """A value made comparable and hashable exactly: floats by their bits (NaN one value, -0.0 apart)."""
    if isinstance(x, float):
        return ("float", "nan" if math.isnan(x) else x.hex())
    if isinstance(x, datetime) and x.tzinfo is not None:
        return ("aware", x.astimezone(UTC).replace(tzinfo=None))
    return (type(x).__name__, x)


def bag(rows: list[Row], names: list[str]) -> Counter:
    return Counter(tuple(canon(r[c]) for c in names) for r in rows)


# -- driving lakehouse -------------------------------------------------------------------------------
def _table(case: Case, rows: list[Row], columns: list[str], types: dict[str, pa.DataType] | None = None) -> pa.Table:
    fields = [case.schema.field(c) for c in columns]
    if types:
        fields = [f.with_type(types.get(f.name, f.type)) for f in fields]
    return pa.Table.from_pylist([{c: r[c] for c in columns} for r in rows], schema=pa.schema(fields))


def run_merge(case: Case, t: lh.Table, op: dict[str, Any], data: pa.Table | pa.RecordBatchReader) -> lh.MergeResult:
    keys = case.names
    if op["kind"] == "upsert":
        return t.upsert(data, on=keys if len(keys) > 1 else keys[0])
    if op["join"] == "on":
        m = t.merge(data, on=keys if len(keys) > 1 else keys[0])
    else:
        text = " AND ".join(f"target.{k} = source.{k}" for k in keys)
        if op["join"] == "residual":
            text += " AND source.v > target.v"
        m = t.merge(data, predicate=text)
    for name in op["matched"]:
        action, set_, text, _, _ = MATCHED[name]
        m = m.when_matched_update(set_, filter=text) if action == "update" else m.when_matched_delete(filter=text)
    for name in op["inserts"]:
        values, text, _ = INSERTS[name]
        if values == "some":
            values = {**{k: f"source.{k}" for k in keys}, "v": "source.v - 1"}
        m = m.when_not_matched_insert(values, filter=text)
    for name in op["by_source"]:
        action, set_, text, _, _ = BY_SOURCE[name]
        if action == "update":
            m = m.when_not_matched_by_source_update(set_, filter=text)
        else:
            m = m.when_not_matched_by_source_delete(filter=text)
    return m.execute()


def _rows_strategy(case: Case, n: int) -> st.SearchStrategy[list[Row]]:
    key = st.one_of(st.sampled_from(case.pool), st.sampled_from(case.pool), st.none())  # null keys: 1 in 3
    row = st.tuples(key, st.one_of(st.none(), st.integers(-5, 5)), st.integers(0, 1))
    return st.lists(row, min_size=1, max_size=n).map(
        lambda drawn: [{**case.key_dict(k), "v": v, "p": p} for k, v, p in drawn])


KINDS = [(m, i, b) for m in (False, True) for i in (False, True) for b in (False, True) if m or i or b]


def _op(data: st.DataObject) -> dict[str, Any]:
    if data.draw(st.integers(0, 4), label="upsert?") == 0:
        return {"kind": "upsert", "join": "on", "matched": [], "inserts": [], "by_source": []}
    m, i, b = data.draw(st.sampled_from(KINDS), label="clause kinds")

    def pick(names: dict[str, Any], on: bool) -> list[str]:
        return data.draw(st.lists(st.sampled_from(sorted(names)), min_size=1, max_size=2, unique=True)) if on else []

    return {"kind": "merge", "join": data.draw(st.sampled_from(["on", "predicate", "residual"]), label="join"),
            "matched": pick(MATCHED, m), "inserts": pick(INSERTS, i), "by_source": pick(BY_SOURCE, b)}


def _dedupe(case: Case, source: list[Row]) -> list[Row]:
    """The source without a second row of a (non-null, non-NaN) key."""
    seen: list[Row] = []
    for s in source:
        if not any(all(key_equal(s[k], o[k]) for k in case.names) for o in seen):
            seen.append(s)
    return seen


def _variant_types(case: Case, data: st.DataObject) -> dict[str, pa.DataType]:
    """Sometimes the source's key in another type the target's holds every pool value of exactly."""
    other = {pa.string(): pa.large_string(), pa.binary(): pa.large_binary(), pa.int8(): pa.int64(),
             pa.uint32(): pa.int64(), pa.int64(): pa.decimal128(20, 0), pa.float64(): pa.float32(),
             pa.date32(): pa.date64(), pa.timestamp("us"): pa.timestamp("ns"),
             pa.timestamp("us", "UTC"): pa.timestamp("ms", "UTC"), pa.duration("us"): pa.duration("ns"),
             pa.time64("us"): pa.time64("ns"), pa.decimal128(12, 2): pa.decimal128(20, 4)}
    types = {}
    for k, typ in case.keys:
        if typ in other and data.draw(st.booleans(), label=f"source type of {k}"):
            types[k] = other[typ]
            event(f"source key {k} as {other[typ]}")
    return types


CASES = sorted(KEY_TYPES)
UNPARTITIONABLE = {"float64", "duration", "time64"}  # types that cannot partition a table


def _patched(**values: Any) -> dict[tuple[Any, str], Any]:
    saved = {}
    for spec, value in values.items():
        module = {"budget": lakehouse.merge, "source_budget": lakehouse.merge, "groups": lakehouse.write,
                  "small": lakehouse.rowremoval, "most": lakehouse.rowremoval}[spec]
        attr = {"budget": "_ROWS_BUDGET", "source_budget": "_SOURCE_BUDGET", "groups": "ROW_GROUP_ROWS",
                "small": "REWRITE_BELOW_ROWS", "most": "REWRITE_FRACTION"}[spec]
        saved[(module, attr)] = getattr(module, attr)
        setattr(module, attr, value)
    return saved


def _restore(saved: dict[tuple[Any, str], Any]) -> None:
    for (module, attr), value in saved.items():
        setattr(module, attr, value)


@pytest.mark.parametrize("key_type", CASES)
@PROFILE
@given(data=st.data())
def test_merge_matches_the_model(key_type, data):
    """One merge (or upsert) on a fresh table of 1-2 files (some rows deleted by vectors first), every
    clause kind, join form, source form and budget drawn: the rows after, the rows at the version
    before and the counts are SQL MERGE's; a duplicate match raises and writes nothing."""
    case = _case(key_type)
    names = case.schema.names
    target_rows = data.draw(_rows_strategy(case, 12), label="target")
    for i, r in enumerate(target_rows):
        r["r"] = i
    second = data.draw(st.integers(0, len(target_rows)), label="first file rows")  # the rest appended
    doomed = data.draw(st.sets(st.integers(0, max(0, len(target_rows) - 1)), max_size=4), label="deleted first")
    source = data.draw(_rows_strategy(case, 8), label="source")
    if data.draw(st.booleans(), label="dedupe?"):
        source = _dedupe(case, source)
    source_cols = [*case.names, "v"] + (["p"] if data.draw(st.booleans(), label="source has p") else [])
    op = {**_op(data), "source_columns": source_cols}
    # by p, or by the key itself (files pruned by partition values against the source's keys)
    layouts = [None, ["p"]] + ([case.names] if key_type not in UNPARTITIONABLE else [])
    partition_by = data.draw(st.sampled_from(layouts), label="partition_by")
    saved = _patched(
        groups=data.draw(st.sampled_from([1, 2, 3, 1 << 14]), label="ROW_GROUP_ROWS"),
        source_budget=data.draw(st.sampled_from([lakehouse.merge._SOURCE_BUDGET, 64, 512]), label="_SOURCE_BUDGET"),
        budget=data.draw(st.sampled_from([lakehouse.merge._ROWS_BUDGET, 0]), label="_ROWS_BUDGET"),
        small=0, most=1.0)
    try:
        t = lh.write_table(f"memory://merge-keys-{uuid.uuid4().hex}", _table(case, target_rows[:second], names),
                           partition_by=partition_by)
        if target_rows[second:]:
            t.append(_table(case, target_rows[second:], names))
        doomed &= set(range(len(target_rows)))
        if doomed:  # merge-on-read deletes: files with deletion vectors, positions among live rows
            t.delete([("r", "in", sorted(doomed))])
        live = [r for r in target_rows if r["r"] not in doomed]
        vectored = sum(t.inspect.files().column("num_deleted_rows").to_pylist())
        event(f"rows deleted by vectors before the merge: {bool(vectored)}")
        before_version = t.version
        assert bag(t.to_arrow().to_pylist(), names) == bag(live, names)
        # the merge itself: small files rewritten or vectored
        _patched(small=data.draw(st.sampled_from([0, lakehouse.rowremoval.REWRITE_BELOW_ROWS]), label="small"))
        src = _table(case, source, source_cols, _variant_types(case, data))
        batch_rows = data.draw(st.sampled_from([None, 1, 2, 3]), label="source batch rows (None: a table)")
        if batch_rows is not None:  # a stream: spilled chunks hold a few batches each (arrival order without on=)
            src = pa.RecordBatchReader.from_batches(src.schema, src.to_batches(max_chunksize=batch_rows))
        try:
            expected, counts = model_merge(case, live, source, op)
        except Duplicate:
            event("duplicate match")
            with pytest.raises(lh.DuplicateMatchError):
                run_merge(case, t, op, src)
            assert t.version == before_version
            assert bag(t.to_arrow().to_pylist(), names) == bag(live, names)
            return
        result = run_merge(case, t, op, src)
    finally:
        _restore(saved)
    got = (result.num_inserted, result.num_updated, result.num_deleted)
    assert got == (counts.inserted, counts.updated, counts.deleted), (got, counts)
    changed = bool(counts.inserted or counts.updated or counts.deleted)
    assert (result.version == before_version + 1) if changed else (result.version == before_version), result
    assert t.version == result.version
    assert bag(t.to_arrow().to_pylist(), names) == bag(expected, names)
    assert bag(t.to_arrow(version=before_version).to_pylist(), names) == bag(live, names)
    event(f"changed: {changed}")


# -- model sanity: the cases the machinery must get right, spelled out --------------------------------
def test_model_examples():
    case = _case("float64")
    target = [{"k": 0.0, "v": 1, "p": 0, "r": 0}, {"k": NAN, "v": 1, "p": 0, "r": 1},
              {"k": None, "v": 1, "p": 0, "r": 2}]
    source = [{"k": -0.0, "v": 5, "p": 0}, {"k": NAN, "v": 6, "p": 0}, {"k": None, "v": 7, "p": 0}]
    op = {"kind": "merge", "join": "on", "matched": ["upd_all"], "inserts": ["all"], "by_source": [],
          "source_columns": ["k", "v"]}
    out, n = model_merge(case, target, source, op)
    assert (n.updated, n.inserted) == (1, 2)  # -0.0 matches 0.0; NaN and null match nothing
    assert canon(out[0]["k"]) == canon(-0.0)  # set=None writes the source's key
    with pytest.raises(Duplicate):
        model_merge(case, target, [*source, {"k": 0.0, "v": 0, "p": 0}], op)
    # upsert: a row whose values do not change is not counted; -0.0 over 0.0 is a change
    up = {**op, "kind": "upsert"}
    assert model_merge(case, target, [{"k": 0.0, "v": 1, "p": 0}], up)[1].updated == 0
    assert model_merge(case, target, [{"k": -0.0, "v": 1, "p": 0}], up)[1].updated == 1


@pytest.mark.parametrize("key_type", ["float64", "int8", "string", "int_string"])
def test_spilled_source_with_many_row_groups_example(key_type, tmp_path):
    """A fixed example on every path at once: source spilled in several chunks, 1-row groups, a vector."""
    case = _case(key_type)
    names = case.schema.names
    pool = [v for v in case.pool if not (isinstance(v, float) and math.isnan(v))]
    target = [{**case.key_dict(k), "v": i % 3, "p": i % 2, "r": i} for i, k in enumerate(pool)]
    source = [{**case.key_dict(k), "v": 10 + i, "p": 0} for i, k in enumerate([*pool[::2], None])]
    source += [{**case.key_dict(pool[1]), "v": -1, "p": 1}] if len(pool) > 1 else []  # may duplicate
    source = _dedupe(case, source)
    op = {"kind": "merge", "join": "on", "matched": ["upd_all"], "inserts": ["all"], "by_source": ["upd_zero"],
          "source_columns": [*case.names, "v"]}
    saved = _patched(groups=1, source_budget=64, small=0, most=1.0)
    try:
        t = lh.write_table(str(tmp_path / "t"), _table(case, target, names), partition_by=["p"])
        t.delete([("r", "=", 0)])
        live = target[1:]
        expected, n = model_merge(case, live, source, op)
        r = run_merge(case, t, op, _table(case, source, op["source_columns"]))
    finally:
        _restore(saved)
    assert (r.num_inserted, r.num_updated, r.num_deleted) == (n.inserted, n.updated, n.deleted)
    assert bag(t.to_arrow().to_pylist(), names) == bag(expected, names)


# -- a source larger than the budget, through upsert, memory measured ---------------------------------
BUDGET = 16 << 20
BIG_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    import pyarrow as pa
    import lakehouse as lh
    import lakehouse.merge

    uri, target_rows, source_rows, batch_rows, width = sys.argv[1], *map(int, sys.argv[2:6])
    schema = pa.schema([("id", pa.int64()), ("v", pa.int64()), ("s", pa.string())])
    t = lh.Table.open(uri)
    pad = pa.scalar("x" * width)

    def batches():
        # source row j has id j (shuffled within its batch): the target holds the even ids below
        # 2 * target_rows, so target_rows source rows match and the others are new
        rng = np.random.default_rng(7)
        for start in range(0, source_rows, batch_rows):
            ids = np.arange(start, min(start + batch_rows, source_rows), dtype=np.int64)
            rng.shuffle(ids)
            yield pa.record_batch([pa.array(ids), pa.array(ids + 1), pa.repeat(pad, len(ids))], schema=schema)

    lakehouse.merge._SOURCE_BUDGET = lakehouse.merge._ROWS_BUDGET = 16 << 20
    pool = pa.default_memory_pool()
    base = pool.max_memory()
    started = time.perf_counter()
    r = t.upsert(pa.RecordBatchReader.from_batches(schema, batches()), on="id")
    seconds = time.perf_counter() - started
    peak = pool.max_memory()
    after = t.to_arrow(columns=["id", "v"])  # after the measure: 32 MB
    ids, v = after.column("id").to_numpy(), after.column("v").to_numpy()
    order = np.argsort(ids)
    exact = bool((ids[order] == np.arange(source_rows)).all() and (v[order] == ids[order] + 1).all())
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"inserted": r.num_inserted, "updated": r.num_updated, "deleted": r.num_deleted,
                      "rows": after.num_rows, "exact": exact, "version": r.version, "grown": peak - base,
                      "seconds": seconds, "rss_kb": rss_kb}))
""")


def _big_upsert(tmp_path, target_rows: int, source_rows: int, width: int) -> dict[str, Any]:
    """Write a target of even ids, then upsert a generated reader into it in a fresh process."""
    uri = str(tmp_path / "big")
    ids = np.arange(target_rows, dtype=np.int64) * 2
    # files of at most 16 MiB: the writer buffers one file's rows (128 MiB by default) by design
    lh.write_table(uri, pa.table({"id": ids, "v": np.zeros(target_rows, np.int64),
                                  "s": pa.repeat(pa.scalar(""), target_rows)}),
                   properties={"target_file_size": BUDGET})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", BIG_SCRIPT, uri, str(target_rows), str(source_rows), "65536",
                          str(width)], capture_output=True, text=True, env=env, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_upsert_of_a_reader_larger_than_the_budget(tmp_path):
    """A generator-backed reader of 2M rows (~420 MiB of Arrow data, never materialised by its
    producer; ids ascending, as a CDC source) upserted into a 1M-row target with both merge budgets
    at 16 MiB: half its rows update every target row, half are new.

    The bound, 10 budgets (160 MiB, ~0.4x the source): while spilling, the sample (1 budget), the
    partition buffers and the rows gathered for routing (3/4) and one producer batch (~14 MB, ~1);
    per chunk, the chunk (up to ~2), its matched source rows joined to their target rows and the
    updated copies, its unmatched rows and the inserted copies (~3); updated rows held until written
    (``_ROWS_BUDGET``, 1); the writer's file buffer (``target_file_size``, 1) and the files its 2
    workers encode (2). Measured after the fix: ~115 MiB; before it 430-510 MiB (keys arriving sorted
    left one chunk holding half the source)."""
    target_rows, source_rows, width = 1_000_000, 2_000_000, 200
    source_bytes = source_rows * (8 + 8 + 4 + width)
    got = _big_upsert(tmp_path, target_rows, source_rows, width)
    assert (got["updated"], got["inserted"], got["deleted"]) == (target_rows, source_rows - target_rows, 0), got
    assert got["rows"] == source_rows and got["exact"] and got["version"] == 1, got
    assert got["grown"] < 10 * BUDGET, (
        f"pyarrow's pool grew by {got['grown'] / 2 ** 20:.0f} MiB for a {source_bytes / 2 ** 20:.0f} MiB source "
        f"({got['seconds']:.1f} s)")


@pytest.mark.parametrize("order", ["ascending", "descending", "string"])
def test_sorted_source_keys_still_make_chunks_of_about_the_budget(order):
    """A stream of sorted keys (sequential ids: the usual CDC/ingest source) spilled in key ranges:
    the first ``budget`` bytes sampled cover only the lowest (or highest) keys, so the partition
    beyond them held nearly the whole source; re-partitioning it from its own first ``budget``
    bytes again only peeled one sample's worth per level, leaving a chunk 13x the budget in memory
    at once (found by test_upsert_of_a_reader_larger_than_the_budget)."""
    from lakehouse.merge_source import MergeSource

    rows, width, budget = 200_000, 100, 1 << 20
    ids = np.arange(rows, dtype=np.int64)
    if order == "descending":
        ids = ids[::-1]
    schema = pa.schema([("k", pa.string() if order == "string" else pa.int64()), ("s", pa.string())])

    def batches():
        for start in range(0, rows, 4096):
            k = ids[start:start + 4096]
            keys = pa.array([f"{x:09d}" for x in k]) if order == "string" else pa.array(k)
            yield pa.record_batch([keys, pa.repeat(pa.scalar("x" * width), len(k))], schema=schema)

    with MergeSource.of(pa.RecordBatchReader.from_batches(schema, batches()), "k", budget=budget) as src:
        sizes = [src.chunk(i).nbytes for i in range(src.num_chunks)]
        assert sum(c.num_rows for c in src.chunks()) == rows
        assert max(sizes) <= 2 * budget, [round(s / budget, 1) for s in sizes]


def test_many_source_chunks_cost_their_own_matches_not_all_before():
    """A spilled source merged in ~120 key-range chunks against one target file: each chunk checked
    its matched positions against the concatenation of every earlier chunk's (``np.intersect1d``,
    hashing them all again), quadratic in the chunks: 17 s of scan for 400k matched rows in 100 chunks,
    against 1 s of spilling. Compared with the spill phase of the same run (same load, same rows), not
    a clock: the scan now costs about what spilling does, before ~20x."""
    rows = 250_000
    ids = np.arange(rows, dtype=np.int64)
    saved = _patched(source_budget=32 << 10)
    try:
        t = lh.write_table(f"memory://merge-keys-chunks-{uuid.uuid4().hex}",
                           pa.table({"id": ids, "v": np.zeros(rows, np.int64)}))
        r = t.upsert(pa.table({"id": ids[::-1].copy(), "v": ids + 1}), on="id")
    finally:
        _restore(saved)
    assert r.num_updated == rows and r.num_inserted == 0
    assert r.timings["scan"] < 6 * r.timings["prepare"] + 500, r.timings


def test_duration_keys_merge(tmp_path):
    """``pc.min_max`` has no duration kernel: pruning target files by the source's key range raised a
    raw ``ArrowNotImplementedError`` for every merge on a duration key."""
    keys = pa.array([timedelta(0), timedelta(days=3), timedelta(microseconds=-1)], pa.duration("us"))
    t = lh.write_table(str(tmp_path / "t"), pa.table({"k": keys, "v": pa.array([1, 2, 3], pa.int64())}))
    r = t.upsert(pa.table({"k": pa.array([timedelta(days=3), timedelta(days=9)], pa.duration("us")),
                           "v": pa.array([20, 90], pa.int64())}), on="k")
    assert (r.num_updated, r.num_inserted) == (1, 1)
    assert sorted(t.to_arrow().column("v").to_pylist()) == [1, 3, 20, 90]


@pytest.mark.parametrize("join", ["on", "predicate", "residual"])
@pytest.mark.parametrize("clause", ["matched", "by_source"])
def test_a_target_row_matched_from_two_source_chunks(tmp_path, join, clause):
    """Duplicates in different spilled chunks (arrival-order chunks without ``on=``): refused when a
    matched clause exists, nothing written; with only a by-source clause the row counts as matched."""
    saved = _patched(source_budget=64)
    try:
        t = lh.write_table(str(tmp_path / "t"), pa.table({"k": pa.array([1, 2], pa.int64()),
                                                          "v": pa.array([0, 0], pa.int64())}))
        src = pa.table({"k": pa.array([1, 3, 3, 3, 1], pa.int64()), "v": pa.array([5, 6, 6, 6, 7], pa.int64())})
        reader = pa.RecordBatchReader.from_batches(src.schema, src.to_batches(max_chunksize=1))
        text = "target.k = source.k" + (" AND source.v > target.v" if join == "residual" else "")
        m = t.merge(reader, on="k") if join == "on" else t.merge(reader, predicate=text)
        if clause == "matched":
            with pytest.raises(lh.DuplicateMatchError):
                m.when_matched_update().execute()
            assert t.version == 0 and sorted(t.to_arrow().to_pylist(), key=str) == [{"k": 1, "v": 0}, {"k": 2, "v": 0}]
            return
        r = m.when_not_matched_by_source_update({"v": "-1"}).execute()
    finally:
        _restore(saved)
    assert (r.num_updated, r.num_inserted, r.num_deleted) == (1, 0, 0)
    assert sorted(t.to_arrow().to_pylist(), key=str) == [{"k": 1, "v": 0}, {"k": 2, "v": -1}]


# -- sources from pandas, Polars and DuckDB, string keys ------------------------------------------------
STRING_TARGET = pa.table({"k": pa.array(["", "é", "日本", "a", None], pa.string()),
                          "v": pa.array([1, 2, 3, 4, 5], pa.int64())})
STRING_ROWS = {"k": ["é", "", None, "new", "ß"], "v": [20, 10, 50, 60, 70]}
# upsert of STRING_ROWS: "é" and "" update, the null key and the new ones insert
STRING_UPSERTED = sorted([("", 10), ("é", 20), ("日本", 3), ("a", 4), (None, 5), (None, 50), ("new", 60),
                          ("ß", 70)], key=str)


def _string_source(kind: str, rows: dict[str, list[Any]] = STRING_ROWS) -> Any:
    if kind == "pandas":
        pd = pytest.importorskip("pandas")
        return pd.DataFrame(rows)
    if kind == "polars":
        pl = pytest.importorskip("polars")
        return pl.DataFrame(rows)  # strings arrive as string_view
    if kind == "polars_categorical":
        pl = pytest.importorskip("polars")
        return pl.DataFrame(rows).with_columns(pl.col("k").cast(pl.Categorical))
    duckdb = pytest.importorskip("duckdb")
    return duckdb.from_arrow(pa.table(rows, schema=pa.schema([("k", pa.string()), ("v", pa.int64())]))).project(
        "k, v")


def _pairs(t: lh.Table, **kw: Any) -> list[tuple[Any, Any]]:
    return sorted(((r["k"], r["v"]) for r in t.to_arrow(**kw).to_pylist()), key=str)


SOURCE_KINDS = ["pandas", "polars", "polars_categorical", "duckdb"]


@pytest.mark.parametrize("spill", [False, True])
@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_upsert_string_keys_from_dataframes(tmp_path, kind, spill):
    saved = _patched(source_budget=64 if spill else lakehouse.merge._SOURCE_BUDGET, groups=2)
    try:
        t = lh.write_table(str(tmp_path / "t"), STRING_TARGET)
        r = t.upsert(_string_source(kind), on="k")
    finally:
        _restore(saved)
    assert (r.num_updated, r.num_inserted, r.num_deleted) == (2, 3, 0)
    assert _pairs(t) == STRING_UPSERTED
    assert t.schema.field("k").type == pa.string()  # the target's type kept
    assert _pairs(t, version=0) == sorted([("", 1), ("é", 2), ("日本", 3), ("a", 4), (None, 5)], key=str)


@pytest.mark.parametrize("kind", SOURCE_KINDS)
@pytest.mark.parametrize("join", ["on", "predicate"])
def test_merge_string_keys_from_dataframes(tmp_path, kind, join):
    t = lh.write_table(str(tmp_path / "t"), STRING_TARGET)
    source = _string_source(kind)
    m = t.merge(source, on="k") if join == "on" else t.merge(source, predicate="t.k = s.k", target_alias="t",
                                                                  source_alias="s")
    r = (m.when_matched_delete(filter="s.v > 15" if join != "on" else "source.v > 15")
         .when_matched_update({"v": "target.v + 100"} if join == "on" else {"v": "t.v + 100"})
         .when_not_matched_insert(filter="k <> 'new'")
         .when_not_matched_by_source_delete(filter=[("k", "=", "日本")])
         .execute())
    # "é" (20 > 15) deleted, "" updated, "日本" deleted by source; "ß" inserted, "new" not, nor the null
    # key (null <> 'new' is null: not true)
    assert (r.num_deleted, r.num_updated, r.num_inserted) == (2, 1, 1)
    assert _pairs(t) == sorted([("", 101), ("a", 4), (None, 5), ("ß", 70)], key=str)


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_dataframe_sources_typed_errors(tmp_path, kind):
    t = lh.write_table(str(tmp_path / "t"), STRING_TARGET)
    dup = {"k": ["a", "x", "a"], "v": [1, 2, 3]}
    with pytest.raises(lh.DuplicateMatchError) as err:
        t.upsert(_string_source(kind, dup), on="k")
    assert err.value.key == {"k": "a"} and err.value.matches == 2
    assert t.version == 0
    with pytest.raises(lh.ColumnNotFoundError):
        t.upsert(_string_source(kind), on="nope")
    ints = lh.write_table(str(tmp_path / "ints"), pa.table({"k": pa.array([1, 2], pa.int64()),
                                                             "v": pa.array([1, 2], pa.int64())}))
    with pytest.raises(lh.SchemaMismatchError):  # "é" is no integer
        ints.upsert(_string_source(kind), on="k")
    assert ints.version == 0


def test_polars_lazyframe_and_other_non_arrow_sources_are_typed_errors(tmp_path):
    pl = pytest.importorskip("polars")
    t = lh.write_table(str(tmp_path / "t"), STRING_TARGET)
    for bad in (pl.DataFrame(STRING_ROWS).lazy(), {"k": ["a"]}, [("a", 1)]):
        with pytest.raises(lh.LakehouseError):
            t.upsert(bad, on="k")
    assert t.version == 0


def test_timestamp_keys_with_and_without_a_time_zone_are_a_typed_error(tmp_path):
    t = lh.write_table(str(tmp_path / "t"), pa.table({"k": pa.array([_T0], pa.timestamp("us", "UTC")),
                                                      "v": pa.array([1], pa.int64())}))
    naive = pa.table({"k": pa.array([_T0], pa.timestamp("us")), "v": pa.array([2], pa.int64())})
    with pytest.raises(lh.SchemaMismatchError):
        t.upsert(naive, on="k")
    with pytest.raises(lh.SchemaMismatchError):
        t.merge(naive, predicate="target.k = source.k").when_matched_delete().execute()
    assert t.version == 0

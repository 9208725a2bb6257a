"""Row-level changes against a plain-Python model.

Random small tables (partitioned or not, nulls in keys and values) go through random sequences of
``update`` / ``merge`` / ``upsert`` / ``delete`` / ``append``. The model applies the same operations
row by row over Python dicts (its own reading of SQL MERGE: first matching clause of a kind wins,
null keys never match, a target row matched by several source rows is an error when a matched
clause exists). After every step the table is read through ``to_arrow``, ``to_pandas``,
``to_batches``, ``plan_files`` + ``read_task``, ``to_pyarrow_dataset``, the PyCapsule stream and
``to_polars``, and at the end every version is read back
(time travel). It runs under both ``delete_mode`` values (merge-on-read with the small-file
threshold lowered, so tiny files get deletion vectors). After every commit its lineage (format
§5.4) is checked against the model: the rows it dropped (``dropped_rows``, whole removes, new
vector positions) are exactly the rows the operation deleted or replaced, and the rows of removed
files it did not drop are exactly the carried rows of the added files. CI runs a bounded profile;
``LH_FUZZ=1`` a long one.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lakehouse as lh
import lakehouse.merge
import lakehouse.rowremoval
import lakehouse.write
from lakehouse.dv_store import load_vector
from lakehouse.replay import read_entry
from lakehouse.storage import Storage

FUZZ = os.environ.get("LH_FUZZ") == "1"
PROFILE = settings(max_examples=400 if FUZZ else 20, deadline=None, derandomize=not FUZZ,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ONE_MERGE = settings(PROFILE, max_examples=1000 if FUZZ else 80)
MAX_STEPS = 10 if FUZZ else 5

SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.int64()), ("s", pa.string()), ("p", pa.int32())])
Row = dict[str, Any]

ids = st.one_of(st.none(), st.integers(0, 4))
values = st.one_of(st.none(), st.integers(-20, 60))
strings = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))
parts = st.integers(0, 2)
rows = st.fixed_dictionaries({"id": ids, "v": values, "s": strings, "p": parts})


# -- the model: SQL three-valued logic over Python values --------------------------------------------
def gt(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a > b


def eq(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a == b


def add(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a + b


# Filters: (text for lakehouse, model function over (target, source)); None = no filter.
UPDATE_FILTERS = {
    "none": (None, lambda t: True),
    "v>10": ("v > 10", lambda t: gt(t["v"], 10)),
    "s=a": ([("s", "=", "a")], lambda t: eq(t["s"], "a")),
    "id<3": ("id < 3", lambda t: gt(3, t["id"])),
}
UPDATE_SETS = {
    "v+1": ({"v": "v + 1"}, lambda t: {"v": add(t["v"], 1)}),
    "s=z": ({"s": "'z'"}, lambda t: {"s": "z"}),
    "p": ({"p": "CASE WHEN p = 2 THEN 0 ELSE p + 1 END"}, lambda t: {"p": 0 if t["p"] == 2 else add(t["p"], 1)}),
    "s||": ({"s": "coalesce(s, '?') || 'x'"}, lambda t: {"s": ("?" if t["s"] is None else t["s"]) + "x"}),
}
MATCHED = {
    "upd_all": ("update", None, None, lambda t, s: True, None),
    "upd_if_bigger": ("update", {"v": "target.v + source.v"}, "source.v > target.v",
                      lambda t, s: gt(s["v"], t["v"]), lambda t, s: {"v": add(t["v"], s["v"])}),
    "upd_s_a": ("update", {"s": "source.s"}, "source.s = 'a'", lambda t, s: eq(s["s"], "a"),
                lambda t, s: {"s": s["s"]}),
    "del_small": ("delete", None, "target.v < 5", lambda t, s: gt(5, t["v"]), None),
    "del": ("delete", None, None, lambda t, s: True, None),
    "upd_expr": ("update", {"v": pc.field("v") * 2}, [("v", ">", 0)], lambda t, s: gt(t["v"], 0),
                 lambda t, s: {"v": t["v"] * 2}),
}
INSERTS = {
    "all": (None, None, lambda s: True, None),
    "v>0": (None, "v > 0", lambda s: gt(s["v"], 0), None),
    "some": ({"id": "id", "v": "v * 2", "s": "'new'"}, [("s", "is not null", None)], lambda s: s["s"] is not None,
             lambda s: {"id": s["id"], "v": None if s["v"] is None else s["v"] * 2, "s": "new", "p": None}),
}
BY_SOURCE = {
    "stale": ("update", {"s": "'stale'"}, "target.v > 30", lambda t: gt(t["v"], 30), lambda t: {"s": "stale"}),
    "del_p1": ("delete", None, [("p", "=", 1)], lambda t: eq(t["p"], 1), None),
}


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


def _fit(row: Row) -> Row:
    return {c: row.get(c) for c in SCHEMA.names}


def model_merge(target: list[Row], source: list[Row], matched: list[str], inserts: list[str],
                by_source: list[str], *, upsert: bool = False) -> tuple[list[Row], Counts]:
    """SQL MERGE on ``id``, row by row. Raises KeyError for a duplicate match."""
    matches = [[j for j, s in enumerate(source) if t["id"] is not None and s["id"] == t["id"]] for t in target]
    if (matched or upsert) and any(len(m) > 1 for m in matches):
        raise KeyError("duplicate")
    hit = {j for m in matches for j in m}
    out: list[Row] = []
    n = Counts()
    for t, m in zip(target, matches):
        if m:
            s = source[m[0]]
            if upsert:
                new = _fit({**t, **{c: s[c] for c in s if c in SCHEMA.names}})
                if new != t:
                    n.updated += 1
                out.append(new)
                continue
            for name in matched:
                action, _, _, cond, value = MATCHED[name]
                if cond(t, s):
                    if action == "delete":
                        n.deleted += 1
                    else:
                        n.updated += 1
                        out.append(_fit({**t, **(value(t, s) if value else {c: s[c] for c in s if c in SCHEMA.names})}))
                    break
            else:
                out.append(t)
            continue
        for name in by_source:
            action, _, _, cond, value = BY_SOURCE[name]
            if cond(t):
                if action == "delete":
                    n.deleted += 1
                else:
                    n.updated += 1
                    out.append(_fit({**t, **value(t)}))
                break
        else:
            out.append(t)
    for j, s in enumerate(source):
        if j in hit:
            continue
        if upsert:
            out.append(_fit(s))
            n.inserted += 1
            continue
        for name in inserts:
            _, _, cond, value = INSERTS[name]
            if cond(s):
                out.append(_fit(value(s) if value else s))
                n.inserted += 1
                break
    return out, n


# -- driving lakehouse -------------------------------------------------------------------------------
def _arrow(rows_: list[Row], with_p: bool = True) -> pa.Table:
    schema = SCHEMA if with_p else pa.schema([f for f in SCHEMA if f.name != "p"])
    return pa.Table.from_pylist([{c: r[c] for c in schema.names} for r in rows_], schema=schema)


def _key(row: Row) -> list:
    return [(row[c] is not None, row[c]) for c in SCHEMA.names]


def _sorted(rows_: list[Row]) -> list[Row]:
    return sorted((_fit(r) for r in rows_), key=_key)


def _from_pandas(df: Any) -> list[Row]:
    table = pa.Table.from_pandas(df, preserve_index=False)
    return table.cast(pa.schema([SCHEMA.field(c) for c in table.column_names])).to_pylist()


def check_all_readers(t: lh.Table, expected: list[Row], version: int | None = None) -> None:
    want = _sorted(expected)
    assert _sorted(t.to_arrow(version=version).to_pylist()) == want
    assert _sorted(t.to_batches(version=version).read_all().to_pylist()) == want
    tasks = t.plan_files(version=version)
    planned = [r for task in tasks for r in lh.read_task(task).to_pylist()]
    assert _sorted(planned) == want
    assert _sorted(_from_pandas(t.to_pandas(version=version))) == want
    assert _sorted(t.to_pyarrow_dataset(version=version).to_table().to_pylist()) == want
    assert _sorted(pa.table(t.snapshot(version) if version is not None else t).to_pylist()) == want  # PyCapsule
    assert _sorted(t.to_polars(version=version).collect().to_arrow().to_pylist()) == want


def _pool(model: list[Row]) -> list[Any]:
    """Keys a source draws from: the table's (so rows match), null, and new ones."""
    return [None, 5, 6, *sorted({r["id"] for r in model if r["id"] is not None})]


def source_rows(pool: list[Any]) -> st.SearchStrategy[list[Row]]:
    row = st.fixed_dictionaries({"id": st.sampled_from(pool), "v": values, "s": strings, "p": parts})
    return st.lists(row, max_size=5)


def _clauses(names: dict[str, Any], on: bool) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(sorted(names)), min_size=1, max_size=2) if on else st.just([])


def merge_op(pool: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A merge whose clause kinds (each present or not, so every combination is likely) are drawn first."""
    return st.tuples(st.booleans(), st.booleans(), st.booleans()).flatmap(lambda kinds: st.fixed_dictionaries({
        "kind": st.just("merge"),
        "source": source_rows(pool),
        "with_p": st.booleans(),
        "predicate": st.booleans(),
        "matched": _clauses(MATCHED, kinds[0]),
        "inserts": _clauses(INSERTS, kinds[1]),
        "by_source": _clauses(BY_SOURCE, kinds[2]),
    }))


def op_for(pool: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.fixed_dictionaries({"kind": st.just("append"), "rows": st.lists(rows, min_size=1, max_size=4)}),
        st.fixed_dictionaries({"kind": st.just("delete"), "filter": st.sampled_from(sorted(UPDATE_FILTERS)[1:])}),
        st.fixed_dictionaries({"kind": st.just("update"), "set": st.sampled_from(sorted(UPDATE_SETS)),
                               "filter": st.sampled_from(sorted(UPDATE_FILTERS))}),
        st.fixed_dictionaries({"kind": st.just("upsert"), "source": source_rows(pool), "with_p": st.booleans()}),
        merge_op(pool), merge_op(pool),  # merges have the most cases: drawn more often
    )


def step(t: lh.Table, model: list[Row], op: dict[str, Any]) -> tuple[list[Row], bool]:
    """Apply ``op`` to ``t`` and the model; returns the new model and whether a version was committed."""
    before = t.version
    kind = op["kind"]
    if kind == "append":
        t.append(_arrow(op["rows"]))
        return model + [_fit(r) for r in op["rows"]], True
    if kind == "delete":
        text, cond = UPDATE_FILTERS[op["filter"]]
        t.delete(text)
        return [r for r in model if not cond(r)], True
    if kind == "update":
        (set_, value), (text, cond) = UPDATE_SETS[op["set"]], UPDATE_FILTERS[op["filter"]]
        hits = [bool(cond(r)) for r in model]
        version = t.update(set_, filter=text)
        assert (version > before) == any(hits)
        return [_fit({**r, **value(r)}) if h else r for r, h in zip(model, hits)], any(hits)
    source = [dict(r) for r in op["source"]]
    if not op["with_p"]:
        for r in source:
            r.pop("p")
    upsert = kind == "upsert"
    try:
        new, n = model_merge(model, source, op.get("matched", []), op.get("inserts", []), op.get("by_source", []),
                             upsert=upsert)
    except KeyError:
        with pytest.raises(lh.DuplicateMatchError):
            run_merge(t, op, source)
        assert t.version == before
        return model, False
    if not upsert and not (op["matched"] or op["inserts"] or op["by_source"]):
        with pytest.raises(lh.InvalidArgumentError):
            run_merge(t, op, source)
        return model, False
    result = run_merge(t, op, source)
    assert (result.num_inserted, result.num_updated, result.num_deleted) == (n.inserted, n.updated, n.deleted)
    changed = bool(n.inserted or n.updated or n.deleted)
    assert (result.version > before) == changed, (result, n)
    return new, changed


def run_merge(t: lh.Table, op: dict[str, Any], source: list[Row]) -> lh.MergeResult:
    data = _arrow(source, op["with_p"])
    if op["kind"] == "upsert":
        return t.upsert(data, on="id")
    m = t.merge(data, predicate="target.id = source.id") if op["predicate"] else t.merge(data, on="id")
    for name in op["matched"]:
        action, set_, text, _, _ = MATCHED[name]
        m = m.when_matched_update(set_, filter=text) if action == "update" else m.when_matched_delete(filter=text)
    for name in op["inserts"]:
        values_, text, _, _ = INSERTS[name]
        m = m.when_not_matched_insert(values_, filter=text)
    for name in op["by_source"]:
        action, set_, text, _, _ = BY_SOURCE[name]
        if action == "update":
            m = m.when_not_matched_by_source_update(set_, filter=text)
        else:
            m = m.when_not_matched_by_source_delete(filter=text)
    return m.execute()


# -- lineage (format §5.4, §5.8) ---------------------------------------------------------------------
def _bag(rows_: list[Row]) -> Counter:
    return Counter(tuple(sorted(_fit(r).items())) for r in rows_)


def commit_lineage(t: lh.Table, version: int) -> tuple[list[Row], list[Row], list[Row]] | None:
    """The rows commit ``version`` dropped, carried and added new, from its log entry and the files it
    names (read physically, vectors applied by hand); None if it removes nothing. Checks the lineage
    rule on the way: every removed live row is dropped or carried, and nothing else."""
    storage = Storage.from_uri(t.uri)
    entry = read_entry(storage, version)
    if not entry.remove:
        assert all(a.carried_rows is None for a in entry.add)
        return None
    before = {task.path: task for task in t.plan_files(version=version - 1)}
    after = {task.path: task for task in t.plan_files(version=version)}

    def physical(task: Any) -> list[Row]:
        return lh.read_task(dataclasses.replace(task, deletion_vector=None, num_deleted_rows=0)).to_pylist()

    def vector(task: Any) -> set[int]:
        if task.deletion_vector is None:
            return set()
        return set(load_vector(storage, task.deletion_vector, num_rows=task.num_rows).positions.tolist())

    replaced = {a.path for a in entry.add} & {r.path for r in entry.remove}
    live, dropped, carried, new = [], [], [], []
    for r in entry.remove:
        task = before[r.path]
        rows_, old = physical(task), vector(task)
        assert r.num_deleted_rows == len(old)
        live += [row for i, row in enumerate(rows_) if i not in old]
        if r.path in replaced:
            gone = vector(after[r.path]) - old
            assert r.dropped_rows is None and vector(after[r.path]) >= old and gone
        elif r.dropped_rows is None:
            gone = set(range(len(rows_))) - old  # every live row
        else:
            gone = set(load_vector(storage, r.dropped_rows, num_rows=r.num_rows).positions.tolist())
            assert not gone & old, "dropped_rows names a row its vector had already deleted"
        dropped += [rows_[i] for i in sorted(gone)]
    for a in entry.add:
        task = after[a.path]
        rows_ = physical(task)
        if a.path in replaced:
            keep = vector(task)
            carried += [row for i, row in enumerate(rows_) if i not in keep]
            continue
        assert a.carried_rows is not None, "a commit that removes files records carried_rows on every add"
        carried += rows_[:a.carried_rows]
        new += rows_[a.carried_rows:]
    assert _bag(live) == _bag(dropped) + _bag(carried)
    return dropped, carried, new


def check_lineage(t: lh.Table, before: list[Row], after: list[Row], deleted: list[Row] | None = None) -> None:
    """The latest commit's lineage says exactly what changed: ``before`` minus its dropped rows plus
    its new rows is ``after`` (and, for a delete, the dropped rows are ``deleted``, no row is new)."""
    lineage = commit_lineage(t, t.version)
    if lineage is None:
        assert _bag(before) - _bag(after) == Counter(), "rows went but the commit removed no file"
        return
    dropped, _, new = lineage
    assert _bag(before) - _bag(dropped) + _bag(new) == _bag(after)
    assert not _bag(dropped) - _bag(before)
    if deleted is not None:
        assert _bag(dropped) == _bag(deleted) and not new


MODES = ["merge-on-read", "copy-on-write"]
ROW_GROUPS = [1, 2, 3, 1 << 14]  # rows per Parquet row group of the files written


def run_model(mode: str, initial: list[Row], partitioned: bool, n: int, data: st.DataObject, *, small: int,
              most: float) -> bool:
    """Random steps on a fresh table in ``mode`` (rewrite thresholds ``small``/``most``), every reader
    and the lineage checked after each, every version at the end; whether a vector was written."""
    uri = f"memory://rowlevel-model-{uuid.uuid4().hex}"
    saved = (lakehouse.rowremoval.REWRITE_BELOW_ROWS, lakehouse.rowremoval.REWRITE_FRACTION,
             lakehouse.write.ROW_GROUP_ROWS)
    # files of several row groups: row-level writes read only the groups that may hold their rows
    lakehouse.write.ROW_GROUP_ROWS = data.draw(st.sampled_from(ROW_GROUPS), label="row_group_rows")
    lakehouse.rowremoval.REWRITE_BELOW_ROWS, lakehouse.rowremoval.REWRITE_FRACTION = small, most
    try:
        t = lh.write_table(uri, _arrow(initial), partition_by=["p"] if partitioned else None,
                           properties={"delete_mode": mode})
        model = [_fit(r) for r in initial]
        versions = {0: model}
        for _ in range(n):
            op = data.draw(op_for(_pool(model)))
            new, changed = step(t, model, op)
            if changed:
                versions[t.version] = new
                deleted = [r for r in model if UPDATE_FILTERS[op["filter"]][1](r)] if op["kind"] == "delete" else None
                check_lineage(t, model, new, deleted)
            model = new
            check_all_readers(t, model)
    finally:
        (lakehouse.rowremoval.REWRITE_BELOW_ROWS, lakehouse.rowremoval.REWRITE_FRACTION,
         lakehouse.write.ROW_GROUP_ROWS) = saved
    assert sorted(versions) == list(range(t.version + 1))
    for version, expected in versions.items():
        check_all_readers(t, expected, version)
    vectored = any(a.deletion_vector is not None for v in range(1, t.version + 1)
                   for a in read_entry(Storage.from_uri(uri), v).add)
    event(f"{mode}: deletion vectors written: {vectored}")
    assert not (vectored and mode == "copy-on-write")
    return vectored


@pytest.mark.parametrize("mode", MODES)
@PROFILE
@given(initial=st.lists(rows, max_size=8), partitioned=st.booleans(), n=st.integers(1, MAX_STEPS), data=st.data())
def test_rowlevel_changes_match_the_model(mode, initial, partitioned, n, data):
    # tiny files: the small-file threshold is lowered (and often the most-rows-gone one) so vectors are written
    small = data.draw(st.sampled_from([0, 0, 3, lakehouse.rowremoval.REWRITE_BELOW_ROWS]), label="small")
    most = data.draw(st.sampled_from([1.0, lakehouse.rowremoval.REWRITE_FRACTION]), label="most")
    run_model(mode, initial, partitioned, n, data, small=small, most=most)


@settings(PROFILE, max_examples=200 if FUZZ else 10)
@given(initial=st.lists(rows, min_size=4, max_size=10), n=st.integers(2, MAX_STEPS + 1), data=st.data())
def test_deletion_vectors_match_the_model(initial, n, data):
    """Merge-on-read with every file vectored unless all its rows go: vectors over vectors, then
    rewrites and time travel over them."""
    run_model("merge-on-read", initial, data.draw(st.booleans()), n, data, small=0, most=1.0)


def test_model_example_duplicate_and_null_keys():
    target = [_fit({"id": 1, "v": 1, "s": "a", "p": 0}), _fit({"id": None, "v": 2, "s": None, "p": 1})]
    source = [{"id": None, "v": 5, "s": "b", "p": 0}, {"id": 1, "v": 7, "s": None, "p": 2}]
    out, n = model_merge(target, source, ["upd_all"], ["all"], [])
    assert (n.updated, n.inserted) == (1, 1) and len(out) == 3
    with pytest.raises(KeyError):
        model_merge(target, [*source, {"id": 1, "v": 0, "s": None, "p": 0}], ["del"], [], [])


@ONE_MERGE
@given(initial=st.lists(rows, min_size=1, max_size=8), partitioned=st.booleans(), data=st.data())
def test_one_merge_matches_the_model(initial, partitioned, data):
    """One merge on a fresh table: every combination of clause kinds (including none of a kind)."""
    op = data.draw(merge_op(_pool(initial)))
    budget, groups = lakehouse.merge._ROWS_BUDGET, lakehouse.write.ROW_GROUP_ROWS
    source = lakehouse.merge._SOURCE_BUDGET
    lakehouse.merge._ROWS_BUDGET = data.draw(st.sampled_from([budget, 0]))  # 0: updated rows computed again
    # a small source budget: the source is spilled and merged in key-range chunks
    lakehouse.merge._SOURCE_BUDGET = data.draw(st.sampled_from([source, 64, 256]), label="source_budget")
    lakehouse.write.ROW_GROUP_ROWS = data.draw(st.sampled_from(ROW_GROUPS), label="row_group_rows")
    try:
        t = lh.write_table(f"memory://rowlevel-merge-{uuid.uuid4().hex}", _arrow(initial),
                           partition_by=["p"] if partitioned else None)
        model, _ = step(t, [_fit(r) for r in initial], op)
    finally:
        lakehouse.merge._ROWS_BUDGET, lakehouse.write.ROW_GROUP_ROWS = budget, groups
        lakehouse.merge._SOURCE_BUDGET = source
    check_all_readers(t, model)
    check_all_readers(t, [_fit(r) for r in initial], 0)

"""Random sequences of writes against a plain in-memory model: every version reads back as the model says."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile

import pyarrow as pa
import pyarrow.compute as pc
from helpers import rows
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import lakehouse as lh
from lakehouse import maintenance
from lakehouse.replay import list_log, read_entry

SCHEMA = pa.schema([("id", pa.int64()), ("part", pa.int8()), ("x", pa.float64()), ("s", pa.string())])

# LH_HYPOTHESIS_SCALE=10 runs ten times as many examples (for bug hunting; CI uses 1)
SCALE = int(os.environ.get("LH_HYPOTHESIS_SCALE", "1"))
settings.register_profile(
    "lakehouse-stateful",
    max_examples=25 * SCALE,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STATEFUL_SETTINGS = settings.get_profile("lakehouse-stateful")

parts = st.one_of(st.none(), st.integers(0, 2))
xs = st.one_of(st.none(), st.integers(-5, 5).map(float))
strings = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "ü", ""]))
row_bodies = st.lists(st.tuples(parts, xs, strings), min_size=0, max_size=6)
EXTRA_NAMES = ["e", "f", "g"]  # extra columns the schema-evolution rules add, rename and drop

# A filter is drawn as a small "spec" that we turn into both a lakehouse filter and a Python predicate.
# Python predicate semantics follow SQL: a comparison with NULL is not TRUE.
filter_specs = st.one_of(
    st.tuples(st.just("part="), st.integers(0, 2)),
    st.tuples(st.just("part_null"), st.none()),
    st.tuples(st.just("x<"), st.integers(-5, 5).map(float)),
    st.tuples(st.just("x>=_or_part="), st.tuples(st.integers(-5, 5).map(float), st.integers(0, 2))),
    st.tuples(st.just("s_in"), st.lists(st.sampled_from(["a", "b", "ü", ""]), min_size=1, max_size=2)),
    st.tuples(st.just("id<"), st.integers(0, 60)),
)


def to_filter(spec):
    kind, arg = spec
    if kind == "part=":
        return [("part", "=", arg)]
    if kind == "part_null":
        return pc.field("part").is_null()
    if kind == "x<":
        return pc.field("x") < arg
    if kind == "x>=_or_part=":
        return [[("x", ">=", arg[0])], [("part", "=", arg[1])]]
    if kind == "s_in":
        return [("s", "in", list(arg))]
    if kind == "id<":
        return [("id", "<", arg)]
    raise AssertionError(kind)


def matches(spec, row) -> bool:
    kind, arg = spec
    _id, part, x, s = row[:4]
    if kind == "part=":
        return part is not None and part == arg
    if kind == "part_null":
        return part is None
    if kind == "x<":
        return x is not None and x < arg
    if kind == "x>=_or_part=":
        return (x is not None and x >= arg[0]) or (part is not None and part == arg[1])
    if kind == "s_in":
        return s is not None and s in arg
    if kind == "id<":
        return _id < arg
    raise AssertionError(kind)


def conform(spec, body):
    """Make a drawn row satisfy ``spec`` (for overwrite-with-filter, whose new rows must all match)."""
    kind, arg = spec
    part, x, s = body
    if kind == "part=":
        return (arg, x, s)
    if kind == "part_null":
        return (None, x, s)
    if kind == "x<":
        return (part, arg - 1.0, s)
    if kind == "x>=_or_part=":
        return (part, arg[0], s)
    if kind == "s_in":
        return (part, x, arg[0])
    return body  # "id<": ids are assigned below the bound by the caller


def schema_of(extras) -> pa.Schema:
    """SCHEMA plus the extra string columns ``extras`` = ((key, name), ...) added by the evolution rules."""
    return pa.schema([*SCHEMA, *(pa.field(name, pa.string()) for _, name in extras)])


def to_table(row_list, extras=()) -> pa.Table:
    """Rows are (id, part, x, s, ((key, value), ...)): the last item holds the values of extra columns
    by stable key, so a renamed column keeps its values and a dropped-then-re-added name starts empty."""
    base = [r[:4] for r in row_list]
    cols = list(zip(*base, strict=True)) if base else [[], [], [], []]
    arrays = [pa.array(list(c), f.type) for c, f in zip(cols, SCHEMA, strict=True)]
    arrays += [pa.array([dict(r[4]).get(key) for r in row_list], pa.string()) for key, _ in extras]
    return pa.table(arrays, schema=schema_of(extras))


class TableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="lh-stateful-")
        self.uri = f"{self.tmp}/t"
        self.next_id = 0
        self.next_key = 0
        self.model: list[list[tuple]] = []  # model[v] = rows at version v
        self.schemas: list[tuple] = []  # schemas[v] = the extra columns ((key, name), ...) at version v
        self.table: lh.Table | None = None
        self.readable_from = 0  # versions below this may have lost files to vacuum
        self.log_from = 0  # versions below this were cleaned from the log

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers

    def new_rows(self, bodies, ids=None, extras=None):
        out = []
        for i, (part, x, s) in enumerate(bodies):
            if ids is None:
                rid = self.next_id
                self.next_id += 1
            else:
                rid = ids[i]
            values = tuple((key, None if rid % 3 == 0 else f"{key}:{rid}") for key, _ in
                           (self.extras if extras is None else extras))
            out.append((rid, part, x, s, values))
        return out

    def record(self, version: int, new_rows: list[tuple], extras=None) -> None:
        """Record the outcome of a write: a new version, or (for a no-op write) the same one."""
        extras = self.extras if extras is None else tuple(extras)
        latest = len(self.model) - 1
        if version == latest:
            assert extras == self.extras, "a no-op changed the schema"
            same = rows(to_table(new_rows, extras)) == rows(to_table(self.model[-1], extras))
            assert same, "no-op write changed data"
            return
        assert version == latest + 1, (version, latest)
        self.model.append(new_rows)
        self.schemas.append(extras)

    @property
    def current(self) -> list[tuple]:
        return self.model[-1]

    @property
    def extras(self) -> tuple:
        return self.schemas[-1] if self.schemas else ()

    def table_of(self, row_list) -> pa.Table:
        return to_table(row_list, self.extras)

    # -- rules

    @initialize(checkpoint_interval=st.sampled_from(["3", "100"]))
    def create(self, checkpoint_interval):
        self.table = lh.Table.create(
            self.uri, SCHEMA, partition_by=["part"], properties={"checkpoint_interval": checkpoint_interval}
        )
        assert self.table.version == 0
        self.model.append([])
        self.schemas.append(())

    @rule(bodies=row_bodies)
    def append(self, bodies):
        new = self.new_rows(bodies)
        v = self.table.append(self.table_of(new))
        self.record(v, self.current + new)

    @rule(bodies=row_bodies)
    def overwrite(self, bodies):
        new = self.new_rows(bodies)
        v = self.table.overwrite(self.table_of(new))
        self.record(v, new)

    @rule(spec=filter_specs, bodies=row_bodies)
    def overwrite_where(self, spec, bodies):
        bodies = [conform(spec, b) for b in bodies]
        if spec[0] == "id<":
            ids = [spec[1] - 1 - i for i in range(len(bodies))]
            new = self.new_rows(bodies, ids=ids)
        else:
            new = self.new_rows(bodies)
        assert all(matches(spec, r) for r in new)
        v = self.table.overwrite(self.table_of(new), filter=to_filter(spec))
        self.record(v, [r for r in self.current if not matches(spec, r)] + new)

    @rule(spec=filter_specs)
    def delete(self, spec):
        v = self.table.delete(to_filter(spec))
        self.record(v, [r for r in self.current if not matches(spec, r)])

    @rule(
        ops=st.lists(
            st.one_of(
                st.tuples(st.just("append"), row_bodies),
                st.tuples(st.just("delete"), filter_specs),
                st.tuples(st.just("overwrite_where"), st.tuples(filter_specs, row_bodies)),
            ),
            min_size=1,
            max_size=4,
        )
    )
    def transaction(self, ops):
        state = list(self.current)
        with self.table.transaction() as tx:
            for kind, arg in ops:
                if kind == "append":
                    new = self.new_rows(arg)
                    tx.append(self.table_of(new))
                    state = state + new
                elif kind == "delete":
                    tx.delete(to_filter(arg))
                    state = [r for r in state if not matches(arg, r)]
                else:
                    spec, bodies = arg
                    bodies = [conform(spec, b) for b in bodies]
                    ids = [spec[1] - 1 - i for i in range(len(bodies))] if spec[0] == "id<" else None
                    new = self.new_rows(bodies, ids=ids)
                    tx.overwrite(self.table_of(new), filter=to_filter(spec))
                    state = [r for r in state if not matches(spec, r)] + new
        self.record(self.table.version, state)

    @rule()
    def failed_transaction(self):
        try:
            with self.table.transaction() as tx:
                tx.append(self.table_of(self.new_rows([(1, 1.0, "a")])))
                tx.delete([("part", "=", 0)])
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        assert self.table.version == len(self.model) - 1

    @rule()
    def checkpoint(self):
        assert self.table.checkpoint() == len(self.model) - 1

    @rule()
    def reopen(self):
        self.table = lh.Table.open(self.uri)
        assert self.table.version == len(self.model) - 1

    @rule()
    def optimize(self):
        v = self.table.optimize()
        if v is not None:
            self.record(v, list(self.current))

    @rule(data=st.data())
    def restore(self, data):
        v = data.draw(st.integers(max(self.readable_from, self.log_from), len(self.model) - 1), label="restore")
        self.record(self.table.restore(v), list(self.model[v]), self.schemas[v])

    def _now_keeping(self, k: int, window_ms: int) -> int:
        """A clock reading at which the retention window starts exactly at version k's commit."""
        return read_entry(self.table._storage, k).commit.timestamp + window_ms

    @rule(data=st.data())
    def vacuum(self, data):
        k = data.draw(st.integers(max(self.readable_from, self.log_from), len(self.model) - 1), label="vacuum")
        window = dt.timedelta(hours=1)
        maintenance.vacuum(self.table._storage, self.table._state, retention=window, enforce_retention=False,
                           dry_run=False, now_ms=self._now_keeping(k, 3_600_000))
        self.readable_from = max(self.readable_from, k)

    @rule(data=st.data())
    def cleanup_log(self, data):
        k = data.draw(st.integers(self.log_from, len(self.model) - 1), label="cleanup_log")
        maintenance.cleanup_log(self.table._storage, self.table._state, retention=dt.timedelta(hours=1),
                                enforce_retention=False, now_ms=self._now_keeping(k, 3_600_000))
        entries, _ = list_log(self.table._storage)
        assert entries[0] <= k
        self.log_from = max(self.log_from, entries[0])
        if self.log_from > 0:
            try:
                self.table.snapshot(version=self.log_from - 1)
            except lh.VersionNotFoundError as exc:
                assert "cleaned up" in str(exc)
            else:
                raise AssertionError("a cleaned-up version still opens")

    # -- schema evolution: extra string columns come and go; every version still reads as the model

    @rule(name=st.sampled_from(EXTRA_NAMES))
    def add_column(self, name):
        if name in schema_of(self.extras).names:
            return
        v = self.table.alter.add_column(pa.field(name, pa.string()))
        self.next_key += 1
        self.record(v, list(self.current), (*self.extras, (self.next_key, name)))

    @rule(name=st.sampled_from(EXTRA_NAMES), bodies=row_bodies)
    def merge_append(self, name, bodies):
        if name in schema_of(self.extras).names:
            return
        self.next_key += 1
        extras = (*self.extras, (self.next_key, name))
        new = self.new_rows(bodies, extras=extras)
        v = self.table.append(to_table(new, extras), schema_mode="merge")
        self.record(v, self.current + new, extras)

    @precondition(lambda self: self.extras)
    @rule(data=st.data(), new=st.sampled_from([*EXTRA_NAMES, "h"]))
    def rename_column(self, data, new):
        key, old = data.draw(st.sampled_from(self.extras), label="column")
        if new in schema_of(self.extras).names:
            return
        v = self.table.alter.rename_column(old, new)
        self.record(v, list(self.current), tuple((k, new if k == key else n) for k, n in self.extras))

    @precondition(lambda self: self.extras)
    @rule(data=st.data())
    def drop_column(self, data):
        key, name = data.draw(st.sampled_from(self.extras), label="column")
        v = self.table.alter.drop_column(name)
        self.record(v, list(self.current), tuple(c for c in self.extras if c[0] != key))

    @precondition(lambda self: self.extras)
    @rule(data=st.data())
    def filter_extra(self, data):
        key, name = data.draw(st.sampled_from(self.extras), label="column")
        got = self.table.to_arrow(filter=pc.field(name).is_valid())
        expected = [r for r in self.current if dict(r[4]).get(key) is not None]
        assert rows(got) == rows(self.table_of(expected))

    @precondition(lambda self: len(self.model) > 1)
    @rule(data=st.data())
    def time_travel(self, data):
        v = data.draw(st.integers(max(self.readable_from, self.log_from), len(self.model) - 1), label="version")
        snap = self.table.snapshot(version=v)
        assert snap.version == v
        got = snap.to_arrow()
        assert got.schema.equals(schema_of(self.schemas[v])), got.schema
        assert rows(got) == rows(to_table(self.model[v], self.schemas[v])), f"version {v}"
        assert rows(self.table.to_arrow(version=v)) == rows(to_table(self.model[v], self.schemas[v]))

    @invariant()
    def latest_matches_model(self):
        if self.table is None:
            return
        assert self.table.version == len(self.model) - 1
        got = self.table.to_arrow()
        assert got.schema.equals(schema_of(self.extras)), got.schema
        assert rows(got) == rows(self.table_of(self.current))
        files = self.table.snapshot().files()
        assert sum(files.column("num_rows").to_pylist()) == len(self.current)


TableMachine.TestCase.settings = STATEFUL_SETTINGS
TestTableMachine = TableMachine.TestCase

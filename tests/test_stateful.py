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
from lakehouse.snapshot import list_log, read_entry

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
    _id, part, x, s = row
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


def to_table(row_list) -> pa.Table:
    cols = list(zip(*row_list, strict=True)) if row_list else [[], [], [], []]
    return pa.table([pa.array(list(c), f.type) for c, f in zip(cols, SCHEMA, strict=True)], schema=SCHEMA)


class TableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="lh-stateful-")
        self.uri = f"{self.tmp}/t"
        self.next_id = 0
        self.model: list[list[tuple]] = []  # model[v] = rows at version v
        self.table: lh.Table | None = None
        self.readable_from = 0  # versions below this may have lost files to vacuum
        self.log_from = 0  # versions below this were cleaned from the log

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers

    def new_rows(self, bodies, ids=None):
        out = []
        for i, (part, x, s) in enumerate(bodies):
            if ids is None:
                rid = self.next_id
                self.next_id += 1
            else:
                rid = ids[i]
            out.append((rid, part, x, s))
        return out

    def record(self, version: int, new_rows: list[tuple]) -> None:
        """Record the outcome of a write: a new version, or (for a no-op write) the same one."""
        latest = len(self.model) - 1
        if version == latest:
            assert rows(to_table(new_rows)) == rows(to_table(self.model[-1])), "no-op write changed data"
            return
        assert version == latest + 1, (version, latest)
        self.model.append(new_rows)

    @property
    def current(self) -> list[tuple]:
        return self.model[-1]

    # -- rules

    @initialize(checkpoint_interval=st.sampled_from(["3", "100"]))
    def create(self, checkpoint_interval):
        self.table = lh.Table.create(
            self.uri, SCHEMA, partition_by=["part"], properties={"checkpoint_interval": checkpoint_interval}
        )
        assert self.table.version == 0
        self.model.append([])

    @rule(bodies=row_bodies)
    def append(self, bodies):
        new = self.new_rows(bodies)
        v = self.table.append(to_table(new))
        self.record(v, self.current + new)

    @rule(bodies=row_bodies)
    def overwrite(self, bodies):
        new = self.new_rows(bodies)
        v = self.table.overwrite(to_table(new))
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
        v = self.table.overwrite(to_table(new), filter=to_filter(spec))
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
                    tx.append(to_table(new))
                    state = state + new
                elif kind == "delete":
                    tx.delete(to_filter(arg))
                    state = [r for r in state if not matches(arg, r)]
                else:
                    spec, bodies = arg
                    bodies = [conform(spec, b) for b in bodies]
                    ids = [spec[1] - 1 - i for i in range(len(bodies))] if spec[0] == "id<" else None
                    new = self.new_rows(bodies, ids=ids)
                    tx.overwrite(to_table(new), filter=to_filter(spec))
                    state = [r for r in state if not matches(spec, r)] + new
        self.record(self.table.version, state)

    @rule()
    def failed_transaction(self):
        try:
            with self.table.transaction() as tx:
                tx.append(to_table(self.new_rows([(1, 1.0, "a")])))
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
        self.record(self.table.restore(v), list(self.model[v]))

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

    @precondition(lambda self: len(self.model) > 1)
    @rule(data=st.data())
    def time_travel(self, data):
        v = data.draw(st.integers(max(self.readable_from, self.log_from), len(self.model) - 1), label="version")
        snap = self.table.snapshot(version=v)
        assert snap.version == v
        got = snap.to_arrow()
        assert got.schema.equals(SCHEMA), got.schema
        assert rows(got) == rows(to_table(self.model[v])), f"version {v}"
        assert rows(self.table.to_arrow(version=v)) == rows(to_table(self.model[v]))

    @invariant()
    def latest_matches_model(self):
        if self.table is None:
            return
        assert self.table.version == len(self.model) - 1
        got = self.table.to_arrow()
        assert got.schema.equals(SCHEMA), got.schema
        assert rows(got) == rows(to_table(self.current))
        files = self.table.snapshot().files()
        assert sum(files.column("num_rows").to_pylist()) == len(self.current)


TableMachine.TestCase.settings = STATEFUL_SETTINGS
TestTableMachine = TableMachine.TestCase

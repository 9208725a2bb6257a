"""Typed-error fuzz (issue 13, item 21): random BAD inputs to every public function, method and CLI
command may only fail with a ``LakehouseError`` subclass (the CLI: a clean one-line error and exit
code 1 or 2, never a traceback).

Every entry of ``OPS`` calls one public entry point of ``lakehouse.__all__`` (or a ``Table`` /
``Snapshot`` / ``Transaction`` / ``Alter`` / ``Inspect`` method) on a fresh small table, with one
argument replaced by a drawn bad value: wrong types (None, bools, ints, floats, NaN, huge and
negative numbers, bytes, lists, dicts, objects), absurd values (version -1 or 2**70, naive, aware
and far-future times, empty strings, ``..`` paths, NUL bytes, 10,000-character names) and hostile
filters (deep nesting, hundreds of ``not``, unknown columns, wrong-type literals, non-boolean
expressions). A bad input may also be accepted; what it may not do is escape as a builtin or
library exception (``ValueError``, ``TypeError``, ``KeyError``, ``ArrowInvalid``, ``OverflowError``,
``RecursionError``, ...).

Profiles: a bounded one for CI (the whole module well under 90 s on a loaded 2-core machine) and a
long one with ``LH_FUZZ=1``. URIs are sanitised so that nothing is written outside a temporary
folder (the process's working directory is moved there for the module): only ``memory://`` URLs,
unknown protocols and relative paths that stay below that folder reach the library.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import posixpath
import reprlib
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.cli import cli

LONG = os.environ.get("LH_FUZZ") == "1"
PROFILE = settings(max_examples=300 if LONG else 6, deadline=None, database=None, derandomize=not LONG,
                   suppress_health_check=list(HealthCheck))

# (entry of OPS, exception type name) pairs tolerated while a fix is pending: none
KNOWN_BUGS: set[tuple[str, str]] = set()  # every class found by this fuzz is fixed on main


# -- bad values ------------------------------------------------------------------------------------
class _Opaque:
    def __repr__(self) -> str:
        return "<opaque object>"


NAIVE = dt.datetime(2024, 1, 1, 12)
AWARE = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)
FAR_FUTURE = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
FAR_PAST = dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)
HOSTILE_STRINGS = ["", " ", "..", "../x", "a/../../b", "a\x00b", "\x00", "x" * 10_000, "memory://", "::",
                   "é\u202e", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
                   "nan", "-1", "1e400", "99999999999999999999", "{}", "[]", "null"]
FIXED = [None, True, False, 0, -1, -(2**63) - 1, 2**63, 2**70, -(2**70), 1.5, -0.0, math.nan, math.inf, -math.inf,
         b"", b"\x00\xff", [], [None], [1, "a"], {}, {"a": None}, {1: 2}, (), _Opaque(), NAIVE, AWARE, FAR_FUTURE,
         FAR_PAST, dt.date(2024, 1, 1), dt.timedelta(days=-1), dt.timedelta(days=999_999_999), pa.int64(),
         pa.field("x", pa.int64()), pc.field("id"), pa.table({"zz": [1]}), *HOSTILE_STRINGS]

bad_values = st.one_of(
    st.sampled_from(FIXED),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=10),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.timedeltas(),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=5)), max_size=4),
    st.dictionaries(st.text(max_size=5), st.one_of(st.none(), st.integers(), st.text(max_size=5)), max_size=3),
)


def _nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def _expr_chain(n: int) -> pc.Expression:
    e = pc.field("id") == 1
    for _ in range(n):
        e = ~e
    return e


DEEP = 3000  # beyond Python's recursion limit
LONG_CHAIN = 3000 if LONG else 300  # a chain of 3,000 and/or terms takes seconds to plan and write
HOSTILE_FILTERS = [
    # deep nesting and long chains
    "(" * DEEP + "id = 1" + ")" * DEEP, "not " * DEEP + "id = 1", " and ".join(["id = 1"] * LONG_CHAIN),
    " or ".join(["id = 1"] * LONG_CHAIN), "-" * DEEP + "1 = id", _nested(DEEP, ("id", "=", 1)), _expr_chain(LONG_CHAIN),
    # unknown columns, bad shapes and operators
    "nope = 1", [("nope", "=", 1)], [("id", "~", 1)], [("id",)], [("id", "=", 1, 2)], [()], [[]], [[[]]],
    [("id", "in", 5)], [("id", "in", [])], [("id", "not in", None)], [(1, "=", 1)], [("id", None, 1)],
    # wrong-type literals
    [("id", "=", "abc")], [("id", "=", [1])], [("id", "=", {"a": 1})], [("id", "=", 2**70)], [("id", ">", math.nan)],
    [("day", "=", "x")], [("day", "=", -(2**70))], [("ts", ">", "not a date")], [("ts", ">", NAIVE)],
    [("ts", "=", 5)], [("s", "<", 1)], [("s", "=", b"\xff")], [("f", "in", [math.nan, "a"])], [("lst", "=", 1)],
    [("lst", "in", [[1]])], [("id", "=", _Opaque())], [("id", "=", dt.date(2024, 1, 1))],
    # expressions: not boolean, mixed types, unknown columns
    pc.field("id") + 1, pc.field("s") == pc.field("id"), pc.field("ts") > pc.field("s"), pc.field("nope") == 1,
    pc.scalar(1), pc.scalar(True), pc.field("id"), pc.field("s") == 1, pc.field("lst") == 1,
    pc.field("id") > pc.scalar("x"), pc.field("ts") < pc.scalar(NAIVE), pc.is_null(pc.field("nope")),
    # SQL text
    "id = 'abc'", "id +", "s LIKE 1", "ts = TIMESTAMP 'garbage'", "ts > TIMESTAMP '2024-01-01'", "id IN ()",
    "SELECT 1", "id = 1; DROP TABLE t", "id = 1 OR", "id", "1", "s", "lst = 1", "id BETWEEN 'a' AND 2",
    "day = 99999999999999999999999", "f = 'nan'", "CAST(s AS INT) = 1", "nope(id) = 1", "id = id = id",
    "s = s + 1", "\x00", "", " ", "id == 1", "id = ?", "id = :x", "ts = DATE '2024-13-45'",
]
filters = st.one_of(st.sampled_from(HOSTILE_FILTERS), bad_values, st.text(max_size=40))


# -- sandboxing ------------------------------------------------------------------------------------
_SAFE_PROTOCOLS = ("memory://", "nosuchproto://", "://")


def _safe_uri(v: Any) -> Any:
    """``v`` if the library may touch it: never an absolute local path or a network URL."""
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if not isinstance(v, str):
        return v
    if "://" in v:
        return v if v.startswith(_SAFE_PROTOCOLS) else "memory://fuzz-url/" + v.split("://", 1)[1]
    if "\x00" in v or len(v) > 4000:
        return v  # refused by the OS before anything is created
    rel = posixpath.normpath("fz/" + v.lstrip("/\\~").replace("\\", "/"))
    return rel if not rel.startswith("..") and ":" not in rel else "fz/x"


@pytest.fixture(scope="module", autouse=True)
def _sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    old = os.getcwd()
    here = tmp_path_factory.mktemp("fuzz") / "a" / "b"
    here.mkdir(parents=True)
    os.chdir(here)
    old_limit = sys.getrecursionlimit()
    try:
        yield
    finally:
        os.chdir(old)
        sys.setrecursionlimit(old_limit)


# -- the table every call starts from ----------------------------------------------------------------
SCHEMA = pa.schema([("id", pa.int64()), ("day", pa.int32()), ("s", pa.string()), ("f", pa.float64()),
                    ("ts", pa.timestamp("us", tz="UTC")), ("lst", pa.list_(pa.int64()))])
DATA = pa.table({"id": [1, 2, 3], "day": [1, 1, 2], "s": ["a", None, "c"], "f": [0.5, math.nan, -0.0],
                 "ts": [AWARE, None, FAR_FUTURE], "lst": [[1], None, []]}, schema=SCHEMA)
_COUNTER = itertools.count()


@dataclass
class Ctx:
    uri: str
    table: lh.Table


def _fresh() -> Ctx:
    uri = f"memory://fuzz-{os.getpid()}-{next(_COUNTER)}"
    t = lh.write_table(uri, DATA.slice(0, 2), partition_by=["day"])
    t.append(DATA.slice(2))
    return Ctx(uri, t)


def _drop(uri: str) -> None:
    fs = fsspec.filesystem("memory")
    path = uri.removeprefix("memory://")
    if fs.exists(f"/{path}"):
        fs.rm(f"/{path}", recursive=True)


def _files(c: Ctx) -> list[lh.DataFile]:
    return lh.write_files(c.uri, DATA.slice(0, 1))


def _datafile(c: Ctx, **change: Any) -> lh.DataFile:
    import dataclasses

    return dataclasses.replace(_files(c)[0], **change)


class _Pairs(Mapping):
    """A mapping whose keys need not be hashable (to hand any key to the library)."""

    def __init__(self, pairs: list[tuple[Any, Any]]) -> None:
        self._pairs = pairs

    def __getitem__(self, key: Any) -> Any:
        return next(v for k, v in self._pairs if k is key)

    def __iter__(self) -> Iterator[Any]:
        return iter(k for k, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)


def _field(name: Any) -> Any:
    """A pyarrow field named ``name`` if pyarrow takes the name (else the name itself, a bad field too)."""
    try:
        return pa.field(name, pa.int64())
    except Exception:
        return name


def _task(c: Ctx, **change: Any) -> lh.FileTask:
    import dataclasses

    return dataclasses.replace(c.table.snapshot().plan_files()[0], **change)


# -- the public surface: name -> call with the bad value ------------------------------------------------
Op = Callable[[Ctx, Any], Any]
OPS: dict[str, Op] = {
    # module functions
    "write_table.uri": lambda c, v: lh.write_table(_safe_uri(v), DATA),
    "write_table.data": lambda c, v: lh.write_table(c.uri + "-new", v),
    "write_table.mode": lambda c, v: lh.write_table(c.uri, DATA, mode=v),
    "write_table.partition_by": lambda c, v: lh.write_table(c.uri + "-new", DATA, partition_by=v),
    "write_table.properties": lambda c, v: lh.write_table(c.uri + "-new", DATA, properties=v),
    "write_table.properties_value": lambda c, v: lh.write_table(c.uri + "-new", DATA,
                                                                properties={"checkpoint_interval": v}),
    "write_table.schema_mode": lambda c, v: lh.write_table(c.uri, DATA, mode="append", schema_mode=v),
    "write_table.storage_options": lambda c, v: lh.write_table(c.uri + "-new", DATA, storage_options=v),
    "write_files.uri": lambda c, v: lh.write_files(_safe_uri(v), DATA),
    "write_files.data": lambda c, v: lh.write_files(c.uri, v),
    "write_files.storage_options": lambda c, v: lh.write_files(c.uri, DATA, storage_options=v),
    "read_task.task": lambda c, v: lh.read_task(v),
    "read_task.storage_options": lambda c, v: lh.read_task(_task(c), storage_options=v),
    "read_task.task_filter": lambda c, v: lh.read_task(_task(c, filter=v)),
    "read_task.task_columns": lambda c, v: lh.read_task(_task(c, columns=v)),
    "read_task.task_schema": lambda c, v: lh.read_task(_task(c, schema=v)),
    "read_task.task_uri": lambda c, v: lh.read_task(_task(c, uri=_safe_uri(v) if not isinstance(v, str | bytes)
                                                          else "memory://fuzz-task/" + repr(v)[:200])),
    "check_storage.uri": lambda c, v: lh.check_storage(_safe_uri(v), rounds=1, racers=2),
    "check_storage.rounds": lambda c, v: lh.check_storage(c.uri + "-probe", rounds=v, racers=2),
    "check_storage.racers": lambda c, v: lh.check_storage(c.uri + "-probe", rounds=1, racers=v),
    # opening
    "Table.create.uri": lambda c, v: lh.Table.create(_safe_uri(v), SCHEMA),
    "Table.create.schema": lambda c, v: lh.Table.create(c.uri + "-new", v),
    "Table.create.partition_by": lambda c, v: lh.Table.create(c.uri + "-new", SCHEMA, partition_by=v),
    "Table.create.properties": lambda c, v: lh.Table.create(c.uri + "-new", SCHEMA, properties=v),
    "Table.create.property_value": lambda c, v: lh.Table.create(c.uri + "-new", SCHEMA,
                                                                properties={"log_retention": v}),
    "Table.open.uri": lambda c, v: lh.Table.open(_safe_uri(v)),
    "Table.open.storage_options": lambda c, v: lh.Table.open(c.uri, storage_options=v),
    "Table.exists.uri": lambda c, v: lh.Table.exists(_safe_uri(v)),
    # reading
    "Table.to_arrow.filter": lambda c, v: c.table.to_arrow(filter=v),
    "Table.to_arrow.columns": lambda c, v: c.table.to_arrow(columns=v),
    "Table.to_arrow.version": lambda c, v: c.table.to_arrow(version=v),
    "Table.to_arrow.as_of": lambda c, v: c.table.to_arrow(as_of=v),
    "Table.to_batches.filter": lambda c, v: c.table.to_batches(filter=v).read_all(),
    "Table.to_batches.columns": lambda c, v: c.table.to_batches(columns=v).read_all(),
    "Table.to_pandas.filter": lambda c, v: c.table.to_pandas(filter=v),
    "Table.to_pandas.columns": lambda c, v: c.table.to_pandas(columns=v),
    "Table.to_pyarrow_dataset.filter": lambda c, v: c.table.to_pyarrow_dataset(filter=v).to_table(),
    "Table.files.filter": lambda c, v: c.table.files(filter=v),
    "Table.snapshot.version": lambda c, v: c.table.snapshot(version=v),
    "Table.snapshot.as_of": lambda c, v: c.table.snapshot(as_of=v),
    "Table.app_version.app_id": lambda c, v: c.table.app_version(v),
    "Table.history.limit": lambda c, v: c.table.history(v),
    "Table.to_duckdb.name": lambda c, v: c.table.to_duckdb(v),
    "Snapshot.plan_files.filter": lambda c, v: c.table.snapshot().plan_files(filter=v),
    "Table.plan_files.filter": lambda c, v: c.table.plan_files(filter=v),
    "Table.plan_files.columns": lambda c, v: c.table.plan_files(columns=v),
    "Table.plan_files.version": lambda c, v: c.table.plan_files(version=v),
    "Snapshot.plan_files.columns": lambda c, v: c.table.snapshot().plan_files(columns=v),
    "Snapshot.to_arrow.filter": lambda c, v: c.table.snapshot(version=0).to_arrow(filter=v),
    # writing
    "Table.append.data": lambda c, v: c.table.append(v),
    "Table.append.schema_mode": lambda c, v: c.table.append(DATA, schema_mode=v),
    "Table.append.app_transaction": lambda c, v: c.table.append(DATA, app_transaction=v),
    "Table.append.progress": lambda c, v: c.table.append(DATA, progress=v),
    "Table.overwrite.data": lambda c, v: c.table.overwrite(v),
    "Table.overwrite.filter": lambda c, v: c.table.overwrite(DATA.slice(0, 0), filter=v),
    "Table.overwrite.schema_mode": lambda c, v: c.table.overwrite(DATA, schema_mode=v),
    "Table.delete.filter": lambda c, v: c.table.delete(v),
    "Table.delete.app_transaction": lambda c, v: c.table.delete([("id", "=", 1)], app_transaction=v),
    "Table.transaction.app_transaction": lambda c, v: c.table.transaction(app_transaction=v).abort(),
    "Transaction.append.data": lambda c, v: _in_tx(c, lambda tx: tx.append(v)),
    "Transaction.delete.filter": lambda c, v: _in_tx(c, lambda tx: tx.delete(v)),
    "Transaction.overwrite.filter": lambda c, v: _in_tx(c, lambda tx: tx.overwrite(DATA.slice(0, 0), filter=v)),
    "Table.commit_files.files": lambda c, v: c.table.commit_files(v, read_version=c.table.version),
    "Table.commit_files.files_item": lambda c, v: c.table.commit_files([v], read_version=c.table.version),
    "Table.commit_files.read_version": lambda c, v: c.table.commit_files(_files(c), read_version=v),
    "Table.commit_files.operation": lambda c, v: c.table.commit_files(_files(c), read_version=1, operation=v),
    "Table.commit_files.filter": lambda c, v: c.table.commit_files([], read_version=1, operation="overwrite",
                                                                   filter=v),
    "Table.commit_files.removed": lambda c, v: c.table.commit_files([], read_version=1, removed=v),
    "Table.commit_files.removed_item": lambda c, v: c.table.commit_files([], read_version=1, removed=[v]),
    "DataFile.path": lambda c, v: c.table.commit_files([_datafile(c, path=v)], read_version=1),
    "DataFile.size_bytes": lambda c, v: c.table.commit_files([_datafile(c, size_bytes=v)], read_version=1),
    "DataFile.num_rows": lambda c, v: c.table.commit_files([_datafile(c, num_rows=v)], read_version=1),
    "DataFile.modification_time": lambda c, v: c.table.commit_files([_datafile(c, modification_time=v)],
                                                                    read_version=1),
    "DataFile.partition_values": lambda c, v: c.table.commit_files([_datafile(c, partition_values=v)],
                                                                   read_version=1),
    "DataFile.partition_value": lambda c, v: c.table.commit_files([_datafile(c, partition_values={"day": v})],
                                                                  read_version=1),
    "DataFile.stats": lambda c, v: c.table.commit_files([_datafile(c, stats=v)], read_version=1),
    "DataFile.stats_value": lambda c, v: c.table.commit_files(
        [_datafile(c, stats={"min": {"id": v}, "max": {"id": v}, "null_count": {"id": v}})], read_version=1),
    "DataFile.version": lambda c, v: c.table.commit_files([_datafile(c, version=v)], read_version=1),
    # row-level changes
    "Table.update.set": lambda c, v: c.table.update(v),
    "Table.update.set_value": lambda c, v: c.table.update({"s": v}),
    "Table.update.set_key": lambda c, v: c.table.update(_Pairs([(v, 1)])),
    "Table.update.filter": lambda c, v: c.table.update({"id": 1}, filter=v),
    "Table.update.schema_mode": lambda c, v: c.table.update({"id": 1}, schema_mode=v),
    "Table.update.app_transaction": lambda c, v: c.table.update({"id": 1}, app_transaction=v),
    "Table.update.progress": lambda c, v: c.table.update({"id": 1}, progress=v),
    "Table.merge.source": lambda c, v: c.table.merge(v, on="id").when_matched_delete().execute(),
    "Table.merge.on": lambda c, v: c.table.merge(DATA, on=v).when_matched_delete().execute(),
    "Table.merge.predicate": lambda c, v: c.table.merge(DATA, predicate=v).when_matched_delete().execute(),
    "Table.merge.source_alias": lambda c, v: c.table.merge(DATA, on="id", source_alias=v).when_matched_delete(),
    "Table.merge.schema_mode": lambda c, v: c.table.merge(DATA, on="id", schema_mode=v),
    "Table.merge.app_transaction": lambda c, v: c.table.merge(DATA, on="id", app_transaction=v).when_matched_delete()
    .execute(),
    "TableMerger.when_matched_update.set": lambda c, v: c.table.merge(DATA, on="id").when_matched_update(v).execute(),
    "TableMerger.when_matched_update.set_value": lambda c, v: c.table.merge(DATA, on="id").when_matched_update(
        {"s": v}).execute(),
    "TableMerger.when_matched_update.filter": lambda c, v: c.table.merge(DATA, on="id").when_matched_update(
        filter=v).execute(),
    "TableMerger.when_matched_delete.filter": lambda c, v: c.table.merge(DATA, on="id").when_matched_delete(
        filter=v).execute(),
    "TableMerger.when_not_matched_insert.values": lambda c, v: c.table.merge(DATA, on="id")
    .when_not_matched_insert(v).execute(),
    "TableMerger.when_not_matched_insert.filter": lambda c, v: c.table.merge(DATA, on="id")
    .when_not_matched_insert(filter=v).execute(),
    "TableMerger.when_not_matched_by_source_update.set": lambda c, v: c.table.merge(DATA, on="id")
    .when_not_matched_by_source_update(v).execute(),
    "TableMerger.when_not_matched_by_source_delete.filter": lambda c, v: c.table.merge(DATA, on="id")
    .when_not_matched_by_source_delete(filter=v).execute(),
    "Table.upsert.source": lambda c, v: c.table.upsert(v, on="id"),
    "Table.upsert.on": lambda c, v: c.table.upsert(DATA, on=v),
    # maintenance
    "Table.vacuum.retention": lambda c, v: c.table.vacuum(retention=v),
    "Table.vacuum.retention_unenforced": lambda c, v: c.table.vacuum(retention=v, enforce_retention=False),
    "Table.vacuum.progress": lambda c, v: c.table.vacuum(progress=v),
    "Table.cleanup_log.retention": lambda c, v: c.table.cleanup_log(retention=v),
    "Table.cleanup_log.retention_unenforced": lambda c, v: c.table.cleanup_log(retention=v, enforce_retention=False),
    "Table.checkpoint.progress": lambda c, v: c.table.checkpoint(progress=v),
    "Table.restore.version": lambda c, v: c.table.restore(v),
    "Table.restore.as_of": lambda c, v: c.table.restore(as_of=v),
    "Table.optimize.target_file_size": lambda c, v: c.table.optimize(target_file_size=v),
    "Table.optimize.filter": lambda c, v: c.table.optimize(filter=v),
    "Table.optimize.sort_by": lambda c, v: c.table.optimize(sort_by=v),
    "Table.optimize.progress": lambda c, v: c.table.optimize(progress=v),
    # alter
    "Alter.set_properties.properties": lambda c, v: c.table.alter.set_properties(v),
    "Alter.set_properties.value": lambda c, v: c.table.alter.set_properties({"checkpoint_interval": v}),
    "Alter.set_properties.retention_value": lambda c, v: c.table.alter.set_properties({"log_retention": v}),
    "Alter.set_properties.key": lambda c, v: c.table.alter.set_properties(_Pairs([(v, "1")])),
    "Alter.unset_properties.names": lambda c, v: c.table.alter.unset_properties(v),
    "Alter.add_constraint.name": lambda c, v: c.table.alter.add_constraint(v, "id > 0"),
    "Alter.add_constraint.expression": lambda c, v: c.table.alter.add_constraint("c", v),
    "Alter.drop_constraint.name": lambda c, v: c.table.alter.drop_constraint(v),
    "Alter.add_column.field": lambda c, v: c.table.alter.add_column(v),
    "Alter.add_column.name": lambda c, v: c.table.alter.add_column(_field(v)),
    "Alter.add_column.parent": lambda c, v: c.table.alter.add_column(pa.field("n", pa.int64()), parent=v),
    "Alter.rename_column.column": lambda c, v: c.table.alter.rename_column(v, "renamed"),
    "Alter.rename_column.new_name": lambda c, v: c.table.alter.rename_column("s", v),
    "Alter.rename_column.partition_new_name": lambda c, v: c.table.alter.rename_column("day", v),
    "Alter.drop_column.column": lambda c, v: c.table.alter.drop_column(v),
    "Alter.widen_column.column": lambda c, v: c.table.alter.widen_column(v, pa.int64()),
    "Alter.widen_column.type": lambda c, v: c.table.alter.widen_column("day", v),
    # inspect
    "Inspect.files.filter": lambda c, v: c.table.inspect.files(filter=v),
    "Inspect.files.version": lambda c, v: c.table.inspect.files(version=v),
    "Inspect.partitions.filter": lambda c, v: c.table.inspect.partitions(filter=v),
    "Inspect.partitions.version": lambda c, v: c.table.inspect.partitions(version=v),
    "Inspect.history.limit": lambda c, v: c.table.inspect.history(limit=v),
    "Inspect.diff.from_version": lambda c, v: c.table.inspect.diff(v),
    "Inspect.diff.to_version": lambda c, v: c.table.inspect.diff(0, v),
    "Inspect.log_entry.version": lambda c, v: c.table.inspect.log_entry(v),
}
FILTER_OPS = {name for name in OPS if name.endswith((".filter", ".expression"))}


def _in_tx(c: Ctx, body: Callable[[lh.Transaction], None]) -> None:
    with c.table.transaction() as tx:
        body(tx)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist = 4, 80, 80, 6


def _short(value: Any) -> str:
    """A short repr, also of values nested thousands deep."""
    return _REPR.repr(value)


def _check(name: str, value: Any) -> None:
    """Call ``OPS[name]`` with ``value`` on a fresh table; fail unless it returns or raises a LakehouseError."""
    c = _fresh()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a warning about a bad value is a fine answer
            OPS[name](c, value)
    except lh.LakehouseError:
        pass
    except Exception as exc:
        if (name, type(exc).__name__) in KNOWN_BUGS:
            return
        shown = _short(value)
        raise AssertionError(f"{name}({shown}) raised {type(exc).__module__}.{type(exc).__name__}: "
                             f"{str(exc)[:500]}") from exc
    finally:
        for uri in (c.uri, c.uri + "-new", c.uri + "-probe"):
            _drop(uri)


@pytest.mark.parametrize("name", sorted(OPS))
@PROFILE
@given(value=bad_values)
def test_bad_argument_is_a_typed_error(name: str, value: Any) -> None:
    _check(name, value)


@pytest.mark.parametrize("name", sorted(FILTER_OPS))
@PROFILE
@given(value=filters)
def test_hostile_filter_is_a_typed_error(name: str, value: Any) -> None:
    _check(name, value)


@pytest.mark.parametrize("name", ["Table.to_arrow.filter", "Table.delete.filter", "Snapshot.plan_files.filter"])
@pytest.mark.parametrize("value", HOSTILE_FILTERS,
                         ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(HOSTILE_FILTERS)])
def test_every_hostile_filter(name: str, value: Any) -> None:
    """Each listed hostile filter once on a read, a write and planning (deterministic, cheap)."""
    _check(name, value)


def test_every_public_name_is_fuzzed() -> None:
    """A new public function or method must get an entry in OPS (or be listed here as not fuzzable)."""
    not_fuzzed = {  # values, attributes without arguments, errors, or called through another entry
        "Alter", "Commit", "DataFile", "FileTask", "Inspect", "Snapshot", "StorageReport", "Table", "Transaction",
        "__version__", "CommitOutcome", "PropertyWarning", "MergeResult",
    }
    covered = {name.split(".")[0] for name in OPS}
    for name in lh.__all__:
        if name in not_fuzzed or (isinstance(getattr(lh, name), type) and issubclass(getattr(lh, name), Exception)):
            continue
        assert name in covered, f"lakehouse.{name} has no entry in OPS"
    methods = {name.split(".")[1] for name in OPS if name.startswith("Table.")}
    untested = {"refresh", "to_polars", "checkpoint"} - methods  # no arguments to spoil
    for meth in dir(lh.Table):
        attr = getattr(lh.Table, meth)
        if meth.startswith("_") or isinstance(attr, property) or not callable(attr) or meth in untested:
            continue
        assert meth in methods, f"Table.{meth} has no entry in OPS"


# -- the command line --------------------------------------------------------------------------------
CLI_VALUES = st.one_of(
    st.sampled_from(["", " ", "-1", "0", "1", "99999999999999", "99999999999999d", "1e400d", "-5d", "0.5s",
                     "9" * 400 + "w", "nan", "inf", "abc", "x" * 10_000, "\x01", "..", "../x", "[]", "[[]]",
                     "[[\"nope\", \"=\", 1]]", "[[\"id\", \"=\", \"abc\"]]", "{}", "[1]", "id = 'x'", "nope = 1",
                     "(" * 3000 + "id = 1" + ")" * 3000, "not " * 3000 + "id = 1", "2024-01-01", "2024-01-01Z",
                     "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+00:00", "2024-01-01T00:00:00+25:00",
                     "1PiB", "0b", "1e300GB", "a=1", "=", "anon=", "nosuchopt=1", "id,id", ",", "s,nope"]),
    st.text(max_size=20),
)
CLI_COMMANDS: dict[str, list[list[str]]] = {
    # command -> argv templates; "{u}" is the table URI, "{v}" the drawn value
    "describe": [["describe", "{v}"], ["describe", "{u}", "--version", "{v}"], ["describe", "{u}", "--as-of", "{v}"],
                 ["describe", "{u}", "--storage-option", "{v}"]],
    "history": [["history", "{u}", "--limit", "{v}"], ["history", "{v}"]],
    "files": [["files", "{u}", "--filter", "{v}"], ["files", "{u}", "--version", "{v}"], ["files", "{v}"]],
    "schema": [["schema", "{u}", "--as-of", "{v}"], ["schema", "{v}"]],
    "log show": [["log", "show", "{u}", "{v}"], ["log", "show", "{v}", "0"]],
    "scan": [["scan", "{u}", "--filter", "{v}"], ["scan", "{u}", "--columns", "{v}"], ["scan", "{u}", "--limit", "{v}"],
             ["scan", "{u}", "--version", "{v}"], ["scan", "{u}", "--as-of", "{v}"], ["scan", "{v}"],
             ["scan", "{u}", "--format", "{v}"]],
    "diff": [["diff", "{u}", "{v}", "1"], ["diff", "{u}", "0", "{v}"]],
    "vacuum": [["vacuum", "{u}", "--retention", "{v}"], ["vacuum", "{u}", "--retention", "{v}",
                                                         "--no-enforce-retention"], ["vacuum", "{v}"]],
    "optimize": [["optimize", "{u}", "--target-file-size", "{v}", "-q"], ["optimize", "{u}", "--filter", "{v}", "-q"],
                 ["optimize", "{u}", "--sort-by", "{v}", "-q"]],
    "checkpoint": [["checkpoint", "{v}", "-q"]],
    "restore": [["restore", "{u}", "{v}"], ["restore", "{u}", "--as-of", "{v}"]],
}


def _run_cli(argv: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(cli, argv)
    if (f"cli {argv[0]}", type(result.exception).__name__) in KNOWN_BUGS:
        return
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    shown = [a if len(a) < 80 else a[:80] + "..." for a in argv]
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"lakehouse {shown}: {type(result.exception).__name__}: {result.exception}")
    assert result.exit_code in (0, 1, 2), (shown, result.exit_code, out[-2000:])
    assert "Traceback" not in out, (shown, out[-2000:])
    if result.exit_code:
        lines = [line for line in (result.stderr or result.output).splitlines() if line.strip()]
        assert lines and lines[-1].startswith("Error"), (shown, out[-2000:])


@pytest.mark.parametrize("command", sorted(CLI_COMMANDS))
@PROFILE
@given(data=st.data(), value=CLI_VALUES)
def test_cli_bad_argument_is_a_clean_error(command: str, data: st.DataObject, value: str) -> None:
    template = data.draw(st.sampled_from(CLI_COMMANDS[command]))
    c = _fresh()
    try:
        argv = [c.uri if a == "{u}" else (_safe_uri(value) if a == "{v}" and i == 1 + (command == "log show")
                                           else value if a == "{v}" else a) for i, a in enumerate(template)]
        _run_cli(argv)
    finally:
        _drop(c.uri)


# -- the failures this fuzz found, pinned (each raised a builtin or library exception before) -------------
REGRESSIONS = [
    ("Table.open.uri", "a\x00b"), ("Table.open.uri", "x" * 10_000), ("Table.exists.uri", 3),
    ("write_table.uri", b"\x00\xff"), ("Table.open.storage_options", {1: 2}), ("Table.open.storage_options", [1]),
    ("Table.to_arrow.version", pc.field("id")), ("Table.snapshot.version", "1"), ("Table.history.limit", "3"),
    ("Snapshot.plan_files.columns", 5),
    ("Table.append.app_transaction", []), ("Table.append.app_transaction", {"a": None}),
    ("Table.append.schema_mode", pc.field("id")),
    ("write_table.mode", pc.field("id")), ("write_table.partition_by", 5),
    ("Table.commit_files.files", None), ("Table.commit_files.files_item", {"path": "x"}),
    ("Table.commit_files.removed", [1, "a"]), ("Table.commit_files.removed_item", b"\x00\xff"),
    ("Table.optimize.sort_by", 5), ("Table.app_version.app_id", []), ("Table.to_duckdb.name", ""),
    ("Alter.add_column.parent", 0), ("Alter.drop_column.column", None), ("Alter.rename_column.column", 1.5),
    ("Alter.unset_properties.names", 0), ("Alter.add_column.name", b"\x00\xff"),
    ("Inspect.log_entry.version", None), ("Inspect.log_entry.version", 1.5), ("Inspect.history.limit", "x"),
    ("read_task.task", pa.table({"a": [1]})), ("read_task.task_schema", "../x"), ("read_task.task_schema", 5),
    ("read_task.task_filter", 5), ("read_task.task_columns", ["nope"]), ("read_task.task_columns", "a"),
    ("read_task.task_uri", "memory://fuzz-gone/x.parquet"), ("check_storage.racers", 2**63),
    ("check_storage.rounds", None),
]


@pytest.mark.parametrize(("name", "value"), REGRESSIONS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(REGRESSIONS)])
def test_found_by_the_fuzz(name: str, value: Any) -> None:
    _check(name, value)


@pytest.mark.parametrize("argv", [
    ["vacuum", "{u}", "--retention", "99999999999999d"], ["vacuum", "{u}", "--retention", "9" * 400 + "w"],
    ["vacuum", "{u}", "--retention", "99999999999999d", "--no-enforce-retention"],
    ["scan", "{u}", "--filter", "[1]"], ["files", "{u}", "--filter", "[1]"], ["optimize", "{u}", "--filter", "[1]"],
    ["scan", "a\x00b"], ["describe", "x" * 10_000],
], ids=lambda argv: " ".join(a[:20] for a in argv))
def test_cli_found_by_the_fuzz(argv: list[str]) -> None:
    c = _fresh()
    try:
        _run_cli([c.uri if a == "{u}" else a for a in argv])
    finally:
        _drop(c.uri)

"""Engine adapters for the issue-3 suite: raw pyarrow, lakehouse, deltalake, pyiceberg.

Every engine exposes the same small surface, each call doing what that library's users would
write. ``loc`` is a directory the suite owns (pyiceberg keeps its SQLite catalog and warehouse in
it). A peer that is not importable is reported by :func:`engines` with a note, never faked.

Run as a script (``python peers.py child OP ENGINE LOC [INPUT]``) it is the subprocess the suite
uses for timed writes and reads: it prints one JSON line with the time and the peak RSS.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from rss import peak_rss_bytes

PART = "day"
NS, TBL = "bench", "t"


def _filter_list(kind: str, arg: tuple[int, ...]) -> list[tuple[str, str, Any]]:
    if kind == "partition":
        return [(PART, "=", arg[0])]
    return [("id", ">=", arg[0]), ("id", "<", arg[1])]


def _expr(kind: str, arg: tuple[int, ...]) -> ds.Expression:
    if kind == "partition":
        return ds.field(PART) == arg[0]
    return (ds.field("id") >= arg[0]) & (ds.field("id") < arg[1])


class Engine:
    name = "?"
    transactional = True

    def write(self, table: pa.Table, loc: str, props: bool = True) -> None:
        raise NotImplementedError

    def read(self, loc: str, kind: str | None = None, arg: tuple[int, ...] = ()) -> pa.Table:
        raise NotImplementedError

    def handle(self, loc: str) -> Any:
        """What a user keeps between appends (a table object)."""
        return loc

    def append(self, h: Any, small: pa.Table) -> None:
        raise NotImplementedError

    def open(self, loc: str, files: bool = False, version: Any = None) -> int:
        """Open the latest (or ``version``); with ``files`` also list the live files. Returns a count."""
        raise NotImplementedError

    def versions(self, loc: str) -> list[Any]:
        raise NotImplementedError

    def checkpoint(self, loc: str) -> None:
        raise NotImplementedError

    def delete(self, loc: str, kind: str, arg: tuple[int, ...]) -> None:
        raise NotImplementedError

    def count(self, loc: str) -> int:
        return self.read(loc).num_rows


class PyarrowEngine(Engine):
    """The physical limit: ``write_dataset`` / ``dataset`` with the same hive layout and zstd."""

    name = "pyarrow"
    transactional = False

    def write(self, table: pa.Table, loc: str, props: bool = True) -> None:
        opts = ds.ParquetFileFormat().make_write_options(compression="zstd")
        ds.write_dataset(table, loc, format="parquet", partitioning=[PART], partitioning_flavor="hive",
                         file_options=opts, existing_data_behavior="overwrite_or_ignore")

    def _ds(self, loc: str) -> ds.Dataset:
        return ds.dataset(loc, format="parquet", partitioning="hive")

    def read(self, loc: str, kind: str | None = None, arg: tuple[int, ...] = ()) -> pa.Table:
        return self._ds(loc).to_table(filter=_expr(kind, arg) if kind else None)

    def append(self, h: Any, small: pa.Table) -> None:  # the data-file write alone, no commit
        day = small.column(PART)[0].as_py()
        os.makedirs(f"{h}/{PART}={day}", exist_ok=True)
        pq.write_table(small.drop_columns([PART]), f"{h}/{PART}={day}/small-{time.time_ns()}.parquet",
                       compression="zstd")

    def open(self, loc: str, files: bool = False, version: Any = None) -> int:
        return len(self._ds(loc).files)


class LakehouseEngine(Engine):
    name = "lakehouse"

    def __init__(self) -> None:
        import lakehouse

        self.lh = lakehouse

    def write(self, table: pa.Table, loc: str, props: bool = True) -> None:
        # checkpoints off so that "open without a checkpoint" replays the log; see suite notes
        p = {"checkpoint_interval": "1000000000"} if props else None
        self.lh.write_table(loc, table, partition_by=[PART], properties=p)

    def read(self, loc: str, kind: str | None = None, arg: tuple[int, ...] = ()) -> pa.Table:
        return self.lh.Table.open(loc).to_arrow(filter=_filter_list(kind, arg) if kind else None)

    def handle(self, loc: str) -> Any:
        return self.lh.Table.open(loc)

    def append(self, h: Any, small: pa.Table) -> None:
        h.append(small)

    def open(self, loc: str, files: bool = False, version: Any = None) -> int:
        t = self.lh.Table.open(loc)
        if version is not None:
            return t.snapshot(version=version).files().num_rows
        return t.snapshot().files().num_rows if files else t.version

    def versions(self, loc: str) -> list[Any]:
        return list(range(self.lh.Table.open(loc).version + 1))

    def checkpoint(self, loc: str) -> None:
        self.lh.Table.open(loc).checkpoint()

    def delete(self, loc: str, kind: str, arg: tuple[int, ...]) -> None:
        self.lh.Table.open(loc).delete(_filter_list(kind, arg))

    def count(self, loc: str) -> int:
        return int(pa.compute.sum(self.lh.Table.open(loc).files().column("num_rows")).as_py() or 0)


class DeltaEngine(Engine):
    name = "deltalake"

    def __init__(self) -> None:
        import deltalake

        self.dl = deltalake
        self.wp = deltalake.WriterProperties(compression="ZSTD")

    def write(self, table: pa.Table, loc: str, props: bool = True) -> None:
        conf = {"delta.checkpointInterval": "1000000000"} if props else None
        self.dl.write_deltalake(loc, table, partition_by=[PART], configuration=conf, writer_properties=self.wp)

    def read(self, loc: str, kind: str | None = None, arg: tuple[int, ...] = ()) -> pa.Table:
        dt = self.dl.DeltaTable(loc)
        if kind is None:
            return dt.to_pyarrow_table()
        return dt.to_pyarrow_dataset().to_table(filter=_expr(kind, arg))

    def handle(self, loc: str) -> Any:
        return self.dl.DeltaTable(loc)

    def append(self, h: Any, small: pa.Table) -> None:
        self.dl.write_deltalake(h, small, mode="append", writer_properties=self.wp)

    def open(self, loc: str, files: bool = False, version: Any = None) -> int:
        dt = self.dl.DeltaTable(loc, version=version)
        return len(dt.file_uris()) if files or version is not None else dt.version()

    def versions(self, loc: str) -> list[Any]:
        return list(range(self.dl.DeltaTable(loc).version() + 1))

    def checkpoint(self, loc: str) -> None:
        self.dl.DeltaTable(loc).create_checkpoint()

    def delete(self, loc: str, kind: str, arg: tuple[int, ...]) -> None:
        pred = f"{PART} = {arg[0]}" if kind == "partition" else f"id >= {arg[0]} AND id < {arg[1]}"
        self.dl.DeltaTable(loc).delete(pred, writer_properties=self.wp)

    def count(self, loc: str) -> int:
        return int(self.dl.DeltaTable(loc).count())


class IcebergEngine(Engine):
    """pyiceberg on a SQL catalog (SQLite in ``loc``), partitioned by identity(day)."""

    name = "pyiceberg"

    def __init__(self) -> None:
        import pyiceberg.expressions as ie
        from pyiceberg.catalog.sql import SqlCatalog

        self.ie, self.SqlCatalog = ie, SqlCatalog

    def _catalog(self, loc: str) -> Any:
        loc = os.path.abspath(loc)
        os.makedirs(loc, exist_ok=True)
        return self.SqlCatalog("bench", uri=f"sqlite:///{loc}/catalog.db", warehouse=f"file://{loc}/wh")

    def handle(self, loc: str) -> Any:
        return self._catalog(loc).load_table(f"{NS}.{TBL}")

    def write(self, table: pa.Table, loc: str, props: bool = True) -> None:
        cat = self._catalog(loc)
        cat.create_namespace_if_not_exists(NS)
        t = cat.create_table(f"{NS}.{TBL}", schema=table.schema,
                             properties={"write.parquet.compression-codec": "zstd"})
        with t.update_spec() as u:
            u.add_identity(PART)
        t.append(table)

    def _row_filter(self, kind: str, arg: tuple[int, ...]) -> Any:
        ie = self.ie
        if kind == "partition":
            return ie.EqualTo(PART, arg[0])
        return ie.And(ie.GreaterThanOrEqual("id", arg[0]), ie.LessThan("id", arg[1]))

    def read(self, loc: str, kind: str | None = None, arg: tuple[int, ...] = ()) -> pa.Table:
        t = self.handle(loc)
        return t.scan(row_filter=self._row_filter(kind, arg)).to_arrow() if kind else t.scan().to_arrow()

    def append(self, h: Any, small: pa.Table) -> None:
        h.append(small)

    def open(self, loc: str, files: bool = False, version: Any = None) -> int:
        t = self.handle(loc)
        if files or version is not None:
            return len(list(t.scan(snapshot_id=version).plan_files()))
        return len(t.metadata.snapshots)

    def versions(self, loc: str) -> list[Any]:
        return [s.snapshot_id for s in self.handle(loc).snapshots()]

    def checkpoint(self, loc: str) -> None:
        raise NotImplementedError("pyiceberg has no checkpoint (manifests play that role)")

    def delete(self, loc: str, kind: str, arg: tuple[int, ...]) -> None:
        self.handle(loc).delete(self._row_filter(kind, arg))

    def count(self, loc: str) -> int:
        return sum(task.file.record_count for task in self.handle(loc).scan().plan_files())


ENGINE_CLASSES: dict[str, type[Engine]] = {
    "pyarrow": PyarrowEngine, "lakehouse": LakehouseEngine, "deltalake": DeltaEngine, "pyiceberg": IcebergEngine,
}


def engines(names: list[str] | None = None) -> tuple[dict[str, Engine], dict[str, str]]:
    """The available engines, and a note for each one that could not be imported."""
    out: dict[str, Engine] = {}
    notes: dict[str, str] = {}
    for name, cls in ENGINE_CLASSES.items():
        if names and name not in names:
            continue
        try:
            out[name] = cls()
        except ImportError as exc:
            notes[name] = f"skipped: not importable ({exc})"
    return out, notes


# -- concurrent appends (module-level so ``multiprocessing`` spawn can import it) -------------
def concurrent_worker(args: tuple[str, str, int, int, int]) -> dict[str, Any]:
    """Append ``n`` small batches to ``loc`` from a fresh process; count acks and failures."""
    engine_name, loc, worker, n, rows = args
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from datagen import small_batch

    eng = ENGINE_CLASSES[engine_name]()
    acked, failures, errors = 0, 0, []
    h = eng.handle(loc)
    for i in range(n):
        small = small_batch(1000 + worker * n + i, rows)
        try:
            eng.append(h, small)
            acked += 1
        except Exception as exc:  # a failed commit is a measured outcome, not a crash
            failures += 1
            errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
            if engine_name == "pyiceberg":  # its handle is stale after a failed commit
                h = eng.handle(loc)
    return {"acked": acked, "failures": failures, "errors": errors[:3]}


# -- the measuring child ------------------------------------------------------------------------
def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def child_main(argv: list[str]) -> None:
    """``child write ENGINE LOC INPUT`` / ``child read|checkpoint ENGINE LOC``: one timed op, JSON out."""
    op, engine_name, loc = argv[:3]
    eng = ENGINE_CLASSES[engine_name]()
    table = None
    if op == "write":
        with pa.OSFile(argv[3], "rb") as f:  # copied into anonymous memory, like a generated table
            table = pa.ipc.open_file(f).read_all()
    gc.collect()
    before = _rss()
    cpu0, t0 = time.process_time(), time.perf_counter()
    if op == "write":
        eng.write(table, loc)
        rows = table.num_rows
    elif op == "checkpoint":  # lakehouse only: open a (large) table and write its checkpoint
        t = eng.handle(loc)
        rows = t.snapshot().files().num_rows
        t.checkpoint()
    else:
        result = eng.read(loc)
        rows = result.num_rows
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    peak = peak_rss_bytes()  # this address space only (ru_maxrss includes the parent: see rss.py)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rows": rows, "rss_before": before, "rss_peak": peak}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child_main(sys.argv[2:])
        sys.stdout.flush()
        os._exit(0)  # skip interpreter teardown: a native library's threads once aborted it after the result
    else:
        print(__doc__)

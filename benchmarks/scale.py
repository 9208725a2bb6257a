"""Scale curves: open latency vs commits, planning vs live files, commit latency vs live files.

How the tables are built (metadata-only, so that 100k commits / 1M files take seconds, not hours):

- lakehouse: log entries are made by the library's own internal ``commit(storage, state,
  CommitRequest(add=...))`` with tiny ``AddFile`` actions pointing at files that do not exist
  (each with partition value and id/ts min/max stats); checkpoints by ``write_checkpoint`` at the
  same versions the library would (every 100 for the commit curve, at each point of the file curve).
- deltalake: ``DeltaTable.create`` for version 0, then hand-written JSON commits of ``add`` actions
  with the same paths/partition/stats, and ``DeltaTable(version=v).create_checkpoint()`` at the
  checkpoint versions delta-rs would use (interval 100) / at each point of the file curve.
- pyiceberg: real ``Table.append`` commits of 10-row batches (only the cheap points).
Commit latency is always a real small append (a real tiny Parquet file).
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from datagen import SCHEMA, small_batch

NOW_MS = 1_735_689_600_000


def timeit(fn: Callable[[], Any], repeat: int, budget: float = 3.0) -> list[float]:
    """Up to ``repeat`` samples, fewer (at least one) once ``budget`` seconds are spent."""
    out: list[float] = []
    start = time.perf_counter()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if t0 + out[-1] - start > budget:
            break
    return out


def summary(samples: list[float]) -> dict[str, Any]:
    s = sorted(samples)
    return {"median": statistics.median(s), "p95": s[min(len(s) - 1, int(0.95 * len(s)))], "n": len(s),
            "samples": s}


def _fake(i: int) -> tuple[str, int, dict[str, int], dict[str, int]]:
    day = i % 30 + 1
    lo, hi = {"id": i * 100, "ts": NOW_MS + i * 100}, {"id": i * 100 + 99, "ts": NOW_MS + i * 100 + 99}
    return f"day={day}/part-{uuid.uuid4().hex}.parquet", day, lo, hi


# -- lakehouse --------------------------------------------------------------------------------
class LakehouseBuilder:
    def __init__(self, uri: str) -> None:
        import lakehouse as lh
        from lakehouse.checkpoint import write_checkpoint
        from lakehouse.commit import CommitRequest, commit
        from lakehouse.log import AddFile
        from lakehouse.replay import load_state
        from lakehouse.storage import Storage

        self.lh, self.uri = lh, uri
        self._cp, self._req, self._commit, self._add = write_checkpoint, CommitRequest, commit, AddFile
        lh.Table.create(uri, SCHEMA, partition_by=["day"])
        self.storage = Storage.from_uri(uri)
        self.state = load_state(self.storage)
        self.n = 0  # fake files added

    def add(self, count: int) -> None:
        """One commit adding ``count`` metadata-only files."""
        adds = []
        for i in range(self.n, self.n + count):
            path, day, lo, hi = _fake(i)
            adds.append(self._add(path=path, size_bytes=4096, num_rows=100, modification_time=NOW_MS,
                                  partition=(day,), min=lo, max=hi, null_count={"id": 0, "ts": 0}))
        self.n += count
        self.state = self._commit(self.storage, self.state, self._req(operation="append", add=tuple(adds))).state

    def checkpoint(self) -> None:
        self._cp(self.storage, self.state)

    @property
    def version(self) -> int:
        return self.state.version

    def open(self) -> Any:
        return self.lh.Table.open(self.uri)

    def commit_real(self, small: pa.Table) -> float:
        """Commit latency of a real small append, excluding the data-file write."""
        from lakehouse.write import WriteOptions, write_data_files

        adds = write_data_files(self.storage, small, schema=self.state.metadata.schema,
                                partition_by=self.state.metadata.partition_by, options=WriteOptions())
        t0 = time.perf_counter()
        self.state = self._commit(self.storage, self.state, self._req(operation="append", add=tuple(adds))).state
        return time.perf_counter() - t0


# -- deltalake (hand-written log) --------------------------------------------------------------
class DeltaBuilder:
    def __init__(self, loc: str) -> None:
        import deltalake as dl

        self.dl, self.loc, self.n = dl, loc, 0
        dl.DeltaTable.create(loc, schema=SCHEMA, partition_by=["day"])
        self.version = 0

    def add(self, count: int) -> None:
        lines = [json.dumps({"commitInfo": {"timestamp": NOW_MS + self.version, "operation": "WRITE",
                                            "operationParameters": {"mode": "Append"}}})]
        for i in range(self.n, self.n + count):
            path, day, lo, hi = _fake(i)
            stats = json.dumps({"numRecords": 100, "minValues": lo, "maxValues": hi,
                                "nullCount": {"id": 0, "ts": 0}})
            lines.append(json.dumps({"add": {"path": path, "partitionValues": {"day": str(day)}, "size": 4096,
                                             "modificationTime": NOW_MS, "dataChange": True, "stats": stats}}))
        self.n += count
        self.version += 1
        name = os.path.join(self.loc, "_delta_log", f"{self.version:020d}.json")
        with open(name + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(name + ".tmp", name)

    def checkpoint(self, version: int | None = None) -> None:
        self.dl.DeltaTable(self.loc, version=version).create_checkpoint()

    def open(self) -> Any:
        return self.dl.DeltaTable(self.loc)


# -- the curves -------------------------------------------------------------------------------
def open_vs_commits(workdir: str, points: list[int], engines: list[str], repeat: int,
                    log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Open latency after N commits: at a checkpoint version and with 99 entries to replay."""
    rows: list[dict[str, Any]] = []
    if "lakehouse" in engines:
        b = LakehouseBuilder(os.path.join(workdir, "lh-commits"))
        t0 = time.perf_counter()
        for n in points:
            for extra in (0, 99) if n >= 100 else (0,):
                target = n + extra
                while b.version < target:
                    b.add(1)
                    if b.version % 100 == 0:
                        b.checkpoint()
                s = timeit(lambda: b.open().version, repeat)
                sf = timeit(lambda: b.open().snapshot().files().num_rows, repeat)
                rows.append({"engine": "lakehouse", "commits": n, "replay": target % 100 if target >= 100
                             else target, "version": target, **summary(s),
                             "open_files_median": statistics.median(sf)})
                log(f"  lakehouse open @ {target} commits: {statistics.median(s) * 1e3:.1f} ms, "
                    f"+ files {statistics.median(sf) * 1e3:.1f} ms "
                    f"(build so far {time.perf_counter() - t0:.0f} s)")
    if "deltalake" in engines:
        d = DeltaBuilder(os.path.join(workdir, "delta-commits"))
        t0 = time.perf_counter()
        for n in points:
            for extra in (0, 99) if n >= 100 else (0,):
                target = n + extra
                while d.version < target:
                    d.add(1)
                if target >= 100:
                    d.checkpoint(target - target % 100)
                s = timeit(lambda: d.open().version(), repeat)
                rows.append({"engine": "deltalake", "commits": n, "replay": target % 100 if target >= 100
                             else target, "version": target, **summary(s)})
                log(f"  deltalake open @ {target} commits: {statistics.median(s) * 1e3:.1f} ms "
                    f"(build so far {time.perf_counter() - t0:.0f} s)")
    if "pyiceberg" in engines:
        from peers import IcebergEngine

        eng = IcebergEngine()
        loc = os.path.join(workdir, "ice-commits")
        eng.write(small_batch(0, 10), loc)
        h = eng.handle(loc)
        done = 1
        for n in [p for p in points if p <= 100]:
            while done < n:
                eng.append(h, small_batch(done, 10))
                done += 1
            s = timeit(lambda: eng.open(loc), repeat)
            sf = timeit(lambda: eng.open(loc, files=True), max(3, repeat // 3))
            rows.append({"engine": "pyiceberg", "commits": n, "replay": None, "version": n, **summary(s),
                         "open_files_median": statistics.median(sf)})
            log(f"  pyiceberg open @ {n} commits: {statistics.median(s) * 1e3:.1f} ms")
    return rows


def files_curves(workdir: str, points: list[int], engines: list[str], repeat: int, commit_repeat: int,
                 delta_max: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Planning a selective filter and committing a small append vs number of live files."""
    rows: list[dict[str, Any]] = []
    batch = 10_000
    if "lakehouse" in engines:
        b = LakehouseBuilder(os.path.join(workdir, "lh-files"))
        rows.append(_lh_point(b, 0, 1, commit_repeat, log))
        for n in points:
            t0 = time.perf_counter()
            while b.n < n:
                b.add(min(batch, n - b.n))
            b.checkpoint()
            log(f"  lakehouse built {n} files in {time.perf_counter() - t0:.1f} s")
            rows.append(_lh_point(b, n, repeat, commit_repeat, log))
    if "deltalake" in engines:
        d = DeltaBuilder(os.path.join(workdir, "delta-files"))
        rows.append(_delta_point(d, 0, 1, commit_repeat, log))
        slow = False
        for n in [p for p in points if p <= delta_max]:
            t0 = time.perf_counter()
            while d.n < n:
                d.add(min(batch, n - d.n))
            t1 = time.perf_counter()
            d.checkpoint()
            log(f"  deltalake built {n} files in {t1 - t0:.1f} s, checkpoint {time.perf_counter() - t1:.1f} s")
            rows.append(_delta_point(d, n, repeat, commit_repeat, log, plan=not slow))
            slow = slow or rows[-1].get("plan_dataset", {}).get("median", 0.0) > 5.0
    return rows


def _id_filter(n: int) -> tuple[int, int]:
    """An id range covering 1% of the fake files (each covers 100 ids)."""
    lo = (n // 2) * 100
    return lo, lo + max(1, n // 100) * 100


def _lh_point(b: LakehouseBuilder, n: int, repeat: int, commit_repeat: int,
              log: Callable[[str], None]) -> dict[str, Any]:
    lo, hi = _id_filter(n)
    flt = [("id", ">=", lo), ("id", "<", hi)]
    row: dict[str, Any] = {"engine": "lakehouse", "files": n}
    if n:
        t = b.open()
        row["open"] = summary(timeit(lambda: b.open().version, repeat))
        # the files table of a checkpoint is decoded on first use: open + plan is the honest total
        row["open_plan"] = summary(timeit(lambda: b.open().snapshot().files(filter=flt).num_rows, repeat))
        row["plan_files"] = summary(timeit(lambda: t.snapshot().files(filter=flt).num_rows, repeat))
        row["plan_dataset"] = summary(timeit(lambda: t.snapshot().to_pyarrow_dataset(filter=flt), repeat))
        row["selected"] = t.snapshot().files(filter=flt).num_rows
    smalls = [small_batch(10_000 + i, 10) for i in range(commit_repeat)]
    row["commit"] = summary([b.commit_real(s) for s in smalls])
    h = b.open()
    row["append"] = summary(timeit_each(lambda s: h.append(s), [small_batch(20_000 + i, 10)
                                                                for i in range(commit_repeat)]))
    b.state = h._state  # keep the builder in step with the appends just made
    b.checkpoint()
    log(f"  lakehouse @ {n} files: " + ", ".join(
        f"{k} {row[k]['median'] * 1e3:.1f} ms" for k in ("open", "open_plan", "plan_files", "plan_dataset", "commit",
                                                          "append")
        if k in row))
    return row


def _delta_point(d: DeltaBuilder, n: int, repeat: int, commit_repeat: int,
                 log: Callable[[str], None], plan: bool = True) -> dict[str, Any]:
    import pyarrow.dataset as pds

    lo, hi = _id_filter(n)
    expr = (pds.field("id") >= lo) & (pds.field("id") < hi)
    row: dict[str, Any] = {"engine": "deltalake", "files": n}
    if n:
        t = d.open()
        row["open"] = summary(timeit(lambda: d.open().version(), repeat))
    if n and plan:
        row["open_plan"] = summary(timeit(
            lambda: len(list(d.open().to_pyarrow_dataset().get_fragments(filter=expr))), repeat))
        selected: list[int] = []  # counted inside the timed runs: one more plan costs a minute at 100k files
        row["plan_dataset"] = summary(timeit(
            lambda: selected.append(len(list(t.to_pyarrow_dataset().get_fragments(filter=expr)))), repeat))
        row["selected"] = selected[-1]
    elif n:
        row["plan_note"] = "skipped: the previous point took over 5 s per plan"
    h = d.open()
    row["append"] = summary(timeit_each(lambda s: d.dl.write_deltalake(h, s, mode="append"),
                                        [small_batch(20_000 + i, 10) for i in range(commit_repeat)]))
    d.version = h.version()
    log(f"  deltalake @ {n} files: " + ", ".join(
        f"{k} {row[k]['median'] * 1e3:.1f} ms" for k in ("open", "plan_dataset", "append") if k in row))
    return row


def timeit_each(fn: Callable[[Any], Any], items: list[Any]) -> list[float]:
    out = []
    for it in items:
        t0 = time.perf_counter()
        fn(it)
        out.append(time.perf_counter() - t0)
    return out

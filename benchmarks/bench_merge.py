"""Issue 16's benchmark: row-level changes (upsert/merge, update, delete, reads after deletes).

    python benchmarks/bench_merge.py [--rows N] [--quick] [--repeat K] [--only case,...] [--engines ...]

lakehouse against deltalake (``DeltaTable.merge``/``update``/``delete``) and pyiceberg
(``Table.upsert``/``delete``, SQLite ``SqlCatalog``) in the same run, on the same generated data
(``datagen.py``: ``id`` int64 key, ``day`` the partition column of 30 values, value columns).
Every measured operation runs in a **fresh subprocess** (``bench_merge.py child ...``) so its peak
RSS is its own (``VmHWM``, see ``rss.py``); every run starts from a pristine copy of the target
table (restored byte for byte before the child starts, untimed); ``--repeat`` runs, medians.
A child that runs longer than ``--timeout`` is killed and recorded as ``timeout >N s``; an API
that does not exist (yet) is recorded as ``n/a``, never faked.

Cases (``--only``; sizes scale with ``--rows``, default 10M, ``--quick`` 200k):

- ``upsert``        source of rows/100 (half updates of existing ids spread over all partitions,
                    half inserts of new ids) upserted on ``id``;
- ``upsert_big``    the same with a source of rows/10;
- ``upsert_small``  the rows/100 source shape against a target of rows/10 (memory must grow
                    with the source, not the target);
- ``update``        0.1% of the rows (an id range, in every partition) get ``value + 1000``;
- ``delete``        0.1% of the rows (another id range);
- ``update_1``, ``delete_1``  one row by ``id`` (ms), set against what finding the row must read
                    (footers + ``id`` of the row groups whose stats hold the key, raw pyarrow);
- ``read``          full read after 1% of the rows were deleted, vs the same table compacted
                    (``optimize``), vs raw ``pyarrow.parquet.read_table`` of the compacted files.

Writes ``merge.json`` (every sample, machine, versions, parameters) and ``merge.md`` into
``--out`` and prints the markdown. See ``--help`` and benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
from datagen import generate_table  # noqa: E402
from rss import peak_rss_bytes  # noqa: E402

CASES = ("upsert", "upsert_big", "upsert_small", "update", "delete", "update_1", "delete_1", "read")
ENGINES = ("lakehouse", "lakehouse-merge", "deltalake", "pyiceberg")
UPSERT_ENGINES = ENGINES  # lakehouse-merge: the merge builder doing what upsert does
OTHER_ENGINES = ("lakehouse", "deltalake", "pyiceberg")
BUMP = 1000.0  # updated rows get value + BUMP; generated values are standard normal (|v| < 10)
MARK = 500.0  # so "value >= MARK" counts exactly the updated rows
# the extra figures of the 1-row cases (metric suffixes; see change_cases and targets)
OPEN = "of which open"
MUST_READ = "must read (raw pyarrow: footers + id of the row groups whose stats hold the key)"
OVERHEAD = "overhead (total - must read)"


def _base(engine: str) -> str:
    """The engine whose tables ``engine`` works on (``lakehouse-merge`` -> ``lakehouse``)."""
    return "lakehouse" if engine.startswith("lakehouse") else engine


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ================================================================================================
# the measuring child: one operation on one engine, one JSON line out
# ================================================================================================
class Unavailable(Exception):
    """The engine has no API for this operation (recorded as n/a)."""


def _lh_open(loc: str) -> Any:
    import lakehouse

    return lakehouse.Table.open(loc)


def _need(obj: Any, name: str) -> Any:
    fn = getattr(obj, name, None)
    if fn is None:
        raise Unavailable(f"{type(obj).__name__}.{name} does not exist in this lakehouse")
    return fn


def _delta(loc: str) -> Any:
    import deltalake

    return deltalake.DeltaTable(loc)


def _delta_wp() -> Any:
    import deltalake

    return deltalake.WriterProperties(compression="ZSTD")


def _iceberg(loc: str) -> Any:
    import peers

    return peers.IcebergEngine().handle(loc)


def _iceberg_range(lo: int, hi: int) -> Any:
    import pyiceberg.expressions as ie

    return ie.And(ie.GreaterThanOrEqual("id", lo), ie.LessThan("id", hi))


def _jsonable(x: Any) -> Any:
    try:
        json.dumps(x)
        return x
    except TypeError:
        if isinstance(x, dict):
            return {str(k): _jsonable(v) for k, v in x.items()}
        return str(x)


def _lh_result(res: Any) -> dict[str, Any]:
    keys = ("version", "num_inserted", "num_updated", "num_deleted", "num_files_added", "num_files_removed",
            "num_deletion_vectors", "timings")
    if isinstance(res, int) or res is None:
        return {"version": res}
    return {k: _jsonable(getattr(res, k, None)) for k in keys}


def _op(op: str, engine: str, loc: str, a: dict[str, Any], source: pa.Table | None) -> tuple[Any, dict[str, Any]]:
    """Open the table and run ``op``; returns (handle, info). Everything in here is timed."""
    lo, hi = a.get("lo", 0), a.get("hi", 0)
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    if engine.startswith("lakehouse"):
        t = _lh_open(loc)
        info["open_s"] = time.perf_counter() - t0
        rng = [("id", ">=", lo), ("id", "<", hi)]
        if op == "upsert" and engine == "lakehouse":
            info["result"] = _lh_result(_need(t, "upsert")(source, on="id"))
        elif op == "upsert":  # lakehouse-merge: the builder doing what upsert does
            m = _need(t, "merge")(source, on="id")
            info["result"] = _lh_result(m.when_matched_update().when_not_matched_insert().execute())
        elif op == "update":
            info["result"] = _lh_result(_need(t, "update")({"value": pc.field("value") + BUMP}, filter=rng))
        elif op == "delete":
            info["result"] = _lh_result(t.delete(rng))
        elif op == "optimize":
            info["result"] = _lh_result(t.optimize())
        elif op == "read":
            info["rows"] = t.to_arrow().num_rows
        elif op == "rawread":  # the physical limit: the same live files straight through pyarrow
            import pyarrow.parquet as pq

            root = t.uri.removeprefix("file://")
            paths = [os.path.join(root, p) for p in t.files().column("path").to_pylist()]
            info["rows"] = pq.read_table(paths, partitioning="hive").num_rows
        else:
            raise Unavailable(f"no {op} for {engine}")
        return t, info
    if engine == "deltalake":
        dt = _delta(loc)
        info["open_s"] = time.perf_counter() - t0
        wp = _delta_wp()
        if op == "upsert":
            info["result"] = _jsonable(dt.merge(source, predicate="t.id = s.id", source_alias="s", target_alias="t",
                                                writer_properties=wp)
                                       .when_matched_update_all().when_not_matched_insert_all().execute())
        elif op == "update":
            info["result"] = _jsonable(dt.update(updates={"value": f"value + {BUMP}"},
                                                 predicate=f"id >= {lo} AND id < {hi}", writer_properties=wp))
        elif op == "delete":
            info["result"] = _jsonable(dt.delete(f"id >= {lo} AND id < {hi}", writer_properties=wp))
        elif op == "optimize":
            info["result"] = _jsonable(dt.optimize.compact(writer_properties=wp))
        elif op == "read":
            info["rows"] = dt.to_pyarrow_table().num_rows
        else:
            raise Unavailable(f"no {op} for {engine}")
        return dt, info
    if engine == "pyiceberg":
        tbl = _iceberg(loc)
        info["open_s"] = time.perf_counter() - t0
        if op == "upsert":
            res = tbl.upsert(source, join_cols=["id"])
            info["result"] = {"rows_updated": res.rows_updated, "rows_inserted": res.rows_inserted}
        elif op == "delete":
            tbl.delete(_iceberg_range(lo, hi))
        elif op == "read":
            info["rows"] = tbl.scan().to_arrow().num_rows
        elif op == "update":
            raise Unavailable("pyiceberg has no update (only upsert/overwrite)")
        elif op == "optimize":
            raise Unavailable("pyiceberg 0.12 has no compaction")
        else:
            raise Unavailable(f"no {op} for {engine}")
        return tbl, info
    raise Unavailable(f"unknown engine {engine}")


def _check(engine: str, loc: str) -> dict[str, int]:
    """Live rows and rows carrying the update mark, read back after the measurement (untimed)."""
    if engine.startswith("lakehouse"):
        t = _lh_open(loc).to_arrow(columns=["id", "value"])
    elif engine == "deltalake":
        t = _delta(loc).to_pyarrow_dataset().to_table(columns=["id", "value"])
    else:
        t = _iceberg(loc).scan(selected_fields=("id", "value")).to_arrow()
    marked = pc.sum(pc.greater_equal(t.column("value"), MARK)).as_py() or 0
    return {"rows": t.num_rows, "marked": int(marked), "distinct_ids": pc.count_distinct(t.column("id")).as_py()}


def _layout(engine: str, loc: str) -> dict[str, int]:
    """Live data files, and rows masked by deletion vectors where the engine reports them (untimed)."""
    if engine.startswith("lakehouse"):
        files = _lh_open(loc).files()
        out = {"files": files.num_rows}
        if "num_deleted_rows" in files.column_names:
            out["deleted_by_vectors"] = int(pc.sum(files.column("num_deleted_rows")).as_py() or 0)
        return out
    if engine == "deltalake":
        return {"files": len(_delta(loc).file_uris())}
    return {"files": len(list(_iceberg(loc).scan().plan_files()))}


def _pre_op_files(engine: str, loc: str, pristine: str) -> list[str]:
    """Local paths of the live data files of the table as it was before the operation.

    Read from the pristine copy the child's table was restored from (byte for byte the same files);
    pyiceberg's metadata names absolute paths under the live location, mapped to the copy.
    """
    if engine.startswith("lakehouse"):
        t = _lh_open(pristine)
        root = t.uri.removeprefix("file://")
        return [os.path.join(root, p) for p in t.files().column("path").to_pylist()]
    if engine == "deltalake":
        return [u.removeprefix("file://") for u in _delta(pristine).file_uris()]
    live = os.path.abspath(loc)
    out = []
    for task in _iceberg(pristine).scan().plan_files():
        path = os.path.abspath(task.file.file_path.removeprefix("file://"))
        out.append(os.path.join(pristine, os.path.relpath(path, live)) if path.startswith(live + os.sep) else path)
    return out


def must_read(paths: list[str], key: int, repeat: int = 5) -> dict[str, Any]:
    """What any engine using Parquet statistics must read to find the row ``id == key``, timed.

    Raw ``pyarrow.parquet``: every file's footer, then the ``id`` column chunks of exactly the row
    groups whose ``id`` min/max contain ``key`` (a file whose statistics exclude it is skipped after
    its footer), and the comparison that finds the row. Warm page cache (the files were just copied
    and the repeats reread them), as for the operation it is compared with. Median of ``repeat``.
    """
    import pyarrow.parquet as pq

    times, stats = [], {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        found = nbytes = files_read = rgs_read = rgs_total = 0
        for path in paths:
            with pq.ParquetFile(path) as pf:
                md = pf.metadata
                ci = md.schema.names.index("id")
                nbytes += md.serialized_size
                rgs_total += md.num_row_groups
                rgs = []
                for i in range(md.num_row_groups):
                    st = md.row_group(i).column(ci).statistics
                    if st is None or not st.has_min_max or st.min <= key <= st.max:
                        rgs.append(i)
                        nbytes += md.row_group(i).column(ci).total_compressed_size
                if rgs:
                    files_read += 1
                    rgs_read += len(rgs)
                    ids = pf.read_row_groups(rgs, columns=["id"]).column(0)
                    found += int(pc.sum(pc.equal(ids, key)).as_py() or 0)
        times.append(time.perf_counter() - t0)
        stats = {"files": len(paths), "files_read": files_read, "row_groups": rgs_total,
                 "row_groups_read": rgs_read, "bytes": nbytes, "found": found}
    return {"must_read_ms": statistics.median(times) * 1e3, "must_read": stats}


def child_main(argv: list[str]) -> None:
    """``child OP ENGINE LOC ARGS_JSON``: one timed operation, one JSON line on stdout."""
    op, engine, loc, a = argv[0], argv[1], argv[2], json.loads(argv[3])
    if engine.startswith("lakehouse"):
        import lakehouse  # noqa: F401  (imports before the baseline, as for the peers)
    elif engine == "deltalake":
        import deltalake  # noqa: F401
    else:
        import pyiceberg.catalog.sql  # noqa: F401
    source = None
    if a.get("source"):
        with pa.OSFile(a["source"], "rb") as f:  # copied into anonymous memory, like a caller's table
            source = pa.ipc.open_file(f).read_all()
    gc.collect()
    import psutil

    before = int(psutil.Process().memory_info().rss)
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        _, info = _op(op, engine, loc, a, source)
    except Unavailable as exc:
        print(json.dumps({"unavailable": str(exc)}))
        return
    except Exception as exc:  # a failing engine is a measured outcome, not a crash of the run
        print(json.dumps({"error": f"{type(exc).__name__}: {str(exc)[:300]}"}))
        return
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    peak = peak_rss_bytes()  # before the check below reads the table back
    out = {"seconds": seconds, "cpu": cpu, "rss_before": before, "rss_peak": peak, **info}
    if a.get("pristine"):  # the data the operation must read, measured after it (untimed for it)
        out.update(must_read(_pre_op_files(engine, loc, a["pristine"]), int(a["lo"])))
    if a.get("check"):
        del source
        out["check"] = _check(engine, loc)
    if op in ("read", "rawread"):
        out["layout"] = _layout(engine, loc)
    print(json.dumps(out, default=str))


# ================================================================================================
# the parent: data, pristine tables, cases, report
# ================================================================================================
def _write_ipc(table: pa.Table, path: str) -> str:
    with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)
    return path


def make_source(target: pa.Table, n: int, seed: int) -> tuple[pa.Table, int]:
    """``n`` rows: ``n // 2`` updates of existing ids spread over the whole target (same ``day``,
    ``value + BUMP``, new payload) and the rest inserts of new ids; shuffled. Returns (source, updates)."""
    rng = np.random.default_rng(seed)
    n_upd = min(n // 2, target.num_rows)
    pick = np.sort(rng.choice(target.num_rows, size=n_upd, replace=False))
    upd = target.take(pa.array(pick))
    fresh = generate_table(n_upd, seed=seed + 1)  # new values for the payload
    upd = upd.set_column(upd.schema.get_field_index("value"), "value", pc.add(upd.column("value"), BUMP))
    upd = upd.set_column(upd.schema.get_field_index("payload"), "payload", fresh.column("payload"))
    ins = generate_table(n - n_upd, seed=seed + 2)
    ins = ins.set_column(0, "id", pc.add(ins.column("id"), target.num_rows))
    src = pa.concat_tables([upd, ins]).combine_chunks()
    return src.take(pa.array(rng.permutation(src.num_rows))), n_upd


class Bench:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.work = tempfile.mkdtemp(prefix="lh-merge-", dir=a.workdir)
        self.notes: dict[str, str] = {}
        self.engines = self._available(a.engines)
        self.figs: list[dict[str, Any]] = []
        self.pristine: dict[tuple[str, int], tuple[str, str]] = {}  # (engine, rows) -> (backup, live loc)
        self.sources: dict[str, tuple[str, int, int]] = {}  # name -> (ipc path, rows, updates)

    def _available(self, names: list[str]) -> list[str]:
        import peers

        out = []
        for e in names:
            base = "lakehouse" if e.startswith("lakehouse") else e
            try:
                peers.ENGINE_CLASSES[base]()
            except ImportError as exc:
                self.notes[e] = f"skipped: not importable ({exc})"
                continue
            out.append(e)
        return out

    # -- tables ----------------------------------------------------------------------------------
    def build(self, rows: int) -> pa.Table:
        """Generate the ``rows``-row target and write a pristine copy per engine (untimed)."""
        import peers

        t0 = time.perf_counter()
        data = generate_table(rows, seed=self.a.seed)
        for e in {("lakehouse" if x.startswith("lakehouse") else x) for x in self.engines}:
            live = os.path.join(self.work, "live", e, f"t{rows}")
            backup = os.path.join(self.work, "pristine", e, f"t{rows}")
            t1 = time.perf_counter()
            peers.ENGINE_CLASSES[e]().write(data, live, props=False)
            shutil.copytree(live, backup)
            self.pristine[(e, rows)] = (backup, live)
            log(f"  built {e} target of {rows:,} rows in {time.perf_counter() - t1:.1f} s")
        log(f"targets of {rows:,} rows ready in {time.perf_counter() - t0:.1f} s")
        return data

    def restore(self, engine: str, rows: int) -> str:
        """Put the pristine table back at its live location (absolute paths stay valid: pyiceberg)."""
        backup, live = self.pristine[(_base(engine), rows)]
        shutil.rmtree(live, ignore_errors=True)
        shutil.copytree(backup, live)
        if hasattr(os, "sync"):
            os.sync()
        return live

    def source(self, name: str, target: pa.Table, n: int, seed: int) -> None:
        src, n_upd = make_source(target, n, seed)
        self.sources[name] = (_write_ipc(src, os.path.join(self.work, f"{name}.arrow")), n, n_upd)

    # -- children --------------------------------------------------------------------------------
    def child(self, op: str, engine: str, loc: str, args: dict[str, Any]) -> dict[str, Any]:
        cmd = [sys.executable, str(HERE / "bench_merge.py"), "child", op, engine, loc, json.dumps(args)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=self.a.timeout)
        except subprocess.TimeoutExpired:
            return {"timeout": self.a.timeout}
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            return {"error": f"child exited with {out.returncode}: {out.stderr[-500:]}"}
        return json.loads(lines[-1])

    def run_case(self, case: str, label: str, op: str, engines: list[str], rows: int, args: dict[str, Any],
                 expect: dict[str, int] | None) -> dict[str, list[dict[str, Any]]]:
        """``--repeat`` runs of ``op`` per engine (order rotated), each on a fresh pristine copy."""
        samples: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        stopped: set[str] = set()
        for r in range(self.a.repeat):
            for e in engines[r % len(engines):] + engines[:r % len(engines)]:
                if e in stopped:
                    continue
                loc = self.restore(e, rows)
                extra = {"pristine": self.pristine[(_base(e), rows)][0]} if args.get("must_read") else {}
                res = self.child(op, e, loc, {**args, **extra, "check": expect is not None})
                samples[e].append(res)
                if "seconds" not in res:
                    stopped.add(e)  # timeout, n/a or error: not repeated
                    log(f"  {case} {e}: {_outcome(res)}")
                    continue
                if res["seconds"] > self.a.once_over:
                    stopped.add(e)  # one slow sample is enough (pyiceberg's upsert: minutes)
                if expect is not None and res.get("check") != {**res["check"], **expect}:
                    self.notes[f"{case} {e}"] = f"WRONG RESULT: expected {expect}, got {res['check']}"
                log(f"  {case} {e} #{r}: {res['seconds']:.3f} s, peak RSS "
                    f"{res['rss_peak'] / 2**20:.0f} MiB (+{(res['rss_peak'] - res['rss_before']) / 2**20:.0f})")
        self.record(case, label, samples)
        return samples

    def record(self, case: str, label: str, samples: dict[str, list[dict[str, Any]]], ms: bool = False) -> None:
        unit = "ms" if ms else "s"
        k = 1e3 if ms else 1.0
        self.figs.append({"case": case, "metric": label, "unit": unit, "kind": "time",
                          "values": {e: _median(v, lambda x: x["seconds"] * k) for e, v in samples.items()},
                          "samples": samples})
        if not ms:
            self.figs.append({"case": case, "metric": f"{label}: peak RSS above start", "unit": "MiB", "kind": "rss",
                              "values": {e: _median(v, lambda x: (x["rss_peak"] - x["rss_before"]) / 2**20, max)
                                         for e, v in samples.items()}})
            self.figs.append({"case": case, "metric": f"{label}: peak RSS", "unit": "MiB", "kind": "rss",
                              "values": {e: _median(v, lambda x: x["rss_peak"] / 2**20, max)
                                         for e, v in samples.items()}})

    # -- the cases -------------------------------------------------------------------------------
    def upsert_cases(self, target: pa.Table) -> None:
        n = self.a.rows
        engines = [e for e in UPSERT_ENGINES if e in self.engines]
        for case, src_rows, seed in (("upsert", self.a.source_rows, 101), ("upsert_big", self.a.big_source_rows, 102)):
            if case not in self.a.only:
                continue
            self.source(case, target, src_rows, seed)
            path, rows, upd = self.sources[case]
            log(f"{case}: {rows:,}-row source ({upd:,} updates) into {n:,} rows")
            self.run_case(case, f"upsert {rows:,} rows ({upd:,} updates) into {n:,}", "upsert", engines, n,
                          {"source": path}, {"rows": n + rows - upd, "marked": upd, "distinct_ids": n + rows - upd})

    def small_target_case(self) -> None:
        n = self.a.small_rows
        target = self.build(n)
        self.source("upsert_small", target, self.a.source_rows, 103)
        del target
        path, rows, upd = self.sources["upsert_small"]
        engines = [e for e in UPSERT_ENGINES if e in self.engines]
        log(f"upsert_small: {rows:,}-row source into {n:,} rows")
        self.run_case("upsert_small", f"upsert {rows:,} rows ({upd:,} updates) into {n:,}", "upsert", engines, n,
                      {"source": path}, {"rows": n + rows - upd, "marked": upd, "distinct_ids": n + rows - upd})

    def change_cases(self) -> None:
        n = self.a.rows
        engines = [e for e in OTHER_ENGINES if e in self.engines]
        k = max(1, n // 1000)
        one = n // 3
        todo = (("update", f"update 0.1% ({k:,} rows, id range)", "update", n // 2, n // 2 + k, 0, k),
                ("delete", f"delete 0.1% ({k:,} rows, id range)", "delete", n // 4, n // 4 + k, k, 0),
                ("update_1", "update 1 row (id =)", "update", one, one + 1, 0, 1),
                ("delete_1", "delete 1 row (id =)", "delete", one, one + 1, 1, 0))
        for case, label, op, lo, hi, gone, marked in todo:
            if case not in self.a.only:
                continue
            log(f"{case}: {label} of {n:,}")
            one_row = case.endswith("_1")
            s = self.run_case(case, label, op, engines, n, {"lo": lo, "hi": hi, "must_read": one_row},
                              {"rows": n - gone, "marked": marked, "distinct_ids": n - gone})
            if one_row:  # the figures that matter are in ms, set against the data the row's lookup must read
                self.figs[-3:] = []
                self.record(case, label, s, ms=True)
                for metric, f in ((OPEN, lambda x: x["open_s"] * 1e3),
                                  (MUST_READ, lambda x: x["must_read_ms"]),
                                  (OVERHEAD, lambda x: x["seconds"] * 1e3 - x["must_read_ms"])):
                    self.figs.append({"case": case, "metric": f"{label}: {metric}", "unit": "ms", "kind": "time",
                                      "values": {e: _median(v, f) for e, v in s.items()}})
                for e, v in s.items():
                    mr = next((x["must_read"] for x in v if "must_read" in x), None)
                    if mr:
                        self.notes[f"{case} {e} must read"] = (
                            f"footers of {mr['files']} files, then `id` of {mr['row_groups_read']} of "
                            f"{mr['row_groups']} row groups in {mr['files_read']} files, "
                            f"{_fmt(mr['bytes'] / 2**20)} MiB; rows found {mr['found']}")
                        if mr["found"] != 1:
                            self.notes[f"{case} {e} must read"] += " (WRONG: expected 1)"

    def read_case(self) -> None:
        n = self.a.rows
        k = max(1, n // 100)
        lo = n // 5
        engines = [e for e in OTHER_ENGINES if e in self.engines]
        log(f"read: full read of {n:,} rows after deleting 1% ({k:,}), then compacted")
        dels: dict[str, list[dict[str, Any]]] = {}
        opts: dict[str, list[dict[str, Any]]] = {}
        after: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        compact: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        raw: dict[str, list[dict[str, Any]]] = {"lakehouse": []} if "lakehouse" in engines else {}
        for e in engines:
            loc = self.restore(e, n)
            dels[e] = [self.child("delete", e, loc, {"lo": lo, "hi": lo + k, "check": True})]
            if "seconds" not in dels[e][0]:
                log(f"  read {e}: the 1% delete failed: {_outcome(dels[e][0])}")
                continue
            for _ in range(self.a.repeat):
                after[e].append(self.child("read", e, loc, {}))
            opts[e] = [self.child("optimize", e, loc, {})]
            if "seconds" in opts[e][0]:
                for _ in range(self.a.repeat):
                    compact[e].append(self.child("read", e, loc, {}))
                if e == "lakehouse":
                    for _ in range(self.a.repeat):
                        raw[e].append(self.child("rawread", e, loc, {}))
            for name, group in (("after the 1% delete", after[e]), ("compacted", compact[e])):
                if group and "layout" in group[0]:
                    lay = group[0]["layout"]
                    self.notes[f"read {e} layout {name}"] = ", ".join(f"{k} {v:,}" for k, v in lay.items())
            log(f"  read {e}: after delete {_brief(after[e])}, compacted {_brief(compact[e])}"
                + (f", raw pyarrow {_brief(raw[e])}" if e in raw else ""))
            for group in (after[e], compact[e], raw.get(e, [])):
                for r in group:
                    if "rows" in r and r["rows"] != n - k:
                        self.notes[f"read {e}"] = f"WRONG RESULT: read {r['rows']} rows, expected {n - k}"
        self.record("read", f"delete 1% ({k:,} rows; setup, 1 run)", dels)
        self.record("read", "full read after 1% deleted", after)
        self.record("read", "optimize (compaction; 1 run)", opts)
        self.record("read", "full read of the compacted table", compact)
        if raw:
            self.figs.append({"case": "read", "metric": "raw pq.read_table of the compacted lakehouse files",
                              "unit": "s", "kind": "time", "samples": raw,
                              "values": {"lakehouse": _median(raw["lakehouse"], lambda x: x["seconds"])}})


# -- formatting ------------------------------------------------------------------------------------
def _outcome(res: dict[str, Any]) -> str:
    if "timeout" in res:
        return f"timeout >{res['timeout']:g} s"
    if "unavailable" in res:
        return "n/a"
    if "error" in res:
        return "error"
    return "?"


def _brief(rs: list[dict[str, Any]]) -> str:
    if rs and all("seconds" in r for r in rs):
        return f"{statistics.median(r['seconds'] for r in rs):.3f} s"
    return _outcome(rs[0]) if rs else "-"


def _median(rs: list[dict[str, Any]], f: Any, agg: Any = statistics.median) -> Any:
    """The median (or ``agg``) over successful samples, else the outcome string of the first sample."""
    ok = [f(r) for r in rs if "seconds" in r]
    if ok:
        return agg(ok)
    return _outcome(rs[0]) if rs else None


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


def _ratio(peer: Any, lh: Any) -> str:
    if isinstance(peer, float) and isinstance(lh, float) and lh > 0:
        return f"{peer / lh:.2f}"
    if isinstance(peer, str) and peer.startswith("timeout") and isinstance(lh, float):
        return f"> {float(peer.split('>')[1].split()[0]) / lh:.1f}"
    return "-"


def _num(f: dict[str, Any] | None, e: str) -> float | None:
    v = f["values"].get(e) if f else None
    return v if isinstance(v, float) else None


def targets(figs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(target, measured, ok) rows for issue 16's targets."""
    by: dict[tuple[str, str, bool], dict[str, Any]] = {}
    for f in figs:  # the first figure of each kind per case (time: open included; rss: above start)
        by.setdefault((f["case"], f["kind"], f["metric"].endswith("peak RSS")), f)
    out = []

    def row(name: str, measured: str, ok: bool | None) -> None:
        out.append((name, measured, "n.m." if ok is None else ("ok" if ok else "no")))

    for case in ("upsert", "upsert_big"):
        t, m = by.get((case, "time", False)), by.get((case, "rss", False))
        lh, dl = _num(t, "lakehouse"), _num(t, "deltalake")
        if t:
            row(f"{case}: time <= 0.5x deltalake", f"lakehouse {_fmt(lh)} s vs deltalake {_fmt(dl)} s",
                None if lh is None or dl is None else lh <= 0.5 * dl)
        lh, dl = _num(m, "lakehouse"), _num(m, "deltalake")
        if m:
            row(f"{case}: peak RSS above start <= 0.5x deltalake", f"lakehouse {_fmt(lh)} vs deltalake {_fmt(dl)} MiB",
                None if lh is None or dl is None else lh <= 0.5 * dl)
    # "peak RSS grows with the source, not the target (1M vs 10M target within 1.2x)": upsert (full
    # target) over upsert_small (rows/10 target, the same source size); judged on the absolute peak
    # (VmHWM), the ratio of the peaks above the child's baseline shown beside it
    ratios: dict[bool, list[str]] = {True: [], False: []}
    ok = None
    for absolute in (True, False):
        small, big = by.get(("upsert_small", "rss", absolute)), by.get(("upsert", "rss", absolute))
        for e in ENGINES:
            sm, bg = _num(small, e), _num(big, e)
            if sm and bg:
                ratios[absolute].append(f"{e} x{bg / sm:.2f}")
                if absolute and e == "lakehouse":
                    ok = bg / sm <= 1.2
    if ratios[True] or ratios[False]:
        row("upsert: peak RSS (VmHWM) full target / rows/10 target, same source, <= 1.2",
            f"peak: {', '.join(ratios[True]) or '-'}; above start: {', '.join(ratios[False]) or '-'}", ok)
    for case in ("update_1", "delete_1"):
        f = by.get((case, "time", False))
        parts = {m: next((g for g in figs if g["case"] == case and g["metric"].endswith(": " + m)), None)
                 for m in (OPEN, MUST_READ, OVERHEAD)}
        if f:
            shown = []
            for e in ENGINES:
                if e not in f["values"]:
                    continue
                tot, over = _num(f, e), _num(parts[OVERHEAD], e)
                if tot is None or over is None:
                    shown.append(f"{e} {_fmt(f['values'][e])}")
                    continue
                shown.append(f"{e} {_fmt(over)} ms (total {_fmt(tot)} - must read {_fmt(_num(parts[MUST_READ], e))};"
                             f" open {_fmt(_num(parts[OPEN], e))})")
            lh = _num(parts[OVERHEAD], "lakehouse")
            row(f"{case}: overhead (total incl. open - must read) <= 50 ms", "; ".join(shown) or "-",
                None if lh is None else lh <= 50)
    after = next((f for f in figs if f["metric"] == "full read after 1% deleted"), None)
    comp = next((f for f in figs if f["metric"] == "full read of the compacted table"), None)
    if after and comp:
        a, c = _num(after, "lakehouse"), _num(comp, "lakehouse")
        row("full read with 1% deleted <= 1.1x the compacted table",
            "-" if a is None or c is None else f"{a / c:.2f}x ({_fmt(a)} vs {_fmt(c)} s)",
            None if a is None or c is None else a <= 1.1 * c)
    return out


def markdown(env: dict[str, Any], params: dict[str, Any], notes: dict[str, str], figs: list[dict[str, Any]]) -> str:
    v = env["versions"]
    lines = [
        f"# Row-level changes (issue 16): `{params['command']}`", "",
        f"Machine: {env['platform']}, {env['cores']} CPUs ({env['cpu']}), {env['ram_gib']} GiB RAM; "
        f"load average {env['loadavg']} at start, {params['loadavg_end']} at end; {env['date']}",
        f"Versions: Python {v['python']}, pyarrow {v['pyarrow']}, deltalake {v['deltalake']}, "
        f"pyiceberg {v['pyiceberg']}, lakehouse {v['lakehouse']} ({v['lakehouse_git']})",
        f"Parameters: target {params['rows']:,} rows in 30 partitions (day); sources {params['source_rows']:,} and "
        f"{params['big_source_rows']:,} rows (half updates spread over all partitions, half inserts); small target "
        f"{params['small_rows']:,} rows; {params['repeat']} repeats (median; RSS: max); child timeout "
        f"{params['timeout']} s; runtime {params['runtime_s']} s", "",
    ]
    cols = [e for e in ENGINES if any(e in f["values"] for f in figs)]
    peers = [e for e in ("deltalake", "pyiceberg") if e in cols]
    head = ["case", "metric", "unit", *cols, *(f"{p} / lakehouse" for p in peers)]
    lines += ["| " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * (len(cols) + len(peers))]
    for f in figs:
        vals = f["values"]
        cells = [f["case"], f["metric"], f["unit"], *(_fmt(vals.get(e)) for e in cols),
                 *(_ratio(vals.get(p), vals.get("lakehouse")) for p in peers)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Ratios: peer / lakehouse (> 1 = lakehouse faster or smaller). `lakehouse` is `Table.upsert` "
              "(and `update`/`delete`); `lakehouse-merge` is `merge(...).when_matched_update()"
              ".when_not_matched_insert().execute()`. Times include opening the table; RSS above start excludes "
              "the interpreter, the imports and the source (loaded before the baseline); peak RSS is the child's "
              "VmHWM. 1-row cases: `must read` is what any reader using Parquet statistics must read to find the "
              "row (every live file's footer, then `id` of exactly the row groups whose min/max hold the key, in raw "
              "pyarrow, timed in the same child after the operation, median of 5, warm page cache as for the "
              "operation); `overhead` = total (open included) - must read.", ""]
    lines += ["| target (issue 16) | measured | |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(figs)]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {k}: {v}" for k, v in notes.items()]
    details = []
    for f in figs:
        for e, rs in (f.get("samples") or {}).items():
            for r in rs[:1]:
                if "unavailable" in r or "error" in r:
                    details.append(f"- {f['case']} {e}: {r.get('unavailable') or r.get('error')}")
    if details:
        lines += ["", "Not measured:", "", *sorted(set(details))]
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=None, help="target rows (default 10,000,000; --quick 200,000)")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run of a few minutes)")
    p.add_argument("--source-rows", type=int, default=None, help="the upsert source (default rows/100)")
    p.add_argument("--big-source-rows", type=int, default=None, help="the big upsert source (default rows/10)")
    p.add_argument("--small-rows", type=int, default=None, help="the small target of upsert_small (default rows/10)")
    p.add_argument("--repeat", type=int, default=None, help="runs of each measurement (default 3; quick 2)")
    p.add_argument("--timeout", type=float, default=None, help="seconds before a child is killed (default 600; quick "
                   "120)")
    p.add_argument("--once-over", type=float, default=120.0,
                   help="a run that took longer than this many seconds is not repeated (default 120)")
    p.add_argument("--only", default=",".join(CASES), help=f"cases, from {','.join(CASES)}")
    p.add_argument("--engines", default=",".join(ENGINES), help=f"subset of {','.join(ENGINES)}")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workdir", default=None, help="where the temporary tables go (a local disk)")
    p.add_argument("--out", default=str(HERE / "results"), help="output directory (merge.json, merge.md)")
    a = p.parse_args(argv)
    a.rows = a.rows or (200_000 if a.quick else 10_000_000)
    a.source_rows = a.source_rows or max(2, a.rows // 100)
    a.big_source_rows = a.big_source_rows or max(2, a.rows // 10)
    a.small_rows = a.small_rows or max(2, a.rows // 10)
    a.repeat = a.repeat or (2 if a.quick else 3)
    a.timeout = a.timeout or (120.0 if a.quick else 600.0)
    a.only = [c for c in a.only.split(",") if c]
    a.engines = [e for e in a.engines.split(",") if e]
    if set(a.only) - set(CASES):
        p.error(f"unknown cases {sorted(set(a.only) - set(CASES))}")
    if set(a.engines) - set(ENGINES):
        p.error(f"unknown engines {sorted(set(a.engines) - set(ENGINES))}")
    return a


def main(argv: list[str] | None = None) -> int:
    import report

    a = parse(argv)
    t_start = time.perf_counter()
    env = report.environment()
    if not env["versions"]["lakehouse"]:  # run from a source tree (PYTHONPATH), not installed
        import lakehouse

        env["versions"]["lakehouse"] = lakehouse.__version__
    b = Bench(a)
    log(f"engines: {b.engines}; notes: {b.notes}; workdir {b.work}")
    try:
        big = {"upsert", "upsert_big", "update", "delete", "update_1", "delete_1", "read"} & set(a.only)
        if big:
            target = b.build(a.rows)
            b.upsert_cases(target)
            del target
            b.change_cases()
            if "read" in a.only:
                b.read_case()
        if "upsert_small" in a.only:
            b.small_target_case()
    finally:
        shutil.rmtree(b.work, ignore_errors=True)
    params = {k: v for k, v in vars(a).items()}
    params["command"] = "python benchmarks/bench_merge.py " + " ".join(sys.argv[1:] if argv is None else argv)
    params["runtime_s"] = round(time.perf_counter() - t_start, 1)
    params["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(env, params, b.notes, b.figs)
    (out / "merge.md").write_text(md)
    (out / "merge.json").write_text(json.dumps({"environment": env, "params": params, "notes": b.notes,
                                                "figures": b.figs, "targets": targets(b.figs)}, indent=1,
                                               default=str))
    log(f"done in {params['runtime_s']:.0f} s: {out / 'merge.md'}, {out / 'merge.json'}")
    print(md)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child_main(sys.argv[2:])
        sys.stdout.flush()
        os._exit(0)  # skip interpreter teardown (see peers.py)
    sys.exit(main())

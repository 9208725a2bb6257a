"""Dask benchmark (issue 7): the bulk workload through Dask on a LocalCluster, against the
single-process path and against plain ``dask.dataframe`` parquet on the same cluster.

    python benchmarks/dask_bench.py [--rows N] [--quick] [--repeat K] [--partitions P] [--out DIR]

Writes (fresh directory per sample; the three paths take turns going first):

- ``single``  ``lh.write_table(uri, table, partition_by=["day"])`` from the Arrow table in the driver;
- ``lh-dask`` ``lakehouse.dask.to_lakehouse(ddf, uri, partition_by=["day"])``: one commit;
- ``dask-pq`` ``ddf.to_parquet(dir, partition_on=["day"], compression="zstd")``.

``ddf`` is the same data as a dask DataFrame of ``--partitions`` partitions, persisted on a
``LocalCluster(n_workers=2, threads_per_worker=1)`` before the clock starts (the data already lives
on the workers, as after an upstream dask step), so only the write itself is timed.

Reads (warm page cache; every sample's row count is checked): ``Table.to_arrow()`` (single process),
``read_dask(uri).compute()`` of the single-process table and of the ``to_lakehouse`` table,
``dd.read_parquet(dir).compute()`` of the ``to_parquet`` output and of the lakehouse table's live
files (hive paths); then the same with a filter on one day. ``.compute()`` gathers the whole
result into the driver, so every dask read includes moving the rows from the worker processes.

Writes ``dask.json`` (every sample, machine, versions, load) and ``dask.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import json  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import report  # noqa: E402
from datagen import generate_table  # noqa: E402

PART = "day"
# (path key, label) of every measured path; "single" and "dask-pq" are the two baselines
WRITES = {
    "single": "lh.write_table (single process)",
    "lh-dask": "lakehouse.dask.to_lakehouse",
    "dask-pq": "dask.dataframe.to_parquet(partition_on=[day])",
}
READS = {
    "single": "Table.to_arrow() (single process)",
    "lh-dask": "read_dask(single-process table).compute()",
    "lh-dask-b": "read_dask(to_lakehouse table).compute()",
    "dask-pq": "dd.read_parquet(to_parquet output).compute()",
    "dask-pq-lh": "dd.read_parquet(lakehouse live files).compute()",
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def missing() -> str | None:
    """None if dask with dataframe and distributed is importable, else why not (a note for reports)."""
    for mod in ("dask", "dask.dataframe", "distributed", "pandas"):
        try:
            if importlib.util.find_spec(mod) is None:
                raise ImportError(mod)
        except (ImportError, ValueError):
            return f"skipped: {mod} is not installed (pip install 'lakehouse-format[dask]')"
    return None


def _sync() -> None:
    gc.collect()
    if hasattr(os, "sync"):
        os.sync()


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    _sync()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _files(root: str) -> int:
    return sum(1 for _, _, fs in os.walk(root) for f in fs if f.endswith(".parquet"))


class DaskBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.work = tempfile.mkdtemp(prefix="lh-dask-", dir=args.workdir)
        self.samples: dict[tuple[str, str], list[float]] = {}
        self.info: dict[tuple[str, str], dict[str, Any]] = {}
        self.load: list[dict[str, Any]] = []

    def _load(self, phase: str) -> None:
        self.load.append({"phase": phase, "loadavg": [round(x, 2) for x in os.getloadavg()]})

    def _add(self, op: str, key: str, seconds: float, **info: Any) -> None:
        self.samples.setdefault((op, key), []).append(seconds)
        self.info.setdefault((op, key), {}).update(info)

    # -- writes -------------------------------------------------------------------------------
    def writes(self, data: pa.Table, ddf: Any) -> dict[str, str]:
        import lakehouse as lh
        from lakehouse.dask import to_lakehouse

        ops: dict[str, Callable[[str], Any]] = {
            "single": lambda d: lh.write_table(d, data, partition_by=[PART]),
            "lh-dask": lambda d: to_lakehouse(ddf, d, partition_by=[PART]),
            "dask-pq": lambda d: ddf.to_parquet(d, partition_on=[PART], compression="zstd", write_index=False),
        }
        names, last = list(ops), {}
        for r in range(self.a.repeat):
            for key in names[r % 3:] + names[:r % 3]:  # rotate who goes first
                if key in last:
                    shutil.rmtree(last[key], ignore_errors=True)
                last[key] = os.path.join(self.work, f"{key}-{r}")
                s, _ = _timed(lambda key=key: ops[key](last[key]))
                self._add("write", key, s, files=_files(last[key]), rows=data.num_rows)
                log(f"  write {key} #{r}: {s:.2f} s")
        return last

    # -- reads --------------------------------------------------------------------------------
    def read_ops(self, loc: dict[str, str], filt: bool) -> dict[str, Callable[[], Any]]:
        import dask.dataframe as dd

        import lakehouse as lh
        from lakehouse.dask import read_dask

        day = self.a.day
        lf = [(PART, "=", day)] if filt else None
        pf = [(PART, "==", day)] if filt else None
        a, b = loc["single"], loc["lh-dask"]
        live = self.live(loc)
        return {
            "single": lambda: lh.Table.open(a).to_arrow(filter=lf),
            "lh-dask": lambda: read_dask(a, filter=lf).compute(),
            "lh-dask-b": lambda: read_dask(b, filter=lf).compute(),
            "dask-pq": lambda: dd.read_parquet(loc["dask-pq"], filters=pf).compute(),
            "dask-pq-lh": lambda: dd.read_parquet(live, filters=pf).compute(),
        }

    @staticmethod
    def live(loc: dict[str, str]) -> list[str]:
        """The live data files of the single-process table (hive paths: dask reads ``day`` from them)."""
        import lakehouse as lh

        a = loc["single"]
        return [os.path.join(a, p) for p in lh.Table.open(a).snapshot().files().column("path").to_pylist()]

    def reads(self, loc: dict[str, str], op: str, expected: int) -> None:
        ops = self.read_ops(loc, filt=op != "read")
        names = list(ops)
        for r in range(self.a.repeat):
            for key in names[r % len(names):] + names[:r % len(names)]:
                s, out = _timed(ops[key])
                if len(out) != expected:
                    raise RuntimeError(f"{op} {key}: {len(out)} rows, expected {expected}")
                self._add(op, key, s, rows=len(out))
                log(f"  {op} {key} #{r}: {s:.3f} s")

    def partitions(self, loc: dict[str, str]) -> None:
        import dask.dataframe as dd

        from lakehouse.dask import read_dask

        for op in ("read", f"read day={self.a.day}"):
            lf = None if op == "read" else [(PART, "=", self.a.day)]
            pf = None if op == "read" else [(PART, "==", self.a.day)]
            self.info[(op, "lh-dask")]["partitions"] = read_dask(loc["single"], filter=lf).npartitions
            self.info[(op, "lh-dask-b")]["partitions"] = read_dask(loc["lh-dask"], filter=lf).npartitions
            self.info[(op, "dask-pq")]["partitions"] = dd.read_parquet(loc["dask-pq"], filters=pf).npartitions
            self.info[(op, "dask-pq-lh")]["partitions"] = dd.read_parquet(self.live(loc), filters=pf).npartitions

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        import dask
        import dask.dataframe as dd
        import pandas as pd
        from distributed import Client, LocalCluster, wait

        a = self.a
        self._load("start")
        t0 = time.perf_counter()
        data = generate_table(a.rows, seed=a.seed)
        log(f"generated {a.rows:,} rows in {time.perf_counter() - t0:.1f} s")
        expected_day = int(pc.sum(pc.equal(data.column(PART), a.day)).as_py())
        for name in ("distributed", "distributed.shuffle", "bokeh", "tornado"):
            logging.getLogger(name).setLevel(logging.ERROR)
        # from_pandas embeds the data in the graph on purpose (persisted before any timing)
        warnings.filterwarnings("ignore", message=".*large graph.*", category=UserWarning)
        with dask.config.set({"distributed.worker.daemon": True}), \
                LocalCluster(n_workers=a.workers, threads_per_worker=a.threads, processes=True,
                             dashboard_address=None, local_directory=self.work) as cluster, \
                Client(cluster) as client:
            client.run(importlib.import_module, "lakehouse.dask")  # imports off the clock
            t0 = time.perf_counter()
            pdf = data.to_pandas(types_mapper=pd.ArrowDtype)
            ddf = client.persist(dd.from_pandas(pdf, npartitions=a.partitions, sort=False))
            wait(ddf)
            del pdf
            setup = time.perf_counter() - t0
            log(f"cluster {a.workers}x{a.threads}; {a.partitions} partitions persisted in {setup:.1f} s; writes ...")
            loc = self.writes(data, ddf)
            self._load("after writes")
            del ddf
            log("reads ...")
            self.reads(loc, "read", a.rows)
            self.reads(loc, f"read day={a.day}", expected_day)
            self.partitions(loc)
            self._load("end")
        return self.result(setup)

    def result(self, setup: float) -> dict[str, Any]:
        figs = []
        for (op, key), s in self.samples.items():
            label = (WRITES if op == "write" else READS)[key]
            figs.append({"op": op, "path": key, "label": label, "median": statistics.median(s), "min": min(s),
                         "samples": s, **self.info.get((op, key), {})})
        return {"figures": figs, "load": self.load, "persist_seconds": round(setup, 2)}


def environment() -> dict[str, Any]:
    env = report.environment()
    for dist in ("dask", "distributed", "pandas"):
        env["versions"][dist] = report._version(dist)
    return env


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; returns the JSON-able result (environment, params, figures, load)."""
    env = environment()
    t0 = time.perf_counter()
    bench = DaskBench(args)
    try:
        res = bench.run()
    finally:
        shutil.rmtree(bench.work, ignore_errors=True)
    params = {k: v for k, v in vars(args).items() if k not in ("out", "workdir")}
    params["runtime_s"] = round(time.perf_counter() - t0, 1)
    return {"environment": env, "params": params, **res}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=int, default=None, help="rows generated (default 2,000,000; --quick 200,000)")
    p.add_argument("--quick", action="store_true", help="small sizes: a run of about a minute")
    p.add_argument("--repeat", type=int, default=None, help="samples of each write and read (default 3; quick 2)")
    p.add_argument("--partitions", type=int, default=8, help="partitions of the dask DataFrame written (8)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (2)")
    p.add_argument("--threads", type=int, default=1, help="threads per worker (1)")
    p.add_argument("--day", type=int, default=3, help="the day of the selective read (3)")
    p.add_argument("--seed", type=int, default=42, help="seed of the generated data")
    p.add_argument("--workdir", default=None, help="where temporary tables go (a local disk)")
    p.add_argument("--out", default=str(HERE / "results"), help="where dask.json and dask.md are written")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    a = p.parse_args(argv)
    a.rows = a.rows or (200_000 if a.quick else 2_000_000)
    a.repeat = a.repeat or (2 if a.quick else 3)
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    note = missing()
    if note:
        log(f"dask benchmark {note}")
        return 2
    res = run(a)
    res["params"]["command"] = "python benchmarks/dask_bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    md = report.dask_markdown(res)
    (out / "dask.md").write_text(md)
    (out / "dask.json").write_text(json.dumps(res, indent=1, default=str))
    log(f"done in {res['params']['runtime_s']:.0f} s: {out / 'dask.md'}, {out / 'dask.json'}")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

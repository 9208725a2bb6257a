"""The issue-3 benchmark suite: lakehouse against raw pyarrow, deltalake and pyiceberg.

    python benchmarks/suite.py [--rows N] [--quick] [--only workload,...] [--repeat K] [--out DIR]

Workloads (same generated data, same run, every engine): write, read (each in a fresh subprocess,
which also gives the peak RSS), select (one partition; a 1% id range), append (small commits,
median/p95), open (latest, without then with a checkpoint), travel (open the middle version),
delete (a partition; a 1% id range), concurrent (4 spawned processes appending), scale (curves).
Optional, only when named in ``--only``: dask (issue 7, benchmarks/dask_bench.py; skipped with a
note if dask is not installed).
Writes results.json, results.md and *.png into ``--out``. See ``--help``.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import json  # noqa: E402

import dask_bench  # noqa: E402
import peers  # noqa: E402
import pyarrow as pa  # noqa: E402
import report  # noqa: E402
import scale  # noqa: E402
from datagen import generate_table, small_batch  # noqa: E402

from lakehouse.progress import ProgressEvent, progress_callback  # noqa: E402

WORKLOADS = ("write", "read", "select", "append", "open", "travel", "delete", "concurrent", "scale")
OPTIONAL = ("dask",)  # run only when named in --only
SMALL_ROWS = 100


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _child(args: list[str], attempts: int = 2) -> dict[str, Any]:
    """Run one measured op in a fresh process; a crashed child is retried once, then fails the run."""
    for _ in range(attempts):
        out = subprocess.run([sys.executable, str(HERE / "peers.py"), "child", *args], capture_output=True,
                             text=True, check=False)
        if out.returncode == 0:
            return json.loads(out.stdout.strip().splitlines()[-1])
        log(f"  child {args[:2]} exited with {out.returncode}: {out.stderr[-300:]!r}; retrying")
    raise RuntimeError(f"child {args[:2]} failed: {out.stderr[-2000:]}")


def _sync() -> None:
    if hasattr(os, "sync"):
        os.sync()


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.work = tempfile.mkdtemp(prefix="lh-suite-", dir=args.workdir)
        self.engines, self.notes = peers.engines(args.engines.split(",") if args.engines else None)
        self.figs: list[dict[str, Any]] = []  # {workload, metric, unit, values{engine: x}, samples{}}
        self.extra: dict[str, Any] = {}
        self.loc = {e: os.path.join(self.work, e, "main") for e in self.engines}
        self.n = args.rows

    def fig(self, workload: str, metric: str, unit: str, values: dict[str, Any], **more: Any) -> None:
        self.figs.append({"workload": workload, "metric": metric, "unit": unit, "values": values, **more})

    # -- (1) write and (2) read, each in a subprocess: time + peak RSS ---------------------------
    def write_read(self, data: pa.Table, do_read: bool) -> None:
        inp = os.path.join(self.work, "input.arrow")
        with pa.OSFile(inp, "wb") as f, pa.ipc.new_file(f, data.schema) as w:
            w.write_table(data)
        names = list(self.engines)
        w_s: dict[str, list[dict[str, Any]]] = {e: [] for e in names}
        for r in range(self.a.repeat):
            for e in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
                loc = self.loc[e]
                shutil.rmtree(os.path.dirname(loc), ignore_errors=True)
                os.makedirs(os.path.dirname(loc))
                _sync()
                w_s[e].append(_child(["write", e, loc, inp]))
                log(f"  write {e} #{r}: {w_s[e][-1]['seconds']:.2f} s")
        os.unlink(inp)
        self._record("write", w_s)
        if not do_read:
            return
        r_s: dict[str, list[dict[str, Any]]] = {e: [] for e in names}
        _sync()
        for r in range(self.a.repeat):
            for e in names[r % len(names):] + names[:r % len(names)]:
                r_s[e].append(_child(["read", e, self.loc[e]]))
                if r_s[e][-1]["rows"] != self.n:
                    raise RuntimeError(f"{e} read {r_s[e][-1]['rows']} rows, expected {self.n}")
                log(f"  read {e} #{r}: {r_s[e][-1]['seconds']:.2f} s")
        self._record("read", r_s)

    def _record(self, wl: str, s: dict[str, list[dict[str, Any]]]) -> None:
        med = {e: statistics.median(x["seconds"] for x in v) for e, v in s.items()}
        self.fig(wl, f"{wl} {self.n:,} rows", "s", med, samples={e: [x["seconds"] for x in v] for e, v in s.items()},
                 cpu={e: statistics.median(x["cpu"] for x in v) for e, v in s.items()})
        self.fig(wl, f"{wl} throughput", "Mrows/s", {e: self.n / m / 1e6 for e, m in med.items()},
                 higher_better=True)
        peak = {e: max(x["rss_peak"] for x in v) / 2**20 for e, v in s.items()}
        delta = {e: max(x["rss_peak"] - x["rss_before"] for x in v) / 2**20 for e, v in s.items()}
        self.fig("memory", f"{wl}: peak RSS of the process", "MiB", peak)
        self.fig("memory", f"{wl}: peak RSS above start (input excluded)", "MiB", delta)

    # -- (3) selective reads -------------------------------------------------------------------
    def select(self) -> None:
        lo = self.n // 2
        cases = {"one partition (day = 3)": ("partition", (3,)),
                 "1% id range": ("range", (lo, lo + max(1, self.n // 100)))}
        for label, (kind, arg) in cases.items():
            vals, counts = {}, {}
            for e, eng in self.engines.items():
                counts[e] = eng.read(self.loc[e], kind, arg).num_rows  # untimed warm-up and check
                s = scale.timeit(partial(eng.read, self.loc[e], kind, arg), self.a.repeat * 2, budget=60)
                vals[e] = statistics.median(s)
            if len(set(counts.values())) > 1:
                self.notes[f"select {label}"] = f"row counts differ: {counts}"
            self.fig("select", label, "s", vals, rows=counts)
            log(f"  select {label}: " + ", ".join(f"{e} {v * 1e3:.0f} ms" for e, v in vals.items()))

    # -- (4) small appends -----------------------------------------------------------------------
    def append(self) -> None:
        med, p95, first, last = {}, {}, {}, {}
        for e, eng in self.engines.items():
            h = eng.handle(self.loc[e])
            n = self.a.iceberg_appends if e == "pyiceberg" else self.a.appends
            if n != self.a.appends:
                self.notes["append pyiceberg"] = (
                    f"pyiceberg made {n} appends, the others {self.a.appends} (--iceberg-appends): each of its "
                    f"commits rewrites its whole metadata and slows down with each (~70 ms at first, ~1 s at 500); its "
                    f"append and open figures are therefore at {n} commits, not {self.a.appends}")
            self.extra.setdefault("appends", {})[e] = n
            s = scale.timeit_each(lambda b, h=h, eng=eng: eng.append(h, b),
                                  [small_batch(i, SMALL_ROWS) for i in range(n)])
            k = min(50, len(s) // 4 or 1)
            med[e], p95[e] = statistics.median(s), sorted(s)[int(0.95 * (len(s) - 1))]
            first[e], last[e] = statistics.median(s[:k]), statistics.median(s[-k:])
            log(f"  append {e}: median {med[e] * 1e3:.1f} ms, p95 {p95[e] * 1e3:.1f} ms")
        n = self.a.appends
        self.fig("append", f"{n} appends of {SMALL_ROWS} rows: median", "ms", _ms(med))
        self.fig("append", f"{n} appends: p95", "ms", _ms(p95))
        self.fig("append", f"first {min(50, n // 4 or 1)} appends: median", "ms", _ms(first))
        self.fig("append", f"last {min(50, n // 4 or 1)} appends: median", "ms", _ms(last))

    # -- (5) open latest, (6) time travel ---------------------------------------------------------
    def open(self) -> None:
        rep = self.a.open_repeat
        o: dict[str, float] = {}
        of: dict[str, float] = {}
        for phase in ("log only", "after checkpoint"):
            if phase == "after checkpoint":
                for e, eng in self.engines.items():
                    with contextlib.suppress(NotImplementedError):
                        eng.checkpoint(self.loc[e])
            o, of = ({}, {}) if phase == "log only" else (
                # every pyiceberg commit writes its whole metadata (its own "checkpoint"): its
                # figures stand for both phases; pyarrow has no log at all
                {e: v for e, v in o.items() if e == "pyiceberg"}, {e: v for e, v in of.items() if e == "pyiceberg"})
            for e, eng in self.engines.items():
                if phase == "after checkpoint" and e in ("pyarrow", "pyiceberg"):
                    continue
                o[e] = statistics.median(scale.timeit(lambda eng=eng, e=e: eng.open(self.loc[e]), rep))
                of[e] = statistics.median(scale.timeit(lambda eng=eng, e=e: eng.open(self.loc[e], files=True), rep))
            self.fig("open", f"open latest ({phase})", "ms", _ms(o))
            self.fig("open", f"open latest + list files ({phase})", "ms", _ms(of))
            log(f"  open ({phase}): " + ", ".join(f"{e} {v * 1e3:.1f} ms" for e, v in o.items()))

    def travel(self) -> None:
        vals, mids = {}, {}
        for e, eng in self.engines.items():
            if not eng.transactional:
                continue
            vs = eng.versions(self.loc[e])
            mids[e] = vs[len(vs) // 2]
            vals[e] = statistics.median(scale.timeit(lambda eng=eng, e=e: eng.open(self.loc[e], version=mids[e]),
                                                     self.a.open_repeat))
        self.fig("travel", "open middle version + list its files", "ms", _ms(vals), versions=mids)
        log("  travel: " + ", ".join(f"{e} {v * 1e3:.1f} ms" for e, v in vals.items()))

    # -- (7) delete -------------------------------------------------------------------------------
    def delete(self) -> None:
        lo = self.n // 4
        for label, kind, arg in (("delete a partition (day = 5)", "partition", (5,)),
                                 ("delete a 1% id range (rewrites)", "range", (lo, lo + max(1, self.n // 100)))):
            vals, after = {}, {}
            for e, eng in self.engines.items():
                if not eng.transactional:
                    continue
                t0 = time.perf_counter()
                eng.delete(self.loc[e], kind, arg)
                vals[e] = time.perf_counter() - t0
                after[e] = eng.count(self.loc[e])
            self.fig("delete", label + " (1 run)", "s", vals, rows_after=after)
            log(f"  {label}: " + ", ".join(f"{e} {v:.2f} s ({after[e]} rows)" for e, v in vals.items()))

    # -- (8) concurrent appends -------------------------------------------------------------------
    def concurrent(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        n, out = self.a.concurrent_appends, {}
        for e, eng in self.engines.items():
            if not eng.transactional:
                continue
            loc = os.path.join(self.work, e, "concurrent")
            eng.write(small_batch(0, SMALL_ROWS), loc)
            t0 = time.perf_counter()
            with ctx.Pool(4) as pool:
                res = pool.map(peers.concurrent_worker, [(e, loc, w, n, SMALL_ROWS) for w in range(4)])
            acked = sum(r["acked"] for r in res)
            out[e] = {"attempted": 4 * n, "acked": acked, "failures": sum(r["failures"] for r in res),
                      "rows_present": eng.count(loc), "rows_expected": SMALL_ROWS * (1 + acked),
                      "seconds": time.perf_counter() - t0, "errors": [x for r in res for x in r["errors"]][:3]}
            log(f"  concurrent {e}: {out[e]}")
        self.extra["concurrent"] = out

    # -- scale curves -----------------------------------------------------------------------------
    def _open_100k(self, repeat: int) -> dict[str, Any]:
        """Issue 3's 100k-commit target, lakehouse only: the log is written entry by entry with the
        library's encoder (benchmarks/open_after_commits.py; real commits would take minutes of
        fsyncs), checkpoint at 100,000, 99 entries to replay."""
        import open_after_commits

        uri = os.path.join(self.work, "lh-100k")
        t0 = time.perf_counter()
        checkpoint = open_after_commits.build(uri, 100_099)
        built = time.perf_counter() - t0
        s = scale.timeit(lambda: self.engines["lakehouse"].open(uri), repeat)
        log(f"  lakehouse open @ 100099 commits: {statistics.median(s) * 1e3:.1f} ms (built in {built:.0f} s)")
        shutil.rmtree(uri, ignore_errors=True)
        return {"engine": "lakehouse", "commits": 100_000, "replay": 100_099 - checkpoint, "version": 100_099,
                **scale.summary(s), "built": "entries written directly"}

    def scale(self) -> None:
        names = [e for e in self.engines if e != "pyarrow"]
        rep = self.a.open_repeat
        log("scale: open vs commits")
        self.extra["open_vs_commits"] = scale.open_vs_commits(self.work, self.a.commit_points, names, rep, log)
        if "lakehouse" in names and 100_000 not in self.a.commit_points and not self.a.quick:
            self.extra["open_vs_commits"].append(self._open_100k(rep))
        log("scale: planning and commit vs live files")
        self.extra["files_curves"] = scale.files_curves(self.work, self.a.file_points, names, rep,
                                                        self.a.commit_repeat, self.a.delta_max_files, log)
        if "lakehouse" in self.engines and self.a.file_points:
            res = _child(["checkpoint", "lakehouse", os.path.join(self.work, "lh-files")])
            self.extra["checkpoint_memory"] = {"files": max(self.a.file_points), **res}
            log(f"  checkpoint of {max(self.a.file_points)} files: {res}")

    # -- dask (issue 7): optional --------------------------------------------------------------
    def dask(self) -> None:
        note = dask_bench.missing()
        if note:
            self.notes["dask"] = note
            log(f"  dask {note}")
            return
        da = dask_bench.parse(["--rows", str(self.n), "--repeat", str(self.a.repeat)]
                              + (["--workdir", self.a.workdir] if self.a.workdir else []))
        self.extra["dask"] = dask_bench.run(da)
        self.extra["dask"]["params"]["command"] = f"python benchmarks/suite.py (workload dask, rows {self.n})"


def _ms(d: dict[str, float]) -> dict[str, float]:
    return {k: v * 1e3 for k, v in d.items()}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=None, help="rows generated (default 10,000,000; --quick 500,000)")
    p.add_argument("--progress", action="store_true", help="show a progress bar over the workloads (stderr)")
    p.add_argument("--quick", action="store_true", help="small sizes: a run of a few minutes")
    p.add_argument("--only", default=",".join(WORKLOADS),
                   help=f"workloads, from {','.join(WORKLOADS)}; optional (only if named): {','.join(OPTIONAL)}")
    p.add_argument("--engines", default="", help="subset of pyarrow,lakehouse,deltalake,pyiceberg")
    p.add_argument("--repeat", type=int, default=None, help="repeats of write/read/select (default 3; quick 2)")
    p.add_argument("--appends", type=int, default=None, help="small appends (default 500; quick 50)")
    p.add_argument("--iceberg-appends", type=int, default=None,
                   help="pyiceberg's small appends (default 100, each takes ~0.5-1 s; quick 50; 0: as --appends)")
    p.add_argument("--concurrent-appends", type=int, default=None, help="appends per process (default 50; quick 10)")
    p.add_argument("--open-repeat", type=int, default=None, help="repeats of each open (default 15; quick 5)")
    p.add_argument("--max-commits", type=int, default=None, help="largest point of open-vs-commits (default 10k)")
    p.add_argument("--max-files", type=int, default=None, help="largest point of the files curves (default 1M)")
    p.add_argument("--delta-max-files", type=int, default=None, help="deltalake files-curve cap (default 100k)")
    p.add_argument("--workdir", default=None, help="where temporary tables go (a local disk)")
    p.add_argument("--out", default=str(HERE / "results"), help="output directory")
    a = p.parse_args(argv)
    q = a.quick
    a.rows = a.rows or (500_000 if q else 10_000_000)
    a.repeat = a.repeat or (2 if q else 3)
    a.appends = a.appends or (50 if q else 500)
    a.iceberg_appends = min(a.appends, a.iceberg_appends or (50 if q else 100)) if a.iceberg_appends != 0 else a.appends
    a.concurrent_appends = a.concurrent_appends or (10 if q else 50)
    a.open_repeat = a.open_repeat or (5 if q else 15)
    a.commit_repeat = 10 if q else 30
    max_c = a.max_commits or (1000 if q else 10_000)
    max_f = a.max_files or (100_000 if q else 1_000_000)
    a.delta_max_files = a.delta_max_files or (10_000 if q else 100_000)
    a.commit_points = [n for n in (10, 100, 1000, 10_000, 100_000) if n <= max_c]
    a.file_points = [n for n in (1000, 10_000, 100_000, 1_000_000) if n <= max_f]
    a.only = [w for w in a.only.split(",") if w]
    bad = set(a.only) - set(WORKLOADS) - set(OPTIONAL)
    if bad:
        p.error(f"unknown workloads {sorted(bad)}")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}  # wall time per workload, reported with the params
    s = Suite(a)
    env = report.environment()
    log(f"engines: {list(s.engines)}; notes: {s.notes}; workdir {s.work}")
    try:
        needs_table = {"read", "select", "append", "open", "travel", "delete"} & set(a.only)
        if "write" in a.only or needs_table:
            t0 = time.perf_counter()
            data = generate_table(a.rows)
            log(f"generated {a.rows:,} rows in {time.perf_counter() - t0:.1f} s; write/read ...")
            t0 = time.perf_counter()
            s.write_read(data, "read" in a.only)
            seconds["write+read"] = round(time.perf_counter() - t0, 1)
            del data
        todo = [w for w in ("select", "append", "open", "travel", "delete", "concurrent", "scale", *OPTIONAL)
                if w in a.only]
        # --progress: the library's progress reporter (a rich bar on stderr when rich is installed)
        bar = progress_callback(True if a.progress else None)
        for i, w in enumerate(todo):
            log(f"{w} ...")
            bar(ProgressEvent("benchmark suite", w, i, len(todo), "workloads"))
            t0 = time.perf_counter()
            getattr(s, w)()
            seconds[w] = round(time.perf_counter() - t0, 1)
            log(f"{w}: {seconds[w]:.0f} s")
        bar(ProgressEvent("benchmark suite", "done", len(todo), len(todo), "workloads"))
        bar.close()
    finally:
        shutil.rmtree(s.work, ignore_errors=True)
    params = {k: v for k, v in vars(a).items()}
    params["command"] = "python benchmarks/suite.py " + " ".join(sys.argv[1:] if argv is None else argv)
    params["runtime_s"] = round(time.perf_counter() - t_start, 1)
    params["workload_s"] = seconds
    paths = report.write(a.out, env, params, s.notes, s.figs, s.extra)
    log(f"done in {params['runtime_s']:.0f} s: " + ", ".join(str(p) for p in paths))
    print(Path(paths[0]).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

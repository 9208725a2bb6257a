"""Core benchmark: lakehouse against raw pyarrow on the same data, in the same run (issue 2).

Workloads
    write   write N generated rows partitioned by ``day`` as ONE commit
            (``lh.write_table``) vs ``pyarrow.dataset.write_dataset`` (hive, zstd); a fresh
            target directory for every repeat, only the write itself is timed.
    read    full read of what was just written: ``lh.Table.open(uri).to_arrow()`` vs
            ``pyarrow.dataset.dataset(dir, partitioning="hive").to_table()``.
    open    a table after 1,000 small commits (default checkpoint interval): median latency of
            ``lh.Table.open(uri)`` + ``.version``, and of listing the snapshot's ``files()``.
            The small appends themselves are timed too (commit latency, median and p95).

Run ``python benchmarks/bench_core.py --help`` (or ``make bench``). Results are printed as a
markdown table and written to ``benchmarks/results/core.json`` and ``core.md``.

The script is structured so the full suite of issue 3 can grow out of it: engines are small
adapter classes (add deltalake / pyiceberg next to ``PyarrowEngine``), every measurement is a
record ``{workload, engine, unit, samples, median, ...}`` and ratios are computed from records.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import gc
import importlib.metadata
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

try:  # run as ``python -m benchmarks.bench_core``
    from benchmarks.datagen import SCHEMA, generate_table, small_batch
except ImportError:  # run as ``python benchmarks/bench_core.py``
    from datagen import SCHEMA, generate_table, small_batch  # type: ignore[no-redef]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WORKLOADS = ("write", "read", "open")
ENGINES: dict[str, Callable[[], Engine]] = {}  # filled below the engine classes
BASELINES = ("pyarrow", "pyarrow-rg")  # ratios are baseline_time / lakehouse_time
HEADLINE = "pyarrow"  # the baseline the targets refer to

# Targets from issue 2 (benchmarks report them; nothing asserts them).
TARGET_RATIO = 0.9  # pyarrow_time / lakehouse_time: lakehouse within 10% of raw pyarrow
TARGET_OPEN_MS = 20.0  # opening a table after 1,000 commits


# --------------------------------------------------------------------------------------------
# Environment


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _loadavg() -> list[float] | None:
    """1/5/15-minute load averages: a busy machine makes every figure noisier."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _version(dist: str, module: str | None = None) -> str | None:
    if module is not None:
        try:
            mod = __import__(module)
            v = getattr(mod, "__version__", None)
            if v:
                return str(v)
        except ImportError:
            return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def environment(workdir: str) -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "cpus_usable": affinity,
            "cpu_model": _cpu_model(),
            "memory_gb": _mem_total_gb(),
            "arrow_cpu_threads": pa.cpu_count(),
            "arrow_io_threads": pa.io_thread_count(),
            "workdir": workdir,
            "loadavg_at_start": _loadavg(),
        },
        "versions": {
            "python": platform.python_version(),
            "pyarrow": pa.__version__,
            "fsspec": _version("fsspec", "fsspec"),
            "numpy": _version("numpy", "numpy"),
            "msgpack": _version("msgpack"),
            "lakehouse": _version("lakehouse-format", "lakehouse"),
            "lakehouse_git": _git_commit(),
        },
    }


# --------------------------------------------------------------------------------------------
# Measurement helpers


@dataclass
class Record:
    """One measured figure: ``samples`` of one workload on one engine."""

    workload: str
    engine: str
    unit: str
    samples: list[float]
    cpu_samples: list[float] = field(default_factory=list)
    cpu_median: float | None = None
    median: float = 0.0
    p95: float = 0.0
    min: float = 0.0
    max: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.samples:
            self.median = statistics.median(self.samples)
            self.p95 = percentile(self.samples, 95)
            self.min = min(self.samples)
            self.max = max(self.samples)
        if self.cpu_samples:
            self.cpu_median = statistics.median(self.cpu_samples)


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank-with-interpolation percentile (same as numpy's default 'linear')."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _settle() -> None:
    """Put every timed run on the same footing: no pending garbage, no dirty pages."""
    gc.collect()
    if hasattr(os, "sync"):
        os.sync()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    _settle()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall-clock seconds, CPU seconds of this process (user + sys, all threads), result.

    CPU time is far less sensitive than wall time to other work on a shared machine, so it is
    recorded next to every data-path figure as a cross-check.
    """
    _settle()
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def dir_stats(path: str) -> dict[str, Any]:
    """Files, bytes and row-group layout of the Parquet files under ``path`` (footers only)."""
    files = n_bytes = 0
    rg_rows: list[int] = []
    for root, _dirs, names in os.walk(path):
        for name in names:
            if name.endswith(".parquet"):
                full = os.path.join(root, name)
                files += 1
                n_bytes += os.path.getsize(full)
                md = pq.read_metadata(full)
                rg_rows.extend(md.row_group(i).num_rows for i in range(md.num_row_groups))
    return {
        "data_files": files,
        "data_bytes": n_bytes,
        "row_groups": len(rg_rows),
        "rows_per_row_group_median": int(statistics.median(rg_rows)) if rg_rows else 0,
    }


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Engines: one adapter per system under test


class Engine:
    name = "?"

    def write(self, table: pa.Table, target: str) -> None:
        raise NotImplementedError

    def read(self, target: str) -> pa.Table:
        raise NotImplementedError


class PyarrowEngine(Engine):
    """Raw pyarrow, exactly the call issue 2 names: the reference of the headline ratios.

    Note: with default arguments ``write_dataset`` writes each partition's slice of every
    internal batch as its own row group (about 1k rows here), which makes its files slow to read.
    """

    name = "pyarrow"
    write_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.file_options = ds.ParquetFileFormat().make_write_options(compression="zstd")

    def write(self, table: pa.Table, target: str) -> None:
        ds.write_dataset(
            table,
            target,
            format="parquet",
            partitioning=["day"],
            partitioning_flavor="hive",
            file_options=self.file_options,
            existing_data_behavior="overwrite_or_ignore",
            **self.write_kwargs,
        )

    def read(self, target: str) -> pa.Table:
        return ds.dataset(target, format="parquet", partitioning="hive").to_table()


class PyarrowRowGroupsEngine(PyarrowEngine):
    """Raw pyarrow with real row groups (``min_rows_per_group``): a fairer physical limit for reads."""

    name = "pyarrow-rg"
    write_kwargs: ClassVar[dict[str, Any]] = {"min_rows_per_group": 1 << 17, "max_rows_per_group": 1 << 20}


class LakehouseEngine(Engine):
    name = "lakehouse"

    def __init__(self) -> None:
        import lakehouse

        self.lh = lakehouse

    def write(self, table: pa.Table, target: str) -> None:
        self.lh.write_table(target, table, partition_by=["day"])

    def read(self, target: str) -> pa.Table:
        return self.lh.Table.open(target).to_arrow()


ENGINES.update(
    {
        PyarrowEngine.name: PyarrowEngine,
        PyarrowRowGroupsEngine.name: PyarrowRowGroupsEngine,
        LakehouseEngine.name: LakehouseEngine,
    }
)


def _fingerprint(t: pa.Table) -> dict[str, Any]:
    """Cheap order-independent content check, so a fast-but-wrong read is noticed."""
    return {
        "num_rows": t.num_rows,
        "columns": sorted(t.column_names),
        "sum_id": pc.sum(t["id"]).as_py() if t.num_rows else 0,
        "sum_day": pc.sum(t["day"].cast(pa.int64())).as_py() if t.num_rows else 0,
        "payload_chars": pc.sum(pc.utf8_length(t["payload"])).as_py() if t.num_rows else 0,
    }


# --------------------------------------------------------------------------------------------
# Workloads


def bench_write_read(
    engines: list[Engine],
    table: pa.Table,
    workdir: str,
    repeat: int,
    do_write: bool,
    do_read: bool,
    profile_dir: Path | None,
) -> list[Record]:
    """(a) one-commit partitioned write and (b) full read, interleaving engines every repeat."""
    expected = _fingerprint(table)
    write_s: dict[str, list[float]] = {e.name: [] for e in engines}
    read_s: dict[str, list[float]] = {e.name: [] for e in engines}
    write_cpu: dict[str, list[float]] = {e.name: [] for e in engines}
    read_cpu: dict[str, list[float]] = {e.name: [] for e in engines}
    notes: dict[str, dict[str, Any]] = {e.name: {} for e in engines}
    targets: dict[str, str] = {}

    def fresh_target(engine: Engine, i: int) -> str:
        old = targets.get(engine.name)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        path = os.path.join(workdir, f"{engine.name}-{i}")
        targets[engine.name] = path
        return path

    # Reads need something to read: with --only read, write once untimed.
    write_rounds = repeat if do_write else 1
    for i in range(write_rounds):
        order = engines if i % 2 == 0 else engines[::-1]  # alternate who goes first
        for engine in order:
            target = fresh_target(engine, i)
            secs, cpu, _ = timed_cpu(lambda e=engine, p=target: e.write(table, p))
            if do_write:
                write_s[engine.name].append(secs)
                write_cpu[engine.name].append(cpu)
                log(f"write  {engine.name:<10} repeat {i + 1}/{repeat}: {secs:8.3f} s  (cpu {cpu:7.2f} s)")
    for engine in engines:
        notes[engine.name].update(dir_stats(targets[engine.name]))

    if do_read:
        for i in range(repeat):
            order = engines if i % 2 == 0 else engines[::-1]
            for engine in order:
                secs, cpu, result = timed_cpu(lambda e=engine: e.read(targets[e.name]))
                read_s[engine.name].append(secs)
                read_cpu[engine.name].append(cpu)
                log(f"read   {engine.name:<10} repeat {i + 1}/{repeat}: {secs:8.3f} s  (cpu {cpu:7.2f} s)")
                if i == 0:
                    got = _fingerprint(result)
                    if got != expected:
                        raise AssertionError(f"{engine.name} read back {got}, expected {expected}")
                    notes[engine.name]["read_schema"] = str(result.schema).replace("\n", "; ")
                del result

    if profile_dir is not None:
        for engine in engines:
            if engine.name in BASELINES:
                continue
            target = os.path.join(workdir, f"{engine.name}-profile")
            if do_write:
                _profile(lambda e=engine, p=target: e.write(table, p), profile_dir / f"{engine.name}_write")
            else:
                engine.write(table, target)
            if do_read:
                _profile(lambda e=engine, p=target: e.read(p), profile_dir / f"{engine.name}_read")
            shutil.rmtree(target, ignore_errors=True)

    for path in targets.values():
        shutil.rmtree(path, ignore_errors=True)

    records = []
    for engine in engines:
        n = notes[engine.name]
        if do_write:
            records.append(
                Record("write", engine.name, "s", write_s[engine.name], write_cpu[engine.name], notes=dict(n))
            )
        if do_read:
            records.append(Record("read", engine.name, "s", read_s[engine.name], read_cpu[engine.name], notes=dict(n)))
    return records


def _log_layout(log_dir: str) -> dict[str, Any]:
    """What a reader of the latest version has to look at: newest checkpoint + entries after it."""
    names = os.listdir(log_dir)
    entries = sorted(int(n.split(".")[0]) for n in names if n.endswith(".msgpack") and n[0].isdigit())
    ckpts = sorted(int(n.split(".")[0]) for n in names if ".checkpoint" in n and n[0].isdigit())
    latest = entries[-1] if entries else None
    last_ckpt = ckpts[-1] if ckpts else None
    tail = sum(1 for v in entries if last_ckpt is None or v > last_ckpt)
    return {"latest_version": latest, "checkpoint_version": last_ckpt, "entries_after_checkpoint": tail}


def bench_open(
    workdir: str,
    commits: int,
    small_rows: int,
    open_repeat: int,
    profile_dir: Path | None,
) -> list[Record]:
    """(c) open latency after ``commits`` small commits (Table.create + ``commits - 1`` appends)."""
    import lakehouse as lh

    uri = os.path.join(workdir, "open-table")
    log(f"open   building a table with {commits} commits of {small_rows} rows each ...")
    t0 = time.perf_counter()
    table = lh.Table.create(uri, SCHEMA, partition_by=["day"])
    append_ms = []
    for i in range(1, commits):
        batch = small_batch(i, small_rows)
        s = time.perf_counter()
        table.append(batch)
        append_ms.append((time.perf_counter() - s) * 1000)
    build_s = time.perf_counter() - t0
    log(f"open   built in {build_s:.1f} s (version {table.version})")

    records = [
        Record(
            "append_small",
            "lakehouse",
            "ms",
            append_ms,
            notes={
                "rows_per_commit": small_rows,
                "data_files_per_commit": 1,
                "median_first_50_ms": statistics.median(append_ms[:50]) if append_ms else None,
                "median_last_50_ms": statistics.median(append_ms[-50:]) if append_ms else None,
                "includes": "data-file write + commit",
            },
        )
    ]

    def measure(label: str) -> None:
        layout = _log_layout(os.path.join(uri, "_lakehouse_log"))
        expected_version = layout["latest_version"]
        for _ in range(3):  # warm-up: imports, OS page cache
            lh.Table.open(uri).snapshot().files()
        open_ms, files_ms, total_ms = [], [], []
        num_files = None
        for _ in range(open_repeat):
            gc.collect()
            s = time.perf_counter()
            t = lh.Table.open(uri)
            v = t.version
            s1 = time.perf_counter()
            files = t.snapshot().files()
            s2 = time.perf_counter()
            if v != expected_version:
                raise AssertionError(f"opened version {v}, log says {expected_version}")
            num_files = files.num_rows
            open_ms.append((s1 - s) * 1000)
            files_ms.append((s2 - s1) * 1000)
            total_ms.append((s2 - s) * 1000)
        notes = {**layout, "commits": (expected_version or 0) + 1, "live_files": num_files}
        records.append(Record(f"open{label}", "lakehouse", "ms", open_ms, notes=notes))
        records.append(Record(f"files{label}", "lakehouse", "ms", files_ms, notes=notes))
        records.append(Record(f"open+files{label}", "lakehouse", "ms", total_ms, notes=notes))
        log(
            f"open   {label or '(latest)'}: open {statistics.median(open_ms):.2f} ms, "
            f"files() {statistics.median(files_ms):.2f} ms  {layout}"
        )
        if profile_dir is not None:
            _profile(lambda: lh.Table.open(uri).snapshot().files(), profile_dir / f"lakehouse_open{label}")

    measure("")
    # One more commit: the state right after an automatic checkpoint (if the interval divides it).
    table.append(small_batch(commits, small_rows))
    layout = _log_layout(os.path.join(uri, "_lakehouse_log"))
    if layout["entries_after_checkpoint"] == 0:
        measure("@checkpoint")
    shutil.rmtree(uri, ignore_errors=True)
    return records


def _profile(fn: Callable[[], Any], out_stem: Path, top: int = 35) -> None:
    """cProfile one (untimed) run of ``fn``; write the top functions by cumulative time."""
    _settle()
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        out_stem.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{out_stem}.{key}.txt").write_text(buf.getvalue(), encoding="utf-8")
    log(f"profile written to {out_stem}.*.txt")


# --------------------------------------------------------------------------------------------
# Reporting


def comparisons(records: list[Record]) -> list[dict[str, Any]]:
    """``baseline_time / engine_time`` for every non-baseline engine against every baseline."""
    by_key = {(r.workload, r.engine): r for r in records}
    out = []
    for (workload, engine), rec in by_key.items():
        for baseline in BASELINES:
            base = by_key.get((workload, baseline))
            if engine in BASELINES or base is None or not rec.median:
                continue
            ratio = base.median / rec.median
            out.append(
                {
                    "workload": workload,
                    "engine": engine,
                    "baseline": baseline,
                    "ratio": ratio,
                    "target": TARGET_RATIO if baseline == HEADLINE else None,
                    "meets_target": ratio >= TARGET_RATIO if baseline == HEADLINE else None,
                }
            )
    return out


def _fmt_s(x: float) -> str:
    return f"{x:.3f} s"


def render_markdown(env: dict[str, Any], params: dict[str, Any], records: list[Record]) -> str:
    m, v = env["machine"], env["versions"]
    by_key = {(r.workload, r.engine): r for r in records}
    lines = [
        f"# lakehouse core benchmark — {env['date']}",
        "",
        f"Machine: {m['platform']}, {m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM; "
        f"load average {m.get('loadavg_at_start')} at start, {m.get('loadavg_at_end')} at end",
        f"Versions: Python {v['python']}, pyarrow {v['pyarrow']}, fsspec {v['fsspec']}, numpy {v['numpy']}, "
        f"msgpack {v['msgpack']}, lakehouse {v['lakehouse']}"
        + (f" ({v['lakehouse_git']})" if v.get("lakehouse_git") else ""),
        f"Parameters: {params['rows']:,} rows, {params['repeat']} repeats (median), "
        f"{params['commits']:,} small commits of {params['small_rows']} rows, "
        f"{params['open_repeat']} opens (median)",
        "",
    ]
    ratios = {(c["workload"], c["baseline"]): c for c in comparisons(records)}
    engines = [e for e in ENGINES if any(r.engine == e and r.unit == "s" for r in records)]
    baselines = [b for b in BASELINES if b in engines]
    if engines:
        head = ["workload", *engines, *(f"ratio {b}/lakehouse" for b in baselines), "target", "ok"]
        lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 3) + "---:|:-:|"]
        for w, desc in (
            ("write", f"write {params['rows']:,} rows by day, one commit"),
            ("read", "full read"),
        ):
            if not any((w, e) in by_key for e in engines):
                continue
            cells = [desc]
            cells += [_fmt_s(by_key[(w, e)].median) if (w, e) in by_key else "" for e in engines]
            cells += [f"{ratios[(w, b)]['ratio']:.2f}" if (w, b) in ratios else "" for b in baselines]
            c = ratios.get((w, HEADLINE))
            cells += [f">= {TARGET_RATIO} ({HEADLINE})", "" if c is None else ("yes" if c["meets_target"] else "no")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        layout = []
        for e in engines:
            n = (
                by_key[("write", e)].notes
                if ("write", e) in by_key
                else by_key.get(("read", e), Record("", "", "", [])).notes
            )
            if n:
                layout.append(
                    f"{e} {n.get('data_files')} files / {n.get('data_bytes', 0) / 1e6:.1f} MB / "
                    f"{n.get('row_groups')} row groups (median {n.get('rows_per_row_group_median'):,} rows)"
                )
        if layout:
            lines += ["Data written: " + "; ".join(layout) + ".", ""]
        for w in ("write", "read"):
            lh_rec = by_key.get((w, "lakehouse"))
            fastest = []
            if lh_rec is not None and lh_rec.min:
                fastest = [
                    f"{b}/lakehouse {by_key[(w, b)].min / lh_rec.min:.2f}" for b in baselines if (w, b) in by_key
                ]
            if fastest:
                lines += [
                    f"Ratios of the fastest {w} samples (less sensitive to load): " + ", ".join(fastest) + ".",
                    "",
                ]
            cpu = [f"{e} {by_key[(w, e)].cpu_median:.2f} s" for e in engines if (w, e) in by_key]
            if cpu and all(by_key[(w, e)].cpu_median is not None for e in engines if (w, e) in by_key):
                lines += [f"CPU time of {w} (user+sys, all threads; median): " + ", ".join(cpu) + ".", ""]
    open_rows = [r for r in records if r.engine == "lakehouse" and r.unit == "ms"]
    if open_rows:
        lines += [
            "| metadata path (lakehouse) | median | p95 | target | ok | state |",
            "|---|---:|---:|---:|:-:|---|",
        ]
        for r in open_rows:
            n = r.notes
            if r.workload == "append_small":
                state = (
                    f"{n['rows_per_commit']} rows/commit; median first 50 {n['median_first_50_ms']:.1f} ms, "
                    f"last 50 {n['median_last_50_ms']:.1f} ms"
                )
                target = ok = ""
            else:
                state = (
                    f"v{n['latest_version']}, checkpoint v{n['checkpoint_version']} + "
                    f"{n['entries_after_checkpoint']} entries, {n['live_files']} files"
                )
                is_open = r.workload.startswith("open") and not r.workload.startswith("open+files")
                target = f"< {TARGET_OPEN_MS:g} ms" if is_open else ""
                ok = ("yes" if r.median < TARGET_OPEN_MS else "no") if is_open else ""
            lines.append(f"| {r.workload} | {r.median:.2f} ms | {r.p95:.2f} ms | {target} | {ok} | {state} |")
        lines.append("")
    lines.append(
        "Ratios are baseline_time / lakehouse_time (1.0 = same speed, > 1 = lakehouse faster); "
        "pyarrow = `write_dataset` with the arguments issue 2 names, pyarrow-rg = the same with "
        "`min_rows_per_group=131072`. "
        "Times are medians; warm OS page cache; local disk."
    )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="lakehouse vs raw pyarrow: partitioned write, full read, open after many commits.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rows", type=int, default=10_000_000, help="rows to write and read back")
    p.add_argument("--repeat", type=int, default=5, help="repeats of each write/read measurement")
    p.add_argument("--commits", type=int, default=1000, help="small commits before measuring open")
    p.add_argument("--small-rows", type=int, default=100, help="rows per small commit")
    p.add_argument("--open-repeat", type=int, default=50, help="repeats of the open measurement")
    p.add_argument("--seed", type=int, default=42, help="seed of the generated data")
    p.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)}",
    )
    p.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated subset of {','.join(ENGINES)} for write/read",
    )
    p.add_argument("--workdir", default=None, help="parent of the temporary table dirs (local disk)")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where core.json/core.md go")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile one extra (untimed) lakehouse run of each workload into --output-dir",
    )
    args = p.parse_args(argv)
    args.only = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = set(args.only) - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workload(s) {sorted(unknown)}; choose from {WORKLOADS}")
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if set(args.engines) - set(ENGINES):
        p.error(f"unknown engine(s) {sorted(set(args.engines) - set(ENGINES))}; choose from {list(ENGINES)}")
    if args.repeat < 1 or args.open_repeat < 1 or args.commits < 1 or args.rows < 1:
        p.error("--rows, --repeat, --commits and --open-repeat must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="lakehouse-bench-", dir=args.workdir)
    env = environment(os.path.dirname(workdir))
    params = {
        "rows": args.rows,
        "repeat": args.repeat,
        "commits": args.commits,
        "small_rows": args.small_rows,
        "open_repeat": args.open_repeat,
        "seed": args.seed,
        "workloads": args.only,
        "engines": args.engines,
    }
    profile_dir = args.output_dir / "profiles" if args.profile else None
    records: list[Record] = []
    try:
        if "write" in args.only or "read" in args.only:
            log(f"generating {args.rows:,} rows (seed {args.seed}) ...")
            secs, table = timed(lambda: generate_table(args.rows, seed=args.seed))
            log(f"generated {table.nbytes / 1e6:.0f} MB in memory in {secs:.1f} s")
            params["table_bytes_in_memory"] = table.nbytes
            engines: list[Engine] = [ENGINES[name]() for name in args.engines]
            records += bench_write_read(
                engines,
                table,
                workdir,
                args.repeat,
                "write" in args.only,
                "read" in args.only,
                profile_dir,
            )
            del table
        if "open" in args.only:
            records += bench_open(workdir, args.commits, args.small_rows, args.open_repeat, profile_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    params["total_runtime_s"] = round(time.perf_counter() - started, 1)
    env["machine"]["loadavg_at_end"] = _loadavg()
    md = render_markdown(env, params, records)
    print(md)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "core",
        "format": 1,
        **env,
        "params": params,
        "targets": {"ratio_min": TARGET_RATIO, "open_ms_max": TARGET_OPEN_MS},
        "results": [asdict(r) for r in records],
        "comparisons": comparisons(records),
    }
    (args.output_dir / "core.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (args.output_dir / "core.md").write_text(md, encoding="utf-8")
    log(f"wrote {args.output_dir / 'core.json'} and core.md (total {params['total_runtime_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reporting for the suite: environment, markdown table, targets of issue 3, JSON and PNG charts."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ENGINES = ("pyarrow", "lakehouse", "deltalake", "pyiceberg")
PEERS = ("deltalake", "pyiceberg")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.lower().startswith("model name"))
    try:
        import psutil

        ram = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        ram = None
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "lakehouse"], cwd=Path(__file__).parent.parent,
                               capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        sha, dirty = "", ""
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram, "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "versions": {"python": sys.version.split()[0], "pyarrow": _version("pyarrow"),
                     "deltalake": _version("deltalake"), "pyiceberg": _version("pyiceberg"),
                     "lakehouse": _version("lakehouse-format") or _version("lakehouse"),
                     "lakehouse_git": sha + (" (lakehouse/ modified)" if dirty else "")},
    }


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 100 else f"{x:,.0f}"
    return str(x)


def _ratio(f: dict[str, Any], base: float | None) -> str:
    """base/lakehouse for lower-is-better figures (> 1 = lakehouse faster), inverse otherwise."""
    lh = f["values"].get("lakehouse")
    if lh is None or base is None or lh == 0 or base == 0:
        return "-"
    r = lh / base if f.get("higher_better") else base / lh
    return f"{r:.2f}"


def _best_peer(f: dict[str, Any]) -> tuple[str, float] | None:
    vals = [(e, f["values"][e]) for e in PEERS if f["values"].get(e) is not None]
    if not vals:
        return None
    return (max if f.get("higher_better") else min)(vals, key=lambda x: x[1])


def _curve(rows: list[dict[str, Any]], engine: str, key: str, sub: str = "median") -> dict[int, float]:
    out = {}
    for r in rows:
        if r["engine"] == engine and key in r:
            out[r["files"]] = r[key][sub]
    return out


def targets(figs: list[dict[str, Any]], extra: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, ok/no/n.m.) for every target of issue 3 this run can speak to."""
    out: list[tuple[str, str, str]] = []
    by = {(f["workload"], f["metric"].split(" ")[0]): f for f in figs if f["unit"] == "s"}
    for wl in ("write", "read"):
        f = by.get((wl, wl))
        if f and "pyarrow" in f["values"] and "lakehouse" in f["values"]:
            r = f["values"]["pyarrow"] / f["values"]["lakehouse"]
            out.append((f"{wl}: within 5% of raw pyarrow (ratio >= 0.95)", f"{r:.2f}", "ok" if r >= 0.95 else "no"))
            peer = _best_peer(f)
            if peer:
                r2 = peer[1] / f["values"]["lakehouse"]
                out.append((f"{wl}: match or beat the best peer ({peer[0]})", f"{r2:.2f}",
                            "ok" if r2 >= 0.95 else "no"))
    oc = [r for r in extra.get("open_vs_commits", []) if r["engine"] == "lakehouse"]
    worst = {}
    for r in oc:
        worst[r["commits"]] = max(worst.get(r["commits"], 0), r["median"])
    if 100_000 in worst:
        out.append(("open latest after 100k commits < 150 ms (worst of: at a checkpoint, 99 entries to replay)",
                    f"{worst[100_000] * 1e3:.1f} ms", "ok" if worst[100_000] < 0.15 else "no"))
    else:
        out.append(("open latest after 100k commits < 150 ms", "not measured (run with --max-commits 100000)", "n.m."))
    top = max(worst) if worst else None
    if top and 1000 in worst and top > 1000:
        r = worst[top] / worst[1000]
        out.append((f"open after {top:,} commits <= 2x open after 1k", f"{r:.2f}x", "ok" if r <= 2 else "no"))
    fc = extra.get("files_curves", [])
    for key in ("plan_files", "plan_dataset"):
        c = _curve(fc, "lakehouse", key)
        if c:
            n = max(c)
            out.append((f"planning ({key}) over {n:,} files < 1 s (target is at 1M)", f"{c[n] * 1e3:.0f} ms",
                        "ok" if c[n] < 1 else "no"))
            pts = sorted(c)
            if len(pts) >= 2:
                a, b = pts[-2], pts[-1]
                g = c[b] / c[a]
                out.append((f"planning ({key}) grows no faster than linearly ({a:,}->{b:,} files: x{b // a})",
                            f"x{g:.1f}", "ok" if g <= 1.2 * b / a else "no"))
    c = _curve(fc, "lakehouse", "commit")
    if c:
        mx = max(c.values())
        out.append(("commit (excl. data-file write) median < 10 ms at every size", f"max {mx * 1e3:.1f} ms",
                    "ok" if mx < 0.01 else "no"))
        flat = mx / min(c.values())
        out.append((f"commit latency flat from 0 to {max(c):,} files (max/min of medians <= 2)", f"{flat:.2f}",
                    "ok" if flat <= 2 else "no"))
    cm = extra.get("checkpoint_memory")
    if cm:
        mib = cm["rss_peak"] / 2**20
        out.append((f"checkpoint of {cm['files']:,} files: peak RSS < 1 GB", f"{mib:.0f} MiB",
                    "ok" if mib < 1024 else "no"))
    for wl, key in (("open", "open latest (log only)"), ("open", "open latest (after"), ("append", "")):
        for f in figs:
            if f["workload"] == wl and f["metric"].startswith(key) and "lakehouse" in f["values"]:
                peer = _best_peer(f)
                if peer:
                    ok = f["values"]["lakehouse"] <= peer[1]
                    counts, at = extra.get("appends", {}), ""
                    if wl == "open" and peer[0] in counts and counts[peer[0]] != counts.get("lakehouse"):
                        at = f" (after {counts[peer[0]]} commits, lakehouse {counts.get('lakehouse')})"
                    out.append((f"beat peers: {f['metric']}", f"lakehouse {_fmt(f['values']['lakehouse'])} vs "
                                f"{peer[0]} {_fmt(peer[1])} {f['unit']}{at}", "ok" if ok else "no"))
                break
    return out


def markdown(env: dict[str, Any], params: dict[str, Any], notes: dict[str, str], figs: list[dict[str, Any]],
             extra: dict[str, Any]) -> str:
    v = env["versions"]
    lines = [
        f"## Benchmark suite (issue 3) — {env['date']}",
        "",
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['ram_gib']} GiB RAM, load avg at start "
        f"{env['loadavg']}. Python {v['python']}, pyarrow {v['pyarrow']}, deltalake {v['deltalake']}, "
        f"pyiceberg {v['pyiceberg']}, lakehouse {v['lakehouse']} ({v['lakehouse_git']}).",
        f"Rows: {params['rows']:,}; repeats {params['repeat']} (medians); {params['appends']} small appends; "
        f"runtime {params['runtime_s']:.0f} s. Command: `{params.get('command', '')}`.",
        "",
    ]
    for name, note in notes.items():
        lines.append(f"- **{name}**: {note}")
    cols = [e for e in ENGINES if any(e in f["values"] for f in figs)]
    lines += ["", "| workload | figure | unit | " + " | ".join(cols) + " | lh vs pyarrow | lh vs best peer |",
              "|---|---|---|" + "---:|" * len(cols) + "---:|---:|"]
    for f in figs:
        peer = _best_peer(f)
        cells = [_fmt(f["values"].get(e)) for e in cols]
        lines.append(f"| {f['workload']} | {f['metric']} | {f['unit']} | " + " | ".join(cells)
                     + f" | {_ratio(f, f['values'].get('pyarrow'))} | {_ratio(f, peer[1] if peer else None)}"
                     + (f" ({peer[0]})" if peer else "") + " |")
    lines += ["", "Ratios: other / lakehouse for times and memory (> 1 = lakehouse better), lakehouse / other "
              "for throughput. pyarrow has no commits: its `append` is the bare data-file write, its `open` is "
              "dataset discovery (directory listing)."]
    if "concurrent" in extra:
        lines += ["", "Concurrent appends (4 spawned processes):", "",
                  "| engine | attempted | acked | failures | rows present | rows expected | s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for e, r in extra["concurrent"].items():
            lines.append(f"| {e} | {r['attempted']} | {r['acked']} | {r['failures']} | {r['rows_present']} | "
                         f"{r['rows_expected']} | {r['seconds']:.1f} |")
    if extra.get("open_vs_commits"):
        lines += ["", "Open latency vs commits (median ms; `+99` = 99 log entries after the last checkpoint):", "",
                  "| engine | commits | version | entries replayed | open ms | open + list files ms |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in extra["open_vs_commits"]:
            of = r.get("open_files_median")
            lines.append(f"| {r['engine']} | {r['commits']:,} | {r['version']:,} | {_fmt(r['replay'])} | "
                         f"{r['median'] * 1e3:.1f} | {'-' if of is None else f'{of * 1e3:.1f}'} |")
    if extra.get("files_curves"):
        keys = ("open", "open_plan", "plan_files", "plan_dataset", "commit", "append")
        lines += ["", "Versus live files (median ms; plan = 1% id-range filter; open_plan = open + plan from a "
                  "fresh open (lakehouse decodes a checkpoint's files on first use); commit = internal commit "
                  "of a real tiny file, excl. the data write; append = public append incl. the data write):", "",
                  "| engine | files | selected | " + " | ".join(keys) + " |", "|---|---:|---:|" + "---:|" * len(keys)]
        for r in extra["files_curves"]:
            lines.append(f"| {r['engine']} | {r['files']:,} | {_fmt(r.get('selected'))} | " + " | ".join(
                f"{r[k]['median'] * 1e3:.1f}" if k in r else "-" for k in keys) + " |")
    if extra.get("checkpoint_memory"):
        cm = extra["checkpoint_memory"]
        lines.append(f"\nCheckpoint of {cm['files']:,} files (fresh process): {cm['seconds']:.2f} s, "
                     f"peak RSS {cm['rss_peak'] / 2**20:.0f} MiB.")
    lines += ["", "Targets of issue 3:", "", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {ok} |" for t, m, ok in targets(figs, extra)]
    if extra.get("dask"):
        lines += ["", dask_markdown(extra["dask"]).replace("## Dask", "### Dask", 1).rstrip()]
    return "\n".join(lines) + "\n"


def charts(out: Path, extra: dict[str, Any]) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths = []
    oc = extra.get("open_vs_commits", [])
    if oc:
        fig, ax = plt.subplots(figsize=(6, 4))
        for e in ENGINES:
            for label, pick in (("at checkpoint", lambda r: r["version"] == r["commits"]),
                                ("+99 entries", lambda r: r["version"] != r["commits"])):
                pts = sorted((r["commits"], r["median"] * 1e3) for r in oc if r["engine"] == e and pick(r))
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=f"{e} ({label})")
        _finish(ax, "commits", "open latency (ms)", "Open latest vs number of commits")
        paths.append(_save(fig, out / "open_vs_commits.png"))
    fc = extra.get("files_curves", [])
    for key, title, fname in ((("plan_files", "plan_dataset"), "Planning a 1% id filter vs live files",
                               "planning_vs_files.png"),
                              (("commit", "append"), "Commit latency vs live files", "commit_vs_files.png")):
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for e in ENGINES:
            for k in key:
                c = _curve(fc, e, k)
                pts = sorted((max(n, 1), ms * 1e3) for n, ms in c.items())
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=f"{e} {k}")
                    drawn = True
        if drawn:
            _finish(ax, "live files (0 plotted at 1)", "median latency (ms)", title)
            paths.append(_save(fig, out / fname))
        plt.close(fig)
    return paths


def _finish(ax: Any, xl: str, yl: str, title: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write(out: str, env: dict[str, Any], params: dict[str, Any], notes: dict[str, str],
          figs: list[dict[str, Any]], extra: dict[str, Any]) -> list[Path]:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    md = markdown(env, params, notes, figs, extra)
    (d / "results.md").write_text(md)
    (d / "summary.md").write_text(md)
    payload = {"environment": env, "params": params, "notes": notes, "figures": figs, **extra,
               "targets": [{"target": t, "measured": m, "status": s} for t, m, s in targets(figs, extra)]}
    (d / "results.json").write_text(json.dumps(payload, indent=1, default=str))
    return [d / "results.md", d / "results.json", *charts(d, extra)]


def dask_markdown(res: dict[str, Any]) -> str:
    """The table of benchmarks/dask_bench.py (issue 7): medians and ratios against both baselines."""
    env, p = res["environment"], res["params"]
    v = env["versions"]
    load = "; ".join(f"{x['phase']} {x['loadavg']}" for x in res.get("load", []))
    lines = [
        f"## Dask (issue 7) — {env['date']}",
        "",
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['ram_gib']} GiB RAM. Load average: {load}.",
        f"Python {v['python']}, pyarrow {v['pyarrow']}, dask {v.get('dask')}, distributed {v.get('distributed')}, "
        f"pandas {v.get('pandas')}, lakehouse {v['lakehouse']} ({v['lakehouse_git']}).",
        f"Rows: {p['rows']:,}; repeats {p['repeat']} (medians); LocalCluster({p['workers']} workers x "
        f"{p['threads']} thread); dask DataFrame of {p['partitions']} partitions, persisted on the workers in "
        f"{res.get('persist_seconds', 0):.1f} s before timing; runtime {p['runtime_s']:.0f} s. "
        f"Command: `{p.get('command', '')}`.",
        "",
        "| operation | path | median s | min s | rows | files | dask partitions | single-process / this "
        "| dask parquet / this |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    figs = res["figures"]
    for f in figs:
        base = {b["path"]: b["median"] for b in figs if b["op"] == f["op"]}
        r1 = base.get("single", 0) / f["median"] if f["median"] else 0
        r2 = base.get("dask-pq", 0) / f["median"] if f["median"] else 0
        lines.append(f"| {f['op']} | {f['label']} | {f['median']:.3f} | {f['min']:.3f} | {_fmt(f.get('rows'))} | "
                     f"{_fmt(f.get('files'))} | {_fmt(f.get('partitions'))} | {r1:.2f} | {r2:.2f} |")
    lines += ["", "Ratios: baseline median / this median (> 1 = this path is faster than the baseline). "
              "Single process = `lh.write_table` / `Table.to_arrow`; dask parquet = `to_parquet` / "
              "`read_parquet` of the `to_parquet` output, on the same cluster. Dask reads include `.compute()` "
              "gathering every row into the driver process."]
    return "\n".join(lines) + "\n"

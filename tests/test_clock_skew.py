"""Clock skew: commit timestamps stay strictly increasing and ``as_of`` answers stay exact and stable.

Three writers run in spawned processes on one table, on local disk and on S3 (the moto server of the
``s3`` fixture; the writers and the subprocesses get the URI and the storage options). Each
process's wall clock is skewed by patching ``time.time``/``time.time_ns`` and
``lakehouse.commit.now_ms`` (the commit timestamp's source) inside it: ``normal`` (no skew),
``behind`` (5 minutes behind) and ``jumper`` (correct at first, then jumping back an hour).
``lakehouse.transaction`` and ``lakehouse.write`` also read the clock (``lakehouse.clock.now_ms``,
i.e. ``time.time_ns``), but only for the ``deletion_time`` / ``modification_time`` of file actions,
which no read path uses. They commit first in a fixed interleaving driven by the test, then all at
once.

Checked:

1. stored commit timestamps (``Table.history()``) strictly increase with the version, and each is
   ``max(writer's clock, previous + 1)`` (§11.3 of docs/format.md) -- so a skewed writer's commit
   lands exactly 1 ms after its predecessor;
2. ``as_of(t)`` is the newest version with timestamp ``<= t`` for instants exactly at, between,
   just before (1 µs, 1 ms) and after the commit timestamps, and ``VersionNotFoundError`` before
   version 0; the same instant in any time zone gives the same answer;
3. naive datetimes are refused (``ValueError``) whatever ``TZ`` is: they name no instant, and
   guessing UTC or local time would make the answer depend on the reading machine;
4. the answers (and the history and the rows) are identical in subprocesses with ``TZ`` set to
   ``America/Los_Angeles`` and ``Asia/Kolkata``, and after copying the table folder with new,
   scrambled file modification times -- time travel reads only the timestamps in the log. On S3 the
   copy is every object under the table's prefix copied to another prefix (each copy gets a new
   Last-Modified, which S3 cannot set back).

Sizes (``Plan``): on local disk 48 commits and every commit's instants, each in every zone. On S3 an
``as_of`` read costs ~35 requests on moto's server, so it runs 33 commits and probes a sample: the
4 edges, 3 commits (the first, the last, one pinned 1 ms after its predecessor) and 2 random instants,
each in one zone (the process's local zone for every other one); rows at 2 commit timestamps.

A last test puts the whole clock in the hours after 2^30 and 2^31 seconds since the epoch, where a
float conversion of ``as_of`` (``int(t.timestamp() * 1000)``) lands 1 ms early for a quarter of
the millisecond instants and so missed commits made exactly at ``t``.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import time
import traceback
import uuid
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import fsspec
import pyarrow as pa
import pytest

import lakehouse as lh

SCHEMA = pa.schema([("writer", pa.string()), ("seq", pa.int32())])
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
SKEW = {"normal": 0.0, "behind": -300.0, "jumper": 0.0}
JUMP = -3600.0
ROUNDS = 8  # scheduled rounds (one commit per writer each); the jumper jumps after round 3
TZ_EXPECTED = {"America/Los_Angeles": {-7 * 3600, -8 * 3600}, "Asia/Kolkata": {5 * 3600 + 1800}}
ZONES: list[dt.tzinfo] = [
    dt.timezone.utc,
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
    dt.timezone(dt.timedelta(hours=-8)),
    zoneinfo.ZoneInfo("America/Los_Angeles"),
    zoneinfo.ZoneInfo("Asia/Kolkata"),
]


@dataclass(frozen=True)
class Plan:
    """How much one backend's run does. On moto's server an ``as_of`` read costs ~35 requests (refresh,
    bisection over the log, then the snapshot's state) and ~0.4 s, so S3 probes a sample."""

    burst: int
    """Appends per writer in the last, all-at-once phase."""
    commits: int | None
    """Commits whose instants (at, 1 µs before, 0.5 ms after) are probed; None: every commit."""
    randoms: int
    """Random instants between the first and the last commit."""
    zones: Literal["every", "one"]
    """``every``: each probe in every zone of ``ZONES`` and the local one (TZ subprocesses and the copy:
    UTC and the local one); ``one``: each probe in one zone, the local one for every other probe."""
    rows: int | None
    """Versions whose rows are read at their commit's timestamp; None: every version."""


LOCAL = Plan(burst=8, commits=None, randoms=30, zones="every", rows=None)
ON_S3 = Plan(burst=3, commits=3, randoms=2, zones="one", rows=2)


def _ms(t: dt.datetime) -> int:
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def _instant(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


# --------------------------------------------------------------------------- skewed writers (spawned)


def _writer(uri: str, opts: dict[str, Any], name: str, conn) -> None:
    """A writer whose wall clock is off by ``SKEW[name]`` seconds (changed by a ``("skew", s)`` command).

    Commands: ``("append", n)`` -> n appends, answered with ``[(seq, version, clock_before_ms,
    clock_after_ms)]``; ``("skew", seconds)``; ``("stop", None)``.
    """
    try:
        import lakehouse.commit as lc

        real_time = time.time
        skew = [SKEW[name]]

        def now() -> float:
            return real_time() + skew[0]

        setattr(time, "time", now)  # noqa: B010 - every wall-clock reading in this process
        setattr(time, "time_ns", lambda: int(now() * 1e9))  # noqa: B010
        setattr(lc, "now_ms", lambda: int(now() * 1000))  # noqa: B010 - the commit timestamp's clock
        t = lh.Table.open(uri, storage_options=opts)
        conn.send(("ready", lc.now_ms() - int(real_time() * 1000)))
        seq = 0
        while True:
            cmd, arg = conn.recv()
            if cmd == "stop":
                break
            if cmd == "skew":
                skew[0] = arg
                conn.send(("ok", lc.now_ms() - int(real_time() * 1000)))
                continue
            done = []
            for _ in range(arg):
                seq += 1
                before = lc.now_ms()
                v = t.append(pa.table({"writer": [name], "seq": pa.array([seq], pa.int32())}, schema=SCHEMA))
                done.append((seq, v, before, lc.now_ms()))
            conn.send(("ok", done))
    except BaseException:
        conn.send(("error", traceback.format_exc()))


class _Writers:
    def __init__(self, uri: str, opts: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.conns: dict[str, Any] = {}
        self.procs: list[Any] = []
        for name in SKEW:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_writer, args=(uri, opts, name, child))
            p.start()
            self.conns[name] = parent
            self.procs.append(p)
        for name in SKEW:
            offset = self.recv(name)
            assert abs(offset - SKEW[name] * 1000) < 1000, (name, offset)

    def recv(self, name: str) -> Any:
        assert self.conns[name].poll(300), f"writer {name} did not answer"
        kind, payload = self.conns[name].recv()
        assert kind != "error", f"writer {name} failed:\n{payload}"
        return payload

    def send(self, name: str, cmd: str, arg: Any) -> None:
        self.conns[name].send((cmd, arg))

    def close(self) -> None:
        for name, p in zip(self.conns, self.procs, strict=False):
            if p.is_alive():
                with contextlib.suppress(OSError):
                    self.conns[name].send(("stop", None))
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


def _write_with_skewed_clocks(uri: str, opts: dict[str, Any],
                              burst: int) -> tuple[list[tuple[str, int, int, int, int, bool]], int]:
    """Run the three writers; returns ``[(writer, seq, version, clock_before, clock_after, scheduled)]``
    and the number of commits made while the writer's clock was behind."""
    rng = random.Random(1234)
    writers = _Writers(uri, opts)
    acks: list[tuple[str, int, int, int, int, bool]] = []
    skewed = 0
    try:
        names = list(SKEW)
        for r in range(ROUNDS):
            if r == 3:
                writers.send("jumper", "skew", JUMP)
                assert abs(writers.recv("jumper") - JUMP * 1000) < 1000
            rng.shuffle(names)
            for name in names:
                writers.send(name, "append", 1)
                (ack,) = writers.recv(name)
                acks.append((name, *ack, True))
                skewed += name == "behind" or (name == "jumper" and r >= 3)
                time.sleep(rng.choice([0, 0, 0.002, 0.02]))  # leave gaps for instants between commits
        for name in SKEW:
            writers.send(name, "append", burst)
        for name in SKEW:
            acks.extend((name, *ack, False) for ack in writers.recv(name))
    finally:
        writers.close()
    return acks, skewed


# --------------------------------------------------------------------------- answers (any process)


def _answers(uri: str, opts: dict[str, Any], probes: list[int], rows_at: list[int] | None, *,
             zones: Literal["every", "utc+local", "one"]) -> dict[str, Any]:
    """Everything time travel says about the table: its history, the as_of version of every probe (the
    same in each time zone tried: all of ``ZONES`` plus this process's local zone, UTC plus the local
    zone, or one zone per probe), the rows and snapshot timestamps at the timestamps of the commits
    ``rows_at`` (None: all)."""
    t = lh.Table.open(uri, storage_options=opts)
    history = [(c.version, _ms(c.timestamp), c.operation) for c in reversed(t.history())]
    local = dt.datetime.now().astimezone().tzinfo  # this process's TZ
    every = {"every": [*ZONES, local], "utc+local": [ZONES[0], local]}
    as_of: list[int | None] = []
    for i, us in enumerate(probes):
        seen: list[int | None] = []
        for tz in every.get(zones, [local if i % 2 else ZONES[i // 2 % len(ZONES)]]):
            try:
                seen.append(t.snapshot(as_of=_instant(us).astimezone(tz)).version)
            except lh.VersionNotFoundError:
                seen.append(None)
        assert len(set(seen)) == 1, f"{_instant(us).isoformat()}: answers differ by time zone: {seen}"
        as_of.append(seen[0])
    naive_refused = 0
    for us in probes[:: max(1, len(probes) // 20)]:
        for naive in (_instant(us).replace(tzinfo=None), _instant(us).astimezone(local).replace(tzinfo=None)):
            with pytest.raises(ValueError, match="aware"):
                t.snapshot(as_of=naive)
            naive_refused += 1
    rows, stamps = {}, {}
    for v, ms, _ in history:
        if rows_at is not None and v not in rows_at:
            continue
        s = t.snapshot(as_of=_instant(ms * 1000))
        rows[v] = sorted(zip(*[s.to_arrow().column(c).to_pylist() for c in ("writer", "seq")], strict=False))
        stamps[v] = (s.version, _ms(s.timestamp), _ms(t.snapshot(version=v).timestamp))
    offset = dt.datetime.now().astimezone().utcoffset()
    return {"history": history, "as_of": as_of, "rows": rows, "stamps": stamps, "naive_refused": naive_refused,
            "utc_offset_s": offset.total_seconds() if offset is not None else None}


def _answers_main() -> None:
    """Entry point of the ``TZ=...`` subprocesses: arguments as JSON in argv, answers as JSON on stdout."""
    time.tzset()
    args = json.loads(sys.argv[1])
    json.dump(_answers(args["uri"], args["opts"], args["probes"], args["rows_at"], zones=args["zones"]), sys.stdout)


def _start_answers(uri: str, opts: dict[str, Any], probes: list[int], rows_at: list[int] | None,
                   zones: Literal["utc+local", "one"], tz: str) -> subprocess.Popen[str]:
    """Start ``_answers`` in a subprocess with ``TZ=tz`` (arguments as JSON in argv): several such
    subprocesses (and the parent) work side by side. ``_collect`` gets the answers."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_clock_skew as m; " \
           "m._answers_main()"
    args = json.dumps({"uri": uri, "opts": opts, "probes": probes, "rows_at": rows_at, "zones": zones})
    p = subprocess.Popen([sys.executable, "-c", code, args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env={**os.environ, "TZ": tz}, text=True)
    return p


def _collect(p: subprocess.Popen[str], tz: str) -> dict[str, Any]:
    try:
        stdout, stderr = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, f"TZ={tz}: {stderr}"
    return json.loads(stdout)


def _normalised(answers: dict[str, Any]) -> dict[str, Any]:
    """JSON round trip (tuples -> lists, int keys -> str) minus what legitimately differs per process."""
    out = json.loads(json.dumps(answers))
    out.pop("utc_offset_s")
    return out


# --------------------------------------------------------------------------- the tests


def _probes(stamps: list[int], versions: list[int], randoms: int, rng: random.Random) -> list[int]:
    """Instants (µs since the epoch): at, 1 µs before and 0.5 ms after the commits ``versions``; before
    version 0 (by 1 µs, 1 ms and an hour); a day after the last commit; and random ones in between."""
    out = [stamps[0] * 1000 - 1, stamps[0] * 1000 - 1000, stamps[0] * 1000 - 3_600_000_000,
           stamps[-1] * 1000 + 86_400_000_000]
    for ms in (stamps[v] for v in versions):
        out += [ms * 1000, ms * 1000 - 1, ms * 1000 + 500]
    out += [rng.randint(stamps[0] * 1000 - 5000, stamps[-1] * 1000 + 5000) for _ in range(randoms)]
    return out


def _expected(stamps: list[int], us: int) -> int | None:
    v = bisect.bisect_right(stamps, us // 1000) - 1  # floor to ms: sub-millisecond parts are ignored
    return v if v >= 0 else None


def _copy_local(uri: str, opts: dict[str, Any], stamps: list[int], tmp_path: Path) -> str:
    """Copy the table folder; give every file a new, scrambled modification time (hours around the
    commits)."""
    copy = tmp_path / "copy"
    shutil.copytree(uri, copy, copy_function=shutil.copy)
    rng = random.Random(7)
    for path in copy.rglob("*"):
        if path.is_file():
            when = stamps[0] / 1000 + rng.uniform(-7200, 7200)
            os.utime(path, (when, when))
    return str(copy)


def _copy_s3(uri: str, opts: dict[str, Any], stamps: list[int], tmp_path: Path) -> str:
    """Copy every object under the table's prefix to a new prefix (server-side copies, run concurrently;
    on a fresh filesystem instance, so nothing is listed from a cache), and check the copy lists the
    same names and sizes. Each copy gets a new Last-Modified (the copy time, after every commit); S3
    cannot set it, so it is not scrambled as on disk."""
    fs, root = fsspec.core.url_to_fs(uri, **opts, skip_instance_cache=True)
    root = root.rstrip("/")
    dest = f"{root}-copy-{uuid.uuid4().hex[:8]}"
    src = {p[len(root):]: info["size"] for p, info in fs.find(root, detail=True).items()}
    assert src and all(name.startswith("/") for name in src), list(src)[:3]
    fs.copy([root + name for name in src], [dest + name for name in src])
    fs.invalidate_cache()
    copied = {p[len(dest):]: info["size"] for p, info in fs.find(dest, detail=True).items()}
    assert copied == src, "the copy's names or sizes differ from the original's"
    return f"s3://{dest}"


def _sample(population: list[int], k: int | None, must: set[int], rng: random.Random) -> list[int] | None:
    """None (all) if ``k`` is None, else ``must`` plus random others, ``k`` in all, ascending."""
    if k is None:
        return None
    rest = sorted(set(population) - must)
    return sorted(must | set(rng.sample(rest, max(0, min(k - len(must), len(rest))))))


def _clock_skew_check(uri: str, opts: dict[str, Any], plan: Plan, copy: Any, tmp_path: Path, label: str) -> None:
    lh.Table.create(uri, SCHEMA, properties={"checkpoint_interval": 10},  # as_of across checkpoints too
                    storage_options=opts)
    started = time.monotonic()
    acks, skewed = _write_with_skewed_clocks(uri, opts, plan.burst)
    took = {"write": time.monotonic() - started}
    t = lh.Table.open(uri, storage_options=opts)
    history = list(reversed(t.history()))
    stamps = [_ms(c.timestamp) for c in history]
    n = len(SKEW) * (ROUNDS + plan.burst)
    assert [c.version for c in history] == list(range(n + 1))
    assert sorted(a[2] for a in acks) == list(range(1, n + 1)), "one version per acknowledged append"
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False)), f"timestamps not increasing: {stamps}"

    # each timestamp is max(the writer's clock when committing, previous + 1)
    pinned: list[int] = []
    for name, _seq, v, before, after, scheduled in acks:
        prev, ts = stamps[v - 1], stamps[v]
        assert ts == prev + 1 or before <= ts <= after, (name, v, prev, ts, before, after)
        if scheduled and (name == "behind" or before < prev - 3_000_000):
            assert ts == prev + 1, f"{name}'s commit {v} should sit 1 ms after its predecessor"
            pinned.append(v)
    assert len(pinned) == skewed > 0

    rows = sorted(zip(*[t.to_arrow().column(c).to_pylist() for c in ("writer", "seq")], strict=False))
    assert rows == sorted((a[0], a[1]) for a in acks), "every acknowledged append exactly once"

    # as_of: the newest version with timestamp <= t, in every time zone (a sample of the commits on S3:
    # always the first and the last, and two pinned 1 ms after their predecessor)
    rng = random.Random(99)
    versions = _sample(list(range(n + 1)), plan.commits, {1, n, *rng.sample(pinned, 1)}, rng)
    rows_at = _sample(list(range(1, n)), plan.rows, {0}, rng)
    probes = _probes(stamps, list(range(n + 1)) if versions is None else versions, plan.randoms, rng)
    mark = time.monotonic()
    here = _answers(uri, opts, probes, rows_at, zones=plan.zones)
    took["as_of here"] = time.monotonic() - mark
    for us, got in zip(probes, here["as_of"], strict=False):
        assert got == _expected(stamps, us), f"as_of {_instant(us).isoformat()}: {got}, not {_expected(stamps, us)}"
    assert here["history"] == [(c.version, ms, c.operation) for c, ms in zip(history, stamps, strict=False)]
    assert all(s == (v, stamps[v], stamps[v]) for v, s in here["stamps"].items()), "snapshot versions/timestamps"
    assert [len(r) for r in here["rows"].values()] == (rows_at or list(range(n + 1))), "rows at commit timestamps"
    assert here["naive_refused"] >= min(20, 2 * len(probes))

    # the same answers under other TZ settings (subprocesses) ...
    elsewhere: Literal["utc+local", "one"] = "utc+local" if plan.zones == "every" else "one"
    mark = time.monotonic()
    procs = {tz: _start_answers(uri, opts, probes, rows_at, elsewhere, tz) for tz in TZ_EXPECTED}
    try:
        # ... and (meanwhile, here) in a copy of the table with new file times: time travel reads only
        # the timestamps in the log
        copied = copy(uri, opts, stamps, tmp_path)
        took["copy"] = time.monotonic() - mark
        there = _answers(copied, opts, probes, rows_at, zones=elsewhere)
        assert _normalised(there) == _normalised(here), "answers differ in the copy"
        took["answers in the copy"] = time.monotonic() - mark - took["copy"]
    except BaseException:
        for p in procs.values():
            p.kill()
            p.wait()
        raise
    answers = {tz: _collect(p, tz) for tz, p in procs.items()}
    for tz, there in answers.items():
        assert there["utc_offset_s"] in TZ_EXPECTED[tz], f"TZ={tz} had no effect ({there['utc_offset_s']})"
        assert _normalised(there) == _normalised(here), f"answers differ under TZ={tz}"
    took["2 TZ subprocesses (side by side)"] = time.monotonic() - mark
    behind = sum(1 for a in acks if a[0] == "behind")
    reads = len(probes) * (len(ZONES) + 1 if plan.zones == "every" else 1)
    print(f"\nclock skew on {label}: {n} commits ({behind} by a writer 5 min behind, {skewed} scheduled ones with a "
          f"clock behind, pinned to previous + 1 ms); {len(probes)} instants "
          f"({'all' if versions is None else len(versions)} commits probed, {reads} as_of reads here) agree with "
          f"the model, rows at {len(here['rows'])} commit timestamps, the same in TZ={', '.join(TZ_EXPECTED)} and "
          f"in a copy with new file times; {time.monotonic() - started:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in took.items())})")


def test_clock_skew_keeps_timestamps_monotonic_and_as_of_exact(tmp_path):
    _clock_skew_check(str(tmp_path / "t"), {}, LOCAL, _copy_local, tmp_path, "local disk")


@pytest.mark.s3
def test_clock_skew_keeps_timestamps_monotonic_and_as_of_exact_s3(s3, tmp_path):
    uri = f"s3://lakehouse-test/skew-{uuid.uuid4().hex}"
    _clock_skew_check(uri, s3.storage_options, ON_S3, _copy_s3, tmp_path, "S3 (moto)")


@pytest.mark.parametrize("start_s", [2**30, 2**31], ids=["2004-01-10", "2038-01-19"])
def test_as_of_exactly_at_a_commit_finds_it_whatever_the_clock(monkeypatch, start_s):
    import lakehouse.commit as lc

    clock = iter(range(start_s * 1000, start_s * 1000 + 10**7, 7919))  # a clock ticking 7.919 s per reading
    monkeypatch.setattr(lc, "now_ms", lambda: next(clock))
    t = lh.Table.create(f"memory://skew-{start_s}-{random.randrange(1 << 30)}", SCHEMA)
    for seq in range(40):
        t.append(pa.table({"writer": ["w"], "seq": pa.array([seq], pa.int32())}, schema=SCHEMA))
    history = list(reversed(t.history()))
    for c in history:
        assert t.snapshot(as_of=c.timestamp).version == c.version, c.timestamp.isoformat()
        assert t.snapshot(as_of=c.timestamp + dt.timedelta(microseconds=999)).version == c.version
        if c.version:
            before = c.timestamp - dt.timedelta(microseconds=1)
            assert t.snapshot(as_of=before).version == c.version - 1
    with pytest.raises(lh.VersionNotFoundError):
        t.snapshot(as_of=history[0].timestamp - dt.timedelta(microseconds=1))
    # the extremes, in zones where they lie outside datetime's range once converted to UTC
    with pytest.raises(lh.VersionNotFoundError):
        t.snapshot(as_of=dt.datetime.min.replace(tzinfo=zoneinfo.ZoneInfo("Asia/Kolkata")))
    assert t.snapshot(as_of=dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-8)))).version == 40


def test_as_of_after_log_clean_up_starts_from_the_oldest_entry_left():
    t = lh.Table.create(f"memory://skew-cleanup-{random.randrange(1 << 30)}", SCHEMA)
    for seq in range(4):
        t.append(pa.table({"writer": ["w"], "seq": pa.array([seq], pa.int32())}, schema=SCHEMA))
    t.checkpoint()  # at version 4
    t.append(pa.table({"writer": ["w"], "seq": pa.array([4], pa.int32())}, schema=SCHEMA))
    before = {c.version: c.timestamp for c in t.history()}
    assert t.cleanup_log(retention=dt.timedelta(0), enforce_retention=False) == 4
    assert t.snapshot(as_of=before[4]).version == 4  # was: "no version existed" (entry 0 is gone)
    assert t.snapshot(as_of=before[4] + dt.timedelta(microseconds=999)).version == 4
    assert t.snapshot(as_of=before[5]).version == 5
    for v in range(4):
        with pytest.raises(lh.VersionNotFoundError, match="cleaned up"):
            t.snapshot(as_of=before[v])

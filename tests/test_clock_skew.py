"""Clock skew: commit timestamps stay strictly increasing and ``as_of`` answers stay exact and stable.

Three writers run in spawned processes on one local table. Each process's wall clock is skewed by
patching ``time.time``/``time.time_ns`` and ``lakehouse.commit._now_ms`` (the commit timestamp's
source) inside it: ``normal`` (no skew), ``behind`` (5 minutes behind) and ``jumper`` (correct at
first, then jumping back an hour). ``lakehouse.transaction`` and ``lakehouse.write`` also read
``time.time``, but only for the ``deletion_time`` / ``modification_time`` of file actions, which no
read path uses. They commit first in a fixed interleaving driven by the test, then all at once.

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
   scrambled file modification times -- time travel reads only the timestamps in the log.

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
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pytest

import lakehouse as lh

SCHEMA = pa.schema([("writer", pa.string()), ("seq", pa.int32())])
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
SKEW = {"normal": 0.0, "behind": -300.0, "jumper": 0.0}
JUMP = -3600.0
ROUNDS = 8  # scheduled rounds (one commit per writer each); the jumper jumps after round 3
BURST = 8  # then each writer appends this many times, all at once
TZ_EXPECTED = {"America/Los_Angeles": {-7 * 3600, -8 * 3600}, "Asia/Kolkata": {5 * 3600 + 1800}}
ZONES: list[dt.tzinfo] = [
    dt.timezone.utc,
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
    dt.timezone(dt.timedelta(hours=-8)),
    zoneinfo.ZoneInfo("America/Los_Angeles"),
    zoneinfo.ZoneInfo("Asia/Kolkata"),
]


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
        setattr(lc, "_now_ms", lambda: int(now() * 1000))  # noqa: B010 - the commit timestamp's clock
        t = lh.Table.open(uri, storage_options=opts)
        conn.send(("ready", lc._now_ms() - int(real_time() * 1000)))
        seq = 0
        while True:
            cmd, arg = conn.recv()
            if cmd == "stop":
                break
            if cmd == "skew":
                skew[0] = arg
                conn.send(("ok", lc._now_ms() - int(real_time() * 1000)))
                continue
            done = []
            for _ in range(arg):
                seq += 1
                before = lc._now_ms()
                v = t.append(pa.table({"writer": [name], "seq": pa.array([seq], pa.int32())}, schema=SCHEMA))
                done.append((seq, v, before, lc._now_ms()))
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


def _write_with_skewed_clocks(uri: str, opts: dict[str, Any]) -> tuple[list[tuple[str, int, int, int, int, bool]], int]:
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
            writers.send(name, "append", BURST)
        for name in SKEW:
            acks.extend((name, *ack, False) for ack in writers.recv(name))
    finally:
        writers.close()
    return acks, skewed


# --------------------------------------------------------------------------- answers (any process)


def _answers(uri: str, opts: dict[str, Any], probes: list[int], *, every_zone: bool = True) -> dict[str, Any]:
    """Everything time travel says about the table: its history, the as_of version of every probe (the
    same in each time zone tried: all of ``ZONES`` or just UTC, plus this process's local zone), the
    rows at every commit's timestamp and the snapshot timestamps."""
    t = lh.Table.open(uri, storage_options=opts)
    history = [(c.version, _ms(c.timestamp), c.operation) for c in reversed(t.history())]
    local = dt.datetime.now().astimezone().tzinfo  # this process's TZ
    zones = [*(ZONES if every_zone else ZONES[:1]), local]
    as_of: list[int | None] = []
    for us in probes:
        seen: list[int | None] = []
        for tz in zones:
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
        s = t.snapshot(as_of=_instant(ms * 1000))
        rows[v] = sorted(zip(*[s.to_arrow().column(c).to_pylist() for c in ("writer", "seq")], strict=False))
        stamps[v] = (s.version, _ms(s.timestamp), _ms(t.snapshot(version=v).timestamp))
    offset = dt.datetime.now().astimezone().utcoffset()
    return {"history": history, "as_of": as_of, "rows": rows, "stamps": stamps, "naive_refused": naive_refused,
            "utc_offset_s": offset.total_seconds() if offset is not None else None}


def _answers_main() -> None:
    """Entry point of the ``TZ=...`` subprocesses: arguments as JSON on stdin, answers as JSON on stdout."""
    time.tzset()
    args = json.load(sys.stdin)
    json.dump(_answers(args["uri"], args["opts"], args["probes"], every_zone=False), sys.stdout)


def _answers_with_tz(uri: str, opts: dict[str, Any], probes: list[int], zones: list[str]) -> dict[str, dict[str, Any]]:
    """``_answers`` in one subprocess per ``TZ`` setting (run side by side)."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_clock_skew as m; " \
           "m._answers_main()"
    procs = {tz: subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env={**os.environ, "TZ": tz}, text=True) for tz in zones}
    out = {}
    for tz, p in procs.items():
        try:
            stdout, stderr = p.communicate(json.dumps({"uri": uri, "opts": opts, "probes": probes}), timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, f"TZ={tz}: {stderr}"
        out[tz] = json.loads(stdout)
    return out


def _normalised(answers: dict[str, Any]) -> dict[str, Any]:
    """JSON round trip (tuples -> lists, int keys -> str) minus what legitimately differs per process."""
    out = json.loads(json.dumps(answers))
    out.pop("utc_offset_s")
    return out


# --------------------------------------------------------------------------- the tests


def _probes(stamps: list[int], rng: random.Random) -> list[int]:
    """Instants (µs since the epoch): at, 1 µs before and 0.5 ms after every commit; before version 0 (by
    1 µs, 1 ms and an hour); a day after the last commit; and random ones in between."""
    out = [stamps[0] * 1000 - 1, stamps[0] * 1000 - 1000, stamps[0] * 1000 - 3_600_000_000,
           stamps[-1] * 1000 + 86_400_000_000]
    for ms in stamps:
        out += [ms * 1000, ms * 1000 - 1, ms * 1000 + 500]
    out += [rng.randint(stamps[0] * 1000 - 5000, stamps[-1] * 1000 + 5000) for _ in range(30)]
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
    """Copy every object under the table's prefix to a new prefix (server-side copies, on a fresh
    filesystem instance: nothing listed from a cache). Each copy gets a new Last-Modified (the copy
    time, after every commit); S3 offers no way to set it, so it is not scrambled as on disk."""
    fs, root = fsspec.core.url_to_fs(uri, **opts, skip_instance_cache=True)
    root = root.rstrip("/")
    dest = f"{root}-copy-{uuid.uuid4().hex[:8]}"
    src = sorted(fs.find(root))
    assert src and all(p.startswith(f"{root}/") for p in src), src[:3]
    for path in src:
        fs.copy(path, dest + path[len(root):])
    fs.invalidate_cache()
    copied = sorted(p[len(dest):] for p in fs.find(dest))
    assert copied == [p[len(root):] for p in src], "the copy differs from the original's listing"
    assert all(fs.info(dest + p[len(root):])["size"] == fs.info(p)["size"] for p in src)
    return f"s3://{dest}"


def _clock_skew_check(uri: str, opts: dict[str, Any], copy: Any, tmp_path: Path, label: str) -> None:
    lh.Table.create(uri, SCHEMA, properties={"checkpoint_interval": 10},  # as_of across checkpoints too
                    storage_options=opts)
    started = time.monotonic()
    acks, skewed = _write_with_skewed_clocks(uri, opts)
    took = {"write": time.monotonic() - started}
    t = lh.Table.open(uri, storage_options=opts)
    history = list(reversed(t.history()))
    stamps = [_ms(c.timestamp) for c in history]
    n = len(SKEW) * (ROUNDS + BURST)
    assert [c.version for c in history] == list(range(n + 1))
    assert sorted(a[2] for a in acks) == list(range(1, n + 1)), "one version per acknowledged append"
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False)), f"timestamps not increasing: {stamps}"

    # each timestamp is max(the writer's clock when committing, previous + 1)
    pinned = 0
    for name, _seq, v, before, after, scheduled in acks:
        prev, ts = stamps[v - 1], stamps[v]
        assert ts == prev + 1 or before <= ts <= after, (name, v, prev, ts, before, after)
        if scheduled and (name == "behind" or before < prev - 3_000_000):
            assert ts == prev + 1, f"{name}'s commit {v} should sit 1 ms after its predecessor"
            pinned += 1
    assert pinned == skewed > 0

    rows = sorted(zip(*[t.to_arrow().column(c).to_pylist() for c in ("writer", "seq")], strict=False))
    assert rows == sorted((a[0], a[1]) for a in acks), "every acknowledged append exactly once"

    # as_of: the newest version with timestamp <= t, in every time zone
    probes = _probes(stamps, random.Random(99))
    mark = time.monotonic()
    here = _answers(uri, opts, probes)
    took["as_of here"] = time.monotonic() - mark
    for us, got in zip(probes, here["as_of"], strict=False):
        assert got == _expected(stamps, us), f"as_of {_instant(us).isoformat()}: {got}, not {_expected(stamps, us)}"
    assert here["history"] == [(c.version, ms, c.operation) for c, ms in zip(history, stamps, strict=False)]
    assert all(s == (v, stamps[v], stamps[v]) for v, s in here["stamps"].items()), "snapshot versions/timestamps"
    assert [len(r) for r in here["rows"].values()] == list(range(n + 1)), "rows at each commit's timestamp"
    assert here["naive_refused"] >= 20

    # the same answers under other TZ settings ...
    mark = time.monotonic()
    for tz, there in _answers_with_tz(uri, opts, probes, list(TZ_EXPECTED)).items():
        assert there["utc_offset_s"] in TZ_EXPECTED[tz], f"TZ={tz} had no effect ({there['utc_offset_s']})"
        assert _normalised(there) == _normalised(here), f"answers differ under TZ={tz}"
    took["2 TZ subprocesses"] = time.monotonic() - mark

    # ... and in a copy of the table (new file times: time travel reads only the timestamps in the log)
    mark = time.monotonic()
    copied = copy(uri, opts, stamps, tmp_path)
    assert _normalised(_answers(copied, opts, probes, every_zone=False)) == _normalised(here), "differs in the copy"
    took["copy"] = time.monotonic() - mark
    behind = sum(1 for a in acks if a[0] == "behind")
    print(f"\nclock skew on {label}: {n} commits ({behind} by a writer 5 min behind, {skewed} scheduled ones with a "
          f"clock behind, pinned to previous + 1 ms); {len(probes)} instants x {len(ZONES) + 1} zones agree with "
          f"the model, in TZ={', '.join(TZ_EXPECTED)} and in a copy with new file times; "
          f"{time.monotonic() - started:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in took.items())})")


def test_clock_skew_keeps_timestamps_monotonic_and_as_of_exact(tmp_path):
    _clock_skew_check(str(tmp_path / "t"), {}, _copy_local, tmp_path, "local disk")


@pytest.mark.s3
def test_clock_skew_keeps_timestamps_monotonic_and_as_of_exact_s3(s3, tmp_path):
    uri = f"s3://lakehouse-test/skew-{uuid.uuid4().hex}"
    _clock_skew_check(uri, s3.storage_options, _copy_s3, tmp_path, "S3 (moto)")


@pytest.mark.parametrize("start_s", [2**30, 2**31], ids=["2004-01-10", "2038-01-19"])
def test_as_of_exactly_at_a_commit_finds_it_whatever_the_clock(monkeypatch, start_s):
    import lakehouse.commit as lc

    clock = iter(range(start_s * 1000, start_s * 1000 + 10**7, 7919))  # a clock ticking 7.919 s per reading
    monkeypatch.setattr(lc, "_now_ms", lambda: next(clock))
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

"""A history check: several processes mix unique appends with reads of the latest and of older versions,
and every answer is checked against the model built from the final table's history.

Six spawned processes run for ``LH_HISTORY_SECONDS`` (default 8 s on local disk; the S3 run takes
``LH_HISTORY_S3_SECONDS``, default 4 s; the issue's long run is ``LH_HISTORY_SECONDS=60``). Each one
appends once and reads the latest version once, then loops over a random mix of

- appending a batch of rows tagged ``(writer, seq)`` (1-3 rows, each with a unique ``rid``) and
  recording the version the append was acknowledged at;
- reading the latest version (a fresh ``Table.open`` or ``refresh()`` of its long-lived handle);
- reading an older version, by number (``snapshot(version=...)``) or by time (``snapshot(as_of=...)``
  at an instant between version 0 and the newest commit the process knows, in a random time zone).

Afterwards the parent checks:

1. the versions are 0 (create) and one per acknowledged append, nothing else; every acknowledged
   append is in the final table exactly once, and its history record names its rows;
2. every read of version ``v`` returned exactly the union of the appends acknowledged at ``<= v``;
3. reads of the latest version never go backwards within a process, see the process's own
   acknowledged appends, and (real-time order, on the system-wide monotonic clock) see every append
   acknowledged and every latest version read by any process before the read started;
4. an ``as_of`` read returned the newest version whose commit timestamp is ``<= as_of``;
5. commit timestamps strictly increase with the version.
"""

from __future__ import annotations

import bisect
import datetime as dt
import multiprocessing as mp
import os
import random
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import lakehouse as lh

PROCS = 6
SECONDS = float(os.environ.get("LH_HISTORY_SECONDS", "8"))
S3_SECONDS = float(os.environ.get("LH_HISTORY_S3_SECONDS", "4"))
SCHEMA = pa.schema([("writer", pa.int32()), ("seq", pa.int32()), ("rid", pa.int64())])
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
ZONES = [dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))]


def _rid(writer: int, seq: int, k: int) -> int:
    return (writer * 10_000_000 + seq) * 10 + k


def _batch(writer: int, seq: int) -> pa.Table:
    n = 1 + seq % 3
    return pa.table({"writer": pa.array([writer] * n, pa.int32()), "seq": pa.array([seq] * n, pa.int32()),
                     "rid": pa.array([_rid(writer, seq, k) for k in range(n)], pa.int64())}, schema=SCHEMA)


def _us(t: dt.datetime) -> int:
    """Microseconds since the epoch, exactly (no float)."""
    return (t - EPOCH) // dt.timedelta(microseconds=1)


def _rids(s: lh.Snapshot) -> np.ndarray:
    return np.asarray(s.to_arrow(columns=["rid"]).column("rid").to_numpy(), dtype=np.int64)


# --------------------------------------------------------------------------- the worker (spawned)


def _worker(uri: str, opts: dict[str, Any], me: int, seconds: float, seed: int, barrier, out) -> None:
    """One process: a random mix of appends and reads for ``seconds``; sends its records at the end.

    Records: ``(kind, start, end, ...)`` with ``start``/``end`` from ``time.monotonic()``:
    ``("append", s, e, seq, rows, version)``, ``("latest", s, e, how, version, rids)``,
    ``("version", s, e, asked, version, rids)``, ``("as_of", s, e, as_of_us, version, rids)``.
    """
    try:
        pa.set_cpu_count(1)
        pa.set_io_thread_count(2)
        rng = random.Random(seed)
        t = lh.Table.open(uri, storage_options=opts)
        first_us = _us(t.snapshot(version=0).timestamp)
        known, known_us = 0, first_us  # the newest version this process knows of, and its timestamp
        records: list[tuple[Any, ...]] = []
        seq = 0
        barrier.wait(timeout=120)
        deadline = time.monotonic() + seconds
        while (start := time.monotonic()) < deadline or len(records) < 2:
            # every process appends once and reads the latest version once, however slow the machine
            r = (0.0, 0.5)[len(records)] if len(records) < 2 else rng.random()
            if r < 0.4:
                seq += 1
                data = _batch(me, seq)
                v = t.append(data)
                records.append(("append", start, time.monotonic(), seq, data.num_rows, v))
                if v > known:
                    known, known_us = v, _us(t.snapshot(version=v).timestamp)
            elif r < 0.7:
                how = rng.choice(["open", "refresh"])
                if how == "open":
                    s = lh.Table.open(uri, storage_options=opts).snapshot()
                else:
                    t.refresh()
                    s = t.snapshot()
                rids = _rids(s)
                records.append(("latest", start, time.monotonic(), how, s.version, rids))
                if s.version > known:
                    known, known_us = s.version, _us(s.timestamp)
            elif r < 0.85:
                asked = rng.randint(0, known)
                s = t.snapshot(version=asked)
                records.append(("version", start, time.monotonic(), asked, s.version, _rids(s)))
            else:
                # an instant no later than a commit this process has seen: every version committed
                # at or before it exists already (timestamps increase with the version)
                at_us = rng.randint(first_us, known_us)
                at = (EPOCH + dt.timedelta(microseconds=at_us)).astimezone(rng.choice(ZONES))
                s = t.snapshot(as_of=at)
                records.append(("as_of", start, time.monotonic(), at_us, s.version, _rids(s)))
        out.put(("done", me, records))
    except BaseException:
        out.put(("error", me, traceback.format_exc()))


def _run(uri: str, opts: dict[str, Any], seconds: float) -> tuple[dict[int, list[tuple[Any, ...]]], float]:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(PROCS + 1), ctx.Queue()
    seed = random.randrange(1 << 30)
    procs = [ctx.Process(target=_worker, args=(uri, opts, i, seconds, seed + i, barrier, out)) for i in range(PROCS)]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=120)
        started = time.monotonic()
        results: dict[int, list[tuple[Any, ...]]] = {}
        for _ in range(PROCS):
            kind, me, payload = out.get(timeout=seconds + 300)
            assert kind == "done", f"worker {me} failed (seed {seed + me}):\n{payload}"
            results[me] = payload
        elapsed = time.monotonic() - started
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    return results, elapsed


# --------------------------------------------------------------------------- the model


@dataclass
class Model:
    """What the final table's history says every read should have returned."""

    versions: int
    stamps_ms: list[int]
    rid_version: dict[int, int] = field(default_factory=dict)
    rows_upto: list[int] = field(default_factory=list)  # rows_upto[v]: rows acknowledged at <= v

    def check_read(self, version: int, rids: np.ndarray, what: str) -> None:
        assert 0 <= version <= self.versions, f"{what}: version {version} does not exist"
        uniq = np.unique(rids)
        assert len(uniq) == len(rids), f"{what}: {len(rids) - len(uniq)} duplicated rows"
        unknown = [int(r) for r in uniq if int(r) not in self.rid_version]
        assert not unknown, f"{what}: rows of no acknowledged append: {unknown[:5]}"
        later = [int(r) for r in uniq if self.rid_version[int(r)] > version]
        assert not later, f"{what}: rows appended after version {version}: {later[:5]}"
        assert len(uniq) == self.rows_upto[version], (
            f"{what}: {len(uniq)} rows, but appends acknowledged at <= {version} hold {self.rows_upto[version]}"
        )

    def version_at(self, at_us: int) -> int:
        """The newest version whose commit timestamp is <= the instant (ms, rounded down)."""
        return bisect.bisect_right(self.stamps_ms, at_us // 1000) - 1


def _build_model(t: lh.Table, results: dict[int, list[tuple[Any, ...]]]) -> Model:
    history = list(reversed(t.history()))
    assert [c.version for c in history] == list(range(t.version + 1)), "versions are contiguous from 0"
    stamps = [(c.timestamp - EPOCH) // dt.timedelta(milliseconds=1) for c in history]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False)), "commit timestamps strictly increase"
    model = Model(versions=t.version, stamps_ms=stamps)
    acked: dict[int, tuple[int, int, int]] = {}  # version -> (writer, seq, rows)
    for me, records in results.items():
        for rec in records:
            if rec[0] == "append":
                _, _, _, seq, n, v = rec
                assert v not in acked, f"appends {acked.get(v)} and {(me, seq)} both acknowledged at version {v}"
                acked[v] = (me, seq, n)
                for k in range(n):
                    model.rid_version[_rid(me, seq, k)] = v
    assert sorted(acked) == list(range(1, t.version + 1)), "one version per acknowledged append, nothing else"
    assert history[0].operation == "create"
    total = 0
    model.rows_upto.append(0)
    for c in history[1:]:
        writer, seq, n = acked[c.version]
        assert c.info["rows_added"] == n and c.info["blind_append"], (c, writer, seq)
        total += n
        model.rows_upto.append(total)
    return model


def _check(uri: str, opts: dict[str, Any], results: dict[int, list[tuple[Any, ...]]]) -> dict[str, int]:
    final = lh.Table.open(uri, storage_options=opts)
    model = _build_model(final, results)
    # every acknowledged append is in the final table, exactly once
    model.check_read(final.version, _rids(final.snapshot()), "final table")
    counts = {"appends": 0, "latest": 0, "version": 0, "as_of": 0}
    # real-time order across processes (time.monotonic is system-wide on Linux): a read that started
    # after an append was acknowledged, or after another latest read ended, sees at least that version
    done = sorted((rec[2], rec[-1] if rec[0] == "append" else rec[4])
                  for recs in results.values() for rec in recs if rec[0] in ("append", "latest"))
    done_at = [e for e, _ in done]
    done_max = list(np.maximum.accumulate([v for _, v in done])) if done else []
    for me, records in results.items():
        last_latest, own = -1, 0
        for i, rec in enumerate(records):
            kind, start = rec[0], rec[1]
            what = f"process {me}, operation {i} ({kind})"
            if kind == "append":
                counts["appends"] += 1
                assert rec[5] > own, f"{what}: acknowledged at {rec[5]}, after its own append at {own}"
                own = rec[5]
                continue
            counts[kind] += 1
            version, rids = rec[4], rec[5]
            model.check_read(version, rids, what)
            if kind == "latest":
                assert version >= last_latest, f"{what}: latest went back from {last_latest} to {version}"
                assert version >= own, f"{what}: read version {version} misses its own append at {own}"
                last_latest = version
                j = bisect.bisect_left(done_at, start)
                if j:
                    assert version >= done_max[j - 1], (
                        f"{what}: read version {version}, but version {done_max[j - 1]} was acknowledged "
                        f"or read before this read started"
                    )
            elif kind == "version":
                assert version == rec[3], f"{what}: asked for version {rec[3]}, got {version}"
            else:
                assert version == model.version_at(rec[3]), (
                    f"{what}: as_of {EPOCH + dt.timedelta(microseconds=rec[3])} gave version {version}, "
                    f"expected {model.version_at(rec[3])}"
                )
    counts["versions"] = final.version + 1
    counts["rows"] = model.rows_upto[-1]
    return counts


def _history_check(uri: str, opts: dict[str, Any], seconds: float, label: str) -> None:
    began = time.monotonic()
    lh.Table.create(uri, SCHEMA, storage_options=opts)
    results, elapsed = _run(uri, opts, seconds)
    mark = time.monotonic()
    counts = _check(uri, opts, results)
    reads = counts["latest"] + counts["version"] + counts["as_of"]
    print(f"\nhistory check on {label}: {PROCS} processes, {elapsed:.1f} s: appends={counts['appends']} "
          f"reads={reads} (latest={counts['latest']} by-version={counts['version']} as_of={counts['as_of']}) "
          f"versions={counts['versions']} rows={counts['rows']}; all consistent "
          f"(start-up {mark - began - elapsed:.1f} s, check {time.monotonic() - mark:.1f} s)")
    assert counts["appends"] >= PROCS and counts["latest"] >= PROCS, counts


def test_history_local(tmp_path):
    _history_check(str(tmp_path / "t"), {}, SECONDS, "local disk")


@pytest.mark.s3
def test_history_s3(s3):
    _history_check(f"s3://lakehouse-test/h-{uuid.uuid4().hex}", s3.storage_options, S3_SECONDS, "S3 (moto)")


# --------------------------------------------------------------------------- log clean-up (issue 13.8)
# Two long-lived writers append while a maintainer checkpoints and cleans up the log with no
# retention, as fast as it can. Log clean-up frees the names of the entries it deletes; a writer whose
# handle predates it must never publish into such a name (format §11.5): every acknowledged append is
# in the final table exactly once, at a version no other append was acknowledged at.
CLEANUP_SECONDS = float(os.environ.get("LH_CLEANUP_SECONDS", "3"))


def _cleanup_writer(uri: str, me: int, seconds: float, barrier, out) -> None:
    try:
        pa.set_cpu_count(1)
        t = lh.Table.open(uri)  # long-lived: never re-opened, so its base can fall far behind
        acked, unknown, failed, seq = [], [], [], 0
        barrier.wait(timeout=120)
        deadline = time.monotonic() + seconds
        rng = random.Random(me)
        while time.monotonic() < deadline:
            seq += 1
            if rng.random() < 0.3:  # idle now and then, so that clean-up overtakes this handle's base
                time.sleep(rng.random() * 0.05)
            try:
                acked.append((seq, t.append(_batch(me, seq))))
            except lh.CommitStateUnknownError:
                unknown.append(seq)
            except lh.CommitError:  # a definite failure (clean-up with no retention also removes the
                failed.append(seq)  # temporary file of a conditional create in flight): not committed
        out.put(("done", me, (acked, unknown, failed)))
    except BaseException:
        out.put(("error", me, traceback.format_exc()))


def _cleanup_maintainer(uri: str, seconds: float, barrier, out) -> None:
    try:
        t = lh.Table.open(uri)
        rounds = removed = 0
        barrier.wait(timeout=120)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t.checkpoint()
            removed += t.cleanup_log(retention=dt.timedelta(0), enforce_retention=False)
            rounds += 1
        out.put(("done", -1, (rounds, removed)))
    except BaseException:
        out.put(("error", -1, traceback.format_exc()))


def test_appends_survive_a_concurrent_log_cleanup(tmp_path):
    uri = str(tmp_path / "t")
    lh.Table.create(uri, SCHEMA)
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_cleanup_writer, args=(uri, me, CLEANUP_SECONDS, barrier, out)) for me in (1, 2)]
    procs.append(ctx.Process(target=_cleanup_maintainer, args=(uri, CLEANUP_SECONDS, barrier, out)))
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=120)
        results = {}
        for _ in procs:
            kind, me, payload = out.get(timeout=CLEANUP_SECONDS + 300)
            assert kind == "done", f"process {me} failed:\n{payload}"
            results[me] = payload
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    final = lh.Table.open(uri)
    rids = _rids(final.snapshot())
    assert len(np.unique(rids)) == len(rids), "a row is in the table twice"
    present = set(rids.tolist())
    versions: dict[int, tuple[int, int]] = {}
    expected, maybe, absent = set(), set(), set()
    for me in (1, 2):
        acked, unknown, failed = results[me]
        for seq in failed:
            absent |= {_rid(me, seq, k) for k in range(_batch(me, seq).num_rows)}
        for seq, v in acked:
            assert v not in versions, f"appends {versions[v]} and {(me, seq)} both acknowledged at version {v}"
            assert v <= final.version
            versions[v] = (me, seq)
            expected |= {_rid(me, seq, k) for k in range(_batch(me, seq).num_rows)}
        for seq in unknown:
            maybe |= {_rid(me, seq, k) for k in range(_batch(me, seq).num_rows)}
    lost = expected - present
    assert not lost, f"{len(lost)} rows of acknowledged appends are missing, e.g. {sorted(lost)[:5]}"
    assert present <= expected | maybe, "rows of no append"
    assert not present & absent, "rows of a failed append"
    rounds, removed = results[-1]
    print(f"\nlog clean-up race: {len(versions)} appends acknowledged, {len(maybe)} rows unknown, "
          f"{len(absent)} rows failed, "
          f"{rounds} maintenance rounds removed {removed} entries; final version {final.version}")
    assert len(versions) >= 2 and rounds >= 1

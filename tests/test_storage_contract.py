"""The storage contract under real contention, per backend (local disk and a real S3 API server).

1. Exclusive create: several processes race ``put_if_absent`` on one key per round; exactly one
   wins each round and the stored bytes are the winner's, whole.
2. Blind appends from several processes: every acknowledged append is there exactly once, none
   fails, versions are contiguous.

Sizes are small by default; ``LH_CONTENTION_SCALE=N`` multiplies the rounds and appends.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import lakehouse as lh
from lakehouse.storage import Storage

SCALE = int(os.environ.get("LH_CONTENTION_SCALE", "1"))


class _SlowCheckThenWrite(MemoryFileSystem):
    """A store lakehouse knows no atomic create for; with the single-writer opt-in it checks then
    writes, and a pause between the two lets racers interleave, as on a real network."""

    protocol = ("plainprobe",)

    def exists(self, path, **kwargs):  # type: ignore[override]
        found = super().exists(path, **kwargs)
        time.sleep(0.002)
        return found


fsspec.register_implementation("plainprobe", _SlowCheckThenWrite, clobber=True)
PROCS = 8


def _backend(request: pytest.FixtureRequest, tmp_path) -> tuple[str, dict[str, Any]]:
    if request.param == "local":
        return str(tmp_path / "t"), {}
    server = request.getfixturevalue("s3")
    return f"s3://lakehouse-test/c-{uuid.uuid4().hex}", server.storage_options


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path) -> tuple[str, dict[str, Any]]:
    return _backend(request, tmp_path)


def _run_processes(target: Any, args: tuple[Any, ...], per_process: int) -> list[tuple[Any, ...]]:
    """Run ``target(*args, me, per_process, barrier, out)`` in PROCS spawned processes; collect
    the ``per_process`` results each puts on ``out`` (an error counts as one and ends the worker)."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(PROCS), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, i, per_process, barrier, out)) for i in range(PROCS)]
    for p in procs:
        p.start()
    results: list[tuple[Any, ...]] = []
    while len(results) < PROCS * per_process:
        results.append(out.get(timeout=600))
        if results[-1][0] == "error":
            break
    for p in procs:
        p.join(timeout=60)
    return results


def _racer(uri: str, opts: dict[str, Any], me: int, rounds: int, barrier, out) -> None:
    try:
        storage = Storage.from_uri(uri, opts)
        for r in range(rounds):
            barrier.wait(timeout=60)
            payload = f"round {r} writer {me} ".encode() * 50
            try:
                storage.put_if_absent(f"race/{r:05d}", payload)
                out.put(("won", r, me))
            except FileExistsError:
                out.put(("lost", r, me))
    except BaseException:
        out.put(("error", -1, traceback.format_exc()))


def test_exclusive_create_has_exactly_one_winner_per_round(backend):
    uri, opts = backend
    rounds = 10 * SCALE
    results = _run_processes(_racer, (uri, opts), rounds)
    errors = [r for r in results if r[0] == "error"]
    assert not errors, errors[0][2]
    winners: dict[int, list[int]] = {}
    for kind, r, me in results:
        if kind == "won":
            winners.setdefault(r, []).append(me)
    storage = Storage.from_uri(uri, opts)
    for r in range(rounds):
        assert len(winners.get(r, [])) == 1, f"round {r}: winners {winners.get(r)}"
        assert storage.read(f"race/{r:05d}") == f"round {r} writer {winners[r][0]} ".encode() * 50
    print(f"\nexclusive create on {uri.split(':')[0] if '://' in uri else 'local'}: "
          f"{PROCS} processes x {rounds} rounds, one winner in every round")


def _appender(uri: str, opts: dict[str, Any], me: int, n: int, barrier, out) -> None:
    try:
        t = lh.Table.open(uri, storage_options=opts)
        barrier.wait(timeout=60)
        for seq in range(n):
            v = t.append(pa.table({"writer": pa.array([me], pa.int32()), "seq": pa.array([seq], pa.int32())}))
            out.put(("ok", me, seq, v))
    except BaseException:
        out.put(("error", me, -1, traceback.format_exc()))


def test_concurrent_blind_appends_all_land_exactly_once(backend):
    uri, opts = backend
    n = 10 * SCALE
    schema = pa.schema([("writer", pa.int32()), ("seq", pa.int32())])
    lh.Table.create(uri, schema, storage_options=opts)
    results = _run_processes(_appender, (uri, opts), n)
    failed = [r for r in results if r[0] == "error"]
    assert not failed, failed[0][3]
    versions = sorted(r[3] for r in results)
    assert versions == list(range(1, PROCS * n + 1)), "each acknowledged append has its own version"
    t = lh.Table.open(uri, storage_options=opts)
    assert t.version == PROCS * n
    got = sorted(zip(*[t.to_arrow().column(c).to_pylist() for c in ("writer", "seq")]))
    assert got == sorted((w, s) for w in range(PROCS) for s in range(n)), "lost or duplicated rows"
    print(f"\nblind appends: {PROCS} processes x {n}: acknowledged={len(results)} lost=0 duplicated=0 failed=0")


def test_check_storage_reports_safe_stores_and_refuses_unsafe_ones(backend):
    uri, opts = backend
    report = lh.check_storage(uri, storage_options=opts, rounds=5)
    assert report.safe, report
    assert (report.double_winners, report.no_winner, report.torn) == (0, 0, 0)
    unsafe = lh.check_storage(f"plainprobe://x-{uuid.uuid4().hex}", rounds=2)
    assert not unsafe.safe and "single_writer" in (unsafe.error or "")


def test_check_storage_catches_a_store_that_ignores_create_if_absent():
    # the explicit single-writer opt-in turns create-if-absent into check-then-write: racing
    # creators then double-win, and the probe must say so
    report = lh.check_storage(f"plainprobe://y-{uuid.uuid4().hex}", rounds=30, racers=8,
                              storage_options={"lakehouse.unsafe_single_writer": True})
    print(f"\ncheck-then-write store: {report.double_winners} of {report.rounds} rounds had two winners")
    assert report.error is None
    assert not report.safe

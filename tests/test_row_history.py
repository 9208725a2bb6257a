"""A multi-process history check for row-level deletes (format.md §12.1).

Several spawned processes delete random rows of the same data files by deletion vector
(``Transaction.set_deletion_vectors``, declaring their filter with ``read_predicate``) while one
process appends new keys. The deleters' targets overlap a little, so some commits change a row another
one changed first: those get ``CommitConflictError`` and retry with the rows still live. Afterwards the
parent checks, from the log:

1. the versions are the set-up, then one per acknowledged commit, nothing else;
2. each acknowledged delete is exactly the rows its version added to the file's vector (applied once,
   with the winners' rows kept: no deleted row comes back at any version), and no two acknowledged
   deletes share a row;
3. the final vectors are the set-up's plus the union of the acknowledged deletes (``files()``
   ``num_deleted_rows`` agrees), every row no commit deleted is live, and every acknowledged append is
   in the table exactly once; where the readers apply vectors, ``to_arrow`` returns exactly those rows.

CI profile: 3 deleters + 1 appender for ``LH_ROW_HISTORY_SECONDS`` (default 2 s); ``LH_FUZZ=1`` runs
5 deleters for 20 s.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import time
import traceback
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from test_row_concurrency import live_rows

import lakehouse as lh
from lakehouse.deletion_vector import DeletionVector
from lakehouse.dv_store import load_vector
from lakehouse.state import vector_descriptors

FUZZ = os.environ.get("LH_FUZZ") == "1"
DELETERS = 5 if FUZZ else 3
SECONDS = float(os.environ.get("LH_ROW_HISTORY_SECONDS", "20" if FUZZ else "2"))
FILES, ROWS = 3, 300
SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.int64())])


def _ids(file: int, positions: list[int]) -> list[int]:
    return [file * 100_000 + p for p in positions]


def _vectors(t: lh.Table, version: int | None = None) -> dict[str, DeletionVector]:
    """Per live file at ``version``: its deletion vector (empty without one)."""
    files = t.snapshot(version=version).files()
    out = {}
    for path, n, d in zip(files.column("path").to_pylist(), files.column("num_rows").to_pylist(),
                          vector_descriptors(files)):
        out[path] = DeletionVector.from_positions([]) if d is None else load_vector(t._storage, d, num_rows=n)
    return out


# --------------------------------------------------------------------------- the workers (spawned)


def _deleter(uri: str, opts: dict[str, Any], me: int, targets: dict[str, list[int]], index: dict[str, int],
             seconds: float, seed: int, barrier, out) -> None:
    """Delete ``targets`` (path -> positions) in random small chunks, retrying on conflicts."""
    try:
        pa.set_cpu_count(1)
        rng = random.Random(seed)
        t = lh.Table.open(uri, storage_options=opts)
        pending = {f: set(ps) for f, ps in targets.items()}
        acks: list[tuple[int, dict[str, list[int]]]] = []
        conflicts = 0
        barrier.wait(timeout=120)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and any(pending.values()):
            # the transaction refreshes the handle: the chunk is chosen from exactly the version it
            # commits on (chosen from an earlier reading, a row another deleter took in between is
            # already deleted in the base: deleting it again is a no-op, not a row this commit adds)
            tx = t.transaction()
            current = _vectors(t)
            for f in pending:  # rows another deleter took are not ours to delete any more
                pending[f] = {p for p in pending[f] if p not in current[f]}
            files = [f for f in pending if pending[f]]
            if not files:
                tx.abort()
                break
            chunk = {f: sorted(rng.sample(sorted(pending[f]), min(len(pending[f]), rng.randint(1, 6))))
                     for f in rng.sample(files, rng.randint(1, len(files)))}
            ids = [i for f, ps in chunk.items() for i in _ids(index[f], ps)]
            tx.read_predicate(pc.field("id").isin(ids))
            tx.set_deletion_vectors({f: DeletionVector.from_positions(ps) for f, ps in chunk.items()})
            try:
                version = tx.commit()
            except lh.CommitConflictError:
                conflicts += 1
                continue
            acks.append((version, chunk))
            for f, ps in chunk.items():
                pending[f] -= set(ps)
        out.put(("done", me, (acks, conflicts)))
    except BaseException:
        out.put(("error", me, traceback.format_exc()))


def _appender(uri: str, opts: dict[str, Any], seconds: float, barrier, out) -> None:
    try:
        pa.set_cpu_count(1)
        t = lh.Table.open(uri, storage_options=opts)
        acks: list[tuple[int, list[int]]] = []
        barrier.wait(timeout=120)
        deadline = time.monotonic() + seconds
        seq = 0
        while time.monotonic() < deadline:
            seq += 1
            ids = [10_000_000 + seq * 10 + k for k in range(3)]
            v = t.append(pa.table({"id": ids, "v": [seq] * 3}, schema=SCHEMA))
            acks.append((v, ids))
            time.sleep(0.05)
        out.put(("done", -1, acks))
    except BaseException:
        out.put(("error", -1, traceback.format_exc()))


# --------------------------------------------------------------------------- set-up, run, check


def _setup(uri: str, opts: dict[str, Any], rng: random.Random) -> tuple[lh.Table, dict[str, int], list[dict]]:
    """FILES files of ROWS rows (id = file * 100000 + position), row 0 of each deleted by a vector (the
    protocol raise happens before the race), and each deleter's targets: most rows belong to one
    deleter, some to two (so that same-row conflicts happen), some to none."""
    t = lh.write_table(uri, pa.table({"id": _ids(0, list(range(ROWS))), "v": [0] * ROWS}, schema=SCHEMA),
                       storage_options=opts)
    for file in range(1, FILES):
        t.append(pa.table({"id": _ids(file, list(range(ROWS))), "v": [0] * ROWS}, schema=SCHEMA))
    files = t.files()
    index = {p: lo // 100_000 for p, lo in zip(files.column("path").to_pylist(), files.column("min.id").to_pylist())}
    with t.transaction() as tx:
        tx.set_deletion_vectors({p: DeletionVector.from_positions([0]) for p in index})
    targets: list[dict[str, list[int]]] = [{p: [] for p in index} for _ in range(DELETERS)]
    for p in index:
        for pos in range(1, ROWS):
            r = rng.random()
            owners = [] if r < 0.15 else rng.sample(range(DELETERS), 2 if r > 0.85 else 1)
            for d in owners:
                targets[d][p].append(pos)
    return t, index, targets


def _run(uri: str, opts: dict[str, Any], index: dict[str, int], targets: list[dict], seed: int) -> dict:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(DELETERS + 1), ctx.Queue()
    procs = [ctx.Process(target=_deleter, args=(uri, opts, d, targets[d], index, SECONDS, seed + d, barrier, out))
             for d in range(DELETERS)]
    procs.append(ctx.Process(target=_appender, args=(uri, opts, SECONDS, barrier, out)))
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    try:
        for _ in procs:
            kind, me, payload = out.get(timeout=SECONDS + 300)
            assert kind == "done", f"process {me} failed (seed {seed}):\n{payload}"
            results[me] = payload
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    return results


def _check(t: lh.Table, setup_version: int, results: dict, index: dict[str, int]) -> dict[str, int]:
    t.refresh()
    history = list(reversed(t.history()))
    assert [c.version for c in history] == list(range(t.version + 1)), "versions are contiguous from 0"
    deletes = {v: chunk for d in range(DELETERS) for v, chunk in results[d][0]}
    appends = dict(results[-1])
    assert len(deletes) == sum(len(results[d][0]) for d in range(DELETERS)), "two deletes acknowledged at one version"
    assert not deletes.keys() & appends.keys(), "a delete and an append acknowledged at one version"
    assert sorted([*deletes, *appends]) == list(range(setup_version + 1, t.version + 1)), (
        "one version per acknowledged commit, nothing else")
    # 2. each acknowledged delete added exactly its rows to the vectors; nothing came back
    before = _vectors(t, setup_version)
    expected = {p: set(v.positions.tolist()) for p, v in before.items()}
    for v in range(setup_version + 1, t.version + 1):
        now = _vectors(t, v)
        assert now.keys() >= before.keys(), f"version {v} removed a file"
        for p, vec in before.items():
            assert not vec.difference(now[p]).cardinality, f"version {v} brought deleted rows of {p} back"
            new = set(now[p].difference(vec).positions.tolist())
            mine = set(deletes.get(v, {}).get(p, []))
            assert new == mine, f"version {v} deleted {sorted(new)[:8]} of {p}, its commit {sorted(mine)[:8]}"
            assert not mine & expected[p], f"version {v} deleted rows of {p} an earlier commit deleted"
            expected[p] |= mine
        before = {p: now[p] for p in before}
    # 3. the final table
    files = t.files()
    final = _vectors(t)
    for p, n in zip(files.column("path").to_pylist(), files.column("num_deleted_rows").to_pylist()):
        if p in expected:
            assert set(final[p].positions.tolist()) == expected[p] and n == len(expected[p])
    rows = live_rows(t)
    ids = [i for i, _ in rows]
    assert len(ids) == len(set(ids)), "a row is in the table twice"
    want = {i for p, f in index.items() for i in _ids(f, sorted(set(range(ROWS)) - expected[p]))}
    want |= {i for ids_ in appends.values() for i in ids_}
    assert set(ids) == want, f"lost {sorted(want - set(ids))[:5]}, resurrected {sorted(set(ids) - want)[:5]}"
    assert sorted(t.to_arrow().column("id").to_pylist()) == sorted(ids)  # the readers apply the vectors
    conflicts = sum(results[d][1] for d in range(DELETERS))
    return {"deletes": len(deletes), "appends": len(appends), "conflicts": conflicts,
            "rows_deleted": sum(len(s) for s in expected.values())}


def _row_history(uri: str, opts: dict[str, Any], label: str) -> None:
    seed = random.randrange(1 << 30)
    t, index, targets = _setup(uri, opts, random.Random(seed))
    setup_version = t.version
    began = time.monotonic()
    results = _run(uri, opts, index, targets, seed)
    ran = time.monotonic()
    counts = _check(t, setup_version, results, index)
    print(f"\nrow-level history on {label} (seed {seed}): {DELETERS} deleters + 1 appender, "
          f"{ran - began:.1f} s, check {time.monotonic() - ran:.1f} s: {counts}; all consistent")
    assert counts["deletes"] >= DELETERS and counts["appends"] >= 1, counts


def test_row_level_history_local(tmp_path):
    _row_history(str(tmp_path / "t"), {}, "local disk")


@pytest.mark.s3
def test_row_level_history_s3(s3):
    _row_history(f"s3://lakehouse-test/rh-{uuid.uuid4().hex}", s3.storage_options, "S3 (moto)")

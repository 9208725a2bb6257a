"""Azure Blob storage through adlfs, against a real Azure API server (Azurite on 127.0.0.1).

1. Exclusive create: 8 processes race ``Storage.put_if_absent`` on one key per round; exactly one
   wins each round and the stored bytes are the winner's, whole.
2. A partitioned table's round trip on ``abfs://`` through the public API.
3. Blind appends from 8 processes: every acknowledged append is there exactly once, versions are
   contiguous.
4. ``lakehouse.check_storage`` reports the store safe.

Skips (with the reason) where Azurite or adlfs is not installed; ``make venv`` installs both.
Sizes are small by default; ``LH_CONTENTION_SCALE=N`` multiplies the rounds and appends.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import azurite
import pyarrow as pa
import pytest
from test_storage_contract import PROCS, SCALE, _appender, _racer, _run_processes

import lakehouse as lh
from lakehouse.storage import Storage

pytestmark = pytest.mark.azure
CONTAINER = "lakehouse-test"


@pytest.fixture(scope="module")
def azure_server() -> Iterator[azurite.Azurite]:
    """This module's Azurite server, with container ``lakehouse-test``.

    Skips where adlfs or Azurite is missing, except under CI (``CI`` set), which must run these tests.
    """
    try:
        import adlfs  # noqa: F401
    except ImportError:
        server, reason = None, "adlfs is not installed (pip install -e '.[azure]')"
    else:
        server, reason = azurite.start()
    if server is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Azure tests: {reason}")
        pytest.skip(reason)
    try:
        azurite.make_container(server, CONTAINER)
        yield server
    finally:
        azurite.stop(server)


@pytest.fixture
def azure(azure_server: azurite.Azurite) -> tuple[str, dict[str, Any]]:
    """A fresh ``abfs://`` URI where no table exists yet, and its storage options."""
    return f"abfs://{CONTAINER}/t-{uuid.uuid4().hex}", azure_server.storage_options


def test_exclusive_create_has_exactly_one_winner_per_round(azure):
    uri, opts = azure
    rounds = 8 * SCALE
    start = time.perf_counter()
    results = _run_processes(_racer, (uri, opts), rounds)
    elapsed = time.perf_counter() - start
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
    print(f"\nexclusive create on abfs (Azurite): {PROCS} processes x {rounds} rounds, one winner in every "
          f"round, {elapsed:.1f} s")


def test_partitioned_table_round_trip(azure):
    uri, opts = azure
    schema = pa.schema([("day", pa.string()), ("id", pa.int64()), ("v", pa.float64())])
    t = lh.Table.create(uri, schema, partition_by=["day"], storage_options=opts)
    assert lh.Table.exists(uri, storage_options=opts)
    assert t.append(pa.table({"day": ["a", "a", "b"], "id": [1, 2, 3], "v": [0.5, 1.5, 2.5]}, schema=schema)) == 1
    assert t.append(pa.table({"day": ["c/../x", "b"], "id": [4, 5], "v": [3.5, 4.5]}, schema=schema)) == 2
    before_overwrite = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.01)
    assert t.overwrite(pa.table({"day": ["b"], "id": [30], "v": [30.0]}, schema=schema),
                       filter=[("day", "=", "b")]) == 3
    assert t.delete([("id", "=", 1)]) == 4

    def rows(table: pa.Table) -> list[tuple[Any, ...]]:
        return sorted(zip(*(table.column(c).to_pylist() for c in ("day", "id", "v"))))

    reopened = lh.Table.open(uri, storage_options=opts)
    assert reopened.version == 4 and reopened.partition_by == ["day"]
    assert rows(reopened.to_arrow()) == [("a", 2, 1.5), ("b", 30, 30.0), ("c/../x", 4, 3.5)]
    assert rows(reopened.to_arrow(version=1)) == [("a", 1, 0.5), ("a", 2, 1.5), ("b", 3, 2.5)]
    assert rows(reopened.to_arrow(as_of=before_overwrite)) == [
        ("a", 1, 0.5), ("a", 2, 1.5), ("b", 3, 2.5), ("b", 5, 4.5), ("c/../x", 4, 3.5)]
    assert reopened.to_arrow(filter=[("day", "in", ["a", "c/../x"])], columns=["id"]).column("id").to_pylist() \
        in ([2, 4], [4, 2])
    assert [c.operation for c in reopened.history()] == ["delete", "overwrite", "append", "append", "create"]
    # every data file is under the table root: the odd partition value did not escape it
    storage = Storage.from_uri(uri, opts)
    paths = reopened.files().column("path").to_pylist()
    assert paths and all(not p.startswith("/") and ".." not in p.split("/") for p in paths)
    assert all(storage.exists(p) for p in paths)
    print(f"\nabfs round trip: {reopened.version + 1} versions, {len(paths)} live files")


def test_concurrent_blind_appends_all_land_exactly_once(azure):
    uri, opts = azure
    n = 4 * SCALE
    schema = pa.schema([("writer", pa.int32()), ("seq", pa.int32())])
    lh.Table.create(uri, schema, storage_options=opts)
    start = time.perf_counter()
    results = _run_processes(_appender, (uri, opts), n)
    elapsed = time.perf_counter() - start
    failed = [r for r in results if r[0] == "error"]
    assert not failed, failed[0][3]
    versions = sorted(r[3] for r in results)
    assert versions == list(range(1, PROCS * n + 1)), "each acknowledged append has its own version"
    t = lh.Table.open(uri, storage_options=opts)
    assert t.version == PROCS * n
    got = sorted(zip(*[t.to_arrow().column(c).to_pylist() for c in ("writer", "seq")]))
    assert got == sorted((w, s) for w in range(PROCS) for s in range(n)), "lost or duplicated rows"
    print(f"\nblind appends on abfs (Azurite): {PROCS} processes x {n}: acknowledged={len(results)} lost=0 "
          f"duplicated=0 failed=0, {elapsed:.1f} s")


def test_check_storage_reports_azure_safe(azure):
    uri, opts = azure
    report = lh.check_storage(uri, storage_options=opts, rounds=5 * SCALE)
    assert report.error is None, report.error
    assert (report.double_winners, report.no_winner, report.torn) == (0, 0, 0)
    assert report.safe and report.backend == "AzureBlobFileSystem"
    print(f"\ncheck_storage on abfs (Azurite): {report.racers} racers x {report.rounds} rounds, safe")

"""Lost responses against the real S3 API server: a proxy stores a log entry, then loses the answer.

``s3proxy.FaultProxy`` sits between s3fs and moto's server. For the chosen conditional PUTs of log
entries it forwards the request (so the entry lands, or is refused with 412 when another writer
holds the version) and then drops the connection, answers 500, 409 or 503, or holds the answer
past the client's read timeout. For every kind, through the public API only (``lakehouse.Table``):

* the call succeeds and returns the next version (no false failure);
* exactly one log entry carries the commit's id (the id is read from the faulted request's body);
* versions are contiguous and the rows are the expected ones (no duplicate commit);
* no data file is deleted and every file of the latest version exists (nothing of a
  possibly-landed commit is deleted);
* on a commit that loses a race, the fault is resolved by reading the winner and the commit is
  retried at the next version, not duplicated; on a real conflict nothing of ours is in the log;
* when even the read-back fails, the outcome is reported as unknown (``CommitStateUnknownError``
  with the version and commit id), never as a raw transport error, and the data files stay.

Two client set-ups:

* ``single-shot`` (every kind, every operation, the race): botocore ``total_max_attempts=1`` and
  s3fs ``retries=1``, so every kind reaches lakehouse as the raw error (``ConnectionClosedError``,
  ``OSError``, ``ReadTimeoutError``) and the ambiguous-outcome path (format.md §11.4) decides.
  aiohttp itself re-sends an idempotent PUT once when a kept-alive connection closes without an
  answer, so ``drop`` faults that re-send too.
* ``retrying`` (each kind once): s3fs/botocore defaults. aiohttp or botocore re-sends the PUT after
  a dropped connection, a 500, a 503 or a read timeout (s3fs would too after a ``SlowDown``); the
  re-send meets the stored entry, gets 412 and s3fs raises ``FileExistsError``, so for lakehouse
  these four kinds are indistinguishable: it reads the entry back and recognises its commit id.
  Nobody re-sends after a 409, so lakehouse sees that error itself, as in the single-shot set-up.

The printed figures count the faults (and whether the faulted PUT had landed or was refused), the
repeated PUTs of one entry (client re-sends), and every conditional PUT the server answered (the
storage capability probe's two on a new endpoint included).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import s3fs
from helpers import SCHEMA, assert_same_rows, make_data
from s3proxy import FAULT_KINDS, FaultEvent, FaultKind, FaultProxy

import lakehouse as lh
from lakehouse.log import decode_entry
from lakehouse.replay import read_entries
from lakehouse.storage import Storage

pytestmark = pytest.mark.s3

READ_TIMEOUT = 0.3
"""The client's read timeout for the ``timeout`` kind (s); the proxy holds the answer longer."""
HOLD = READ_TIMEOUT + 0.2
CLIENTS = ("retrying", "single-shot")


@pytest.fixture(scope="module")
def _running_proxy(s3) -> Iterator[FaultProxy]:
    with FaultProxy(s3.endpoint) as p:
        yield p
    assert p.alive_threads() == 0, "the proxy's threads must be joined"


@pytest.fixture
def proxy(_running_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The module's proxy (one endpoint, so s3fs clients are reused), disarmed with zeroed counters."""
    _running_proxy.reset()
    yield _running_proxy
    _running_proxy.reset()


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "single-shot":
        monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)  # s3fs's own retry loop: one try
    return str(request.param)


def _options(s3, proxy: FaultProxy, kinds: list[FaultKind], client: str) -> dict[str, Any]:
    """s3fs options through the proxy: a short read timeout if a fault is a timeout."""
    opts: dict[str, Any] = dict(s3.storage_options, endpoint_url=proxy.endpoint)
    config: dict[str, Any] = {}
    if "timeout" in kinds:
        config.update(read_timeout=READ_TIMEOUT, connect_timeout=READ_TIMEOUT)
    if client == "single-shot":
        config["retries"] = {"total_max_attempts": 1}
    if config:
        opts["config_kwargs"] = config
    return opts


def _per_request(kind: FaultKind, client: str) -> int:
    """Faults per request: also fault aiohttp's own re-send of a dropped PUT in single-shot mode."""
    return 2 if kind == "drop" and client == "single-shot" else 1


def _version_of(event: FaultEvent) -> int:
    return int(event.key.rsplit("/", 1)[-1][:20])


def _commit_id(event: FaultEvent) -> str:
    return decode_entry(event.body, path=event.key, version=_version_of(event)).commit.id


def _faulted(proxy: FaultProxy, kind: FaultKind, call: Callable[[], Any], *, times: int,
             per_key: int | None = None) -> tuple[Any, list[FaultEvent]]:
    """Run ``call`` with the proxy armed; return its result and the faults it met."""
    before = len(proxy.events())
    proxy.arm(kind, times=times, per_key=per_key, delay=HOLD)
    try:
        result = call()
    finally:
        proxy.disarm()
    events = proxy.events()[before:]
    assert events, "the fault was not injected"
    return result, events


def _data_files(storage: Storage) -> set[str]:
    """Every data file on the server. The listing is not left in the shared s3fs instance's
    listings cache: reads of files written later by another instance would find it stale."""
    root = storage.root.rstrip("/")
    storage.fs.invalidate_cache()
    try:
        return {p[len(root) + 1:] for p in storage.fs.find(root) if p.endswith(".parquet")}
    finally:
        storage.fs.invalidate_cache()


class _Checker:
    """Checks the invariants after each commit, reading directly from the server (not through the
    proxy): entries are immutable, so each check reads only the entries after the last one checked."""

    def __init__(self, s3, uri: str) -> None:
        self.uri, self.options = uri, s3.storage_options
        self.storage = Storage.from_uri(uri, s3.storage_options)
        self.table: lh.Table | None = None
        self.ids: list[str] = []
        self.files: set[str] = set()

    def check(self, version: int, expected: pa.Table, *, ours: str) -> None:
        """``version`` is the latest; ``ours`` is in it and nowhere else; rows are ``expected``;
        no data file was deleted since the last check and every live file exists."""
        new = read_entries(self.storage, len(self.ids))
        assert [e.version for e in new] == list(range(len(self.ids), version + 1)), \
            "versions must be contiguous, none beyond the acknowledged one"
        self.ids += [e.commit.id for e in new]
        assert len(set(self.ids)) == len(self.ids), f"a commit landed twice: {self.ids}"
        assert self.ids.count(ours) == 1 and self.ids[version] == ours, \
            f"commit {ours} must be in exactly one entry, version {version}"
        if self.table is None:
            self.table = lh.Table.open(self.uri, storage_options=self.options)
        assert self.table.refresh() == version
        assert_same_rows(self.table.to_arrow(), expected)
        files = _data_files(self.storage)
        assert self.files <= files, f"data files were deleted: {sorted(self.files - files)}"
        live = set(self.table.files().column("path").to_pylist())
        assert live <= files, f"version {version} references missing files {sorted(live - files)}"
        self.files = files


def _figures(label: str, proxy: FaultProxy, versions: list[int]) -> None:
    st, events = proxy.stats(), proxy.events()
    puts = [e for e in events if e.method == "PUT"]
    reads = len(events) - len(puts)
    landed, refused = sum(e.upstream_status == 200 for e in puts), sum(e.upstream_status == 412 for e in puts)
    print(f"\n{label}: faults on log-entry PUTs={len(puts)} (landed={landed}, refused={refused})"
          + (f" faults on reads={reads}" if reads else "")
          + f" repeated PUTs of one entry={st['resent']} conditional PUTs={st.get('conditional_puts', 0)} "
          f"(200: {st.get('conditional_200', 0)}, 412: {st.get('conditional_412', 0)}) versions={versions} "
          f"slowest server answer={st['slowest_ms']} ms"
          + (f" proxy handler errors={st['handler_errors']}" if st.get("handler_errors") else ""))


def _without(table: pa.Table, mask: pc.Expression) -> pa.Table:
    return table.filter(~mask)


def _run_operations(s3, proxy: FaultProxy, uri: str, opts: dict[str, Any], client: str,
                    kinds: list[FaultKind]) -> list[int]:
    """Create, append, overwrite with a filter, a delete that rewrites a file, and a delete +
    append + append transaction; the answer to the log entry's PUT of commit ``i`` is lost in the
    way ``kinds[i]`` says. Checks every commit; returns the versions."""
    expected = SCHEMA.empty_table()
    checker = _Checker(s3, uri)
    box: list[lh.Table] = []  # the table, once created

    def create() -> int:
        box.append(lh.Table.create(uri, SCHEMA, partition_by=["part"], storage_options=opts))
        return box[0].version

    def transaction() -> int:
        with box[0].transaction() as tx:
            tx.delete([("part", "=", 0)])
            tx.append(make_data(range(200, 203), part=0))
            tx.append(make_data(range(300, 302), part=2))
        assert tx.version is not None
        return tx.version

    first = make_data(range(10), part=[i % 2 for i in range(10)])
    replacement = make_data(range(100, 104), part=1)
    steps: list[tuple[Callable[[], int], Callable[[pa.Table], pa.Table]]] = [
        (create, lambda e: e),
        (lambda: box[0].append(first), lambda e: pa.concat_tables([e, first])),
        (lambda: box[0].overwrite(replacement, filter=[("part", "=", 1)]),
         lambda e: pa.concat_tables([_without(e, pc.field("part") == 1), replacement])),
        (lambda: box[0].delete([("id", "<", 4)]), lambda e: _without(e, pc.field("id") < 4)),
        (transaction, lambda e: pa.concat_tables([_without(e, pc.field("part") == 0),
                                                  make_data(range(200, 203), part=0),
                                                  make_data(range(300, 302), part=2)])),
    ]
    versions = []
    for step, ((call, model), kind) in enumerate(zip(steps, kinds, strict=True)):
        version, events = _faulted(proxy, kind, call, times=_per_request(kind, client))
        assert version == step, "a commit whose answer was lost must be acknowledged at its version"
        assert {_version_of(e) for e in events} == {version}
        expected = model(expected)
        checker.check(version, expected, ours=_commit_id(events[0]))
        versions.append(version)
    return versions


@pytest.mark.parametrize("client", ["single-shot"], indirect=True)
@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_lost_response_on_every_operation(s3, proxy: FaultProxy, client: str, kind: FaultKind):
    """Every commit (create, append, overwrite, delete, transaction) loses its answer the same way,
    and lakehouse sees the raw error: the ambiguous-outcome path."""
    uri = f"s3://lakehouse-test/lost-{kind}-{uuid.uuid4().hex}"
    versions = _run_operations(s3, proxy, uri, _options(s3, proxy, [kind], client), client, [kind] * 5)
    _figures(f"{kind} / {client}: create, append, overwrite, delete, transaction", proxy, versions)
    assert proxy.stats()["faults"] == 5 * _per_request(kind, client) or kind == "drop", proxy.stats()


@pytest.mark.parametrize("client", ["retrying"], indirect=True)
def test_lost_response_with_client_retries(s3, proxy: FaultProxy, client: str):
    """The same commits with s3fs/botocore's own retries, each kind once: 409 on the create (not
    re-sent by anyone, so lakehouse sees it), then drop, 500, timeout and 503 (re-sent by aiohttp or
    botocore, answered 412, so lakehouse reads back a name that exists). One test rather than one
    per kind: for lakehouse the four re-sent kinds are the same path, and botocore's backoff costs
    up to a second per fault."""
    uri = f"s3://lakehouse-test/lost-retrying-{uuid.uuid4().hex}"
    kinds: list[FaultKind] = ["409", "drop", "500", "timeout", "503"]
    versions = _run_operations(s3, proxy, uri, _options(s3, proxy, kinds, client), client, kinds)
    st = proxy.stats()
    _figures(f"{' / '.join(kinds)} / {client}: create, append, overwrite, delete, transaction", proxy, versions)
    assert st["faults"] == 5 and st["resent"] == 4, "every kind but the 409 is re-sent by the client once"


def _race_phase(checker: _Checker, proxy: FaultProxy, kind: FaultKind, client: str, call: Callable[[], int], *,
                lost: int, expected: pa.Table) -> None:
    """Run ``call`` (whose first try is at version ``lost``, already taken) with the first PUT of
    both ``lost`` and ``lost + 1`` faulted; check it is one commit, at ``lost + 1``."""
    per = _per_request(kind, client)
    version, events = _faulted(proxy, kind, call, times=2 * per, per_key=per)
    assert version == lost + 1, "the commit must be retried at the next version"
    refused = [e for e in events if _version_of(e) == lost]
    landed = [e for e in events if _version_of(e) == version]
    assert refused and all(e.upstream_status == 412 for e in refused), events
    assert landed and landed[0].upstream_status == 200, events
    commit_id = _commit_id(landed[0])
    assert {_commit_id(e) for e in events} == {commit_id}, "one logical commit id across its retries"
    checker.check(version, expected, ours=commit_id)
    assert checker.ids[lost] != commit_id, "the lost version is the other writer's"


# single-shot only: with client retries, the re-send of a refused PUT just gets the 412 again, so a
# lost answer on a losing commit is, for lakehouse, a plain lost race (and a 409 is the same path in
# both set-ups); the retrying client's handling of lost answers is covered by the test above
@pytest.mark.parametrize("client", ["single-shot"], indirect=True)
@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_fault_on_commits_that_lose_a_race(s3, proxy: FaultProxy, client: str, kind: FaultKind):
    """Another writer takes version N first; our PUT of N is refused (412) and then its answer is
    lost, as is the answer of the retry at N+1, which lands. Three rounds on one table:

    1. a blind append on a stale handle: retried at N+1, once;
    2. a delete + append transaction whose read set the winner did not touch: rebased, once;
    3. a transaction whose read file the winner removed: a real ``CommitConflictError``, nothing of
       ours in the log, and only the transaction's own unreferenced file deleted.
    """
    uri = f"s3://lakehouse-test/race-{kind}-{uuid.uuid4().hex}"
    lh.Table.create(uri, SCHEMA, partition_by=["part"], storage_options=s3.storage_options)
    ours = lh.Table.open(uri, storage_options=_options(s3, proxy, [kind], client))
    other = lh.Table.open(uri, storage_options=s3.storage_options)
    checker = _Checker(s3, uri)

    # 1. blind append on a stale handle (ours is still at version 0)
    theirs_a, mine_a = make_data(range(10, 13), part=1), make_data(range(3), part=0)
    other.append(theirs_a)
    expected = pa.concat_tables([theirs_a, mine_a])
    _race_phase(checker, proxy, kind, client, lambda: ours.append(mine_a), lost=1, expected=expected)

    # 2. delete part=0 + append, while the other writer appends to part=1
    theirs_b, mine_b = make_data(range(30, 32), part=1), make_data(range(20, 24), part=0)
    tx = ours.transaction()
    tx.delete([("part", "=", 0)])
    tx.append(mine_b)
    other.refresh()
    other.append(theirs_b)
    expected = pa.concat_tables([theirs_a, theirs_b, mine_b])
    _race_phase(checker, proxy, kind, client, tx.commit, lost=3, expected=expected)

    # 3. a real conflict: the winner rewrote the file our transaction read
    tx = ours.transaction()
    tx.delete([("id", "<", 22)])  # rewrites mine_b's file
    other.refresh()
    other.delete([("id", "=", 23)])  # version 5 removes that file first
    before = _data_files(checker.storage)
    per = _per_request(kind, client)
    with pytest.raises(lh.CommitConflictError) as info:
        _faulted(proxy, kind, tx.commit, times=per)
    assert info.value.version == 5
    events = [e for e in proxy.events() if _version_of(e) == 5]
    assert events and all(e.upstream_status == 412 for e in events), events
    new = read_entries(checker.storage, len(checker.ids))
    assert [e.version for e in new] == [5], "nothing after the winner's version 5"
    assert _commit_id(events[0]) not in [*checker.ids, new[0].commit.id], "a conflicting commit must not land"
    after = _data_files(checker.storage)
    assert len(before - after) == 1 and before - after <= checker.files | before, \
        "only the losing transaction's own rewritten file is removed"
    assert checker.table is not None and checker.table.refresh() == 5
    assert set(checker.table.files().column("path").to_pylist()) <= after
    assert_same_rows(checker.table.to_arrow(), _without(expected, pc.field("id") == 23))
    _figures(f"race: append, transaction, conflict / {kind} / {client}", proxy, list(range(6)))


def test_entry_unreadable_after_a_lost_answer_is_an_unknown_outcome(s3, proxy: FaultProxy):
    """The PUT lands and its answer is lost (500); the client's re-send gets 412, so s3fs reports
    that the name exists; then reading the entry back fails too. Whose entry it is cannot be known:
    ``CommitStateUnknownError`` with the version and commit id (not the raw read error), the data
    files stay, and the reopened table holds the commit exactly once."""
    uri = f"s3://lakehouse-test/unreadable-{uuid.uuid4().hex}"
    opts = dict(s3.storage_options, endpoint_url=proxy.endpoint, config_kwargs={"retries": {"total_max_attempts": 2}})
    t = lh.Table.create(uri, SCHEMA, partition_by=["part"], storage_options=opts)
    checker = _Checker(s3, uri)
    checker.check(0, SCHEMA.empty_table(), ours=t.history()[0].info["commit_id"])
    data, more = make_data(range(5), part=0), make_data(range(5, 8), part=1)
    # only entry 1: before publishing it the writer reads entry 0 (format §11.5), which must not fail
    pattern, proxy.key_pattern = proxy.key_pattern, re.compile(r"/_lakehouse_log/0{19}1\.msgpack$")
    proxy.arm("500", times=1)  # the answer to the PUT
    proxy.arm("500", times=2, method="GET")  # both tries of the read-back
    try:
        with pytest.raises(lh.CommitStateUnknownError) as info:
            t.append(data)
    finally:
        proxy.disarm()
        proxy.key_pattern = pattern
    puts = [e for e in proxy.events() if e.method == "PUT"]
    assert len(puts) == 1 and puts[0].upstream_status == 200
    assert info.value.version == 1 and info.value.commit_id == _commit_id(puts[0])
    checker.check(1, data, ours=info.value.commit_id)  # it landed, once, and its data file is there
    assert t.append(more) == 2, "the handle still works: the next append rebases over the unknown one"
    checker.check(2, pa.concat_tables([data, more]), ours=t.history(limit=1)[0].info["commit_id"])
    _figures("unreadable read-back", proxy, [0, 1, 2])

"""The automatic capability probe (issue 4): some S3-compatible stores ignore ``If-None-Match``.

Before the first conditional create on a (protocol, endpoint), lakehouse creates a scratch key
under the table root conditionally, twice; the second create must be refused. Against moto's real
S3 server the probe passes and runs once per endpoint; a client that drops the condition (an
s3fs subclass that turns ``mode="create"`` into a plain PUT, registered under its own protocol
name so its verdict is cached apart from honest ``s3``) is refused with ``UnsafeStorageError``
unless the single-writer opt-in is given, and no scratch key stays behind.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
from faultfs import drop_tree  # also registers faultfs://, a memory filesystem with counted I/O
from fsspec.implementations.memory import MemoryFileSystem
from helpers import SCHEMA, make_data

import lakehouse as lh
from lakehouse import storage as storage_mod
from lakehouse.storage import PROBE_PREFIX, UNSAFE_SINGLE_WRITER, Storage, forget_probe_verdicts

s3fs = pytest.importorskip("s3fs")

PROBE_NAME = PROBE_PREFIX.rsplit("/", 1)[-1]  # ".probe-"
CALLS: list[tuple[str, str, str]] = []  # (filesystem protocol, method, path) of the wrappers below
_CALLS_LOCK = threading.Lock()


def _record(fs: Any, method: str, path: str) -> None:
    with _CALLS_LOCK:
        CALLS.append((fs.protocol[0], method, path))


class _CountingS3(s3fs.S3FileSystem):  # type: ignore[misc,name-defined]
    """Honest s3fs that records its conditional creates and deletes."""

    protocol = ("s3count", "s3")

    async def _pipe_file(self, path, data, mode="overwrite", **kwargs):  # type: ignore[override]
        _record(self, f"pipe_file:{mode}", path)
        return await super()._pipe_file(path, data, mode=mode, **kwargs)

    async def _rm_file(self, path, **kwargs):  # type: ignore[override]
        _record(self, "rm_file", path)
        return await super()._rm_file(path, **kwargs)


class _IgnoresIfNoneMatch(_CountingS3):
    """A client of a store that ignores ``If-None-Match``: every create is a plain, overwriting PUT."""

    protocol = ("s3lie", "s3")

    async def _pipe_file(self, path, data, mode="overwrite", **kwargs):  # type: ignore[override]
        _record(self, f"pipe_file:{mode}", path)
        return await s3fs.S3FileSystem._pipe_file(self, path, data, **kwargs)  # the condition is dropped


fsspec.register_implementation("s3count", _CountingS3, clobber=True)
fsspec.register_implementation("s3lie", _IgnoresIfNoneMatch, clobber=True)


def _probes(protocol: str) -> list[tuple[str, str]]:
    """(method, path) of the probe's calls made through ``protocol``."""
    return [(m, p) for proto, m, p in CALLS if proto == protocol and PROBE_NAME in p]


def _keys_under(server: Any, prefix: str) -> list[str]:
    fs = s3fs.S3FileSystem(**server.storage_options, skip_instance_cache=True)
    return [str(p) for p in fs.find(f"lakehouse-test/{prefix}")]


@pytest.fixture
def fresh_verdicts() -> Iterator[None]:
    """Each test starts with no cached verdict (other tests may have probed moto already)."""
    forget_probe_verdicts()
    CALLS.clear()
    yield
    forget_probe_verdicts()
    CALLS.clear()


# -- real S3 (moto's server) -------------------------------------------------------------------------
@pytest.mark.s3
def test_probe_passes_on_real_s3_once_per_endpoint_even_for_concurrent_first_writers(s3, fresh_verdicts):
    prefix = f"probe-{uuid.uuid4().hex}"
    uris = [f"s3count://lakehouse-test/{prefix}/t{i}" for i in range(6)]
    barrier = threading.Barrier(len(uris))
    errors: list[BaseException] = []

    def create(uri: str) -> None:
        try:
            barrier.wait(timeout=30)
            lh.Table.create(uri, SCHEMA, storage_options=s3.storage_options).append(make_data(range(3)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(u,)) for u in uris]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    probe = _probes("s3count")
    assert [m for m, _ in probe] == ["pipe_file:create", "pipe_file:create", "rm_file"], probe
    assert len({p for _, p in probe}) == 1, "one scratch key"

    # more writes on the same endpoint, new handles and new tables included: no more probing
    t = lh.Table.open(uris[0], storage_options=s3.storage_options)
    t.append(make_data(range(3, 6)))
    t.delete([("id", "=", 0)])
    lh.write_table(f"s3count://lakehouse-test/{prefix}/w", make_data(range(2)), storage_options=s3.storage_options)
    assert len(_probes("s3count")) == 3
    assert sorted(t.to_arrow().column("id").to_pylist()) == [1, 2, 3, 4, 5]

    # the same server under another endpoint spelling is another (protocol, endpoint): probed once more
    other = dict(s3.storage_options, endpoint_url=s3.endpoint.replace("127.0.0.1", "localhost"))
    lh.Table.create(f"s3count://lakehouse-test/{prefix}/other", SCHEMA, storage_options=other)
    lh.Table.create(f"s3count://lakehouse-test/{prefix}/other2", SCHEMA, storage_options=other)
    assert len(_probes("s3count")) == 6
    assert not [k for k in _keys_under(s3, prefix) if PROBE_NAME in k], "a scratch key stayed behind"
    print(f"\nprobe on moto: 1 probe (2 conditional creates + 1 delete) for {len(uris)} concurrent first "
          f"writers and 3 more writes; 1 more for a second endpoint")


@pytest.mark.s3
def test_store_that_ignores_if_none_match_is_refused_and_nothing_stays_behind(s3, fresh_verdicts):
    prefix = f"lie-{uuid.uuid4().hex}"
    uri = f"s3lie://lakehouse-test/{prefix}/t"
    with pytest.raises(lh.UnsafeStorageError) as info:
        lh.Table.create(uri, SCHEMA, storage_options=s3.storage_options)
    message = str(info.value)
    assert s3.endpoint in message and "'s3lie'" in message
    assert UNSAFE_SINGLE_WRITER in message and "check_storage" in message
    assert [m for m, _ in _probes("s3lie")] == ["pipe_file:create", "pipe_file:create", "rm_file"]
    assert _keys_under(s3, prefix) == [], "the probe key (or anything else) stayed behind"

    # the verdict is cached: write_table is refused before it writes a data file, without probing again
    with pytest.raises(lh.UnsafeStorageError):
        lh.write_table(uri, make_data(range(3)), storage_options=s3.storage_options)
    assert len(_probes("s3lie")) == 3
    assert _keys_under(s3, prefix) == []
    assert not lh.Table.exists(uri, storage_options=s3.storage_options)


@pytest.mark.s3
def test_single_writer_opt_in_writes_without_probing_and_plain_handles_stay_refused(s3, fresh_verdicts):
    prefix = f"optin-{uuid.uuid4().hex}"
    uri = f"s3lie://lakehouse-test/{prefix}/t"
    opted = {**s3.storage_options, UNSAFE_SINGLE_WRITER: True}
    t = lh.Table.create(uri, SCHEMA, partition_by=["part"], storage_options=opted)
    assert t.append(make_data(range(4), part=[0, 1, 0, 1])) == 1
    assert t.delete([("part", "=", 0)]) == 2
    assert sorted(t.to_arrow().column("id").to_pylist()) == [1, 3]
    assert _probes("s3lie") == [], "the opt-in skips the probe"
    # the opt-in checks before it writes, so a stale handle cannot overwrite a landed entry
    stale = lh.Table.open(uri, storage_options=opted)
    assert t.append(make_data(range(10, 12), part=0)) == 3
    assert stale.append(make_data(range(20, 22), part=0)) == 4
    assert sorted(lh.Table.open(uri, storage_options=opted).to_arrow().column("id").to_pylist()) == [1, 3, 10, 11,
                                                                                                       20, 21]
    # without the opt-in the same table reads, but its first write probes and is refused
    plain = lh.Table.open(uri, storage_options=s3.storage_options)
    assert plain.version == 4
    with pytest.raises(lh.UnsafeStorageError):
        plain.append(make_data(range(30, 31)))
    assert lh.Table.open(uri, storage_options=opted).version == 4
    assert not [k for k in _keys_under(s3, prefix) if PROBE_NAME in k]


# -- the cache, without a server -----------------------------------------------------------------
def test_concurrent_first_callers_wait_for_one_probe_per_key(fresh_verdicts):
    runs: list[str] = []
    barrier = threading.Barrier(16)

    def run_for(key: str) -> Any:
        def run() -> None:
            runs.append(key)
            time.sleep(0.05)

        return run

    def caller(i: int) -> None:
        key = ("fake", f"endpoint-{i % 2}", "")
        barrier.wait(timeout=10)
        assert storage_mod._probe_verdict(key, run_for(key[1])) is None

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(16)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(runs) == ["endpoint-0", "endpoint-1"]
    assert time.perf_counter() - start < 0.5, "probes of different endpoints ran one after the other"


def test_a_probe_that_raises_caches_nothing(fresh_verdicts):
    calls = []

    def flaky() -> str | None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("network down")
        return None

    with pytest.raises(ConnectionError):
        storage_mod._probe_verdict(("fake", "flaky", ""), flaky)
    assert storage_mod._probe_verdict(("fake", "flaky", ""), flaky) is None
    assert storage_mod._probe_verdict(("fake", "flaky", ""), flaky) is None
    assert len(calls) == 2


class _LyingMemory(MemoryFileSystem):
    """A memory store posing as a conditional object store whose creates ignore the condition."""

    protocol = ("lyingcond", "s3")

    def pipe_file(self, path, value, mode="overwrite", **kwargs):  # type: ignore[override]
        _record(self, f"pipe_file:{mode}", path)
        return super().pipe_file(path, value, **kwargs)

    def rm_file(self, path):  # type: ignore[override]
        _record(self, "rm_file", path)
        return super().rm_file(path)


fsspec.register_implementation("lyingcond", _LyingMemory, clobber=True)


def test_append_on_an_opened_table_is_refused_before_the_entry_is_written(fresh_verdicts):
    uri = f"lyingcond://t-{uuid.uuid4().hex}"
    try:
        t = lh.write_table(uri, make_data(range(3)), storage_options={UNSAFE_SINGLE_WRITER: True})
        plain = lh.Table.open(uri)
        with pytest.raises(lh.UnsafeStorageError, match="does not enforce create-if-absent"):
            plain.append(make_data(range(3, 6)))
        with pytest.raises(lh.UnsafeStorageError):
            plain.delete([("id", "=", 0)])
        assert [m for m, _ in _probes("lyingcond")] == ["pipe_file:create", "pipe_file:create", "rm_file"]
        assert not [p for p in MemoryFileSystem.store if PROBE_NAME in p]
        assert lh.Table.open(uri).version == t.version == 0
    finally:
        drop_tree(uri)


def test_probe_key_names_protocol_and_endpoint_from_options_or_the_filesystem(monkeypatch):
    def key(uri: str, **opts: Any) -> tuple[str, str]:
        return Storage.from_uri(uri, {"key": "k", "secret": "s", **opts}).probe_key[:2]

    assert key("s3://b/t", endpoint_url="http://h:9000/") == ("s3", "http://h:9000")
    assert key("s3://b/t", client_kwargs={"endpoint_url": "https://h2"}) == ("s3", "https://h2")
    assert key("s3://b/t", endpoint_url="https://user:pw@h3:1") == ("s3", "https://h3:1"), "no credentials"
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": "http://from-config:1"})
    assert Storage.from_uri("s3://b/t").probe_key[:2] == ("s3", "http://from-config:1")
    monkeypatch.delitem(fsspec.config.conf, "s3")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://from-env:2")
    assert key("s3://b/t2") == ("s3", "http://from-env:2")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert key("s3://b/t3") == ("s3", "default")


@pytest.mark.parametrize("kind", ["local", "memory", "faultfs"])
def test_local_and_memory_never_probe(kind, tmp_path, monkeypatch, fresh_verdicts):
    """faultfs (tests/faultfs.py) is a memory filesystem: no probe, so its call counts are unchanged."""
    def boom(self: Storage) -> None:
        raise AssertionError("probed")

    monkeypatch.setattr(Storage, "_probe_create_if_absent", boom)
    name = f"p-{uuid.uuid4().hex}"
    uri = {"local": str(tmp_path / "t"), "memory": f"memory://{name}", "faultfs": f"faultfs://{name}"}[kind]
    try:
        t = lh.write_table(uri, make_data(range(3)))
        assert t.append(make_data(range(3, 5))) == 1
    finally:
        drop_tree(f"/{name}")
        drop_tree(f"faultfs://{name}")


class _OddStore(MemoryFileSystem):
    """A conditional store whose creates misbehave as ``behaviour`` says (honest when None)."""

    protocol = ("oddcond", "s3")
    behaviour: str | None = None  # "lost-response" | "always-exists" | "down"

    def pipe_file(self, path, value, mode="overwrite", **kwargs):  # type: ignore[override]
        _record(self, f"pipe_file:{mode}", path)
        behaviour = type(self).behaviour
        if behaviour == "down":
            raise ConnectionError("connection refused")
        if mode == "create" and (behaviour == "always-exists" or self.exists(path)):
            raise FileExistsError(path)
        super().pipe_file(path, value, **kwargs)
        if behaviour == "lost-response":  # stored; botocore retried and got 412 for our own write
            type(self).behaviour = None
            raise FileExistsError(path)


fsspec.register_implementation("oddcond", _OddStore, clobber=True)


@pytest.mark.parametrize("behaviour", ["lost-response", "always-exists", "down"])
def test_probe_outcomes_of_odd_stores(behaviour, fresh_verdicts):
    storage = Storage.from_uri(f"oddcond://t-{uuid.uuid4().hex}")
    try:
        _OddStore.behaviour = behaviour
        if behaviour == "lost-response":  # our own bytes are there: the condition held
            storage.check_atomic_create()
            storage.put_if_absent("x", b"1")
            with pytest.raises(FileExistsError):
                storage.put_if_absent("x", b"2")
        elif behaviour == "always-exists":  # nothing could ever commit: unsafe, said so
            with pytest.raises(lh.UnsafeStorageError, match=r"fresh key .* was refused as existing"):
                storage.check_atomic_create()
        else:  # a transport error is raised as it is and caches nothing: the next write probes again
            with pytest.raises(ConnectionError):
                storage.check_atomic_create()
            _OddStore.behaviour = None
            storage.check_atomic_create()
            assert len(_probes("oddcond")) == 1 + 2, "probed again after the failure"
        assert not [p for p in MemoryFileSystem.store if PROBE_NAME in p]
    finally:
        _OddStore.behaviour = None
        drop_tree(storage.root)

"""Fault injection at every I/O call of a write, SQLite-style (issue 4, "Faults" point 3).

For each operation and fault mode (see ``faultfs.py``), for k = 0, 1, 2, ...: a fresh copy of a small
partitioned table, the fault armed at call k, the operation run once with an application
transaction id; whatever it raises must be a ``LakehouseError`` or an ``OSError``. Then, faults
off: the table opens and holds exactly the old rows (version 2) or exactly the new rows (version 3,
app version 1), history contiguous; and the same operation retried on the same handle with the same
application transaction leaves exactly the new rows, committed once. The loop stops at the first k
the operation completes without reaching (run with ``-s`` to see the figures per case).

The table has ``checkpoint_interval = 3``, so each commit (version 3) is followed by an automatic
checkpoint: faults after the commit landed are covered too.

Two backends: ``faultfs://`` (memory; every operation, every mode) and ``faults3://`` (s3fs against
the moto server of the ``s3`` fixture, so commits are conditional PUTs; marked ``s3``; a subset of
the operations, modes without "prefix", which an all-or-nothing PUT cannot produce).
"""

from __future__ import annotations

import collections
import datetime as dt
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import fsspec
import pytest
from faultfs import MODES, PLAN, S3_MODES, clone_tree, drop_tree
from helpers import SCHEMA, checkpoint_versions, log_entry_path, make_data, rows

import lakehouse as lh
from lakehouse import maintenance

APP = ("faults", 1)
OLD_VERSION = 2


def _append(t: lh.Table) -> object:
    return t.append(make_data(range(100, 104), part=[0, 1, 3, 3]), app_transaction=APP)


def _overwrite(t: lh.Table) -> object:
    return t.overwrite(make_data(range(200, 204), part=[0, 0, 4, 4]), app_transaction=APP)


def _overwrite_filter(t: lh.Table) -> object:
    return t.overwrite(make_data(range(300, 303), part=1), filter=[("part", "=", 1)], app_transaction=APP)


def _delete_whole(t: lh.Table) -> object:
    return t.delete([("part", "=", 2)], app_transaction=APP)  # drops whole files, writes none


def _delete_partial(t: lh.Table) -> object:
    return t.delete([("id", "in", [0, 2])], app_transaction=APP)  # rewrites two files


def _transaction(t: lh.Table) -> object:
    with t.transaction(app_transaction=APP) as tx:
        tx.delete([("id", "=", 4)])
        tx.append(make_data(range(400, 403), part=[2, 5, 5]))
    return tx.version


def _checkpoint(t: lh.Table) -> object:
    return t.checkpoint()


OPERATIONS: dict[str, Callable[[lh.Table], object]] = {
    "append": _append,
    "overwrite": _overwrite,
    "overwrite_filter": _overwrite_filter,
    "delete_whole": _delete_whole,
    "delete_partial": _delete_partial,
    "transaction": _transaction,
    "checkpoint": _checkpoint,
}

# cases that fail because of a library bug: (operation, mode) -> reason
XFAIL: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Backend:
    """Where the tables of a run live: URIs ``<base><name>``; copying and dropping count no I/O."""

    base: str  # "faultfs://" or "faults3://<bucket>/"
    protocol: str

    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem(self.protocol)

    def root(self, uri: str) -> str:
        """The filesystem path of ``uri`` (the memory store keeps the protocol in its paths)."""
        if self.protocol == "faultfs" or "://" not in uri:
            return uri
        return uri.split("://", 1)[1]

    def new_uri(self, kind: str) -> str:
        return f"{self.base}{kind}-{uuid.uuid4().hex}"

    def clone(self, src_uri: str, dst_uri: str) -> None:
        if self.protocol == "faultfs":
            clone_tree(self.root(src_uri), self.root(dst_uri))
            return
        fs, src, dst = self.fs(), self.root(src_uri), self.root(dst_uri)
        fs.invalidate_cache()
        files = fs.find(src)
        fs.copy(files, [dst + f[len(src) :] for f in files])  # server-side copies
        fs.invalidate_cache()

    def drop(self, uri: str) -> None:
        if self.protocol == "faultfs":
            drop_tree(self.root(uri))
            return
        fs = self.fs()
        fs.invalidate_cache()
        fs.rm(self.root(uri), recursive=True)
        fs.invalidate_cache()

    def fresh(self, template: str, kind: str = "run") -> str:
        uri = self.new_uri(kind)
        self.clone(template, uri)
        return uri


MEMORY = Backend("faultfs://", "faultfs")
S3_BUCKET = "lakehouse-test"
S3 = Backend(f"faults3://{S3_BUCKET}/", "faults3")
# the S3 variant: the operations with the most distinct call sequences (data files, a rewrite, a
# multi-action transaction, the checkpoint), in the modes a real store can produce
S3_OPERATIONS = ("append", "overwrite_filter", "delete_partial", "transaction", "checkpoint")
# "from" is "lost" without the landed request; left out to keep the run short (moto answers in
# 15-30 ms, about 2 s per injection point with the checks); add it from S3_MODES when needed
S3_TEST_MODES = tuple(m for m in S3_MODES if m != "from")


def _make_template(backend: Backend) -> str:
    """Version 2 of a table with partitions 0, 1, 2, six files and a checkpoint at 1; copied for every run."""
    uri = backend.new_uri("tmpl")
    PLAN.disarm()
    t = lh.Table.create(uri, SCHEMA, partition_by=["part"], properties={"checkpoint_interval": "3"})
    t.append(make_data(range(0, 6), part=[0, 0, 1, 1, 2, 2]))
    assert t.checkpoint() == 1  # so _last_checkpoint exists and is overwritten by later checkpoints
    t.append(make_data(range(6, 9), part=[0, 1, 2]))
    assert t.version == OLD_VERSION and t.files().num_rows == 6
    return uri


@pytest.fixture(scope="module")
def template() -> Iterator[str]:
    uri = _make_template(MEMORY)
    yield uri
    MEMORY.drop(uri)


@pytest.fixture(scope="module")
def s3_template(s3) -> Iterator[str]:
    """The template on the moto server; ``faults3`` gets the server's storage options as defaults."""
    old = fsspec.config.conf.get("faults3")
    fsspec.config.conf["faults3"] = s3.storage_options
    try:
        uri = _make_template(S3)
        yield uri
        S3.drop(uri)
    finally:
        if old is None:
            fsspec.config.conf.pop("faults3", None)
        else:
            fsspec.config.conf["faults3"] = old


def _run(op: Callable[[lh.Table], object], t: lh.Table) -> tuple[BaseException | None, int]:
    """Run ``op``; return what it raised (or None) and how many warnings it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            op(t)
        except Exception as exc:  # judged by the caller
            return exc, len(caught)
    return None, len(caught)


def _state(uri: str) -> tuple[int, list[tuple], int | None]:
    t = lh.Table.open(uri)
    versions = [c.version for c in t.history()]
    assert versions == list(range(t.version, -1, -1)), f"history not contiguous: {versions}"
    return t.version, rows(t.to_arrow()), t.app_version(APP[0])


def _checkpoint_is_complete(backend: Backend, uri: str, version: int, expected: list[tuple]) -> bool:
    """The checkpoint at ``version`` alone reconstructs the table (tried on a copy without the entries it covers)."""
    if version not in checkpoint_versions(uri):
        return False
    scratch = backend.fresh(uri, "scratch")
    try:
        fs = backend.fs()
        for v in range(version + 1):
            fs.rm_file(backend.root(log_entry_path(scratch, v)))
        return rows(lh.Table.open(scratch).to_arrow()) == expected
    except lh.LakehouseError:
        return False
    finally:
        backend.drop(scratch)


def _orphans(backend: Backend, uri: str) -> int:
    """Data files that no version references (left for vacuum)."""
    fs = backend.fs()
    root = backend.root(uri)
    fs.invalidate_cache()
    on_disk = {p[len(root) + 1 :] for p in fs.find(root) if p.endswith(".parquet")}
    t = lh.Table.open(uri)
    referenced: set[str] = set()
    for v in range(t.version + 1):
        referenced.update(t.snapshot(version=v).files().column("path").to_pylist())
    assert referenced <= on_disk, f"referenced data files are missing: {referenced - on_disk}"
    return len(on_disk - referenced)


def _params():
    for name in OPERATIONS:
        for mode in MODES:
            reason = XFAIL.get((name, mode))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(name, mode, marks=marks, id=f"{name}-{mode}")


@pytest.mark.parametrize(("name", "mode"), list(_params()))
def test_fault_at_every_call(template: str, name: str, mode: str) -> None:
    _fault_at_every_call(MEMORY, template, name, mode)


@pytest.mark.s3
@pytest.mark.parametrize("mode", S3_TEST_MODES)
@pytest.mark.parametrize("name", S3_OPERATIONS)
def test_fault_at_every_call_s3(s3_template: str, name: str, mode: str) -> None:
    """The same on S3 (moto): commits are conditional PUTs, data files multipart-less uploads."""
    _fault_at_every_call(S3, s3_template, name, mode)


def _fault_at_every_call(backend: Backend, template: str, name: str, mode: str) -> None:
    op = OPERATIONS[name]
    is_checkpoint = name == "checkpoint"
    old = rows(lh.Table.open(template).to_arrow())

    # the reference run: no fault, counts the calls and gives the new state
    uri = backend.fresh(template)
    t = lh.Table.open(uri)
    PLAN.arm(None)
    try:
        exc, _ = _run(op, t)
    finally:
        PLAN.disarm()
    assert exc is None, exc
    reference_calls, reference_writes = PLAN.calls, PLAN.writes
    new_version, new, new_app = _state(uri)
    assert new_version == (OLD_VERSION if is_checkpoint else OLD_VERSION + 1)
    assert new_app == (None if is_checkpoint else APP[1])
    assert is_checkpoint or new != old
    backend.drop(uri)

    outcomes: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    fired_at: collections.Counter[str] = collections.Counter()
    warned = orphans = 0
    k = 0
    while True:
        assert k < 10 * reference_calls + 50, "the operation never completes untouched"
        uri = backend.fresh(template)
        t = lh.Table.open(uri)
        PLAN.arm(mode, k)
        try:
            exc, nwarn = _run(op, t)
        finally:
            PLAN.disarm()
        fired = list(PLAN.fired)
        if not fired:
            assert exc is None, exc
            backend.drop(uri)
            break
        where = f"{name}/{mode} k={k} (fault at {fired[0][1]} {fired[0][2]})"
        fired_at[fired[0][1]] += 1
        warned += nwarn
        if exc is not None:
            assert isinstance(exc, (lh.LakehouseError, OSError)), f"{where}: untyped {exc!r}"
            errors[type(exc).__name__] += 1

        # reopen: exactly the old or exactly the new state
        version, got, app = _state(uri)
        if is_checkpoint:
            assert (version, got) == (OLD_VERSION, old), where
            landed = _checkpoint_is_complete(backend, uri, OLD_VERSION, old)
        elif got == old:
            assert (version, app) == (OLD_VERSION, None), f"{where}: old rows at version {version}, app {app}"
            landed = False
        else:
            assert got == new, f"{where}: neither the old nor the new rows"
            assert (version, app) == (new_version, new_app), f"{where}: new rows at version {version}, app {app}"
            landed = True
        outcomes["ok" if exc is None else ("raised-and-new" if landed else "raised-and-old")] += 1
        if exc is None:
            assert landed, f"{where}: acknowledged but not in the table"
        if isinstance(exc, lh.CommitStateUnknownError):
            # the error names the version and commit id to look for: they tell the truth
            assert exc.version == OLD_VERSION + 1 and exc.commit_id, f"{where}: {exc.version=} {exc.commit_id=}"
            ids = [c.info["commit_id"] for c in lh.Table.open(uri).history()]
            assert (exc.commit_id in ids) == landed, f"{where}: commit id {exc.commit_id} vs history {ids}"
        if landed and not is_checkpoint:
            assert rows(lh.Table.open(uri).to_arrow(version=OLD_VERSION)) == old, f"{where}: old version changed"

        # retry on the same handle with the same application transaction: applied exactly once
        exc2, _ = _run(op, t)
        assert exc2 is None, f"{where}: retry failed: {exc2!r}"
        version, got, app = _state(uri)
        assert (version, got, app) == (new_version, new, new_app), f"{where}: after retry"
        orphans += _orphans(backend, uri)
        if is_checkpoint:
            complete = _checkpoint_is_complete(backend, uri, OLD_VERSION, new)
            assert complete, f"{where}: checkpoint incomplete after retry"
        backend.drop(uri)
        k += 1

    summary = ", ".join(f"{key}={outcomes[key]}" for key in ("ok", "raised-and-old", "raised-and-new"))
    print(
        f"\n[faults] {backend.protocol:7s} {name:16s} {mode:6s}: {k:3d} injection points "
        f"(reference run: {reference_calls} calls, "
        f"{reference_writes} writes); {summary}; errors {dict(errors)}; faulted calls {dict(fired_at)}; "
        f"orphan data files left {orphans}; post-commit warnings {warned}"
    )
    assert sum(outcomes.values()) == k


# -- maintenance: optimize, vacuum and log clean-up change no rows ---------------------------------
def _prepare_maintenance(t: lh.Table) -> None:
    """Faults off: leave files that vacuum may delete and entries that clean-up may remove."""
    t.delete([("part", "=", 2)])   # version 3: two files become deletable
    t.append(make_data(range(50, 52), part=[0, 1]))  # version 4: small files for optimize
    t.checkpoint()


def _optimize(t: lh.Table) -> object:
    return t.optimize()


def _vacuum(t: lh.Table) -> object:
    return maintenance.vacuum(t._storage, t._state, retention=dt.timedelta(0), enforce_retention=False,
                              dry_run=False, now_ms=int(time.time() * 1000) + 86_400_000)


def _cleanup_log(t: lh.Table) -> object:
    return maintenance.cleanup_log(t._storage, t._state, retention=dt.timedelta(0), enforce_retention=False,
                                   now_ms=int(time.time() * 1000) + 86_400_000)


MAINTENANCE: dict[str, Callable[[lh.Table], object]] = {
    "optimize": _optimize, "vacuum": _vacuum, "cleanup_log": _cleanup_log,
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(MAINTENANCE))
def test_fault_at_every_call_of_maintenance(template: str, name: str, mode: str) -> None:
    """Whatever call fails, the latest version reads the same rows with every file it needs, the
    operation raises a typed error or completes, and running it again completes."""
    op = MAINTENANCE[name]
    k = 0
    outcomes: collections.Counter[str] = collections.Counter()
    while True:
        assert k < 500, "the operation never completes untouched"
        uri = MEMORY.fresh(template)
        t = lh.Table.open(uri)
        _prepare_maintenance(t)
        expected = rows(t.to_arrow())
        before = t.version
        PLAN.arm(mode, k)
        try:
            exc, _ = _run(op, t)
        finally:
            PLAN.disarm()
        if not PLAN.fired:
            assert exc is None, exc
            MEMORY.drop(uri)
            break
        where = f"{name}/{mode} k={k}"
        if exc is not None:
            assert isinstance(exc, (lh.LakehouseError, OSError)), f"{where}: untyped {exc!r}"
        fresh = lh.Table.open(uri)
        assert fresh.version in (before, before + 1), where
        assert rows(fresh.to_arrow()) == expected, f"{where}: rows changed"
        outcomes["ok" if exc is None else ("raised-and-new" if fresh.version > before else "raised-and-old")] += 1
        exc2, _ = _run(op, fresh)
        assert exc2 is None, f"{where}: retry failed: {exc2!r}"
        assert rows(lh.Table.open(uri).to_arrow()) == expected, f"{where}: rows changed after retry"
        MEMORY.drop(uri)
        k += 1
    print(f"\n[faults] {name:16s} {mode:6s}: {k:3d} injection points; {dict(outcomes)}")
    assert sum(outcomes.values()) == k

"""Fault injection at every I/O call of a write, SQLite-style (issue 4, "Faults" point 3).

For each operation and fault mode (see ``faultfs.py``), for k = 0, 1, 2, ...: a fresh copy of a small
partitioned table, the fault armed at call k, the operation run once with an application
transaction id; whatever it raises must be a ``LakehouseError`` or an ``OSError``. Then, faults
off: the table opens and holds exactly the old rows (version 2) or exactly the new rows (version 3,
app version 1), history contiguous, and no file under a final log name is torn; and the same
operation retried on the same handle with the same application transaction leaves exactly the new
rows, committed once. The loop stops at the first k the operation completes without reaching (run
with ``-s`` to see the figures per case).

The table has ``checkpoint_interval = 3``, so each commit (version 3) is followed by an automatic
checkpoint: faults after the commit landed are covered too.

One case table, three backends (:data:`CASES`):

* ``faultfs://`` (memory; every operation, every mode);
* ``faults3://`` (s3fs against the moto server of the ``s3`` fixture, so commits are conditional
  PUTs; marked ``s3``; a subset of the operations, modes without "prefix", which an all-or-nothing
  PUT cannot produce);
* local disk (a temporary folder; every OS call of ``lakehouse.storage``/``lakehouse.write``, every
  fsspec ``LocalFileSystem`` call and every pyarrow filesystem call counted and faulted by
  ``localfaults.py``, which raises what a disk raises: EIO, ENOSPC). Modes: those of memory plus
  "torn" (a crash mid-write: the torn bytes stay and nothing runs after them). The quick run
  (:data:`LOCAL_QUICK`, about 35-50 s on 2 cores) covers every operation in "prefix" and "torn"
  and each call-level mode on operations with different call sequences; ``LH_FAULTS_LOCAL=full``
  runs every operation in every mode (about 100 s). On local disk no file under a final log name
  (entry, checkpoint, ``_last_checkpoint``) may ever be torn.

Maintenance (optimize, vacuum, log clean-up) runs on memory (every mode) and on local disk
(:data:`LOCAL_MAINTENANCE_QUICK`; every mode with ``LH_FAULTS_LOCAL=full``). Two more local tests:
every ``sys.audit`` file-system event of the operations happens inside a counted call (the
injector misses nothing), and the two commit primitives (``put_if_absent``, ``overwrite``)
faulted call by call never tear a final name and leave no temp file after an error.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
import localfaults
import pytest
from faultfs import MODES, PLAN, S3_MODES, TORN, clone_tree, drop_tree
from helpers import SCHEMA, checkpoint_versions, log_entry_path, make_data, rows

import lakehouse as lh
from lakehouse import maintenance
from lakehouse.checkpoint import decode_checkpoint
from lakehouse.log import CHECKPOINT_POINTER, LOG_DIR, decode_entry, parse_log_name, unseal
from lakehouse.storage import Storage

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

# cases that fail because of a library bug: (backend, operation, mode) -> reason
XFAIL: dict[tuple[str, str, str], str] = {}


@dataclass(frozen=True)
class Backend:
    """Where the tables of a run live: URIs ``<base><name>``; copying and dropping count no I/O."""

    kind: str  # "memory", "s3" or "local"
    base: str  # "faultfs://", "faults3://<bucket>/" or "<folder>/"
    protocol: str

    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem(self.protocol)

    def root(self, uri: str) -> str:
        """The filesystem path of ``uri`` (the memory store keeps the protocol in its paths)."""
        if self.kind in ("memory", "local") or "://" not in uri:
            return uri
        return uri.split("://", 1)[1]

    def new_uri(self, kind: str) -> str:
        return f"{self.base}{kind}-{uuid.uuid4().hex}"

    def injector(self) -> contextlib.AbstractContextManager[None]:
        """What routes the backend's I/O through :data:`PLAN` (the wrapper filesystems do it themselves)."""
        return localfaults.installed() if self.kind == "local" else contextlib.nullcontext()

    def clone(self, src_uri: str, dst_uri: str) -> None:
        if self.kind == "memory":
            clone_tree(self.root(src_uri), self.root(dst_uri))
            return
        if self.kind == "local":
            shutil.copytree(src_uri, dst_uri)  # copy2: modification times kept (vacuum reads them)
            return
        fs, src, dst = self.fs(), self.root(src_uri), self.root(dst_uri)
        fs.invalidate_cache()
        files = fs.find(src)
        fs.copy(files, [dst + f[len(src) :] for f in files])  # server-side copies
        fs.invalidate_cache()

    def drop(self, uri: str) -> None:
        if self.kind == "memory":
            drop_tree(self.root(uri))
            return
        if self.kind == "local":
            shutil.rmtree(uri)
            return
        fs = self.fs()
        fs.invalidate_cache()
        fs.rm(self.root(uri), recursive=True)
        fs.invalidate_cache()

    def fresh(self, template: str, kind: str = "run") -> str:
        uri = self.new_uri(kind)
        self.clone(template, uri)
        return uri


MEMORY = Backend("memory", "faultfs://", "faultfs")
S3_BUCKET = "lakehouse-test"
S3 = Backend("s3", f"faults3://{S3_BUCKET}/", "faults3")
FULL_LOCAL = os.environ.get("LH_FAULTS_LOCAL", "") == "full"

# -- the case table: backend -> (operations, modes) ------------------------------------------------
# S3: the operations with the most distinct call sequences (data files, a rewrite, a multi-action
# transaction, the checkpoint), in the modes a real store can produce. "from" is "lost" without
# the landed request; left out to keep the run short (moto answers in 15-30 ms, about 2 s per
# injection point with the checks); add it from S3_MODES when needed.
S3_OPERATIONS = ("append", "overwrite_filter", "delete_partial", "transaction", "checkpoint")
S3_TEST_MODES = tuple(m for m in S3_MODES if m != "from")
# local disk: 15-35 counted calls per operation (every syscall of the temp + fsync + link commit,
# of the checkpoint's temp + rename, each data file's stream), about 0.14 s per injection point
# with the checks. Modes: MODES and TORN (a crash mid-write: the torn file stays, nothing runs
# after it). Quick run: every operation in "prefix" and "torn" (the byte-writing calls) and in at
# least one call-level mode; each call-level mode on operations with different call sequences
# (data files written, data files read and rewritten, no data file, the checkpoint).
# LH_FAULTS_LOCAL=full: every operation in every mode.
LOCAL_MODES = (*MODES, TORN)
LOCAL_QUICK: dict[str, tuple[str, ...]] = {
    "before": ("append", "delete_partial", "checkpoint"),
    "after": ("transaction", "delete_whole", "checkpoint"),
    "from": ("overwrite",),
    "lost": ("overwrite_filter", "checkpoint"),
    "prefix": tuple(OPERATIONS),
    TORN: tuple(OPERATIONS),
}
LOCAL_MAINTENANCE_QUICK: dict[str, tuple[str, ...]] = {
    "before": ("optimize", "cleanup_log"),
    "after": ("vacuum",),
    "from": ("vacuum",),
    "lost": ("cleanup_log",),
    "prefix": ("optimize",),
    TORN: ("optimize",),
}


def _cases() -> Iterator[tuple[str, str, str]]:
    for name in OPERATIONS:
        for mode in MODES:
            yield "memory", name, mode
    for name in S3_OPERATIONS:
        for mode in S3_TEST_MODES:
            yield "s3", name, mode
    for name in OPERATIONS:
        for mode in LOCAL_MODES:
            if FULL_LOCAL or name in LOCAL_QUICK[mode]:
                yield "local", name, mode


CASES = tuple(_cases())


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
def memory_template() -> Iterator[tuple[Backend, str]]:
    uri = _make_template(MEMORY)
    yield MEMORY, uri
    MEMORY.drop(uri)


@pytest.fixture(scope="module")
def s3_template(s3) -> Iterator[tuple[Backend, str]]:
    """The template on the moto server; ``faults3`` gets the server's storage options as defaults."""
    old = fsspec.config.conf.get("faults3")
    fsspec.config.conf["faults3"] = s3.storage_options
    try:
        uri = _make_template(S3)
        yield S3, uri
        S3.drop(uri)
    finally:
        if old is None:
            fsspec.config.conf.pop("faults3", None)
        else:
            fsspec.config.conf["faults3"] = old


@pytest.fixture(scope="module")
def local_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, str]]:
    backend = Backend("local", f"{tmp_path_factory.mktemp('faults-local')}/", "file")
    uri = _make_template(backend)
    yield backend, uri
    backend.drop(uri)


@contextlib.contextmanager
def _armed(backend: Backend, mode: str | None, k: int = -1) -> Iterator[None]:
    """Count (and fault, per ``mode`` and ``k``) the backend's I/O calls inside the block."""
    with backend.injector():
        PLAN.arm(mode, k)
        try:
            yield
        finally:
            PLAN.disarm()


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


def _torn_final_names(backend: Backend, uri: str) -> list[str]:
    """Log files under a final name that do not decode: entries; on local disk also checkpoints and
    ``_last_checkpoint``.

    Readers survive a torn checkpoint or pointer (they fall back), so the reopen check alone would
    not see one. ``faultfs``'s "prefix" tears checkpoints on purpose (a store without all-or-nothing
    writes), but the local protocol promises more: a temp file and a rename, never a torn final name.
    """
    storage = Storage.from_uri(uri)
    torn = []
    for name in storage.list(LOG_DIR):
        rel = f"{LOG_DIR}/{name}"
        parsed = parse_log_name(name)
        try:
            if parsed is not None and parsed[1] == "entry":
                decode_entry(storage.read(rel), path=rel, version=parsed[0])
            elif backend.kind != "local":
                continue
            elif parsed is not None:
                decode_checkpoint(storage.read(rel), path=rel, version=parsed[0]).files  # noqa: B018
            elif rel == CHECKPOINT_POINTER:
                unseal(storage.read(rel), path=rel)
        except lh.CorruptLogError:
            torn.append(name)
    return torn


def _temp_files(backend: Backend, uri: str) -> int:
    """Temporary files of the local commit protocol left in the log folder (never read; harmless)."""
    if backend.kind != "local":
        return 0
    return sum(1 for n in os.listdir(f"{uri}/{LOG_DIR}") if n.startswith(".tmp-") or n.endswith(".tmp"))


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
    for backend, name, mode in CASES:
        reason = XFAIL.get((backend, name, mode))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        if backend == "s3":
            marks.append(pytest.mark.s3)
        yield pytest.param(backend, name, mode, marks=marks, id=f"{backend}-{name}-{mode}")


@pytest.mark.parametrize(("backend", "name", "mode"), list(_params()))
def test_fault_at_every_call(request: pytest.FixtureRequest, backend: str, name: str, mode: str) -> None:
    """Memory: every operation, every mode. S3 (moto): commits are conditional PUTs, data files
    multipart-less uploads. Local disk: every syscall of the commit protocol, fsspec and pyarrow."""
    where, template = request.getfixturevalue(f"{backend}_template")
    _fault_at_every_call(where, template, name, mode)


def _fault_at_every_call(backend: Backend, template: str, name: str, mode: str) -> None:
    op = OPERATIONS[name]
    is_checkpoint = name == "checkpoint"
    old = rows(lh.Table.open(template).to_arrow())

    # the reference run: no fault, counts the calls and gives the new state
    uri = backend.fresh(template)
    t = lh.Table.open(uri)
    with _armed(backend, None):
        exc, _ = _run(op, t)
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
    warned = orphans = temps = 0
    k = 0
    while True:
        assert k < 10 * reference_calls + 50, "the operation never completes untouched"
        uri = backend.fresh(template)
        t = lh.Table.open(uri)
        with _armed(backend, mode, k):
            exc, nwarn = _run(op, t)
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

        # reopen: exactly the old or exactly the new state, nothing torn under a final name
        assert not _torn_final_names(backend, uri), f"{where}: torn log files {_torn_final_names(backend, uri)}"
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
        elif isinstance(exc, lh.CommitError) and not isinstance(exc, lh.CommitConflictError):
            assert not landed, f"{where}: {exc!r} says nothing was committed, but the commit landed"
        if landed and not is_checkpoint:
            assert rows(lh.Table.open(uri).to_arrow(version=OLD_VERSION)) == old, f"{where}: old version changed"

        # retry on the same handle with the same application transaction: applied exactly once
        exc2, _ = _run(op, t)
        assert exc2 is None, f"{where}: retry failed: {exc2!r}"
        version, got, app = _state(uri)
        assert (version, got, app) == (new_version, new, new_app), f"{where}: after retry"
        assert not _torn_final_names(backend, uri), f"{where}: torn log files after retry"
        orphans += _orphans(backend, uri)
        temps += _temp_files(backend, uri)
        if is_checkpoint:
            complete = _checkpoint_is_complete(backend, uri, OLD_VERSION, new)
            assert complete, f"{where}: checkpoint incomplete after retry"
        backend.drop(uri)
        k += 1

    summary = ", ".join(f"{key}={outcomes[key]}" for key in ("ok", "raised-and-old", "raised-and-new"))
    print(
        f"\n[faults] {backend.kind:6s} {name:16s} {mode:6s}: {k:3d} injection points "
        f"(reference run: {reference_calls} calls, "
        f"{reference_writes} writes); {summary}; errors {dict(errors)}; faulted calls {dict(fired_at)}; "
        f"orphan data files left {orphans}; temp files left {temps}; post-commit warnings {warned}"
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


# on S3 each maintenance job under one mode (a lost response where a job writes, a failure before
# the call where it only deletes); the memory and local variants run every mode
S3_MAINTENANCE = (("optimize", "lost"), ("vacuum", "before"), ("cleanup_log", "after"))


def _maintenance_params():
    for name in MAINTENANCE:
        for mode in MODES:
            yield pytest.param("memory", name, mode, id=f"memory-{name}-{mode}")
    for name in MAINTENANCE:
        for mode in LOCAL_MODES:
            if FULL_LOCAL or name in LOCAL_MAINTENANCE_QUICK[mode]:
                yield pytest.param("local", name, mode, id=f"local-{name}-{mode}")
    for name, mode in S3_MAINTENANCE:
        yield pytest.param("s3", name, mode, id=f"s3-{name}-{mode}", marks=pytest.mark.s3)


@pytest.mark.parametrize(("backend", "name", "mode"), list(_maintenance_params()))
def test_fault_at_every_call_of_maintenance(request: pytest.FixtureRequest, backend: str, name: str,
                                            mode: str) -> None:
    """Whatever call fails, the latest version reads the same rows with every file it needs, the
    operation raises a typed error or completes, and running it again completes."""
    where, template = request.getfixturevalue(f"{backend}_template")
    _maintenance_at_every_call(where, template, name, mode)


def _maintenance_at_every_call(backend: Backend, template: str, name: str, mode: str) -> None:
    op = MAINTENANCE[name]
    k = 0
    outcomes: collections.Counter[str] = collections.Counter()
    while True:
        assert k < 500, "the operation never completes untouched"
        uri = backend.fresh(template)
        t = lh.Table.open(uri)
        _prepare_maintenance(t)
        expected = rows(t.to_arrow())
        before = t.version
        with _armed(backend, mode, k):
            exc, _ = _run(op, t)
        if not PLAN.fired:
            assert exc is None, exc
            backend.drop(uri)
            break
        where = f"{name}/{mode} k={k} (fault at {PLAN.fired[0][1]} {PLAN.fired[0][2]})"
        if exc is not None:
            assert isinstance(exc, (lh.LakehouseError, OSError)), f"{where}: untyped {exc!r}"
        assert not _torn_final_names(backend, uri), f"{where}: torn log files {_torn_final_names(backend, uri)}"
        fresh = lh.Table.open(uri)
        assert fresh.version in (before, before + 1), where
        assert rows(fresh.to_arrow()) == expected, f"{where}: rows changed"
        outcomes["ok" if exc is None else ("raised-and-new" if fresh.version > before else "raised-and-old")] += 1
        exc2, _ = _run(op, fresh)
        assert exc2 is None, f"{where}: retry failed: {exc2!r}"
        assert rows(lh.Table.open(uri).to_arrow()) == expected, f"{where}: rows changed after retry"
        backend.drop(uri)
        k += 1
    print(f"\n[faults] {backend.kind:6s} {name:16s} {mode:6s}: {k:3d} injection points; {dict(outcomes)}")
    assert sum(outcomes.values()) == k


# -- the local injector sees every call -----------------------------------------------------------
def test_local_injector_sees_every_file_system_call(local_template: tuple[Backend, str]) -> None:
    """Every file-system event (``sys.audit``: open, link, rename, remove, mkdir, listdir, ...) that
    the operations and maintenance make under the table folder happens inside a counted call."""
    backend, template = local_template
    ops = {**OPERATIONS, **MAINTENANCE}
    for name, op in ops.items():
        uri = backend.fresh(template)
        t = lh.Table.open(uri)
        if name in MAINTENANCE:
            _prepare_maintenance(t)
        with localfaults.audited(uri) as escaped, _armed(backend, None):
            exc, _ = _run(op, t)
        assert exc is None, exc
        assert PLAN.calls > 0, name
        assert not escaped, f"{name}: file-system calls the injector did not see: {escaped}"
        print(f"\n[faults] local  {name:16s}: {PLAN.calls} counted calls, none unseen")
        backend.drop(uri)


# -- the local primitives, call by call -----------------------------------------------------------
def _primitive_at_every_call(tmp_path, mode: str, write: Callable[[Storage, str, bytes], None],
                             *, existing: bytes | None) -> collections.Counter[str]:
    """Fault ``write(storage, rel, data)`` at every call k in ``mode``: afterwards the final name
    holds the old bytes (or nothing) or all the new bytes, and no temp file is left unless the
    fault hit the clean-up itself ("from", "lost", "torn": nothing after the fault runs)."""
    local = Backend("local", f"{tmp_path}/", "file")
    rel, data = f"{LOG_DIR}/00000000000000000007.msgpack", bytes(range(256)) * 64
    outcomes: collections.Counter[str] = collections.Counter()
    for k in range(100):
        root = local.new_uri("prim")
        storage = Storage.from_uri(root)
        if existing is not None:
            os.makedirs(f"{root}/{LOG_DIR}")
            Path(f"{root}/{rel}").write_bytes(existing)
        with _armed(local, mode, k):
            try:
                write(storage, rel, data)
                exc = None
            except OSError as e:
                exc = e
        if not PLAN.fired:
            assert exc is None, exc
            break
        where = f"{mode} k={k} (fault at {PLAN.fired[0][1]} {PLAN.fired[0][2]})"
        final = f"{root}/{rel}"
        held = Path(final).read_bytes() if os.path.exists(final) else None
        assert held in (existing, data), f"{where}: the final name holds {len(held or b'')} other bytes"
        temps = [n for n in os.listdir(os.path.dirname(final)) if n.startswith(".tmp-") or n.endswith(".tmp")] \
            if os.path.isdir(os.path.dirname(final)) else []
        # "after" on the temp file's os.open: created, but the process never got the descriptor
        # (an NFS create whose reply was lost), so it cannot know the file is there
        lost_create = mode == "after" and PLAN.fired[0][1] == "os.open" and ".tmp-" in PLAN.fired[0][2]
        cleanup = PLAN.fired[0][1] == "os.unlink"  # the fault hit the clean-up itself
        if mode in ("before", "after", "prefix") and not (lost_create or cleanup):
            assert not temps, f"{where}: temp files left after an error: {temps}"
        outcomes[("new" if held == data else "old") + ("" if exc is None else "/raised")] += 1
        shutil.rmtree(root, ignore_errors=True)  # a fault before the folder was made leaves none
    else:
        raise AssertionError("never completed untouched")
    return outcomes


def _put(storage: Storage, rel: str, data: bytes) -> None:
    storage.put_if_absent(rel, data)


def _overwrite_rel(storage: Storage, rel: str, data: bytes) -> None:
    storage.overwrite(rel, data)


@pytest.mark.parametrize("mode", LOCAL_MODES)
@pytest.mark.parametrize("primitive", ["put_if_absent", "overwrite"])
def test_local_primitives_at_every_call(tmp_path, primitive: str, mode: str) -> None:
    """``put_if_absent`` (temp, write, fsync, close, link, unlink, directory fsync) and ``overwrite``
    (temp, write, close, rename; checkpoints and ``_last_checkpoint``) on local disk: never a torn
    final name, and an error (not a crash) leaves no temp file behind."""
    write = _put if primitive == "put_if_absent" else _overwrite_rel
    existing = None if primitive == "put_if_absent" else b"old bytes"
    outcomes = _primitive_at_every_call(tmp_path, mode, write, existing=existing)
    print(f"\n[faults] local  {primitive:16s} {mode:6s}: {sum(outcomes.values())} injection points; {dict(outcomes)}")

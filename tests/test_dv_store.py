"""Deletion-vector storage (``lakehouse.dv_store``) and the commit plumbing the row-level writers call
(``Transaction.set_deletion_vectors``): vectors written and read back checked, the files table,
checkpoints, time travel, vacuum and restore (format §5.8, §8, §9, §17.1, §17.3).

These tests look at the files table and the state (plus one read: readers apply the vectors; every
reader is checked against a model in tests/test_dv_scan.py)."""

from __future__ import annotations

import datetime as dt
import os
import time

import fsspec
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse import maintenance
from lakehouse.deletion_vector import DeletionVector
from lakehouse.dv_store import load_vector, load_vectors, write_vectors
from lakehouse.log import MAX_INLINE_VECTOR_BYTES, DeletionVectorDescriptor, Protocol
from lakehouse.state import vector_descriptors
from lakehouse.storage import Storage

FUZZ = os.environ.get("LH_FUZZ") == "1"
_PROFILE = settings(max_examples=200 if FUZZ else 25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
N = 20_000  # rows per file: a vector of every 3rd row is too large to inline


def _dv(positions) -> DeletionVector:
    return DeletionVector.from_positions(positions)


def _table(uri: str, parts: int = 2) -> lh.Table:
    return lh.write_table(uri, pa.table({"a": np.arange(N * parts), "p": np.arange(N * parts) // N}),
                          partition_by=["p"])


def _paths(t: lh.Table) -> list[str]:
    return sorted(t.files().sort_by("partition.p").column("path").to_pylist(), key=lambda p: "p=1" in p)


def _deleted(t: lh.Table, version: int | None = None) -> dict[str, int]:
    files = t.files(version=version)
    return dict(zip(files.column("path").to_pylist(), files.column("num_deleted_rows").to_pylist()))


def _vector_files(uri: str) -> set[str]:
    fs, root = fsspec.core.url_to_fs(uri)
    folder = f"{root.rstrip('/')}/_deletion_vectors"
    return {p.rsplit("/", 1)[-1] for p in fs.find(folder)} if fs.exists(folder) else set()


def _mark(t: lh.Table, vectors: dict[str, DeletionVector]) -> int:
    with t.transaction() as tx:
        tx.set_deletion_vectors(vectors)
    return t.version


# -- write_vectors / load_vector ---------------------------------------------------------------------
@_PROFILE
@given(small=st.sets(st.integers(0, N - 1), min_size=1, max_size=20),
       step=st.integers(2, 5), start=st.integers(0, 50))
def test_vectors_round_trip_inline_and_in_one_shared_file(small, step, start):
    storage = Storage.from_uri(f"memory://dv-rt-{start}-{step}")
    vectors = {"a.parquet": _dv(small), "b.parquet": _dv(range(start, N, step)),
               "c.parquet": _dv(range(start + 1, N, step))}
    descriptors = write_vectors(storage, vectors)
    assert descriptors["a.parquet"].is_inline and len(descriptors["a.parquet"].inline) <= MAX_INLINE_VECTOR_BYTES
    assert descriptors["b.parquet"].path == descriptors["c.parquet"].path  # one file per call
    for path, vector in vectors.items():
        assert descriptors[path].cardinality == vector.cardinality
        assert load_vector(storage, descriptors[path], num_rows=N) == vector
    # in bulk, mixed with a second file's vectors, in any order
    more = write_vectors(storage, {"d.parquet": _dv(range(start + 2, N, step)), "e.parquet": _dv(range(0, N, 7))})
    mixed = [*descriptors.items(), *more.items()][::-1]
    expected = {**vectors, "d.parquet": _dv(range(start + 2, N, step)), "e.parquet": _dv(range(0, N, 7))}
    assert load_vectors(storage, [(d, N) for _, d in mixed]) == [expected[p] for p, _ in mixed]


def test_vectors_in_files_on_every_backend(table_uri):
    t = _table(table_uri)
    a, b = _paths(t)
    v = _mark(t, {a: _dv(range(0, N, 3)), b: _dv([5])})
    files = t.snapshot().state.files
    descriptors = dict(zip(files.column("path").to_pylist(), vector_descriptors(files)))
    assert descriptors[a].path is not None and descriptors[b].is_inline
    assert load_vector(t._storage, descriptors[a], num_rows=N) == _dv(range(0, N, 3))
    _mark(t, {b: _dv(range(1, N, 4))})  # a second vector file
    files = t.snapshot().state.files
    got = load_vectors(t._storage, list(zip(vector_descriptors(files), files.column("num_rows").to_pylist())))
    assert dict(zip(files.column("path").to_pylist(), got)) == {a: _dv(range(0, N, 3)),
                                                                 b: _dv([5]).union(_dv(range(1, N, 4)))}
    assert _deleted(t, 1) == {a: len(range(0, N, 3)), b: 1} and _deleted(t, 0) == {a: 0, b: 0}
    assert len(_vector_files(table_uri)) == 2 and v == 1


def _file_vector(tmp_path) -> tuple[Storage, DeletionVectorDescriptor, str]:
    storage = Storage.from_uri(str(tmp_path / "t"))
    d = write_vectors(storage, {"x.parquet": _dv(range(0, N, 3)), "y.parquet": _dv(range(1, N, 3))})["y.parquet"]
    return storage, d, str(tmp_path / "t" / d.path)


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "size field", "descriptor size", "cardinality",
                                    "offset past the end", "num_rows too small", "bad magic"])
def test_a_damaged_vector_is_corrupt_naming_its_file(tmp_path, damage):
    import dataclasses

    storage, d, full = _file_vector(tmp_path)
    with open(full, "rb") as f:
        data = bytearray(f.read())
    num_rows = N
    if damage == "flip a byte":
        data[d.offset + 10] ^= 0x40
    elif damage == "truncate":
        data = data[:d.offset + d.size]
    elif damage == "size field":
        data[d.offset + 3] ^= 1
    elif damage == "descriptor size":
        d = dataclasses.replace(d, size=d.size - 1)
    elif damage == "cardinality":
        d = dataclasses.replace(d, cardinality=d.cardinality + 1)
    elif damage == "offset past the end":
        d = dataclasses.replace(d, offset=len(data) + 5)
    elif damage == "num_rows too small":
        num_rows = N // 2
    elif damage == "bad magic":
        payload = bytes(data[d.offset + 4:d.offset + 4 + d.size])
        payload = b"\x00\x00\x00\x00" + payload[4:]
        import zlib
        data[d.offset + 4:d.offset + 8 + d.size] = payload + zlib.crc32(payload).to_bytes(4, "big")
    with open(full, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(lh.CorruptLogError) as info:
        load_vector(storage, d, num_rows=num_rows)
    assert info.value.path == full
    with pytest.raises(lh.CorruptLogError) as info:
        load_vectors(storage, [(d, num_rows)])
    assert info.value.path == full


def test_a_damaged_inline_vector_is_corrupt():
    storage = Storage.from_uri("memory://dv-inline-bad")
    with pytest.raises(lh.CorruptLogError):
        load_vector(storage, DeletionVectorDescriptor(cardinality=1, inline=b"\x00garbage"))


def test_a_missing_vector_file_is_version_not_found(tmp_path):
    storage, d, full = _file_vector(tmp_path)
    os.remove(full)
    with pytest.raises(lh.VersionNotFoundError, match=d.path):
        load_vector(storage, d, num_rows=N)


def test_a_vector_folder_linked_out_of_the_root_is_refused(tmp_path):
    storage, d, full = _file_vector(tmp_path)
    outside = tmp_path / "elsewhere"
    os.rename(os.path.dirname(full), outside)
    os.symlink(outside, os.path.dirname(full))
    with pytest.raises(lh.UnsafePathError):
        load_vector(storage, d, num_rows=N)
    with pytest.raises(lh.UnsafePathError):
        write_vectors(storage, {"z.parquet": _dv(range(0, N, 2))})


def test_an_empty_vector_is_refused():
    with pytest.raises(lh.InvalidArgumentError):
        write_vectors(Storage.from_uri("memory://dv-empty"), {"x.parquet": _dv([])})


# -- Transaction.set_deletion_vectors -------------------------------------------------------------------
def test_marking_rows_deleted_adds_to_the_vector_and_removes_a_file_whose_rows_all_go(table_uri):
    t = _table(table_uri)
    a, b = _paths(t)
    assert t.snapshot().state.protocol == Protocol()
    v1 = _mark(t, {a: _dv([1, 2])})
    assert t.snapshot().state.protocol == Protocol(min_reader_version=4, min_writer_version=4)
    v2 = _mark(t, {a: _dv([2, 3]), b: _dv(range(N))})  # b: every row -> removed
    assert _deleted(t) == {a: 3}
    with t.transaction() as tx:  # nothing new is deleted: no change
        tx.set_deletion_vectors({a: _dv([1])})
    assert _deleted(t) == {a: 3}
    info = {c.version: c.info for c in t.history()}
    assert (info[v1]["rows_added"], info[v1]["rows_removed"]) == (N - 2, N)
    assert (info[v2]["rows_added"], info[v2]["rows_removed"]) == (N - 3, 2 * N - 2)
    # time travel and a checkpoint round trip keep the vectors
    assert _deleted(t, v1) == {a: 2, b: 0} and _deleted(t, 0) == {a: 0, b: 0}
    before = t.snapshot().state.files
    t.checkpoint()
    again = lh.Table.open(table_uri)
    assert again.snapshot().state.files.equals(before)
    d = vector_descriptors(again.snapshot().state.files)[0]
    assert load_vector(again._storage, d, num_rows=N) == _dv([1, 2, 3])


def test_a_vector_and_other_operations_in_one_transaction(local_uri):
    t = _table(local_uri)
    a, b = _paths(t)
    with t.transaction() as tx:
        tx.set_deletion_vectors({a: _dv(range(0, N, 2))})
        tx.set_deletion_vectors({a: _dv([1])})  # unions with the vector set a moment ago
        tx.append(pa.table({"a": [7], "p": [0]}))
        tx.delete([("p", "=", 1)])  # removes b whole
    files = t.files()
    assert sorted(files.column("num_deleted_rows").to_pylist()) == [0, N // 2 + 1]
    assert b not in files.column("path").to_pylist()
    from lakehouse.replay import read_entry

    entry = read_entry(t._storage, t.version)
    assert {r.path for r in entry.remove} == {a, b} and a in {x.path for x in entry.add} and len(entry.add) == 2


def test_bad_vectors_are_refused_before_anything_is_written(local_uri):
    t = _table(local_uri)
    a, _ = _paths(t)
    for bad, match in [({a: _dv([N])}, "beyond"), ({"part-x.parquet": _dv([1])}, "not live"),
                       ({a: [1, 2]}, "DeletionVector")]:
        with pytest.raises(lh.InvalidArgumentError, match=match), t.transaction() as tx:
            tx.set_deletion_vectors(bad)
    with pytest.raises(lh.InvalidArgumentError, match="wrote"), t.transaction() as tx:
        tx.append(pa.table({"a": [7], "p": [0]}))
        tx.set_deletion_vectors({tx._files.column("path")[-1].as_py(): _dv([0])})
    assert t.version == 0 and _vector_files(local_uri) == set()


def test_an_aborted_or_conflicting_commit_deletes_its_vector_file_never_the_data_file(local_uri):
    t = _table(local_uri)
    a, b = _paths(t)
    with pytest.raises(RuntimeError), t.transaction() as tx:
        tx.set_deletion_vectors({a: _dv(range(0, N, 3))})
        assert len(_vector_files(local_uri)) == 1
        raise RuntimeError
    assert _vector_files(local_uri) == set()
    _mark(t, {b: _dv([0])})  # protocol 4 from here on
    other = lh.Table.open(local_uri)
    with pytest.raises(lh.CommitConflictError), other.transaction() as tx:  # both change a's vector
        tx.set_deletion_vectors({a: _dv(range(0, N, 3))})
        _mark(t, {a: _dv(range(0, N, 5))})  # wins meanwhile
    assert len(_vector_files(local_uri)) == 1  # the winner's only
    assert os.path.exists(os.path.join(local_uri, a))
    assert _deleted(lh.Table.open(local_uri))[a] == len(range(0, N, 5))


# -- vacuum and restore ------------------------------------------------------------------------------
def _later(days: int) -> int:
    return int(time.time() * 1000) + days * 86_400_000


def test_vacuum_keeps_the_vector_files_retained_versions_need(table_uri):
    t = _table(table_uri)
    a, _ = _paths(t)
    _mark(t, {a: _dv(range(0, N, 3))})                  # v1: vector file 1
    _mark(t, {a: _dv(range(1, N, 3))})                  # v2: vector file 2 replaces 1
    first, second = (t.files(version=v).column("deletion_vector_path").drop_null()[0].as_py().rsplit("/", 1)[1]
                     for v in (1, 2))
    storage = Storage.from_uri(table_uri)
    # every version retained: nothing goes
    assert maintenance.vacuum(storage, t._state, retention=dt.timedelta(days=2), enforce_retention=False,
                              now_ms=_later(1)) == []
    # only v2 retained: v1's vector file goes, v2's stays
    gone = maintenance.vacuum(storage, t._state, retention=dt.timedelta(days=2), enforce_retention=False,
                              now_ms=_later(3), dry_run=False)
    assert gone == [f"_deletion_vectors/{first}"]
    assert _vector_files(table_uri) == {second}
    d = vector_descriptors(t.snapshot().state.files.filter(pa.compute.equal(
        t.snapshot().state.files.column("path"), a)))[0]
    assert load_vector(storage, d, num_rows=N).cardinality == N - len(range(2, N, 3))
    # a foreign file in the vector folder is never deleted
    fs, root = fsspec.core.url_to_fs(table_uri)
    fs.pipe_file(f"{root}/_deletion_vectors/notes.txt", b"mine")
    maintenance.vacuum(storage, t._state, retention=dt.timedelta(0), enforce_retention=False,
                       now_ms=_later(3), dry_run=False)
    assert fs.exists(f"{root}/_deletion_vectors/notes.txt") and _vector_files(table_uri) == {second, "notes.txt"}


def test_restore_brings_back_vectors_and_takes_them_away(table_uri):
    t = _table(table_uri)
    a, b = _paths(t)
    _mark(t, {a: _dv(range(0, N, 3)), b: _dv([4])})     # v1
    _mark(t, {a: _dv([1]), b: _dv(range(N))})           # v2: b goes, a's vector grows
    t.restore(1)                                         # v3: b back with its vector, a's vector of v1
    assert _deleted(t) == _deleted(t, 1)
    files = t.snapshot().state.files
    for path, d in zip(files.column("path").to_pylist(), vector_descriptors(files)):
        assert load_vector(t._storage, d, num_rows=N) == (_dv(range(0, N, 3)) if path == a else _dv([4]))
    t.restore(0)                                         # v4: no vectors at all; the protocol stays 4
    assert _deleted(t) == {a: 0, b: 0}
    assert t.snapshot().state.protocol == Protocol(min_reader_version=4, min_writer_version=4)
    info = {c.version: c.info for c in t.history()}
    assert info[t.version]["rows_added"] - info[t.version]["rows_removed"] == len(range(0, N, 3)) + 1
    assert lh.Table.open(table_uri).snapshot().state.files.sort_by("path").equals(
        lh.Table.open(table_uri, version=0).snapshot().state.files.sort_by("path"))


def test_restore_refuses_a_version_whose_vector_file_was_vacuumed(local_uri):
    t = _table(local_uri)
    a, _ = _paths(t)
    _mark(t, {a: _dv(range(0, N, 3))})                  # v1: vector file
    _mark(t, {a: _dv(range(N - 1))})                    # v2: another
    storage = Storage.from_uri(local_uri)
    maintenance.vacuum(storage, t._state, retention=dt.timedelta(days=2), enforce_retention=False,
                       now_ms=_later(3), dry_run=False)
    with pytest.raises(lh.VersionNotFoundError, match="_deletion_vectors"):
        t.restore(1)
    assert t.version == 2


def test_dv_readers_do_not_return_rows_a_deletion_vector_deletes(local_uri):
    t = _table(local_uri, parts=1)
    (a,) = _paths(t)
    _mark(t, {a: _dv(range(0, N, 2))})
    assert t.to_arrow().column("a").to_pylist() == list(range(1, N, 2))


# -- a property: random vectors, checkpoints and restores against a model ------------------------------
ROWS = 40
steps = st.lists(st.one_of(
    st.tuples(st.just("mark"), st.integers(0, 2), st.sets(st.integers(0, ROWS - 1), min_size=1, max_size=ROWS)),
    st.tuples(st.just("checkpoint")),
    st.tuples(st.just("restore"), st.integers(0, 50)),
), min_size=1, max_size=6 if not FUZZ else 20)


@settings(max_examples=10 if not FUZZ else 200, deadline=None)
@given(steps=steps)
def test_vectors_follow_a_model_across_checkpoints_restores_and_time_travel(steps):
    uri = f"memory://dv-model-{os.urandom(8).hex()}"
    t = lh.write_table(uri, pa.table({"a": np.arange(3 * ROWS), "p": np.arange(3 * ROWS) // ROWS}),
                       partition_by=["p"])
    paths = sorted(t.files().column("path").to_pylist())
    model: list[dict[str, frozenset[int]]] = [{p: frozenset() for p in paths}]  # per version: live file -> deleted
    for step in steps:
        current = model[t.version]
        if step[0] == "mark":
            path = paths[step[1]]
            if path not in current:
                continue
            union = current[path] | step[2]
            version = _mark(t, {path: _dv(step[2])})
            if union == current[path]:  # nothing new is deleted: an empty transaction (if it commits)
                model += [dict(current)] * (version - len(model) + 1)
                continue
            after = dict(current)
            if len(union) == ROWS:
                del after[path]
            else:
                after[path] = frozenset(union)
            model.append(after)
        elif step[0] == "checkpoint":
            t.checkpoint()
        else:
            target = step[1] % len(model)
            t.restore(target)
            model.append(dict(model[target]))
        assert t.version == len(model) - 1
    reopened = lh.Table.open(uri)
    for version, expected in enumerate(model):
        files = reopened.snapshot(version=version).state.files
        got = {}
        for path, n, d in zip(files.column("path").to_pylist(), files.column("num_rows").to_pylist(),
                              vector_descriptors(files)):
            got[path] = frozenset() if d is None else frozenset(load_vector(reopened._storage, d, num_rows=n)
                                                                .positions.tolist())
        assert got == expected, version


def test_dv_copy_on_write_rewrite_of_a_file_with_a_vector_keeps_its_deleted_rows_deleted(local_uri):
    """A copy-on-write delete rewriting part of a file with a vector reads it through the vector: the
    rows the vector deleted never come back (this was refused while readers ignored vectors)."""
    t = _table(local_uri)
    t.alter.set_properties({"delete_mode": "copy-on-write"})
    a, b = _paths(t)
    _mark(t, {a: _dv([0, 1])})
    t.delete([("a", "=", 5)])
    assert a not in set(t.files().column("path").to_pylist())  # rewritten, without rows 0, 1 and 5
    assert sorted(t.to_arrow().column("a").to_pylist()) == [x for x in range(2 * N) if x not in (0, 1, 5)]
    t.delete([("a", "in", [2, 3])])  # the rewritten file has no vector: rewritten as before
    assert sorted(t.to_arrow().column("a").to_pylist()) == [x for x in range(2 * N) if x not in (0, 1, 2, 3, 5)]
    _mark(t, {b: _dv([0])})
    t.delete([("a", ">=", N + 1)])  # every live row of b matches: b goes whole
    assert b not in set(t.files().column("path").to_pylist())
    assert sorted(t.to_arrow().column("a").to_pylist()) == [x for x in range(N) if x not in (0, 1, 2, 3, 5)]


def test_dv_describe_and_history_count_live_rows(local_uri):
    import json

    from click.testing import CliRunner

    from lakehouse.cli import cli

    t = _table(local_uri)
    a, _ = _paths(t)
    _mark(t, {a: _dv(range(0, N, 4))})

    def describe(*extra: str) -> dict:
        result = CliRunner().invoke(cli, ["describe", local_uri, "--output", "json", *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert describe()["rows"] == 2 * N - N // 4
    assert describe("--version", "0")["rows"] == 2 * N
    history = next(h for h in t.inspect.history().to_pylist() if h["version"] == t.version)
    assert (history["rows_added"], history["rows_removed"]) == (N - N // 4, N)


def test_a_commit_inlines_at_most_64_kib_smallest_first():
    from lakehouse.dv_store import MAX_INLINE_BYTES_PER_COMMIT

    storage = Storage.from_uri("memory://dv-inline-budget")
    # 40 vectors of ~2 KiB each (about 1000 scattered positions): 80 KiB would be inline without a budget
    vectors = {f"f{i}.parquet": _dv(range(i, 1000 * (i + 3), i + 3)) for i in range(40)}
    descriptors = write_vectors(storage, vectors)
    inline = [d for d in descriptors.values() if d.is_inline]
    assert 0 < sum(len(d.inline) for d in inline) <= MAX_INLINE_BYTES_PER_COMMIT
    assert len({d.path for d in descriptors.values() if not d.is_inline}) == 1
    assert max(len(d.inline) for d in inline) <= min(d.size for d in descriptors.values() if not d.is_inline)
    assert load_vectors(storage, [(d, None) for d in descriptors.values()]) == list(vectors.values())

"""Row-level concurrency (format.md §12, "Row-level changes"): the conflict matrix, cell by cell, on local
disk and on S3 (moto), and the rebase that unions deletion vectors of writers changing disjoint rows.

Every cell builds both commits from the same read version: ours is decided first (a transaction kept
open, or an optimize on the pinned state), the winner's commits, then ours commits and either lands
(rebased) or raises ``CommitConflictError``. The rows of the final table are then compared with a
model: the base rows minus what the commits that landed deleted, plus what they added. Rows are read
from the data files with the vectors applied here (``dv_store.load_vector``), so the checks do not
depend on the readers applying vectors.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.deletion_vector import DeletionVector
from lakehouse.dv_store import load_vector
from lakehouse.maintenance import optimize
from lakehouse.replay import read_entry
from lakehouse.state import vector_descriptors

SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.int64())])
FUZZ = os.environ.get("LH_FUZZ") == "1"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def uri(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh table location on local disk or on the session's moto S3 server."""
    if request.param == "local":
        yield str(tmp_path / "t")
        return
    server = request.getfixturevalue("s3")
    old = dict(fsspec.config.conf.get("s3", {}))
    fsspec.config.conf["s3"] = server.storage_options
    try:
        yield f"s3://lakehouse-test/rc-{uuid.uuid4().hex}"
    finally:
        fsspec.config.conf["s3"] = old


def _rows(ids: list[int], v: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "v": pa.array([v] * len(ids), pa.int64())}, schema=SCHEMA)


def _base(uri: str) -> tuple[lh.Table, str, str]:
    """A table at protocol 4 with three files: F holds ids 0..9 (position == id), G ids 10..19 with
    row 19 deleted by a vector (which raised the protocol: a winner's raise conflicts by rule 2),
    H ids 20..29."""
    t = lh.write_table(uri, _rows(list(range(10))))
    t.append(_rows(list(range(10, 20))))
    t.append(_rows(list(range(20, 30))))
    f, g, _ = sorted(t.files().column("path").to_pylist(), key=lambda p: _first_id(t, p))
    with t.transaction() as tx:
        tx.set_deletion_vectors({g: DeletionVector.from_positions([9])})
    return t, f, g


def _first_id(t: lh.Table, path: str) -> int:
    files = t.files()
    row = files.filter(pc.equal(files.column("path"), path))
    return row.column("min.id")[0].as_py()


def live_rows(t: lh.Table) -> list[tuple[int, int]]:
    """The live rows of ``t`` (sorted ``(id, v)``), read from its data files with their vectors applied."""
    t.refresh()
    files = t.files()
    storage = t._storage
    out: list[tuple[int, int]] = []
    for path, n, desc in zip(files.column("path").to_pylist(), files.column("num_rows").to_pylist(),
                             vector_descriptors(files)):
        with storage.fs.open(storage.full_path(path), "rb") as fh:
            data = pq.read_table(fh, columns=["id", "v"])
        assert data.num_rows == n
        if desc is not None:
            data = data.filter(load_vector(storage, desc, num_rows=n).mask(n, arrow=True))
        out += list(zip(data.column("id").to_pylist(), data.column("v").to_pylist()))
    return sorted(out)


def _vector_files(t: lh.Table) -> set[str]:
    storage = t._storage
    try:
        names = storage.fs.ls(storage.full_path("_deletion_vectors"), detail=False)
    except FileNotFoundError:
        return set()
    return {"_deletion_vectors/" + n.rstrip("/").rsplit("/", 1)[-1] for n in names}


def _referenced_vector_files(t: lh.Table) -> set[str]:
    out: set[str] = set()
    for v in range(t.version + 1):
        out |= {d.path for d in vector_descriptors(t.snapshot(version=v).files()) if d is not None and d.path}
    return out


# -- the operations ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    """One side of a cell: ``prepare(table, F, G)`` decides the commit on the table's current version and
    returns the function that commits it; ``deletes``/``adds`` model its effect on the rows."""

    prepare: Callable[[lh.Table, str, str], Callable[[], object]]
    deletes: frozenset[int] = frozenset()
    adds: tuple[tuple[int, int], ...] = ()
    rows_unchanged: bool = False  # optimize: moves rows, changes none
    extra: dict = field(default_factory=dict)


def _tx(body: Callable[[lh.Transaction, str, str], None]) -> Callable[[lh.Table, str, str], Callable[[], object]]:
    def prepare(t: lh.Table, f: str, g: str) -> Callable[[], object]:
        tx = t.transaction()
        body(tx, f, g)
        return tx.commit
    return prepare


def append_op(ids: list[int]) -> Op:
    return Op(_tx(lambda tx, f, g: tx.append(_rows(ids, 1))), adds=tuple((i, 1) for i in ids))


def vector_op(ids: list[int], *, read: list[int] = ()) -> Op:
    """A delete/update by deletion vector of rows of F (ids == positions), declaring its filter."""
    def body(tx: lh.Transaction, f: str, g: str) -> None:
        tx.read_predicate(pc.field("id").isin(ids))
        if read:
            tx.read_rows({f: DeletionVector.from_positions(read)})
        tx.set_deletion_vectors({f: DeletionVector.from_positions(ids)})
    return Op(_tx(body), deletes=frozenset(ids))


def cow_op(ids: list[int]) -> Op:
    """A copy-on-write delete: rewrites F without the rows."""
    return Op(_tx(lambda tx, f, g: tx.delete(pc.field("id").isin(ids))), deletes=frozenset(ids))


def merge_op(matched: list[int], inserted: list[int], *, by_source: bool = False) -> Op:
    """What a merge commits: matched rows of F deleted by vector and re-written updated (v=2), new keys
    inserted; its read predicate is the source's keys (the whole table with a by-source clause)."""
    def body(tx: lh.Transaction, f: str, g: str) -> None:
        tx.read_predicate(None if by_source else pc.field("id").isin(matched + inserted))
        tx.set_deletion_vectors({f: DeletionVector.from_positions(matched)})
        tx.append(_rows(matched + inserted, 2))
    return Op(_tx(body), deletes=frozenset(matched), adds=tuple((i, 2) for i in matched + inserted))


def optimize_op() -> Op:
    def prepare(t: lh.Table, f: str, g: str) -> Callable[[], object]:
        state = t.snapshot().state
        return lambda: optimize(t._storage, state, target_file_size=1 << 30)
    return Op(prepare, rows_unchanged=True)


def metadata_op() -> Op:
    return Op(_tx(lambda tx, f, g: tx.set_properties({"owner": uuid.uuid4().hex})), rows_unchanged=True)


# ours (rows) x winner (columns): what the cell's two commits do in the matrix of format.md §12
OURS = {
    "append": append_op([100, 101]),
    "vector": vector_op([1, 2]),
    "rewrite": cow_op([3]),
    "merge": merge_op([4], [50]),
    "optimize": optimize_op(),
    "metadata": metadata_op(),
}
THEIRS = {
    "append": append_op([200, 201]),
    "vector": vector_op([5, 6]),
    "rewrite": cow_op([8]),
    "merge": merge_op([7], []),
    "optimize": optimize_op(),
    "metadata": metadata_op(),
}
OK, UNION, CONFLICT = "no conflict", "rebase with union", "conflict"
_ROW = {"append": [OK, OK, OK, OK, OK, CONFLICT],
        "vector": [OK, UNION, CONFLICT, UNION, CONFLICT, CONFLICT],
        "rewrite": [OK, CONFLICT, CONFLICT, CONFLICT, CONFLICT, CONFLICT],
        "merge": [OK, UNION, CONFLICT, UNION, CONFLICT, CONFLICT],
        "optimize": [OK, CONFLICT, CONFLICT, CONFLICT, CONFLICT, CONFLICT],
        "metadata": [CONFLICT] * 6}
MATRIX = {(o, w): cell for o, cells in _ROW.items() for w, cell in zip(THEIRS, cells)}


def _run_cell(uri: str, ours: Op, theirs: Op) -> tuple[lh.Table, list[tuple[int, int]], object]:
    """Both commits from the same read version; returns the table, the base rows and ours' outcome
    (the version, or the ``CommitConflictError``)."""
    t, f, g = _base(uri)
    base = live_rows(t)
    ours_commit = ours.prepare(lh.Table.open(uri), f, g)
    theirs.prepare(lh.Table.open(uri), f, g)()
    try:
        return t, base, ours_commit()
    except lh.CommitConflictError as exc:
        return t, base, exc


def _model(base: list[tuple[int, int]], ops: list[Op]) -> list[tuple[int, int]]:
    rows = list(base)
    for op in ops:
        rows = [r for r in rows if r[0] not in op.deletes] + list(op.adds)
    return sorted(rows)


@pytest.mark.parametrize(("ours", "theirs"), sorted(MATRIX), ids=[f"{o}-vs-{w}" for o, w in sorted(MATRIX)])
def test_conflict_matrix(uri, ours, theirs):
    expected = MATRIX[ours, theirs]
    t, base, outcome = _run_cell(uri, OURS[ours], THEIRS[theirs])
    if expected == CONFLICT:
        assert isinstance(outcome, lh.CommitConflictError), f"{ours} vs {theirs}: expected a conflict, got {outcome}"
        assert live_rows(t) == _model(base, [THEIRS[theirs]])
        assert t.version == 4  # the base, the winner
    else:
        assert not isinstance(outcome, Exception), f"{ours} vs {theirs}: {outcome}"
        assert live_rows(t) == _model(base, [THEIRS[theirs], OURS[ours]])
        assert t.version == 5
        if expected == UNION:
            entry = read_entry(t._storage, 5)
            readded = [a for a in entry.add if a.path in {r.path for r in entry.remove}]
            assert [a.num_deleted_rows for a in readded] == [len(OURS[ours].deletes | THEIRS[theirs].deletes)]
    # nothing of the loser is left behind: every vector file is referenced by some version
    assert _vector_files(t) <= _referenced_vector_files(t)


def test_the_matrix_in_the_format_spec_is_the_tested_one():
    """docs/format.md §12 holds the matrix this module tests, cell for cell."""
    import pathlib
    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "format.md").read_text()
    section = text[text.index("## 12. Conflict detection"):text.index("## 13.")]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    lines = lines[next(i for i, ln in enumerate(lines) if ln.startswith("| ours")):]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    names = {"append": "append", "delete/update by vector": "vector", "copy-on-write rewrite": "rewrite",
             "merge": "merge", "optimize / fold (`data_change=false`)": "optimize", "metadata change": "metadata"}
    assert [names[h] for h in header[1:]] == list(THEIRS)
    rows = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if cells[0] in names:
            rows[names[cells[0]]] = cells[1:]
    assert list(rows) == list(OURS)
    for o, cells in rows.items():
        for w, cell in zip(THEIRS, cells):
            assert cell == MATRIX[o, w], (o, w, cell)


# -- the finer cells --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ours", "theirs", "conflict"), [
    (vector_op([1, 2]), vector_op([2, 7]), True),  # the same row
    (merge_op([4], [50]), merge_op([4], []), True),  # both update row 4
    (vector_op([4]), merge_op([4], []), True),
    (merge_op([4], [50]), vector_op([4, 5]), True),
    (vector_op([1], read=[5]), vector_op([5]), True),  # a row it read and left alone was deleted
    (vector_op([1], read=[5]), vector_op([6]), False),
    (merge_op([4], [50]), append_op([50]), True),  # an appended row could have matched
    (merge_op([4], [50], by_source=True), append_op([300]), True),  # a by-source clause reads everything
    (vector_op([0, 1, 2, 3, 4]), vector_op([5, 6, 7, 8, 9]), False),  # the union deletes every row: F goes
    (vector_op(list(range(10))), vector_op([5]), True),  # ours removes F outright
    (vector_op([1]), vector_op(list(range(10))), True),  # the winner deletes every row: F goes
], ids=["same-row", "merge-same-row", "vector-vs-merge-same-row", "merge-vs-vector-same-row", "read-row-deleted",
        "read-row-kept", "merge-vs-matching-append", "by-source-vs-append", "union-covers-file",
        "whole-file-vs-vector", "vector-vs-whole-file"])
def test_row_level_cells(local_uri, ours, theirs, conflict):
    """Finer cells (local disk only: the S3 runs of the matrix cover the same code paths)."""
    t, base, outcome = _run_cell(local_uri, ours, theirs)
    if conflict:
        assert isinstance(outcome, lh.CommitConflictError), outcome
        assert live_rows(t) == _model(base, [theirs])
    else:
        assert not isinstance(outcome, Exception), outcome
        assert live_rows(t) == _model(base, [theirs, ours])
    assert _vector_files(t) <= _referenced_vector_files(t)


def test_a_same_row_conflict_names_the_file(local_uri):
    t, _, outcome = _run_cell(local_uri, vector_op([3]), vector_op([3]))
    assert isinstance(outcome, lh.CommitConflictError)
    assert outcome.path in t.files().column("path").to_pylist() and outcome.path in str(outcome)
    assert outcome.version == 4


def test_vectors_union_over_several_winners(local_uri):
    """Three winners each delete other rows of F; the loser's vector joins all of theirs."""
    t, f, g = _base(local_uri)
    base = live_rows(t)
    ours = vector_op([0]).prepare(lh.Table.open(local_uri), f, g)
    for ids in ([1], [2, 3], [9]):
        vector_op(ids).prepare(lh.Table.open(local_uri), f, g)()
    assert ours() == 7
    assert live_rows(t) == [r for r in base if r[0] not in {0, 1, 2, 3, 9}]
    files = t.files()
    assert sorted(files.column("num_deleted_rows").to_pylist()) == [0, 1, 5]


def test_a_rebased_large_vector_goes_to_a_new_file(local_uri):
    """Vectors too large to inline: the rebase writes the union to a new vector file and deletes nothing
    a version refers to."""
    n = 200_000
    t = lh.write_table(local_uri, _rows(list(range(n))))
    f = t.files().column("path")[0].as_py()
    with t.transaction() as tx:  # protocol 4 from here on (a raise by the winner would conflict)
        tx.set_deletion_vectors({f: DeletionVector.from_positions([n - 1])})
    ours_ids = list(range(0, n, 3))
    theirs_ids = list(range(1, n, 3))
    ours = lh.Table.open(local_uri).transaction()
    ours.set_deletion_vectors({f: DeletionVector.from_positions(ours_ids)})
    with lh.Table.open(local_uri).transaction() as tx:
        tx.set_deletion_vectors({f: DeletionVector.from_positions(theirs_ids)})
    assert ours.commit() == 3
    t.refresh()
    desc = vector_descriptors(t.files())[0]
    assert desc is not None and desc.path is not None
    got = load_vector(t._storage, desc, num_rows=n)
    assert got == DeletionVector.from_positions(ours_ids + theirs_ids + [n - 1])
    assert _vector_files(t) == _referenced_vector_files(t)  # our first vector file was deleted


def test_a_rebase_across_a_checkpoint_unions_the_vectors(local_uri):
    """A commit whose base a checkpoint has passed (format §11.5) still rebases row by row."""
    t, f, g = _base(local_uri)
    base = live_rows(t)
    ours = vector_op([1]).prepare(lh.Table.open(local_uri), f, g)
    vector_op([2]).prepare(lh.Table.open(local_uri), f, g)()
    t.refresh()
    t.checkpoint()
    assert ours() == 5
    assert live_rows(t) == [r for r in base if r[0] not in {1, 2}]


# -- the rebase against a model -------------------------------------------------------------------------
N = 40
positions = st.sets(st.integers(0, N - 1), max_size=8)


@settings(max_examples=200 if FUZZ else 25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=positions, ours=positions.filter(bool), winners=st.lists(positions.filter(bool), min_size=1, max_size=3),
       read=positions)
def test_rebased_vectors_match_the_model(base, ours, winners, read):
    """Random base vector, our delete, winners' deletes and rows we declared read: the commit conflicts
    exactly when a winner deleted a row we newly delete or read, and otherwise the file's vector is the
    union of all; the winners' rows never come back."""
    uri = f"memory://rv-{uuid.uuid4().hex}"
    t = lh.write_table(uri, _rows(list(range(N))))
    t.append(_rows([N]))  # a file without vectors keeps the table alive if F goes
    f = next(p for p in t.files().column("path").to_pylist() if _first_id(t, p) == 0)
    with t.transaction() as tx:
        tx.set_deletion_vectors({f: DeletionVector.from_positions(sorted(base | {N - 1}))})
    have = base | {N - 1}
    tx = lh.Table.open(uri).transaction()
    if read - have:
        tx.read_rows({f: DeletionVector.from_positions(sorted(read - have))})
    tx.set_deletion_vectors({f: DeletionVector.from_positions(sorted(ours))})
    landed: set[int] = set(have)
    for w in winners:
        t.refresh()
        if f not in t.files().column("path").to_pylist():
            break  # a winner deleted every row: F is gone
        if w - landed:
            with t.transaction() as wtx:
                wtx.set_deletion_vectors({f: DeletionVector.from_positions(sorted(w))})
            landed |= w
    mine, depends = ours - have, (ours | read) - have
    # a commit that neither changes nor read rows of F does not depend on it
    clash = bool(depends) and (bool(depends & (landed - have)) or landed == set(range(N)))
    try:
        tx.commit()
        conflicted = False
    except lh.CommitConflictError:
        conflicted = True
    assert conflicted == clash, (base, ours, winners, read)
    final = landed if conflicted or not mine else landed | mine
    rows = [i for i, _ in live_rows(t)]
    assert rows == sorted(set(range(N + 1)) - final)


@pytest.mark.parametrize("second", ["append", "delete_other_row", "delete_same_row"])
def test_the_first_vector_raising_the_protocol_conflicts_with_no_one_by_itself(tmp_path, second):
    """The first merge-on-read delete raises the protocol to 4 (format §5.8); a concurrent writer that
    read the table before it is judged by the other rules (§12 rule 2), not failed for the raise."""
    import numpy as np

    uri = str(tmp_path / "t")
    lh.write_table(uri, pa.table({"id": np.arange(20_000)}))
    first, other = lh.Table.open(uri), lh.Table.open(uri)
    assert first.snapshot().state.protocol.min_writer_version < 4
    tx = other.transaction()  # reads version 0: it commits after the raise
    first.delete("id = 7")  # a deletion vector: the protocol goes to 4
    assert first.snapshot().state.protocol.min_writer_version == 4
    if second == "append":
        tx.append(pa.table({"id": [20_000]}))
        tx.commit()
        expected = 20_000
    elif second == "delete_other_row":
        tx.delete("id = 9")
        tx.commit()
        expected = 19_998
    else:
        tx.delete("id = 7")
        with pytest.raises(lh.CommitConflictError):
            tx.commit()
        expected = 19_999
    ids = lh.Table.open(uri).to_arrow().column("id").to_pylist()
    assert len(ids) == expected and 7 not in ids and len(set(ids)) == len(ids)

"""The log after clean-up, and hostile but checksum-valid log entries (issue 13 items 8 and 21).

- Version numbers are never reused (format §11.5): a handle older than a log clean-up refreshes or
  refuses instead of publishing into a name the clean-up freed; ``refresh()`` notices the gap;
  creating a table whose entry 0 was cleaned up is refused.
- Entries whose checksum is right but whose content is impossible (``partition_by`` naming an absent
  column, repeated column names, counts beyond int64, a path added while live) are refused with
  ``CorruptLogError``, never a raw exception.
- A version beyond the latest says so, also after a checkpoint.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgpack
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.log import entry_name, seal, unseal
from lakehouse.storage import Storage

NOW = dt.timedelta(0)


def _t(ids) -> pa.Table:
    return pa.table({"a": pa.array(list(ids), pa.int64()), "p": pa.array([1] * len(list(ids)), pa.int32())})


def _ids(uri: str) -> list[int]:
    return sorted(lh.Table.open(uri).to_arrow().column("a").to_pylist())


def _clean_up(t: lh.Table) -> int:
    t.checkpoint()
    return t.cleanup_log(retention=NOW, enforce_retention=False)


@pytest.fixture
def overtaken(table_uri):
    """(writer, stale handle): the stale handle is at version 0; the writer has committed 1..4,
    checkpointed at 4 and cleaned up the log, so the names of entries 0..3 are free again."""
    t = lh.write_table(table_uri, _t([0]), partition_by=["p"])
    stale = lh.Table.open(table_uri)
    for i in range(1, 5):
        t.append(_t([i]))
    assert _clean_up(t) == 4
    return t, stale


def test_a_stale_append_lands_after_the_latest_version(overtaken):
    t, stale = overtaken
    assert stale.append(_t([99])) == 5  # never 1, a name the clean-up freed
    assert _ids(t.uri) == [0, 1, 2, 3, 4, 99]
    assert lh.Table.open(t.uri).version == 5


def test_a_delete_decided_before_a_clean_up_is_refused_not_lost(table_uri):
    t = lh.write_table(table_uri, _t([0, 10]), partition_by=["p"])
    tx = lh.Table.open(table_uri).transaction()
    tx.delete([("a", "=", 0)])  # decided on version 0: rewrites the file without row 0
    for i in range(1, 5):
        t.append(_t([i]))
    _clean_up(t)  # the entries after version 0 are gone: the conflicts cannot be checked
    with pytest.raises(lh.CommitConflictError, match="clean-up"):
        tx.commit()
    assert _ids(table_uri) == [0, 1, 2, 3, 4, 10]
    assert lh.Table.open(table_uri).version == 4


def test_refresh_notices_a_cleaned_up_gap(overtaken):
    t, stale = overtaken
    t.append(_t([5]))
    assert stale.refresh() == 5
    assert sorted(stale.to_arrow().column("a").to_pylist()) == [0, 1, 2, 3, 4, 5]


def test_a_stale_idempotent_write_already_applied_is_skipped(table_uri):
    t = lh.write_table(table_uri, _t([0]))
    stale = lh.Table.open(table_uri)
    t.append(_t([1]), app_transaction=("job", 1))
    t.append(_t([2]))
    _clean_up(t)
    assert stale.append(_t([1]), app_transaction=("job", 1)) == 2
    assert stale.last_outcome == lh.CommitOutcome(version=2, skipped=True)
    assert _ids(table_uri) == [0, 1, 2]


def test_creating_a_table_whose_first_entry_was_cleaned_up_is_refused(table_uri):
    t = lh.write_table(table_uri, _t([0]))
    t.append(_t([1]))
    _clean_up(t)
    schema = pa.schema([("a", pa.int64())])
    with pytest.raises(lh.TableExistsError):
        lh.Table.create(table_uri, schema)
    assert not Storage.from_uri(table_uri).exists(entry_name(0))
    assert _ids(table_uri) == [0, 1]


def test_a_version_beyond_the_latest_after_a_checkpoint(table_uri):
    t = lh.write_table(table_uri, _t([0]))
    t.append(_t([1]))
    t.checkpoint()
    t.append(_t([2]))
    for asked in (3, 34):
        with pytest.raises(lh.VersionNotFoundError, match=rf"version {asked} does not exist \(latest is 2\)"):
            t.to_arrow(version=asked)
    t.checkpoint()
    with pytest.raises(lh.VersionNotFoundError, match=r"version 9 does not exist \(latest is 2\)"):
        lh.Table.open(table_uri).to_arrow(version=9)


# --------------------------------------------------------------------------- hostile entries
def _body(storage: Storage, version: int) -> dict[str, Any]:
    return msgpack.unpackb(unseal(storage.read(entry_name(version)), path="x"), raw=False)


def _put(storage: Storage, version: int, body: dict[str, Any]) -> None:
    storage.overwrite(entry_name(version), seal(msgpack.packb(body, use_bin_type=True)))


def _schema_bytes(schema: pa.Schema) -> bytes:
    return schema.serialize().to_pybytes()


HOSTILE = {
    "partition-by-absent-column": lambda b: b["metadata"].__setitem__("partition_by", ["nope"]),
    "partition-by-twice": lambda b: b["metadata"].__setitem__("partition_by", ["p", "p"]),
    "duplicate-column-names": lambda b: b["metadata"].__setitem__(
        "schema", _schema_bytes(pa.schema([("a", pa.int64()), ("a", pa.int64()), ("p", pa.int32())]))),
    "num-rows-beyond-int64": lambda b: b["add"][0].__setitem__("num_rows", 2**63),
    "size-beyond-int64": lambda b: b["add"][0].__setitem__("size_bytes", 2**64 - 1),
    "negative-count": lambda b: b["add"][0].__setitem__("num_rows", -1),
    "null-count-beyond-rows": lambda b: b["add"][0]["null_count"].__setitem__("a", 2**63),
    "stat-beyond-int64": lambda b: b["add"][0]["max"].__setitem__("a", 2**64 - 1),
    "partition-beyond-int32": lambda b: b["add"][0].__setitem__("partition", [2**40]),
    "timestamp-beyond-int64": lambda b: b["commit"].__setitem__("timestamp", 2**64 - 1),
    "txn-twice": lambda b: b.__setitem__("txn", [{"app_id": "x", "version": 1}, {"app_id": "x", "version": 2}]),
    "add-twice": lambda b: b["add"].append(dict(b["add"][0])),
    "add-and-remove": lambda b: b.__setitem__("remove", [{"path": b["add"][0]["path"], "deletion_time": 1,
                                                          "size_bytes": 1, "num_rows": 1}]),
    "control-character-path": lambda b: b["add"][0].__setitem__("path", "p=1/x\x01.parquet"),
}


@pytest.fixture
def two_versions(tmp_path):
    uri = str(tmp_path / "t")
    t = lh.write_table(uri, _t([0]), partition_by=["p"])
    t.append(_t([1]))
    return uri, Storage.from_uri(uri)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_checksum_valid_but_impossible_entry_is_a_typed_error(two_versions, name):
    uri, storage = two_versions
    version = 0 if name.startswith(("partition-by", "duplicate")) else 1
    body = _body(storage, version)
    HOSTILE[name](body)
    _put(storage, version, body)
    with pytest.raises(lh.CorruptLogError):
        lh.Table.open(uri).to_arrow()


def test_a_path_added_again_while_live_is_refused(two_versions):
    uri, storage = two_versions
    live = _body(storage, 0)["add"][0]
    body = _body(storage, 1)
    body["add"].append(dict(live))  # entry 1 adds entry 0's file again, not having removed it
    _put(storage, 1, body)
    with pytest.raises(lh.CorruptLogError, match="already live"):
        lh.Table.open(uri).to_arrow()


_INTS = st.one_of(st.integers(min_value=2**63, max_value=2**64 - 1), st.integers(max_value=-1, min_value=-(2**63)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["num_rows", "size_bytes"]), value=_INTS)
def test_counts_outside_int64_or_negative_are_corrupt(two_versions, field, value):
    uri, storage = two_versions
    body = _body(storage, 1)
    original = body["add"][0][field]
    body["add"][0][field] = value
    _put(storage, 1, body)
    try:
        with pytest.raises(lh.CorruptLogError):
            lh.Table.open(uri)
    finally:
        body["add"][0][field] = original
        _put(storage, 1, body)


# ------------------------------------------------------------- review findings (session 5)
def test_a_retried_commit_files_whose_read_version_is_gone_keeps_the_live_files(table_uri):
    """A retry of a commit_files that landed, with a read_version that cannot be loaded, must not
    delete the files: they are live (the first try committed them)."""
    t = lh.write_table(table_uri, pa.table({"a": [1]}))
    files = lh.write_files(t.uri, pa.table({"a": [7]}))
    assert t.commit_files(files, read_version=0) == 1
    with pytest.raises(lh.VersionNotFoundError):
        lh.Table.open(table_uri).commit_files(files, read_version=7)
    assert sorted(lh.Table.open(table_uri).to_arrow().column("a").to_pylist()) == [1, 7]


def test_a_stale_blind_append_across_a_cleanup_never_re_adds_a_live_path(table_uri):
    """A handle older than a log clean-up retrying commit_files of files that landed meanwhile gets a
    conflict; it never publishes an entry that re-adds a live path (every reader would refuse it)."""
    lh.write_table(table_uri, pa.table({"a": [0]}))
    files = lh.write_files(table_uri, pa.table({"a": [7]}))
    stale, other = lh.Table.open(table_uri), lh.Table.open(table_uri)
    other.commit_files(files, read_version=0)
    for i in range(3):
        other.append(pa.table({"a": [i + 10]}))
    other.checkpoint()
    other.cleanup_log(retention=dt.timedelta(0), enforce_retention=False)
    with pytest.raises(lh.CommitConflictError):
        stale.commit_files(files, read_version=0)
    got = lh.Table.open(table_uri).to_arrow().column("a").to_pylist()
    assert sorted(got) == [0, 7, 10, 11, 12]


def test_creating_over_a_stale_pointer_to_a_missing_checkpoint_succeeds(local_uri):
    """A `_last_checkpoint` left behind in an otherwise emptied folder names no checkpoint: it is
    absent (§9), and creating the table there reports success, not an unknown outcome."""
    import os
    import shutil

    t = lh.write_table(local_uri, pa.table({"a": [1]}))
    t.append(pa.table({"a": [2]}))
    t.checkpoint()
    log = os.path.join(local_uri, "_lakehouse_log")
    for name in os.listdir(log):
        if name != "_last_checkpoint":
            os.remove(os.path.join(log, name))
    for name in os.listdir(local_uri):
        if name != "_lakehouse_log":
            path = os.path.join(local_uri, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    t = lh.write_table(local_uri, pa.table({"a": [5]}))
    assert t.version == 0 and lh.Table.open(local_uri).to_arrow().column("a").to_pylist() == [5]


def test_a_stale_blind_append_across_a_cleanup_and_a_supported_protocol_raise_lands(table_uri, monkeypatch):
    """Format §11 clean-up rule 2: a blind append whose read version's entries are gone is rebased when
    the metadata is unchanged and the protocol is one this writer supports, including the raise of
    the first deletion vector (§12 rule 2); it is not refused as if the protocol had changed."""
    import lakehouse.rowremoval

    monkeypatch.setattr(lakehouse.rowremoval, "REWRITE_BELOW_ROWS", 0)  # a small file gets a vector
    lh.write_table(table_uri, pa.table({"a": list(range(10))}))
    stale, other = lh.Table.open(table_uri), lh.Table.open(table_uri)
    other.delete([("a", "=", 3)])  # the first deletion vector raises the protocol to 4
    assert other.files().column("num_deleted_rows").to_pylist() == [1]
    for i in range(3):
        other.append(pa.table({"a": [i + 10]}))
    other.checkpoint()
    other.cleanup_log(retention=dt.timedelta(0), enforce_retention=False)
    stale.append(pa.table({"a": [99]}))
    got = sorted(lh.Table.open(table_uri).to_arrow().column("a").to_pylist())
    assert got == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 99]

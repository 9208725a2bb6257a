"""Vacuum deletes only what the table owns and never what a concurrent restore brings back; tables
are created only where they cannot take a user's files (issue 13, items 9, 10, 15 and 21).

Time passing is simulated by handing ``now_ms`` to ``maintenance.vacuum`` (file ages come from
the storage's own modification times).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
import uuid

import fsspec
import pyarrow as pa
import pytest
from helpers import SCHEMA, make_data, rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse import maintenance
from lakehouse.storage import Storage

DAY_MS = 24 * 3600 * 1000
ZERO = dt.timedelta(0)
WEEK = dt.timedelta(days=7)


def _later(days: float) -> int:
    return int(time.time() * 1000 + days * DAY_MS)


def _put(uri: str, rel: str, data: bytes = b"mine") -> None:
    fs, root = fsspec.core.url_to_fs(uri)
    fs.makedirs(f"{root}/{os.path.dirname(rel)}" if os.path.dirname(rel) else root, exist_ok=True)
    fs.pipe_file(f"{root}/{rel}", data)
    fs.invalidate_cache()


def _exists(uri: str, rel: str) -> bool:
    fs, root = fsspec.core.url_to_fs(uri)
    fs.invalidate_cache()
    return fs.exists(f"{root}/{rel}")


USER_FILES = ["notes.txt", "src/x.py", ".git/config", "_build/part-" + "a" * 32 + ".parquet",
              "part=1/notes.txt", "data.parquet", "part-xyz.parquet", "part=1/sub/part-" + "c" * 31 + ".parquet",
              "part-" + "B" * 32 + ".parquet"]


# -- item 10: vacuum deletes only the table's own files ----------------------------------------
def test_vacuum_never_deletes_a_users_files_in_the_table_folder(table_uri):
    for rel in USER_FILES:
        _put(table_uri, rel)
    t = lh.Table.create(table_uri, SCHEMA, partition_by=["part"], allow_non_empty=True)
    t.append(make_data(range(5), 1))
    t.overwrite(make_data(range(5, 8), 1))
    orphan = "part=2/part-" + "d" * 32 + ".parquet"  # a crashed writer's file: the table's own
    _put(table_uri, orphan)
    gone = maintenance.vacuum(t._storage, t._state, retention=WEEK, now_ms=_later(30), dry_run=False)
    assert len(gone) == 2 and orphan in gone
    assert all(_exists(table_uri, rel) for rel in USER_FILES)
    assert rows(t.to_arrow()) == rows(make_data(range(5, 8), 1))


@pytest.mark.parametrize("names", [["_p"], [".p"], ["__p", "._q"], ["p", "_q"]])
def test_vacuum_cleans_partition_folders_whose_names_start_with_underscore_or_dot(table_uri, names):
    schema = pa.schema([(n, pa.int32()) for n in names] + [("v", pa.int64())])
    data = pa.table({**{n: pa.array([1, 2], pa.int32()) for n in names}, "v": [1, 2]}, schema=schema)
    t = lh.write_table(table_uri, data, partition_by=names)
    old = t.files().column("path").to_pylist()
    assert all(p.startswith(("_", ".")) or "/_" in p or "/." in p for p in old)
    t.overwrite(data)
    gone = maintenance.vacuum(t._storage, t._state, retention=WEEK, now_ms=_later(30), dry_run=False)
    assert sorted(gone) == sorted(old)
    assert rows(t.to_arrow()) == rows(data)


# -- item 10: where a table may be created -----------------------------------------------------
def test_an_empty_uri_is_refused():
    for call in (lambda: lh.write_table("", pa.table({"a": [1]})), lambda: lh.Table.create("", SCHEMA),
                 lambda: lh.Table.open(""), lambda: lh.Table.exists("")):
        with pytest.raises(lh.InvalidArgumentError, match="empty"):
            call()


def test_a_table_is_not_created_among_other_files_unless_asked(table_uri):
    _put(table_uri, "src/x.py")
    with pytest.raises(lh.InvalidTableError, match=r"src/x\.py.*allow_non_empty"):
        lh.write_table(table_uri, make_data(range(3), 1), partition_by=["part"])
    with pytest.raises(lh.InvalidTableError, match="allow_non_empty"):
        lh.Table.create(table_uri, SCHEMA)
    assert not lh.Table.exists(table_uri)
    assert not maintenance._listed_files(Storage.from_uri(table_uri))  # no data file was written
    t = lh.write_table(table_uri, make_data(range(3), 1), partition_by=["part"], allow_non_empty=True)
    assert rows(t.to_arrow()) == rows(make_data(range(3), 1))


def test_leftovers_of_a_crashed_creation_do_not_block_a_retry(table_uri):
    _put(table_uri, "part=1/part-" + "e" * 32 + ".parquet")  # data written, version 0 never committed
    _put(table_uri, "_lakehouse_log/.probe-" + "f" * 32)
    t = lh.write_table(table_uri, make_data(range(3), 1), partition_by=["part"])
    assert t.version == 0


def test_exists_on_a_plain_file_is_false(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("hello")
    assert lh.Table.exists(str(plain)) is False
    assert lh.Table.exists(str(plain / "below")) is False


# -- item 21: partition folder names the filesystem cannot hold --------------------------------
@pytest.mark.parametrize("name", ["x" * 127, "é" * 22, "日本" * 8])
def test_a_partition_column_too_long_for_a_folder_name_is_refused_before_writing(local_uri, name):
    data = pa.table({name: ["v" * 300], "v": [1]})
    with pytest.raises(lh.InvalidTableError, match="too long") as info:
        lh.write_table(local_uri, data, partition_by=[name])
    assert name[:5] in str(info.value)
    assert not os.path.exists(local_uri) or not os.listdir(local_uri)
    t = lh.write_table(local_uri, pa.table({"p": ["a"], "v": [1]}), partition_by=["p"])
    with pytest.raises(lh.InvalidTableError, match="too long"):
        t.alter.rename_column("p", name)
    t.alter.rename_column("v", name)  # a data column names no folder


def test_the_longest_partition_name_and_value_fit_on_disk(local_uri):
    name = "n" * 126
    data = pa.table({name: ["ü" * 200, None, ""], "v": [1, 2, 3]})
    t = lh.write_table(local_uri, data, partition_by=[name])
    t.append(data)
    assert rows(t.to_arrow()) == rows(pa.concat_tables([data, data]))


# -- item 21: retention values -----------------------------------------------------------------
# -- item 9: restore and vacuum at the same time -----------------------------------------------
def _restorable(uri: str) -> tuple[lh.Table, str]:
    """A table whose version 1 file is removed by version 2: vacuum's candidate, restore's to add."""
    t = lh.Table.create(uri, SCHEMA, partition_by=["part"])
    t.append(make_data(range(4), 1))
    (path,) = t.files().column("path").to_pylist()
    t.overwrite(make_data(range(4, 6), 2))
    return t, path


def test_vacuum_spares_what_a_restore_committed_after_it_listed(table_uri):
    t, path = _restorable(table_uri)
    restored: list[int] = []

    def restore_in_the_window(event: lh.ProgressEvent) -> None:
        if event.done == 0 and not restored:  # candidates computed, nothing deleted yet
            restored.append(lh.Table.open(table_uri).restore(1))

    gone = maintenance.vacuum(t._storage, t._state, retention=ZERO, enforce_retention=False, dry_run=False,
                              progress=restore_in_the_window)
    assert restored == [3] and path not in gone
    assert _exists(table_uri, path)
    latest = lh.Table.open(table_uri)
    assert latest.version == 3 and rows(latest.to_arrow()) == rows(make_data(range(4), 1))
    assert not maintenance.vacuum_running(t._storage)  # the marker is gone


def test_a_restore_whose_files_a_running_vacuum_deleted_undoes_itself(table_uri):
    t, path = _restorable(table_uri)
    storage = t._storage
    marker = f"_lakehouse_log/.vacuum-{uuid.uuid4().hex}"
    storage.overwrite(marker, b"")  # a vacuum is running, and it read the log before the restore

    done = threading.Event()

    def the_vacuums_deletion() -> None:  # issued within its lease, landing after the restore's commit
        while not storage.exists("_lakehouse_log/00000000000000000003.msgpack"):
            if done.wait(0.005):
                return
        storage.delete(path)

    deleter = threading.Thread(target=the_vacuums_deletion)
    deleter.start()
    try:
        with pytest.raises(lh.VersionNotFoundError, match="concurrent vacuum") as info:
            maintenance.restore(storage, t._state, lh.Table.open(table_uri).snapshot(1)._state, lease=0.25)
    finally:
        done.set()
        deleter.join()
        storage.delete(marker)
    assert info.value.version == 3
    latest = lh.Table.open(table_uri)
    assert latest.version == 4 and latest.history(1)[0].operation == "restore"
    assert rows(latest.to_arrow()) == rows(make_data(range(4, 6), 2))  # as before the restore


def test_vacuum_and_restore_racing_never_leave_an_unreadable_latest_version(local_uri):
    """Real threads, no injection: whatever the interleaving, a restore that returns is readable,
    and the latest version always reads."""
    for _ in range(5):
        uri = f"{local_uri}-{uuid.uuid4().hex[:6]}"
        t, _ = _restorable(uri)
        outcome: list[object] = []

        def restore(uri: str = uri, outcome: list[object] = outcome) -> None:
            try:
                outcome.append(maintenance.restore(*_fresh(uri), lease=0.05).version)
            except (lh.VersionNotFoundError, lh.CommitConflictError) as exc:
                outcome.append(exc)

        thread = threading.Thread(target=restore)
        thread.start()
        maintenance.vacuum(t._storage, t._state, retention=ZERO, enforce_retention=False, dry_run=False, lease=0.05)
        thread.join()
        latest = lh.Table.open(uri)
        latest.to_arrow()  # readable
        if isinstance(outcome[0], int):
            assert rows(lh.Table.open(uri).to_arrow(version=outcome[0])) == rows(make_data(range(4), 1))


def _fresh(uri: str) -> tuple[Storage, object, object]:
    t = lh.Table.open(uri)
    return t._storage, t._state, t.snapshot(1)._state


# -- the class: any partition names, any user files --------------------------------------------
_NAME = st.text(st.sampled_from("_.-aZ9é日 =%/"), min_size=1, max_size=6).filter(
    lambda n: n.strip() == n and "/" not in n)
_SEGMENT = st.text(st.sampled_from("_.-aZ9é=%x"), min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
_USER_FILE = st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join).filter(
    lambda p: not re.fullmatch(r"part-[0-9a-f]{32}\.parquet", p.rsplit("/", 1)[-1])
    and not p.startswith("_lakehouse_log"))


@settings(max_examples=200 if os.environ.get("LH_FUZZ") == "1" else 15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_NAME, min_size=1, max_size=2, unique=True), user=st.lists(_USER_FILE, max_size=4))
def test_vacuum_deletes_exactly_the_unreferenced_data_files(names, user):
    uri = f"memory://vac-{uuid.uuid4().hex}"
    try:
        for rel in user:
            if not any(o != rel and (o.startswith(rel + "/") or rel.startswith(o + "/")) for o in user):
                _put(uri, rel)
        kept = [rel for rel in user if _exists(uri, rel)]
        schema = pa.schema([(n, pa.string()) for n in names] + [("v", pa.int64())])
        data = pa.table({**{n: ["a", None] for n in names}, "v": [1, 2]}, schema=schema)
        t = lh.write_table(uri, data, partition_by=names, allow_non_empty=True)
        old = t.files().column("path").to_pylist()
        t.overwrite(data)
        gone = maintenance.vacuum(t._storage, t._state, retention=WEEK, now_ms=_later(30), dry_run=False)
        assert sorted(gone) == sorted(old)
        assert all(_exists(uri, rel) for rel in kept)
        assert rows(t.to_arrow()) == rows(data)
    finally:
        fs = fsspec.filesystem("memory")
        if fs.exists(uri[len("memory://"):]):
            fs.rm(uri[len("memory://"):], recursive=True)

"""Issue 14, items 2-4: symbolic links and special files under a local table root.

* vacuum (and every other deletion) never follows a link, even one swapped in between the listing
  and the deletion (a deterministic race through the progress callback);
* vacuum never deletes a non-regular file, nor a path under which a live file lives (a partition
  folder tiered onto another disk through a link);
* readers and writers refuse a data file, partition folder or ``_lakehouse_log`` that resolves
  outside the table root, unless the storage option ``"lakehouse.allow_symlinks"`` is set.
"""

from __future__ import annotations

import ast
import datetime as dt
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.localfs import LIST_FROM, check_contained, delete_file
from lakehouse.progress import ProgressEvent
from lakehouse.storage import Storage
from lakehouse.storage_options import ALLOW_SYMLINKS

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX links")

ZERO = {"retention": dt.timedelta(0), "enforce_retention": False}
ALLOW = {ALLOW_SYMLINKS: True}
FUZZ = os.environ.get("LH_FUZZ") == "1"


def _partitioned(root: Path) -> lh.Table:
    t = lh.write_table(str(root), pa.table({"a": [1, 2, 3], "p": [1, 1, 2]}), partition_by=["p"])
    t.append(pa.table({"a": [4], "p": [1]}))
    return t


def _files(t: lh.Table) -> list[str]:
    return sorted(t.snapshot().files().column("path").to_pylist())


# -- item 2: deletions never follow a link, even one swapped in mid-vacuum -------------------------
def test_vacuum_swapped_folder_for_a_link_deletes_nothing_outside(tmp_path: Path) -> None:
    t = _partitioned(tmp_path / "t")
    old = [f for f in _files(t) if f.startswith("p=1/")]
    t.overwrite(pa.table({"a": [9], "p": [3]}))  # every file of p=1 is now unreferenced
    outside = tmp_path / "outside"
    outside.mkdir()
    for rel in old:  # the victim folder holds files with the doomed names
        (outside / rel.split("/")[1]).write_bytes(b"precious")
    swapped = []

    def swap(event: ProgressEvent) -> None:
        if not swapped and event.done == 0:  # after the listing, before the first deletion
            shutil.rmtree(tmp_path / "t" / "p=1")
            os.symlink(outside, tmp_path / "t" / "p=1")
            swapped.append(True)

    deleted = t.vacuum(**ZERO, dry_run=False, progress=swap)
    assert swapped
    for rel in old:
        assert (outside / rel.split("/")[1]).read_bytes() == b"precious"
        assert rel not in deleted  # refused, so not reported as deleted
    assert os.path.islink(tmp_path / "t" / "p=1")  # and the link itself stays
    assert t.to_arrow().column("a").to_pylist() == [9]


def test_storage_delete_refuses_links_on_the_way_and_non_regular_files(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "p=1").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"x")
    os.symlink(outside, root / "p=2")
    os.symlink(outside / "f", root / "p=1" / "link")
    os.mkfifo(root / "p=1" / "fifo")
    (root / "p=1" / "sub").mkdir()
    storage = Storage.from_uri(str(root), ALLOW)  # the option lets readers follow links, never deletions
    for rel in ("p=2/f", "p=1/link", "p=1/fifo", "p=1/sub", "p=1/../p=2/f", "/p=1/x", "p=1//x"):
        with pytest.raises(lh.UnsafePathError) as info:
            storage.delete(rel)
        assert info.value.path is not None
    assert (outside / "f").read_bytes() == b"x"
    assert os.path.islink(root / "p=1" / "link") and (root / "p=1" / "fifo").exists()
    storage.delete("p=1/missing")  # missing: ignored, as before
    storage.delete("nofolder/x")
    (root / "p=1" / "plain").write_bytes(b"y")
    (root / "afile").write_bytes(b"z")
    storage.delete("afile/x")  # a file where a folder should be: nothing there
    storage.delete("p=1/plain")
    assert not (root / "p=1" / "plain").exists()


def test_cleanup_log_never_deletes_through_a_linked_log_folder(tmp_path: Path) -> None:
    """The log folder swapped for a link to another table's log: cleanup_log reads it only with the
    option, and even then deletes nothing through the link."""
    t = lh.write_table(str(tmp_path / "t"), pa.table({"a": [1]}))
    t.append(pa.table({"a": [2]}))
    t.checkpoint()
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(tmp_path / "t" / "_lakehouse_log"), elsewhere)
    os.symlink(elsewhere, tmp_path / "t" / "_lakehouse_log")
    before = sorted(os.listdir(elsewhere))
    linked = lh.Table.open(str(tmp_path / "t"), storage_options=ALLOW)
    with pytest.raises(lh.UnsafePathError):
        linked.cleanup_log(**ZERO)
    assert sorted(os.listdir(elsewhere)) == before
    with pytest.raises(lh.UnsafePathError):
        lh.Table.open(str(tmp_path / "t"))


def test_every_deletion_in_the_package_goes_through_storage_delete() -> None:
    """The class guard: only the storage seam (and the local-path module it uses) may remove files,
    so no clean-up can bypass the link-safe deletion."""
    allowed = {"storage.py", "localfs.py"}
    calls = {"rm", "rm_file", "rmdir", "unlink", "remove", "rmtree", "_rm"}
    offenders = []
    for path in sorted(Path(lh.__file__).parent.rglob("*.py")):
        if path.name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in calls:
                base = node.func.value
                if (isinstance(base, ast.Name) and base.id in ("os", "shutil")) or (
                        isinstance(base, ast.Attribute) and base.attr == "fs") or node.func.attr.startswith("rm"):
                    offenders.append(f"{path.name}:{node.lineno} {ast.unparse(node.func)}")
    assert not offenders, offenders


# -- item 3: vacuum never deletes non-regular files, nor a folder holding live files -----------------
def test_vacuum_keeps_a_partition_folder_tiered_through_a_link(tmp_path: Path) -> None:
    t = _partitioned(tmp_path / "t")
    before = t.to_arrow().sort_by("a")
    tier = tmp_path / "tier"
    tier.mkdir()
    shutil.move(str(tmp_path / "t" / "p=1"), tier / "p=1")
    os.symlink(tier / "p=1", tmp_path / "t" / "p=1")
    for dry_run in (True, False):
        assert t.vacuum(**ZERO, dry_run=dry_run) == []
    assert os.path.islink(tmp_path / "t" / "p=1")
    tiered = lh.Table.open(str(tmp_path / "t"), storage_options=ALLOW)
    assert tiered.vacuum(**ZERO, dry_run=False) == []
    assert tiered.to_arrow().sort_by("a").equals(before)


def test_vacuum_deletes_only_regular_files(tmp_path: Path) -> None:
    """Old unreferenced names shaped like data files that are a link, a FIFO or a folder stay."""
    t = lh.write_table(str(tmp_path / "t"), pa.table({"a": [1]}))
    live = _files(t)
    target = tmp_path / "target.parquet"
    target.write_bytes(b"not ours")
    names = {kind: f"part-{i:032x}.parquet" for i, kind in enumerate(("link", "fifo", "dir", "plain"), 1)}
    os.symlink(target, tmp_path / "t" / names["link"])
    os.mkfifo(tmp_path / "t" / names["fifo"])
    (tmp_path / "t" / names["dir"]).mkdir()
    (tmp_path / "t" / names["plain"]).write_bytes(b"orphan")
    for name in names.values():
        os.utime(tmp_path / "t" / name, (1, 1), follow_symlinks=False)
    assert t.vacuum(**ZERO, dry_run=True) == [names["plain"]]
    assert t.vacuum(**ZERO, dry_run=False) == [names["plain"]]
    assert os.path.islink(tmp_path / "t" / names["link"]) and target.read_bytes() == b"not ours"
    assert (tmp_path / "t" / names["fifo"]).exists() and (tmp_path / "t" / names["dir"]).is_dir()
    assert _files(t) == live


def test_vacuum_never_deletes_a_folder_holding_live_files(tmp_path: Path) -> None:
    """Defence in depth: even a listed entry whose name is a folder of live files is not doomed."""
    from lakehouse import maintenance

    assert maintenance._folders({"a=1/b=2/part-x.parquet", "c=3/part-y.parquet", "part-z.parquet"}) == {
        "a=1", "a=1/b=2", "c=3"}


# -- item 4: readers and writers stay under the root unless links are allowed ------------------------
def _other_table(tmp_path: Path) -> lh.Table:
    return lh.write_table(str(tmp_path / "other"), pa.table({"a": [100, 200], "p": [1, 1]}), partition_by=["p"])


def _reads(t: lh.Table) -> None:
    t.to_arrow()


def _plans(t: lh.Table) -> None:
    t.snapshot().plan_files()


def _datasets(t: lh.Table) -> None:
    t.to_pyarrow_dataset().to_table()


READERS = [_reads, _plans, _datasets]


@pytest.mark.parametrize("read", READERS)
def test_a_linked_data_file_out_of_the_root_is_refused(tmp_path: Path, read) -> None:
    t = _partitioned(tmp_path / "t")
    other = _other_table(tmp_path)
    victim = tmp_path / "t" / _files(t)[0]
    victim.unlink()
    os.symlink(tmp_path / "other" / _files(other)[0], victim)
    with pytest.raises(lh.UnsafePathError) as info:
        read(lh.Table.open(str(tmp_path / "t")))
    assert info.value.path == str(victim) and "allow_symlinks" in str(info.value)
    read(lh.Table.open(str(tmp_path / "t"), storage_options=ALLOW))  # the option follows it


@pytest.mark.parametrize("read", READERS)
def test_a_linked_partition_folder_out_of_the_root_is_refused(tmp_path: Path, read) -> None:
    t = _partitioned(tmp_path / "t")
    tier = tmp_path / "tier"
    tier.mkdir()
    shutil.move(str(tmp_path / "t" / "p=1"), tier / "p=1")
    os.symlink(tier / "p=1", tmp_path / "t" / "p=1")
    with pytest.raises(lh.UnsafePathError):
        read(lh.Table.open(str(tmp_path / "t")))
    read(lh.Table.open(str(tmp_path / "t"), storage_options=ALLOW))
    with pytest.raises(lh.UnsafePathError):  # writers do not write through it either
        t.append(pa.table({"a": [5], "p": [1]}))
    lh.Table.open(str(tmp_path / "t"), storage_options=ALLOW).append(pa.table({"a": [5], "p": [1]}))
    assert sorted(lh.Table.open(str(tmp_path / "t"), storage_options=ALLOW).to_arrow().column("a").to_pylist()) \
        == [1, 2, 3, 4, 5]


def test_a_linked_log_folder_out_of_the_root_is_refused(tmp_path: Path) -> None:
    """``t/_lakehouse_log`` linked to another table's log: opening t would read the other's rows."""
    (tmp_path / "t").mkdir()
    _other_table(tmp_path)
    os.symlink(tmp_path / "other" / "_lakehouse_log", tmp_path / "t" / "_lakehouse_log")
    with pytest.raises(lh.UnsafePathError):
        lh.Table.open(str(tmp_path / "t"))
    with pytest.raises(lh.UnsafePathError):  # nor does a writer commit into the other table's log
        lh.write_table(str(tmp_path / "t"), pa.table({"a": [1], "p": [1]}), mode="append")
    assert lh.Table.open(str(tmp_path / "other")).version == 0
    opened = lh.Table.open(str(tmp_path / "t"), storage_options=ALLOW)
    assert opened.version == 0


def test_links_that_stay_inside_the_root_are_fine(tmp_path: Path) -> None:
    t = _partitioned(tmp_path / "t")
    inner = tmp_path / "t" / "store"
    inner.mkdir()
    shutil.move(str(tmp_path / "t" / "p=2"), inner / "p=2")
    os.symlink(inner / "p=2", tmp_path / "t" / "p=2")
    assert sorted(lh.Table.open(str(tmp_path / "t")).to_arrow().column("a").to_pylist()) == [1, 2, 3, 4]
    # and a root that is itself a link is the user's choice: followed
    os.symlink(tmp_path / "t", tmp_path / "alias")
    assert lh.Table.open(str(tmp_path / "alias")).to_arrow().num_rows == 4
    assert t.version == 1


def test_the_option_is_a_strict_flag() -> None:
    assert Storage.from_uri("memory://links-t", ALLOW).allow_symlinks is True
    assert Storage.from_uri("memory://links-n").allow_symlinks is False
    with pytest.raises(lh.InvalidArgumentError):
        Storage.from_uri("memory://links-x", {ALLOW_SYMLINKS: "false"})


SEGMENT = st.sampled_from(["a", "b", "p=1", "q=2"])


@settings(max_examples=200 if FUZZ else 25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(links=st.lists(st.tuples(st.lists(SEGMENT, min_size=1, max_size=3), st.booleans()), max_size=4),
       probe=st.lists(SEGMENT, min_size=1, max_size=4))
def test_containment_matches_the_resolved_path(tmp_path_factory, links, probe) -> None:
    """Property: check_contained refuses a path exactly when its resolved location leaves the root,
    and delete_file never removes anything outside the root, whatever links lie on the way."""
    base = tmp_path_factory.mktemp("c")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    for segs, out in links:  # folders, some replaced by links into the outside folder or back inside
        folder = root.joinpath(*segs[:-1])
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / segs[-1]
        if not os.path.lexists(link) and folder.resolve().is_relative_to(root.resolve()):
            target = outside if out else root
            os.symlink(target, link)
    rel = "/".join([*probe, "f"])
    full = root.joinpath(*probe, "f")
    try:
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(b"x")
    except OSError:
        return  # a path that loops or crosses a file: nothing to check
    resolved_inside = full.resolve().is_relative_to(root.resolve())
    for many in (1, LIST_FROM):  # one lstat per file, or one listing of the folder
        try:
            check_contained(str(root), [rel] * many)
            assert resolved_inside
        except lh.UnsafePathError:
            assert not resolved_inside
    through_link = any(os.path.islink(root.joinpath(*probe[:i])) for i in range(1, len(probe) + 1))
    event(f"resolved inside: {resolved_inside}, through a link: {through_link}")
    try:
        delete_file(str(root), rel)
        assert not through_link and not full.exists()
    except lh.UnsafePathError:
        assert through_link and full.exists()

"""A hostile environment (issue 14, items 1 and 6): what other people can put in the log folder.

* crafted checkpoints: a checkpoint whose checksum matches but whose Arrow buffers are invalid
  (string offsets pointing outside their buffer) is a ``CorruptLogError``, never a crash of the
  process; one whose record batches decompress to far more than the file's size (a zstd bomb) is
  refused from its metadata before Arrow allocates anything (format §9);
* special and oversized files: a FIFO, folder or huge (sparse) ``_last_checkpoint`` is ignored as the
  hint it is; a log entry or checkpoint that is not a regular file or larger than its cap is a
  ``CorruptLogError``; no read blocks or reads more than its cap (format §15).

Whatever could crash, hang or exhaust memory runs in a subprocess, so a relapse fails the test
instead of killing pytest. CI runs few hypothesis examples; ``LH_FUZZ=1`` (``make fuzz``) runs many.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.checkpoint import MAGIC, MAX_DECODED_BYTES_FLOOR, decode_checkpoint, decoded_size
from lakehouse.log import CHECKPOINT_POINTER, checkpoint_name, entry_name
from lakehouse.storage import MAX_READ_ENTRY_BYTES, MAX_READ_POINTER_BYTES, Storage

_ROOT = str(Path(lh.__file__).resolve().parent.parent)
_FUZZ = settings(max_examples=400 if os.environ.get("LH_FUZZ") else 25, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_PRELUDE = """
import resource, sys
import lakehouse as lh

def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

def typed(fn):
    try:
        fn()
    except lh.CorruptLogError as exc:
        return "CorruptLogError:" + (exc.path or "")
    return "ok"
"""


def _run(script: str, *args: str, timeout: float = 120) -> list[str]:
    """Run ``script`` in a fresh interpreter; its stdout lines. A crash or hang fails the test."""
    env = {**os.environ, "PYTHONPATH": _ROOT}
    try:
        done = subprocess.run([sys.executable, "-c", _PRELUDE + textwrap.dedent(script), *args], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the reader hung for more than {timeout} s")
    assert done.returncode == 0, f"reader died with {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout.splitlines()


def _table(uri: str, commits: int = 3) -> lh.Table:
    t = lh.Table.create(uri, pa.schema([("id", pa.int64())]))
    for i in range(commits):
        t.append(pa.table({"id": [i]}))
    return t


def _rewrite_checkpoint(path: str, files: pa.Table, *, compression: str | None = None,
                        max_chunksize: int | None = None) -> None:
    """Replace the checkpoint at ``path`` with ``files`` (keeping its state), with a valid checksum."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, files.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as w:
        w.write_table(files, max_chunksize=max_chunksize)
    payload = sink.getvalue().to_pybytes()
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<I", zlib.crc32(payload)) + payload)


def _checkpointed(uri: str) -> tuple[str, pa.Table]:
    """A table with a checkpoint at version 3; the checkpoint's path and its files table (with the state)."""
    t = _table(uri)
    version = t.checkpoint()
    path = f"{uri}/{checkpoint_name(version)}"
    with open(path, "rb") as f:
        data = f.read()
    return path, pa.ipc.open_file(pa.py_buffer(data[12:])).read_all().combine_chunks()


# -- item 1: crafted checkpoints -------------------------------------------------------------------

_USE_ALL = """
import datetime as dt
t = lh.Table.open(sys.argv[1])
print(t.version)
print(typed(lambda: t.files()))
print(typed(lambda: t.to_arrow()))
print(typed(lambda: lh.Table.open(sys.argv[1]).vacuum(retention=dt.timedelta(0), dry_run=True,
                                                       enforce_retention=False)))
print(typed(lambda: lh.Table.open(sys.argv[1]).cleanup_log(retention=dt.timedelta(0), enforce_retention=False)))
from lakehouse.cli import main
try:
    main(["files", sys.argv[1]])
except SystemExit as exit:
    print("cli", exit.code)
"""


@pytest.mark.parametrize("offsets", ["beyond", "backwards", "negative"])
def test_checkpoint_with_valid_checksum_and_out_of_bounds_offsets_is_typed_not_a_crash(local_uri, offsets):
    path, files = _checkpointed(local_uri)
    column = files.column("path").chunk(0)
    data = column.buffers()[2]
    n = files.num_rows
    inner = {"beyond": 2**31 - 1000, "backwards": data.size + 4096, "negative": -(2**30)}[offsets]
    bad_offsets = [0] + [inner] * (n - 1) + [data.size]  # first and last in range: Arrow's cheap checks pass
    bad = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(struct.pack(f"<{n + 1}i", *bad_offsets)), data])
    bad.validate()  # the cheap validation does not see it
    _rewrite_checkpoint(path, files.set_column(0, files.schema.field(0), bad))
    out = _run(_USE_ALL, local_uri)
    assert out[0] == "3"
    for line in out[1:3]:  # files, to_arrow: typed, naming the checkpoint
        assert line == f"CorruptLogError:{path}", out
    for line in out[3:5]:  # vacuum, cleanup_log: typed, or done without reading the damaged files
        assert line in (f"CorruptLogError:{path}", "ok"), out
    assert out[5] != "cli 0", out


def test_zstd_bomb_checkpoint_is_refused_from_its_metadata_with_bounded_memory(local_uri):
    path, files = _checkpointed(local_uri)
    row = files.slice(0, 1)
    big = pa.array(["a" * (16 * 1024 * 1024)])  # 16 MiB of one byte: zstd shrinks it ~ 10,000 times
    batch = row.set_column(0, row.schema.field(0), big)
    bomb = pa.concat_tables([batch] * 40)  # 640 MiB decoded, all slices of the one 16 MiB buffer here
    _rewrite_checkpoint(path, bomb, compression="zstd", max_chunksize=1)
    size = os.path.getsize(path)
    assert size < 2 * 1024 * 1024 and decoded_size(Path(path).read_bytes()[12:]) > 600 * 1024 * 1024
    out = _run("""
        t = lh.Table.open(sys.argv[1])
        print(t.version, t.files().num_rows, sorted(t.to_arrow().column("id").to_pylist()))
        print(peak_mib())
    """, local_uri)
    assert out[0] == "3 3 [0, 1, 2]"  # the bomb is not used: the log is replayed instead (format §15)
    assert int(out[1]) < 500, f"peak RSS {out[1]} MiB"
    with pytest.raises(lh.CorruptLogError, match="decode to") as info:
        decode_checkpoint(Path(path).read_bytes(), path=path)
    assert info.value.path == path


def test_checkpoints_lakehouse_writes_are_far_below_the_decoded_size_cap(local_uri):
    t = _table(local_uri, commits=2)
    t.append(pa.table({"id": list(range(200_000))}))  # one file; big stats-free checkpoint would be larger
    path = f"{local_uri}/{checkpoint_name(t.checkpoint())}"
    data = Path(path).read_bytes()
    assert decoded_size(data[12:]) <= max(MAX_DECODED_BYTES_FLOOR, 256 * len(data))
    assert decode_checkpoint(data, path=path).files.num_rows == 3


_TABLES = st.lists(st.tuples(st.text(max_size=40), st.integers(-(2**63), 2**63 - 1) | st.none()),
                   min_size=0, max_size=50)


@_FUZZ
@given(rows=_TABLES, compression=st.sampled_from([None, "lz4", "zstd"]), chunk=st.integers(1, 20))
def test_decoded_size_is_exactly_what_arrow_allocates(rows, compression, chunk):
    t = pa.table({"s": [r[0] for r in rows], "i": pa.array([r[1] for r in rows], pa.int64())})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, t.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as w:
        w.write_table(t, max_chunksize=chunk)
    payload = sink.getvalue().to_pybytes()
    back = pa.ipc.open_file(pa.py_buffer(payload)).read_all()
    buffers = sum(b.size for c in back.columns for ch in c.chunks for b in ch.buffers() if b is not None)
    assert decoded_size(payload) == buffers


def test_damaged_checkpoints_with_valid_checksums_are_typed_never_a_crash(local_uri):
    """Random byte damage anywhere in a real checkpoint (checksum recomputed), decoded and used in a
    subprocess: every outcome is a state whose files pass Arrow's full validation, or CorruptLogError."""
    path, _ = _checkpointed(local_uri)
    lh.Table.open(local_uri).append(pa.table({"id": list(range(1000))}))
    out = _run("""
        import random, struct, zlib
        import pyarrow.compute as pc
        from lakehouse.checkpoint import MAGIC, decode_checkpoint, decoded_size
        data = open(sys.argv[1], "rb").read()
        rng, typed_errors, states = random.Random(int(sys.argv[2])), 0, 0
        for _ in range(int(sys.argv[3])):
            payload = bytearray(data[12:])
            for _ in range(rng.randint(1, 8)):
                payload[rng.randrange(len(payload))] = rng.randrange(256)
            try:
                decoded_size(bytes(payload))
            except lh.CorruptLogError:
                pass
            try:
                files = decode_checkpoint(MAGIC + struct.pack("<I", zlib.crc32(payload)) + bytes(payload),
                                          path="x").files
                pc.sort_indices(files, [(name, "ascending") for name in files.column_names])
                states += 1
            except lh.CorruptLogError:
                typed_errors += 1
        print(states, typed_errors)
    """, path, str(os.getpid()), "2000" if os.environ.get("LH_FUZZ") else "150")
    assert sum(map(int, out[0].split())) == (2000 if os.environ.get("LH_FUZZ") else 150)


# -- item 6: special and oversized files in the log folder ------------------------------------------

_OPEN = """
t = lh.Table.open(sys.argv[1])
print(t.version, sorted(t.to_arrow().column("id").to_pylist()))
print(peak_mib())
"""


@pytest.mark.parametrize("kind", ["fifo", "sparse-1GiB", "sparse-8GiB", "folder", "unreadable"])
def test_special_or_huge_last_checkpoint_is_ignored_without_blocking(local_uri, kind):
    t = _table(local_uri)
    t.checkpoint()
    t.append(pa.table({"id": [3]}))
    pointer = f"{local_uri}/{CHECKPOINT_POINTER}"
    if kind == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads any file")
        os.unlink(pointer)
        Path(pointer).write_bytes(b"x")
        os.chmod(pointer, 0)
    else:
        _plant(pointer, kind if kind in ("fifo", "folder") else "sparse",
               (1 if kind == "sparse-1GiB" else 8) << 30)
    out = _run(_OPEN, local_uri, timeout=60)
    assert out[0] == "4 [0, 1, 2, 3]"
    assert int(out[1]) < 500, f"peak RSS {out[1]} MiB"
    # writers go on too (they read the pointer before and after publishing)
    t2 = lh.Table.open(local_uri)
    t2.append(pa.table({"id": [4]}))
    assert sorted(lh.Table.open(local_uri).to_arrow().column("id").to_pylist()) == [0, 1, 2, 3, 4]


def _plant(path: str, kind: str, size: int) -> None:
    """Replace the file at ``path`` by a FIFO, a folder, or a sparse file of ``size`` bytes (no real
    disk used)."""
    os.unlink(path)
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        os.mkfifo(path)
    elif kind == "folder":
        os.mkdir(path)
    else:
        with open(path, "wb") as f:
            f.truncate(size)


@pytest.mark.parametrize("kind", ["fifo", "sparse", "folder"])
@pytest.mark.parametrize("what", ["entry", "checkpoint"])
def test_special_or_huge_entry_or_checkpoint_is_corrupt_not_a_hang(local_uri, kind, what):
    t = _table(local_uri)
    if what == "checkpoint":
        t.checkpoint()
        os.unlink(f"{local_uri}/{CHECKPOINT_POINTER}")
        rel = checkpoint_name(3)
    else:
        rel = entry_name(3)
    path = f"{local_uri}/{rel}"
    _plant(path, kind, (MAX_READ_ENTRY_BYTES if what == "entry" else 4 << 30) + 1)
    out = _run("""
        print(typed(lambda: print(lh.Table.open(sys.argv[1]).version)))
        print(peak_mib())
    """, local_uri, timeout=60)
    if what == "entry":  # the latest entry cannot be read: the table cannot be opened at its latest version
        assert out[0] == f"CorruptLogError:{path}", out
    else:  # a checkpoint is only an optimisation: the log is replayed instead (format §15)
        assert out[0] == "3" and out[1] == "ok", out
    assert int(out[-1]) < 500


def test_read_caps_hold_on_every_backend(table_uri):
    storage = Storage.from_uri(table_uri)
    storage.put_if_absent("_lakehouse_log/x.bin", b"0123456789")
    assert storage.read("_lakehouse_log/x.bin", max_bytes=10) == b"0123456789"
    with pytest.raises(lh.CorruptLogError) as info:
        storage.read("_lakehouse_log/x.bin", max_bytes=9)
    assert info.value.path == storage.full_path("_lakehouse_log/x.bin")
    storage.overwrite("_lakehouse_log/empty.bin", b"")
    assert storage.read("_lakehouse_log/empty.bin", max_bytes=5) == b""
    rels = ["_lakehouse_log/x.bin", "_lakehouse_log/missing.bin", "_lakehouse_log/empty.bin"]
    assert storage.read_many(rels, max_bytes=10) == [b"0123456789", None, b""]
    assert storage.read_many(rels, max_bytes=[9, 9, 9], hints=frozenset(rels[:1])) == [None, None, b""]
    with pytest.raises(lh.CorruptLogError):
        storage.read_many(rels, max_bytes=[9, 9, 9])
    with pytest.raises(FileNotFoundError):
        storage.read("_lakehouse_log/missing.bin")


def test_oversized_pointer_is_ignored_on_every_backend(table_uri):
    t = _table(table_uri)
    t.checkpoint()
    t.append(pa.table({"id": [3]}))
    storage = Storage.from_uri(table_uri)
    storage.overwrite(CHECKPOINT_POINTER, b"\x00" * (MAX_READ_POINTER_BYTES + 1))
    assert lh.Table.open(table_uri).version == 4
    lh.Table.open(table_uri).append(pa.table({"id": [4]}))
    assert sorted(lh.Table.open(table_uri).to_arrow().column("id").to_pylist()) == [0, 1, 2, 3, 4]

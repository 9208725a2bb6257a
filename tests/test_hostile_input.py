"""Damaged and hostile log files: every one ends in a typed LakehouseError, never a misread.

Exhaustive over single-byte truncations and single-bit flips of a real log entry and a real
checkpoint, plus hand-made msgpack with huge declared lengths, deep nesting, trailing bytes and
non-string keys.
"""

from __future__ import annotations

import time
import zlib

import fsspec
import msgpack
import pyarrow as pa
import pytest
from helpers import SCHEMA, make_data

import lakehouse as lh
from lakehouse.checkpoint import decode_checkpoint, encode_checkpoint
from lakehouse.log import decode_entry, entry_name
from lakehouse.snapshot import load_state
from lakehouse.storage import Storage


@pytest.fixture(scope="module")
def table() -> lh.Table:
    t = lh.Table.create("memory://hostile-input", SCHEMA, partition_by=["part"])
    t.append(make_data(range(20), part=[i % 3 for i in range(20)]))
    t.delete([("id", "<", 5)])
    return t


def _entry_bytes(t: lh.Table, version: int) -> bytes:
    return bytes(fsspec.filesystem("memory").cat_file(f"/hostile-input/{entry_name(version)}"))


def _decodes_or_refuses(decode, data: bytes) -> bool:
    """True if ``data`` decodes; False if refused with a LakehouseError. Anything else fails."""
    try:
        decode(data)
    except lh.LakehouseError:
        return False
    return True


def test_every_truncation_and_bit_flip_of_an_entry_is_refused(table):
    good = _entry_bytes(table, 2)
    decode = lambda d: decode_entry(d, path="e", version=2)  # noqa: E731
    assert decode(good).version == 2
    start = time.perf_counter()
    for n in range(len(good)):
        assert not _decodes_or_refuses(decode, good[:n]), f"truncation to {n} bytes was accepted"
    accepted = []
    for i in range(len(good)):
        for bit in range(8):
            bad = bytearray(good)
            bad[i] ^= 1 << bit
            if _decodes_or_refuses(decode, bytes(bad)):
                accepted.append((i, bit))
    # a flip may only be accepted if it decodes to exactly the same entry (e.g. never: msgpack has
    # no redundant bits in what we write); record and require none
    assert accepted == [], f"bit flips read as valid data: {accepted[:5]}"
    print(f"\nentry: {len(good)} truncations and {8 * len(good)} bit flips refused "
          f"in {time.perf_counter() - start:.2f} s")


def test_every_truncation_and_sampled_bit_flips_of_a_checkpoint_are_refused(table):
    good = encode_checkpoint(table.snapshot().state)
    decode = lambda d: decode_checkpoint(d, path="c")  # noqa: E731
    assert decode(good).version == table.version
    for n in range(0, len(good), max(1, len(good) // 500)):
        assert not _decodes_or_refuses(decode, good[:n]), f"truncation to {n} bytes was accepted"
    for i in range(0, len(good), max(1, len(good) // 400)):
        for bit in range(8):
            bad = bytearray(good)
            bad[i] ^= 1 << bit
            assert not _decodes_or_refuses(decode, bytes(bad)), f"flip of bit {bit} at byte {i} was accepted"


def _sealed(body: bytes) -> bytes:
    return msgpack.packb({"format": 1, "crc32": zlib.crc32(body), "body": body})


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xdb\xff\xff\xff\xff",  # str32 declaring 4 GiB
        b"\xdd\xff\xff\xff\xff",  # array32 declaring 4 billion items
        b"\xdf\xff\xff\xff\xff",  # map32 declaring 4 billion pairs
        b"\x91" * 5000 + b"\xc0",  # nesting 5000 deep
        _sealed(b"\x91" * 5000 + b"\xc0"),  # the same inside a valid envelope
        msgpack.packb({"format": 1, "crc32": 0, "body": b"x"}) + b"trailing",
        msgpack.packb({1: 2}),  # non-string keys
        _sealed(msgpack.packb({1: 2})),
        _sealed(msgpack.packb({"version": 0, "commit": {"id": b"\xff\xfe"}})),  # bytes where str is due
        _sealed(b"\xa3\xff\xfe\xfd"),  # invalid UTF-8
        _sealed(msgpack.packb({"version": 0, "commit": 5})),
        _sealed(msgpack.packb({"version": 1, "commit": {}})),  # version disagrees with the file name
    ],
)
def test_hostile_msgpack_is_refused_quickly(data):
    start = time.perf_counter()
    with pytest.raises(lh.CorruptLogError):
        decode_entry(data, path="hostile", version=0)
    assert time.perf_counter() - start < 0.1


def test_a_torn_checkpoint_pointer_falls_back_to_the_log(table):
    table.checkpoint()
    fsspec.filesystem("memory").pipe_file("/hostile-input/_lakehouse_log/_last_checkpoint", b"\x82\xa6format")
    assert load_state(Storage.from_uri(table.uri)).version == table.version
    t2 = lh.Table.open(table.uri)
    assert sorted(t2.to_arrow().column("id").to_pylist()) == list(range(5, 20))


def test_entry_whose_add_escapes_the_root_is_refused():
    body = msgpack.packb({
        "version": 0,
        "commit": {"id": "x", "timestamp": 1, "operation": "w", "parameters": {}, "read_version": None,
                   "blind_append": False, "lakehouse_version": "t"},
        "metadata": {"table_id": "t", "schema": pa.schema([("a", pa.int64())]).serialize().to_pybytes(),
                     "partition_by": [], "properties": {}, "created_time": 1},
        "protocol": {"min_reader_version": 1, "min_writer_version": 1},
        "add": [{"path": p, "size_bytes": 1, "num_rows": 1, "modification_time": 1, "partition": [],
                 "min": {}, "max": {}, "null_count": {}} for p in ["../../etc/passwd"]],
    })
    with pytest.raises(lh.CorruptLogError, match="escapes"):
        decode_entry(_sealed(body), path="e", version=0)

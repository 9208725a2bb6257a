"""Deletion vectors (format §18): the value, its Roaring bytes and their Iceberg/Delta framings.

Golden vectors are derived by hand from the specifications (explained next to each), the Delta
protocol's own inline example is decoded, round trips are property-tested over position sets drawn
to hit every container kind and bucket boundary, and mutated or random bytes must only ever raise
``CorruptDeletionVectorError``. ``pyroaring`` (CRoaring), when importable, checks the bytes.
CI runs a bounded profile; ``LH_FUZZ=1`` a long one.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import time
import zlib
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.deletion_vector import (
    DEFAULT_MAX_CARDINALITY,
    ICEBERG_MAGIC,
    DeletionVector,
    from_delta_bytes,
    from_delta_file,
    from_delta_inline,
    from_iceberg_blob,
    to_delta_bytes,
    to_delta_file,
    to_delta_inline,
    to_iceberg_blob,
    z85_decode,
    z85_encode,
)
from lakehouse.errors import ArgumentTypeError, CorruptDeletionVectorError, CorruptLogError, InvalidArgumentError

FUZZ = os.environ.get("LH_FUZZ") == "1"
PROFILE = settings(max_examples=500 if FUZZ else 30, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_PROFILE = settings(max_examples=3000 if FUZZ else 150, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def dv(*positions: int) -> DeletionVector:
    return DeletionVector.from_positions(positions)


def u32(v: int) -> str:
    return v.to_bytes(4, "little").hex()


def u16(v: int) -> str:
    return v.to_bytes(2, "little").hex()


# ------------------------------------------------------------------------------------ golden bytes

# 64-bit portable form: uint64 bucket count, then per bucket uint32 key + a 32-bit RoaringBitmap.
# 32-bit bitmap without runs: uint32 cookie 12346 (3a30 0000), uint32 container count, per container
# (uint16 key, uint16 cardinality-1), then per container the uint32 offset of its data from the
# cookie (8 + 8 * count for the first one), then the data.
ARRAY_3_4_7 = ("01" + "00" * 7 + u32(0)              # one bucket, key 0
               + u32(12346) + u32(1)                # cookie, one container
               + u16(0) + u16(2)                    # container key 0, cardinality 3
               + u32(16)                            # its data starts 16 bytes after the cookie
               + u16(3) + u16(4) + u16(7))          # an array container
# With a run container: cookie 12347 | (count - 1) << 16, one flag byte (bit 0: container 0 is a
# run), no offset header (fewer than 4 containers); run data: uint16 run count, (start, length - 1).
RUN_100_TO_199 = ("01" + "00" * 7 + u32(0) + u32(12347) + "01" + u16(0) + u16(99) + u16(1) + u16(100) + u16(99))
# Two buckets: positions 1 and 2**32 + 1 (keys 0 and 1, each an array container holding 1).
TWO_BUCKETS = ("02" + "00" * 7
               + u32(0) + u32(12346) + u32(1) + u16(0) + u16(0) + u32(16) + u16(1)
               + u32(1) + u32(12346) + u32(1) + u16(0) + u16(0) + u32(16) + u16(1))
# The even numbers 0..8192: 4097 values in 4097 runs, so a bitmap container (8192 bytes): bytes
# 0..1023 are 0x55 (bits 0, 2, 4, 6), byte 1024 is 0x01 (bit 8192), the rest zero.
EVENS = ("01" + "00" * 7 + u32(0) + u32(12346) + u32(1) + u16(0) + u16(4096) + u32(16)
         + "55" * 1024 + "01" + "00" * 7167)


@pytest.mark.parametrize(("positions", "hex_bytes"), [
    ([], "00" * 8),
    ([3, 4, 7], ARRAY_3_4_7),
    (list(range(100, 200)), RUN_100_TO_199),
    ([1, 2**32 + 1], TWO_BUCKETS),
    (list(range(0, 8193, 2)), EVENS),
], ids=["empty", "array", "run", "two-buckets", "bitmap"])
def test_golden_portable_bytes(positions, hex_bytes):
    vector = DeletionVector.from_positions(positions)
    assert vector.to_bytes().hex() == hex_bytes
    assert DeletionVector.from_bytes(bytes.fromhex(hex_bytes)) == vector


def test_golden_offset_header_with_runs_and_four_containers():
    """Cookie 12347 with at least 4 containers carries the offset header."""
    positions = [p for k in range(4) for p in range(k * 65536, k * 65536 + 10)]  # 4 runs of 10
    header = u32(12347 | (3 << 16)) + "0f" + "".join(u16(k) + u16(9) for k in range(4))
    first = 4 + 1 + 16 + 16  # cookie, flags, descriptive and offset headers
    offsets = "".join(u32(first + 6 * k) for k in range(4))
    runs = "".join(u16(1) + u16(0) + u16(9) for _ in range(4))
    assert dv(*positions).to_bytes().hex() == "01" + "00" * 7 + u32(0) + header + offsets + runs


def test_delta_protocol_inline_example():
    """PROTOCOL.md, "JSON Example 3 — Inline": 40 bytes, rows 3, 4, 7, 11, 18, 29 (the older layout)."""
    vector = from_delta_inline("wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L", 40)
    assert vector.positions.tolist() == [3, 4, 7, 11, 18, 29]
    text, size = to_delta_inline(vector)  # we write the portable layout: magic D1 D3 39 64
    assert size == 44 and z85_decode(text, size)[:4] == bytes.fromhex("d1d33964")
    assert from_delta_inline(text, size) == vector


def test_z85_rfc_vector_and_padding():
    """ZeroMQ RFC 32's test vector; Delta pads to 4 bytes and keeps the size in the descriptor."""
    hello = bytes([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])
    assert z85_encode(hello) == "HelloWorld" and z85_decode("HelloWorld") == hello
    assert z85_decode(z85_encode(b"abcde"), 5) == b"abcde" and len(z85_encode(b"abcde")) == 10
    assert z85_encode(b"") == "" and z85_decode("", 0) == b""


def test_golden_framings():
    vector = dv(3, 4, 7)
    payload = ICEBERG_MAGIC + bytes.fromhex(ARRAY_3_4_7)
    assert ICEBERG_MAGIC == bytes.fromhex("d1d33964") == (1681511377).to_bytes(4, "little")
    assert to_delta_bytes(vector) == payload
    blob = to_iceberg_blob(vector)
    assert blob == len(payload).to_bytes(4, "big") + payload + zlib.crc32(payload).to_bytes(4, "big")
    data, slots = to_delta_file([vector, dv(9)])
    assert data[:1] == b"\x01" and data[1:1 + len(blob)] == blob and slots[0] == (1, len(payload))
    assert from_delta_file(data, offset=slots[1][0], size_in_bytes=slots[1][1]) == dv(9)
    assert from_iceberg_blob(blob) == vector == from_delta_bytes(payload)


def test_format_md_example_is_what_the_encoder_writes():
    """docs/format.md §18.1 spells out the bytes of {3, 4, 7}; they stay the encoder's."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "format.md").read_text()
    example = re.search(r"Example: the positions \{3, 4, 7\} are (.*?)\.\n", text, flags=re.S)
    assert example, "format.md §18.1 lost its example"
    spelled = re.sub(r"\([^)]*\)", " ", example.group(1)).replace("`", " ").split()
    assert bytes.fromhex("".join(spelled)) == dv(3, 4, 7).to_bytes()


# -------------------------------------------------------------------------------------- the value


def test_value_semantics():
    a, b = dv(5, 1, 5, 3), DeletionVector.from_positions(np.array([3, 1, 5], dtype=np.int32))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a.cardinality == len(a) == 3 and a.positions.tolist() == [1, 3, 5]
    assert a != dv(1, 3) and a != [1, 3, 5]
    assert 3 in a and 4 not in a and -1 not in a and "3" not in a and a.contains(5) and not a.contains(2**70)
    assert not a.positions.flags.writeable
    with pytest.raises(ValueError):
        a.positions[0] = 9
    with pytest.raises(FrozenInstanceError):
        a.positions = np.zeros(1, dtype=np.uint64)  # type: ignore[misc]
    assert repr(dv(*range(10))) == "DeletionVector(cardinality=10, positions=[0, 1, 2, 3, 4, 5, 6, 7, ...])"
    assert dv().cardinality == 0 and dv().to_bytes() == bytes(8)


def test_constructor_takes_only_the_canonical_array_and_copies_writable_ones():
    source = np.array([1, 2], dtype=np.uint64)
    vector = DeletionVector(positions=source)
    source[0] = 7
    assert vector.positions.tolist() == [1, 2]
    source = np.array([1, 2], dtype=np.uint64)
    view = source.view()
    view.flags.writeable = False  # read-only, but its base is not
    vector = DeletionVector(positions=view)
    source[0] = 0
    assert vector.positions.tolist() == [1, 2]
    with pytest.raises(ArgumentTypeError):
        DeletionVector(positions=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="sorted and distinct"):
        DeletionVector(positions=np.array([2, 1], dtype=np.uint64))
    with pytest.raises(InvalidArgumentError, match="2\\*\\*63"):
        DeletionVector(positions=np.array([2**63], dtype=np.uint64))


@pytest.mark.parametrize(("bad", "error", "fragment"), [
    ([1, -2], InvalidArgumentError, "non-negative"),
    (np.array([-1]), InvalidArgumentError, "non-negative"),
    ([2**63], InvalidArgumentError, "2\\*\\*63"),
    (np.array([2**63], dtype=np.uint64), InvalidArgumentError, "2\\*\\*63"),
    ([2**64 + 5], InvalidArgumentError, "2\\*\\*63"),
    ([2**70, 1], InvalidArgumentError, "2\\*\\*63"),
    ([1.0], ArgumentTypeError, "float"),
    ([True], ArgumentTypeError, "bool"),
    ([1, None], ArgumentTypeError, "NoneType"),
    (["1"], ArgumentTypeError, "str"),
    ("12", ArgumentTypeError, "str"),
    (b"12", ArgumentTypeError, "bytes"),
    (7, ArgumentTypeError, "int"),
    (None, ArgumentTypeError, "NoneType"),
    (np.array([1.5]), ArgumentTypeError, "float64"),
    (np.array([True]), ArgumentTypeError, "bool"),
    (np.zeros((2, 2), dtype=np.int64), ArgumentTypeError, "2 dimensions"),
    (pa.array([1, None]), ArgumentTypeError, "nulls"),
    (pa.array([1.0]), ArgumentTypeError, "double"),
])
def test_from_positions_refuses_bad_input_by_name(bad, error, fragment):
    with pytest.raises(error, match=fragment):
        DeletionVector.from_positions(bad)


def test_from_positions_takes_iterables_and_arrow():
    assert DeletionVector.from_positions(x for x in (4, 2)) == dv(2, 4)
    assert DeletionVector.from_positions(pa.chunked_array([[4], [2, 4]])) == dv(2, 4)
    assert DeletionVector.from_positions(np.array([2**63 - 1], dtype=np.uint64)).positions.tolist() == [2**63 - 1]
    assert DeletionVector.from_positions(range(0)) == dv()


def test_mask_numpy_and_arrow():
    vector = dv(0, 5, 9)
    keep = vector.mask(10)
    assert keep.dtype == bool and keep.tolist() == [i not in (0, 5, 9) for i in range(10)]
    for rows in (10, 11, 16, 17):
        arrow = vector.mask(rows, arrow=True)
        assert isinstance(arrow, pa.BooleanArray) and arrow.null_count == 0
        assert arrow.to_pylist() == [i not in (0, 5, 9) for i in range(rows)]
        arrow.validate(full=True)
    table = pa.table({"x": list(range(10))})
    assert table.filter(vector.mask(10, arrow=True))["x"].to_pylist() == [1, 2, 3, 4, 6, 7, 8]
    assert dv().mask(0).size == 0 and len(dv().mask(0, arrow=True)) == 0
    with pytest.raises(CorruptDeletionVectorError, match="row 9 of a data file with 9 rows"):
        vector.mask(9)
    with pytest.raises(InvalidArgumentError):
        vector.mask(-1)


def test_keep_mask_of_a_ten_million_row_file_is_fast():
    """100k deletes over 10M rows: the keep-mask takes a few ms (generous bound for a loaded CI box)."""
    rng = np.random.default_rng(0)
    vector = DeletionVector.from_positions(rng.choice(10_000_000, 100_000, replace=False))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        keep = vector.mask(10_000_000, arrow=True)
        best = min(best, time.perf_counter() - t0)
    assert keep.true_count == 9_900_000
    assert best < 0.1, f"keep-mask took {best * 1e3:.1f} ms"


def test_pickled_vectors_stay_read_only():
    """numpy unpickles arrays writable; a vector sent to a worker (a file task) must stay immutable."""
    vector = dv(1, 2**40)
    back = pickle.loads(pickle.dumps(vector))
    assert back == vector and not back.positions.flags.writeable
    with pytest.raises(ValueError):
        back.positions[0] = 5


def test_ranges():
    assert DeletionVector.from_positions(range(5, 12, 3)) == dv(5, 8, 11)
    assert DeletionVector.from_positions(range(10**7)).cardinality == 10**7
    assert DeletionVector.from_positions(range(2**63 - 2, 2**63)).positions.tolist() == [2**63 - 2, 2**63 - 1]
    assert DeletionVector.from_positions(range(3, 0, -1)) == dv(1, 2, 3)
    with pytest.raises(InvalidArgumentError):
        DeletionVector.from_positions(range(-1, 2))
    with pytest.raises(InvalidArgumentError):
        DeletionVector.from_positions(range(2**63 - 1, 2**63 + 1))


def test_union_and_intersects():
    a, b = dv(1, 2, 70000), dv(2, 3)
    assert a.union(b) == dv(1, 2, 3, 70000) and a.union(dv()) is a and dv().union(b) is b
    assert a.intersects(b) and not a.intersects(dv(3)) and not dv().intersects(a)
    assert a.difference(b) == dv(1, 70000) and a.difference(dv()) is a and dv().difference(a) == dv()
    with pytest.raises(ArgumentTypeError):
        a.union([1])  # type: ignore[arg-type]


# ------------------------------------------------------------------------- position-set strategy

BASES = [0, 2**16 - 40, 2**32 - 70000, 2**32, 5 * 2**32 - 3, 2**31 * 2**32 - 2**17, 2**63 - 2**16]


@st.composite
def position_sets(draw, max_pieces: int = 4) -> np.ndarray:
    """Unions of pieces near container (2**16) and bucket (2**32) boundaries: single values,
    sparse arrays, dense bitmaps (> 4096 scattered values), runs (some longer than a container)
    and alternating values (a bitmap with thousands of runs)."""
    pieces = [np.empty(0, dtype=np.uint64)]
    for _ in range(draw(st.integers(0, max_pieces))):
        base = draw(st.sampled_from(BASES)) + draw(st.integers(0, 3 * 2**16))
        kind = draw(st.sampled_from(["one", "sparse", "dense", "run", "alternate"]))
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        if kind == "one":
            offsets = np.array([0])
        elif kind == "sparse":
            offsets = rng.choice(2**17, draw(st.integers(1, 300)), replace=False)
        elif kind == "dense":
            offsets = rng.choice(2**16, draw(st.integers(4000, 9000)), replace=False)
        elif kind == "run":
            offsets = np.arange(draw(st.sampled_from([1, 2, 4095, 4096, 4097, 65536, 70000])))
        else:
            offsets = np.arange(0, draw(st.integers(2, 12000)), 2)
        values = np.uint64(base) + offsets.astype(np.uint64)
        pieces.append(values[values < np.uint64(2**63)])
    return np.concatenate(pieces)


@PROFILE
@given(position_sets(), st.data())
def test_round_trips_through_every_framing(positions, data):
    vector = DeletionVector.from_positions(positions)
    expected = np.unique(positions)
    assert np.array_equal(vector.positions, expected)
    raw = vector.to_bytes()
    rows = int(expected[-1]) + 1 if expected.size else 0
    assert DeletionVector.from_bytes(raw) == vector
    if rows < 2**63:  # a row count is an int64
        assert DeletionVector.from_bytes(raw, num_rows=rows) == vector
    assert from_delta_bytes(to_delta_bytes(vector)) == vector
    assert from_iceberg_blob(to_iceberg_blob(vector)) == vector
    assert from_delta_inline(*to_delta_inline(vector)) == vector
    other = DeletionVector.from_positions(data.draw(position_sets(max_pieces=2)))
    file, slots = to_delta_file([other, vector])
    assert from_delta_file(file, offset=slots[1][0], size_in_bytes=slots[1][1]) == vector
    assert np.array_equal(vector.union(other).positions, np.union1d(expected, other.positions))
    assert vector.intersects(other) == bool(np.intersect1d(expected, other.positions).size)
    assert np.array_equal(vector.difference(other).positions, np.setdiff1d(expected, other.positions))
    if expected.size:
        assert vector.contains(int(expected[0])) and vector.contains(int(expected[-1]))
        with pytest.raises(CorruptDeletionVectorError):
            DeletionVector.from_bytes(raw, num_rows=min(rows - 1, 2**63 - 1))


@PROFILE
@given(position_sets())
def test_keep_mask_matches_the_model(positions):
    positions = positions[positions < 2**20]
    vector = DeletionVector.from_positions(positions)
    rows = int(positions.max()) + 1 + int(positions.size % 9) if positions.size else 3
    model = np.ones(rows, dtype=bool)
    model[positions.astype(np.int64)] = False
    assert np.array_equal(vector.mask(rows), model)
    assert np.array_equal(vector.mask(rows, arrow=True).to_numpy(zero_copy_only=False), model)


# --------------------------------------------------------------------------------- cross-check

@PROFILE
@given(position_sets())
def test_bytes_equal_croaring(positions):
    """CRoaring (pyroaring, the tests extra) serializes the same set to the same bytes after
    run_optimize, and each side reads the other's bytes (also pyroaring's unoptimised ones)."""
    pyroaring = pytest.importorskip("pyroaring")
    vector = DeletionVector.from_positions(positions)
    theirs = pyroaring.BitMap64(vector.positions.tolist())
    assert DeletionVector.from_bytes(theirs.serialize()) == vector
    theirs.run_optimize()
    assert theirs.serialize() == vector.to_bytes()
    assert list(pyroaring.BitMap64.deserialize(vector.to_bytes())) == vector.positions.tolist()
    low = vector.positions[vector.positions < 2**32]
    if low.size:  # a bucket's body is CRoaring's 32-bit portable serialization
        bitmap = pyroaring.BitMap(low.tolist())
        bitmap.run_optimize()
        assert DeletionVector.from_positions(low).to_bytes()[12:] == bitmap.serialize()


# ----------------------------------------------------------------------------- malformed bytes


def _hex(text: str) -> bytes:
    return bytes.fromhex(text)


BAD_PORTABLE = {
    "empty": (b"", "truncated"),
    "short count": (bytes(7), "truncated"),
    "count beyond length": ((5).to_bytes(8, "little") + bytes(30), "declares 5 buckets"),
    "huge count": (b"\xff" * 8 + bytes(12), "buckets"),
    "bad cookie": (_hex(ARRAY_3_4_7.replace(u32(12346), u32(12345), 1)), "bad cookie 12345"),
    "truncated container": (_hex(ARRAY_3_4_7)[:-1], "truncated"),
    "trailing bytes": (_hex(ARRAY_3_4_7) + b"\x00", "unexpected bytes"),
    "unsorted buckets": (_hex("02" + "00" * 7 + TWO_BUCKETS[16:16 + 44] + TWO_BUCKETS[16:16 + 44]),
                         "not strictly increasing"),
    "bucket key msb": (_hex("01" + "00" * 7 + u32(2**31) + ARRAY_3_4_7[24:]), "beyond"),
    "too many containers": (_hex("01" + "00" * 7 + u32(0) + u32(12346) + u32(65537)), "65537 containers"),
    "unsorted containers": (_hex("01" + "00" * 7 + u32(0) + u32(12346) + u32(2) + u16(1) + u16(0) + u16(0)
                                 + u16(0) + u32(24) + u32(26) + u16(1) + u16(1)), "container keys"),
    "array not increasing": (_hex(ARRAY_3_4_7[:-8] + u16(7) + u16(4)), "not strictly increasing"),
    "array duplicate": (_hex(ARRAY_3_4_7[:-8] + u16(4) + u16(4)), "not strictly increasing"),
    "offset mismatch": (_hex("01" + "00" * 7 + u32(0) + u32(12346) + u32(1) + u16(0) + u16(2) + u32(17)
                             + u16(3) + u16(4) + u16(7)), "offset header"),
    "bitmap count": (_hex(EVENS.replace("55", "57", 1)), "bit count"),
    "run overflow": (_hex("01" + "00" * 7 + u32(0) + u32(12347) + "01" + u16(0) + u16(1) + u16(1)
                          + u16(65535) + u16(1)), "overflows"),
    "runs overlap": (_hex("01" + "00" * 7 + u32(0) + u32(12347) + "01" + u16(0) + u16(3) + u16(2)
                          + u16(10) + u16(1) + u16(11) + u16(1)), "overlap"),
    "run cardinality": (_hex(RUN_100_TO_199.replace(u16(99) + u16(1), u16(98) + u16(1), 1)), "cardinality"),
    "run count beyond input": (_hex(RUN_100_TO_199.replace(u16(1) + u16(100), u16(900) + u16(100), 1)),
                               "truncated"),
}


@pytest.mark.parametrize("case", sorted(BAD_PORTABLE))
def test_malformed_portable_bytes_are_named(case):
    data, fragment = BAD_PORTABLE[case]
    with pytest.raises(CorruptDeletionVectorError, match=fragment) as info:
        DeletionVector.from_bytes(data)
    assert isinstance(info.value, CorruptLogError) and isinstance(info.value, ValueError)


def _full_run_buckets(count: int) -> bytes:
    """``count`` buckets, each one container of one run of 65536 values: 19 bytes per 65536 positions."""
    bucket = u32(12347) + "01" + u16(0) + u16(65535) + u16(1) + u16(0) + u16(65535)
    return _hex(count.to_bytes(8, "little").hex() + "".join(u32(k) + bucket for k in range(count)))


def test_tiny_input_cannot_make_the_decoder_allocate_much():
    """Run containers expand 2**16 positions from 6 bytes: the cap is checked on the headers first."""
    data = _full_run_buckets(DEFAULT_MAX_CARDINALITY // 65536 + 1)  # 40 KB describing 2**27 + 2**16 rows
    t0 = time.perf_counter()
    with pytest.raises(CorruptDeletionVectorError, match="more positions"):
        DeletionVector.from_bytes(data)
    with pytest.raises(CorruptDeletionVectorError):
        DeletionVector.from_bytes(data, num_rows=10**6)
    assert time.perf_counter() - t0 < 5
    assert DeletionVector.from_bytes(_full_run_buckets(2), num_rows=2**33).cardinality == 2**17


@pytest.mark.parametrize(("decode", "data", "fragment"), [
    (from_iceberg_blob, b"\x00\x00\x00", "truncated"),
    (from_iceberg_blob, (99).to_bytes(4, "big") + ICEBERG_MAGIC + bytes(12), "declares 99 bytes"),
    (from_iceberg_blob, to_iceberg_blob(dv(1))[:-1] + b"\x00", "CRC-32"),
    (from_iceberg_blob, to_iceberg_blob(dv(1)) + b"\x00", "after its checksum"),
    (from_iceberg_blob, len(b"abcd" + bytes(8)).to_bytes(4, "big") + b"abcd" + bytes(8)
     + zlib.crc32(b"abcd" + bytes(8)).to_bytes(4, "big"), "magic"),
    (from_delta_bytes, b"\x00\x01\x02\x03" + bytes(8), "unknown magic"),
    (from_delta_bytes, b"", "unknown magic"),
    (from_delta_bytes, bytes.fromhex("6439d3d0") + b"\x00\x00\x00\x05", "declares 5 bitmaps"),
])
def test_malformed_framings_are_named(decode, data, fragment):
    with pytest.raises(CorruptDeletionVectorError, match=fragment):
        decode(data)


def test_malformed_delta_files_are_named():
    data, [(offset, size)] = to_delta_file([dv(1, 2)])
    with pytest.raises(CorruptDeletionVectorError, match="version 02"):
        from_delta_file(b"\x02" + data[1:], offset=offset, size_in_bytes=size, path="_deletion_vectors/x.bin")
    with pytest.raises(CorruptDeletionVectorError, match="descriptor says") as info:
        from_delta_file(data, offset=offset, size_in_bytes=size + 1, path="_deletion_vectors/x.bin")
    assert info.value.path == "_deletion_vectors/x.bin" and "_deletion_vectors/x.bin" in str(info.value)
    with pytest.raises(CorruptDeletionVectorError):
        from_delta_file(data, offset=offset + 1, size_in_bytes=size)
    with pytest.raises(CorruptDeletionVectorError, match="CRC"):
        from_delta_file(data[:-1] + bytes([data[-1] ^ 1]), offset=offset, size_in_bytes=size)
    with pytest.raises(CorruptDeletionVectorError):
        from_delta_file(data, offset=offset, size_in_bytes=size, num_rows=2)
    with pytest.raises(InvalidArgumentError):
        from_delta_file(data, offset=0, size_in_bytes=size)
    with pytest.raises(ArgumentTypeError):
        from_delta_file("text", offset=1, size_in_bytes=size)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "size", "fragment"), [
    ("Hello", None, None),
    ("Hell", None, "multiple of 5"),
    ("Hell~", None, "alphabet"),
    ("Hellé", None, "non-ASCII"),
    ("#####", None, "above 2"),
    ("HelloWorld", 3, "does not hold 3"),
    ("HelloWorld", 9, "does not hold 9"),
    ("HelloWorld", 7, "does not hold 7"),  # the dropped byte (0x5B) is not zero padding
])
def test_malformed_z85(text, size, fragment):
    if fragment is None:
        assert len(z85_decode(text)) == 4
        return
    with pytest.raises(CorruptDeletionVectorError, match=fragment):
        z85_decode(text, size)


def _frame(payload: bytes) -> bytes:
    """A blob around ``payload`` with the right length and CRC, so the bitmap decoder sees any damage."""
    return len(payload).to_bytes(4, "big") + payload + zlib.crc32(payload).to_bytes(4, "big")


def _check_decoded(vector: DeletionVector) -> None:
    assert isinstance(vector, DeletionVector)
    assert vector.positions.size < 2 or bool(np.all(vector.positions[1:] > vector.positions[:-1]))
    assert DeletionVector.from_bytes(vector.to_bytes()) == vector


def _decode_all(data: bytes) -> None:
    """Every decoder on ``data`` (framings built around it with valid CRCs): each returns a canonical
    vector or raises CorruptDeletionVectorError, nothing else."""
    payload = ICEBERG_MAGIC + data
    attempts = [
        lambda: DeletionVector.from_bytes(data, num_rows=2**40),
        lambda: DeletionVector.from_bytes(data),
        lambda: from_delta_bytes(data),
        lambda: from_iceberg_blob(data),
        lambda: from_delta_bytes(payload, num_rows=2**40),
        lambda: from_iceberg_blob(_frame(payload)),
        lambda: from_delta_file(b"\x01" + _frame(payload), offset=1, size_in_bytes=len(payload), num_rows=2**40),
    ]
    for attempt in attempts:
        try:
            vector = attempt()
        except CorruptDeletionVectorError:
            continue
        _check_decoded(vector)


def _mutate(raw: bytes, data: st.DataObject) -> bytes:
    mutation = data.draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "delete", "splice"]))
    at = data.draw(st.integers(0, max(0, len(raw) - 1)))
    if mutation == "truncate":
        return raw[:at]
    if mutation == "flip":
        return raw[:at] + bytes([raw[at] ^ (1 << data.draw(st.integers(0, 7)))]) + raw[at + 1:] if raw else raw
    if mutation == "overwrite":  # values that hit counts, cookies (0x3a30, 0x3b30) and run bits
        value = data.draw(st.sampled_from([0, 1, 0xFF, 0x7F, 0x80, 0x10, 0x3A, 0x3B, 0x30]))
        width = data.draw(st.sampled_from([1, 2, 4, 8]))
        return raw[:at] + bytes([value]) * width + raw[at + width:]
    if mutation == "insert":
        return raw[:at] + data.draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    if mutation == "delete":
        return raw[:at] + raw[at + data.draw(st.integers(1, 8)):]
    return raw[:at] + data.draw(st.binary(max_size=64))


@FUZZ_PROFILE
@given(position_sets(max_pieces=2), st.data())
def test_mutated_bytes_raise_only_typed_errors(positions, data):
    vector = DeletionVector.from_positions(positions)
    mutated = vector.to_bytes()
    for _ in range(data.draw(st.integers(1, 3))):  # one to three mutations of the bitmap
        mutated = _mutate(mutated, data)
    _decode_all(mutated)
    framed = data.draw(st.sampled_from([to_delta_bytes(vector), to_iceberg_blob(vector), to_delta_file([vector])[0]]))
    damaged = _mutate(framed, data)  # damage to a framing: its length, magic or CRC catches it
    for decode in (from_delta_bytes, from_iceberg_blob,
                   lambda d: from_delta_file(d, offset=1, size_in_bytes=len(framed) - 9)):
        with contextlib.suppress(CorruptDeletionVectorError):
            _check_decoded(decode(damaged))


@FUZZ_PROFILE
@given(st.binary(max_size=256))
def test_random_bytes_raise_only_typed_errors(data):
    _decode_all(data)
    _decode_all((1).to_bytes(8, "little") + bytes(4) + data)  # one bucket whose 32-bit bitmap is random
    _decode_all((1).to_bytes(8, "little") + bytes(4) + (12347).to_bytes(2, "little") + data)
    _decode_all((1).to_bytes(8, "little") + bytes(4) + (12346).to_bytes(4, "little") + data)
    with contextlib.suppress(CorruptDeletionVectorError):
        z85_decode(data.decode("latin-1"))
